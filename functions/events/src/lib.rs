//! EventBridge → ingest → triggers queue. `detail-type` is the trigger type;
//! `detail` holds the scope ids (`workspaceid`, `siteid`, `cardid`,
//! `contactid`, `depth`) and the event's `data`. `main` reads the environment
//! and calls [`wire`]; the tests call the same `wire`.

pub mod handler;

use std::sync::Arc;

use hookflow_core::ports::Queue;
use hookflow_core::wiring::Stores;
use hookflow_core::Ingest;

/// The function as deployed: events are deduplicated in the runs table and
/// sent to the triggers queue.
pub fn wire(stores: &Stores, triggers: Arc<dyn Queue>) -> Ingest {
    stores.ingest(triggers)
}
