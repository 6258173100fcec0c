use std::sync::Arc;

use hookflow_api::{router_for_stage, ApiState, Gate, KeylessRequests, Router, DEFAULT_MAX_BODY_BYTES};
use hookflow_core::access::Access;
use hookflow_core::lifecycle::Workflows;
use hookflow_core::ports::RunLog;

/// The management API (workflows and their lifecycle) and the runs read API,
/// keys and the audit trail: the same routes as `hookflow dev` serves, every
/// one behind an API key.
pub(crate) fn router(
    access: Arc<Access>,
    runs: Arc<dyn RunLog>,
    workflows: Arc<Workflows>,
    stage: Option<&str>,
) -> Router {
    router_for_stage(
        ApiState {
            gate: Gate {
                access,
                keyless: KeylessRequests::Refused,
            },
            ingest: None,
            runs: Some(runs),
            workflows: Some(workflows),
        },
        DEFAULT_MAX_BODY_BYTES,
        stage,
    )
}
