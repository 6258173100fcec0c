//! Triggers queue → dispatch: one run per matching workflow. `main` reads the environment and calls [`wire`]; the tests
//! call the same `wire`.

pub mod handler;

use std::sync::Arc;

use hookflow_core::ports::Queue;
use hookflow_core::wiring::DispatchStores;
use hookflow_core::Dispatcher;

/// The function as deployed: runs start on the steps queue.
pub fn wire(stores: &DispatchStores, steps: Arc<dyn Queue>) -> Dispatcher {
    stores.dispatcher(steps)
}
