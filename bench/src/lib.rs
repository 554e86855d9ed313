//! weir's benchmark suite. Workloads are generated deterministically so
//! anyone can rerun them; every comparison is measured in the same run and
//! reported as a ratio.

/// The `weir` binary's allocator, so in-process figures match it (every
/// in-process contender, native ones included, runs on it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod contenders;
pub mod deploy;
pub mod engine;
pub mod kafka;
pub mod keyed;
pub mod orders;
pub mod overlap;
pub mod peers;
pub mod pipeline;
pub mod polyglot;
pub mod report;
pub mod windows;
pub mod workload;
