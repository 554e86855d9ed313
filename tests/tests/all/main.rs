//! weir's integration tests: real components built from source by the
//! build script, run through the real engine. One binary, a module per topic.

mod admin;
mod admin_access;
mod aggregate;
mod allocations;
mod backlog;
mod bad_guests;
mod cache;
mod console;
mod deploy;
mod event_time;
mod exactly_once;
mod filter_and_map;
mod forwarding;
mod hostile;
mod kafka;
mod keyed_state;
mod loading;
mod pipeline;
mod replay;
mod sink;
mod state;
mod support;
mod types;
mod windows;
