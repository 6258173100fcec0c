//! EventBridge → ingest → triggers queue. `detail-type` is the trigger type;
//! `detail` holds the scope ids (`workspaceid`, `siteid`, `cardid`,
//! `contactid`, `depth`) and the event's `data`. `main` reads the environment
//! and calls [`wire`]; the tests call the same `wire`.

pub mod handler;

use std::sync::Arc;

use hookflow_core::ports::{EventDedupe, Queue};
use hookflow_core::Ingest;

/// The function as deployed: events are deduplicated by `dedupe` (the runs
/// table) and sent to the triggers queue. It takes no other store, so links
/// none.
pub fn wire(dedupe: Arc<dyn EventDedupe>, triggers: Arc<dyn Queue>) -> Ingest {
    hookflow_core::wiring::ingest(dedupe, triggers)
}
