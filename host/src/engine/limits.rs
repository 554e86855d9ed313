//! Sandbox limits: the one place that decides how much memory, time and fuel
//! a guest may use, and the `ResourceLimiter` that enforces memory.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Default cap on a guest's linear memory.
pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 64 * 1024 * 1024;
/// Default per-call deadline.
pub const DEFAULT_CALL_DEADLINE_MS: u64 = 1_000;
/// How often the epoch ticker advances the engine's epoch.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits applied to every instance of a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxLimits {
    /// Maximum linear memory per instance, in bytes.
    pub memory_limit_bytes: u64,
    /// Wall-clock budget of one guest call, in milliseconds (epoch
    /// interruption); 0 disables the deadline (only for benchmarks: a guest
    /// that loops forever then hangs its worker).
    pub call_deadline_ms: u64,
    /// Optional instruction budget per call (Wasmtime fuel); none = unmetered.
    pub fuel_per_call: Option<u64>,
    /// Maximum number of tables, instances and memories a component may create.
    pub max_instances: usize,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
            call_deadline_ms: DEFAULT_CALL_DEADLINE_MS,
            fuel_per_call: None,
            max_instances: 32,
        }
    }
}

impl SandboxLimits {
    /// Whether calls have a deadline.
    pub fn deadline_enabled(&self) -> bool {
        self.call_deadline_ms > 0
    }

    /// The deadline as a number of epoch ticks (at least one).
    pub fn deadline_ticks(&self) -> u64 {
        (self.call_deadline_ms / EPOCH_TICK.as_millis() as u64).max(1)
    }
}

/// Enforces the memory cap and remembers whether it refused a request, so a
/// trap that follows can be reported as "out of memory" rather than the
/// guest's generic `unreachable`.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit_bytes: usize,
    max_instances: usize,
    /// Set when a `memory.grow` was refused since the last call started.
    pub denied_growth: bool,
    /// Largest linear memory size granted so far, in bytes.
    pub peak_bytes: usize,
}

impl MemoryLimiter {
    /// A limiter for the given limits.
    pub fn new(limits: &SandboxLimits) -> Self {
        MemoryLimiter {
            limit_bytes: usize::try_from(limits.memory_limit_bytes).unwrap_or(usize::MAX),
            max_instances: limits.max_instances,
            denied_growth: false,
            peak_bytes: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit_bytes {
            self.denied_growth = true;
            return Ok(false);
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }

    fn instances(&self) -> usize {
        self.max_instances
    }

    fn tables(&self) -> usize {
        self.max_instances
    }

    fn memories(&self) -> usize {
        self.max_instances
    }
}
