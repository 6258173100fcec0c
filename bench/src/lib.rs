//! `make bench`: Hookflow's speed and cost, measured side by side with a
//! bare relay on this machine. Every figure is a ratio or a count from one
//! run; nothing here is a pass/fail timing test. The request budget of a
//! run is (`tests/request_budget.rs`, part of `make test`).

pub mod burst;
pub mod cost;
pub mod flatness;
pub mod footprint;
pub mod load;
pub mod pipeline;
pub mod process;
pub mod profile;
pub mod report;
pub mod scaling;
pub mod sink;
pub mod stats;
