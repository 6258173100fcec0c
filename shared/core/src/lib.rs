//! Hookflow's domain and workflow engine.
//!
//! No IO happens here except through the [`ports`]; no AWS, Lambda or HTTP
//! server type appears. The same use cases run inside Lambda, in
//! `hookflow dev` and in tests.

pub mod access;
pub mod actions;
pub mod catalogue;
pub mod condition;
pub mod conformance;
pub mod connections;
pub mod contacts;
pub mod dead_letter;
pub mod engine;
pub mod event;
pub mod hooks;
pub mod lifecycle;
pub mod memory;
pub mod messaging;
pub mod metrics;
pub mod outbound;
pub mod path;
pub mod ports;
pub mod redact;
pub mod retry;
pub mod run;
pub mod run_stats;
pub mod run_view;
pub mod samples;
pub mod sso;
pub mod subscription;
pub mod template;
pub mod validate;
pub mod web_url;
pub mod wiring;
pub mod worker;
pub mod workflow;

pub use engine::{Dispatcher, EngineError, Ingest, StepExecutor};
pub use event::TriggerEvent;
pub use workflow::WorkflowDefinition;
