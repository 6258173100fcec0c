use std::sync::Arc;

use hookflow_api::{router_for_stage, ApiState, Router, DEFAULT_MAX_BODY_BYTES};
use hookflow_core::ports::RunLog;

/// The runs routes of `hookflow dev`, with only the run log wired.
pub(crate) fn router(runs: Arc<dyn RunLog>, stage: Option<&str>) -> Router {
    router_for_stage(
        ApiState {
            ingest: None,
            runs: Some(runs),
        },
        DEFAULT_MAX_BODY_BYTES,
        stage,
    )
}
