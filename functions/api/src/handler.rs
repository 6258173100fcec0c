use std::sync::Arc;

use hookflow_api::{router_for_stage, ApiState, Router, DEFAULT_MAX_BODY_BYTES};
use hookflow_core::lifecycle::Workflows;
use hookflow_core::ports::RunLog;

/// The management API (workflows and their lifecycle) and the runs read API,
/// the same routes as `hookflow dev` serves.
pub(crate) fn router(runs: Arc<dyn RunLog>, workflows: Arc<Workflows>, stage: Option<&str>) -> Router {
    router_for_stage(
        ApiState {
            ingest: None,
            runs: Some(runs),
            workflows: Some(workflows),
        },
        DEFAULT_MAX_BODY_BYTES,
        stage,
    )
}
