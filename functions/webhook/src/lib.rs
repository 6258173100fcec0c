//! API Gateway (HTTP API, payload v2) → `POST /v1/events` (an `ingest` or `admin`
//! key) and `POST /v1/hooks/{hook_id}` (the hook's sender auth) → ingest →
//! triggers queue. `main` reads the environment and calls
//! [`wire`]; the tests call the same `wire`.

pub mod handler;

use std::sync::Arc;

use hookflow_api::Router;
use hookflow_core::ports::Queue;
use hookflow_core::wiring::Stores;

/// The function as deployed: keys and hooks are looked up in the workflows table,
/// events are deduplicated in the runs table and sent to the triggers queue.
pub fn wire(stores: &Stores, triggers: Arc<dyn Queue>, stage: Option<&str>) -> Router {
    handler::router(
        Arc::new(stores.access()),
        Arc::new(stores.ingest(triggers.clone())),
        Arc::new(stores.hook_receiver(triggers)),
        stage,
    )
}
