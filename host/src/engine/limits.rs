//! Sandbox limits: the one place that decides how much memory, time and fuel
//! a guest may use, and the `ResourceLimiter` that enforces memory.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Default cap on a guest's linear memory.
pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 64 * 1024 * 1024;
/// Default per-call deadline.
pub const DEFAULT_CALL_DEADLINE_MS: u64 = 1_000;
/// Default for [`SandboxLimits::packed_batch_max_bytes`].
pub const DEFAULT_PACKED_BATCH_MAX_BYTES: u64 = 4 * 1024;
/// The largest [`SandboxLimits::packed_batch_max_bytes`] a config may set.
pub const MAX_PACKED_BATCH_MAX_BYTES: u64 = 1024 * 1024;
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
    /// Maximum number of core instances a component may create.
    pub max_instances: usize,
    /// Maximum number of linear memories per instance (all of them share
    /// `memory_limit_bytes`).
    pub max_memories: usize,
    /// Maximum number of tables per instance.
    pub max_tables: usize,
    /// Maximum table elements per instance, summed over its tables.
    pub max_table_elements: usize,
    /// Maximum rows one aggregate call may return, summed over its batches.
    pub max_output_rows_per_call: u64,
    /// Maximum bytes of buffers (validity, offsets, values) one call may
    /// return, summed over its batches.
    pub max_output_bytes_per_call: u64,
    /// Batches with up to this many bytes of buffers go packed (one list,
    /// the schema declared once; contract 0.1.2) to filters and maps that
    /// take packed batches; larger ones, where the extra copy into the one
    /// list costs more than the lists it saves, go column by column. 0 =
    /// never packed.
    pub packed_batch_max_bytes: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
            call_deadline_ms: DEFAULT_CALL_DEADLINE_MS,
            fuel_per_call: None,
            max_instances: 32,
            max_memories: 4,
            max_tables: 8,
            max_table_elements: 1_000_000,
            max_output_rows_per_call: 1_000_000,
            max_output_bytes_per_call: DEFAULT_MEMORY_LIMIT_BYTES,
            packed_batch_max_bytes: DEFAULT_PACKED_BATCH_MAX_BYTES,
        }
    }
}

impl SandboxLimits {
    /// Whether calls have a deadline.
    pub fn deadline_enabled(&self) -> bool {
        self.call_deadline_ms > 0
    }

    /// Bytes the host may copy out of guest memory in one call (Wasmtime's
    /// hostcall fuel): every list and string of a returned value, and of a
    /// host call's arguments, is charged before it is copied, with the size
    /// of the host value it becomes. Twice the larger of the memory cap and
    /// `max_output_bytes_per_call`: what a guest holds in its memory fits,
    /// while lists pointing at the same memory (each would be copied) do not.
    pub fn max_copied_bytes_per_call(&self) -> usize {
        let bytes = self.memory_limit_bytes.max(self.max_output_bytes_per_call).saturating_mul(2);
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }

    /// The deadline as a number of epoch ticks (at least one).
    pub fn deadline_ticks(&self) -> u64 {
        (self.call_deadline_ms / EPOCH_TICK.as_millis() as u64).max(1)
    }
}

/// Enforces the memory cap over all of an instance's linear memories (and
/// the table cap over all its tables), and remembers whether it refused a
/// request, so a trap that follows can be reported as "out of memory" rather
/// than the guest's generic `unreachable`.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit_bytes: usize,
    max_instances: usize,
    max_memories: usize,
    max_tables: usize,
    max_table_elements: usize,
    /// Bytes of all linear memories together.
    memory_bytes: usize,
    /// Elements of all tables together.
    table_elements: usize,
    /// Set when a `memory.grow` was refused since the last call started.
    pub denied_growth: bool,
    /// Largest total linear memory granted so far, in bytes.
    pub peak_bytes: usize,
}

impl MemoryLimiter {
    /// A limiter for the given limits.
    pub fn new(limits: &SandboxLimits) -> Self {
        MemoryLimiter {
            limit_bytes: usize::try_from(limits.memory_limit_bytes).unwrap_or(usize::MAX),
            max_instances: limits.max_instances,
            max_memories: limits.max_memories,
            max_tables: limits.max_tables,
            max_table_elements: limits.max_table_elements,
            memory_bytes: 0,
            table_elements: 0,
            denied_growth: false,
            peak_bytes: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // `current` is 0 for a memory being created: its initial size counts too.
        let total = self.memory_bytes.saturating_sub(current).saturating_add(desired);
        if total > self.limit_bytes {
            self.denied_growth = true;
            return Ok(false);
        }
        self.memory_bytes = total;
        self.peak_bytes = self.peak_bytes.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.table_elements.saturating_sub(current).saturating_add(desired);
        if total > self.max_table_elements {
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.max_instances
    }

    fn tables(&self) -> usize {
        self.max_tables
    }

    fn memories(&self) -> usize {
        self.max_memories
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn the_memory_cap_holds_for_all_memories_together() {
        let limits = SandboxLimits { memory_limit_bytes: 10 << 20, ..SandboxLimits::default() };
        let mut limiter = MemoryLimiter::new(&limits);
        assert!(limiter.memory_growing(0, 6 << 20, None).unwrap(), "first memory");
        assert!(!limiter.memory_growing(0, 6 << 20, None).unwrap(), "a second memory may not double the cap");
        assert!(limiter.denied_growth);
        assert!(limiter.memory_growing(0, 4 << 20, None).unwrap(), "what is left of the cap");
        assert!(!limiter.memory_growing(6 << 20, (6 << 20) + 65536, None).unwrap(), "the first cannot grow past it");
        assert_eq!(limiter.peak_bytes, 10 << 20);
    }

    /// A core module defining `count` memories of `pages` 64 KiB pages each
    /// (hand-assembled: header + memory section).
    fn memories_module(count: u8, pages: u8) -> Vec<u8> {
        assert!(pages < 0x80 && count < 0x40, "single-byte LEB128");
        let mut section = vec![count];
        for _ in 0..count {
            section.extend([0x00, pages]); // limits: min only
        }
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.extend([0x05, section.len() as u8]);
        module.extend(section);
        module
    }

    fn instantiate(limits: &SandboxLimits, module: &[u8]) -> wasmtime::Result<()> {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, module)?;
        let mut store = wasmtime::Store::new(&engine, MemoryLimiter::new(limits));
        store.limiter(|limiter| limiter);
        wasmtime::Instance::new(&mut store, &module, &[]).map(drop)
    }

    #[test]
    fn a_guest_with_several_memories_gets_one_cap_and_few_memories() {
        let limits = SandboxLimits { memory_limit_bytes: 10 << 20, ..SandboxLimits::default() };
        // Two memories of 6.25 MiB: each under the cap, together over it.
        assert!(instantiate(&limits, &memories_module(1, 100)).is_ok());
        assert!(instantiate(&limits, &memories_module(2, 100)).is_err(), "12.5 MiB in two memories");
        assert!(instantiate(&limits, &memories_module(2, 60)).is_ok(), "7.5 MiB in two memories");
        assert!(instantiate(&limits, &memories_module(4, 1)).is_ok());
        assert!(instantiate(&limits, &memories_module(5, 1)).is_err(), "max_memories is 4");
    }

    #[test]
    fn table_elements_are_capped_over_all_tables() {
        let limits = SandboxLimits { max_table_elements: 1000, ..SandboxLimits::default() };
        let mut limiter = MemoryLimiter::new(&limits);
        assert!(limiter.table_growing(0, 600, None).unwrap());
        assert!(!limiter.table_growing(0, 600, None).unwrap());
        assert!(limiter.table_growing(600, 1000, None).unwrap(), "the first may use what is left");
    }
}
