use std::sync::Arc;

use hookflow_api::{router as api_router, ApiState, Router, DEFAULT_MAX_BODY_BYTES};
use hookflow_core::ports::RunLog;

/// The runs routes of `hookflow dev`, with only the run log wired.
pub(crate) fn router(runs: Arc<dyn RunLog>) -> Router {
    api_router(
        ApiState {
            ingest: None,
            runs: Some(runs),
        },
        DEFAULT_MAX_BODY_BYTES,
    )
}
