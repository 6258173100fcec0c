//! API Gateway (HTTP API, payload v2) → `POST /v1/events` (an `ingest` or `admin`
//! key) → ingest → triggers queue. `main` reads the environment and calls
//! [`wire`]; the tests call the same `wire`.

pub mod handler;

use std::sync::Arc;

use hookflow_api::Router;
use hookflow_core::ports::Queue;
use hookflow_core::wiring::Stores;

/// The function as deployed: keys are looked up in the workflows table,
/// events are deduplicated in the runs table and sent to the triggers queue.
pub fn wire(stores: &Stores, triggers: Arc<dyn Queue>, stage: Option<&str>) -> Router {
    handler::router(Arc::new(stores.access()), Arc::new(stores.ingest(triggers)), stage)
}
