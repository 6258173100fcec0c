//! Steps queue → execute: one side-effecting step, then the pure steps after
//! it. The same function parks the steps' dead letters and, on a schedule,
//! reaps stuck runs. `main` reads the environment and calls [`wire`];
//! the tests call the same `wire`.

pub mod handler;

use std::sync::Arc;
use std::time::Duration;

use hookflow_aws::{MAX_RECEIVE_COUNT, STEPS_MESSAGE_RETENTION};
use hookflow_core::engine::DeliveryLimits;
use hookflow_core::ports::{HttpError, Queue};
use hookflow_core::wiring::StepStores;
use hookflow_core::worker::StepsWork;
use hookflow_http_client::{NetworkPolicy, ReqwestHttpClient};

/// The steps queue's visibility timeout in `template.yaml`.
pub const STEPS_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(900);

/// The steps queue as `template.yaml` configures it: its redeliveries, and
/// how long a message may wait in a backlog.
pub fn steps_limits() -> DeliveryLimits {
    DeliveryLimits::for_queue(STEPS_VISIBILITY_TIMEOUT, MAX_RECEIVE_COUNT).with_backlog_up_to(STEPS_MESSAGE_RETENTION)
}

/// The function as deployed: the steps queue's limits, HTTP steps and
/// webhook attempts under `policy` (private networks refused unless the
/// stack allows them), and the events contact steps emit (and disabled
/// webhook endpoints announce) sent through ingest onto `triggers`.
pub fn wire(
    stores: &StepStores,
    steps: Arc<dyn Queue>,
    triggers: Arc<dyn Queue>,
    policy: NetworkPolicy,
) -> Result<StepsWork, HttpError> {
    let http = Arc::new(ReqwestHttpClient::with_policy(policy)?);
    Ok(stores.steps_consumer(steps, triggers, http, steps_limits()))
}
