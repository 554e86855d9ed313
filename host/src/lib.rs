//! weir: a host runtime for WebAssembly stream operators on Arrow batches.
//!
//! The data path, in module order: [`batch`] turns records into Arrow batches
//! and Arrow batches into the WIT layout; [`engine`] loads components into a
//! sandbox and calls them; [`operator`] gives each operator kind its
//! semantics (selection, row rejection, fresh instance after a trap) and
//! chains them. [`cli`] is the `weir` command line (the binary is a shim).

pub mod batch;
pub mod bindings;
pub mod engine;
pub mod operator;
pub mod config;
pub mod delivery;
pub mod pipeline;
pub mod telemetry;
pub mod demo;
pub mod scenario;
pub mod offsets;
pub mod scaffold;
pub mod admin;
pub mod registry;
pub mod deploy;
pub mod client;
pub mod cli;
