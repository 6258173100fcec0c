//! The `hookflow` command's library half, so tests drive the same code the
//! binary runs.

pub mod admission;
pub mod connections;
pub mod connections_file;
pub mod contacts;
pub mod dev;
pub mod hooks;
pub mod keys;
pub mod load;
pub mod ops;
pub mod ports;
pub mod runs;
mod sink;
pub mod webhook_endpoints;
pub mod workflows;
