//! Pipeline counters, in one place. Metric names follow
//! `weir_<name>_<unit>` (counters end in `_total`); [`PipelineStats::snapshot`]
//! gives a consistent copy for progress lines, summaries and `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Lifecycle state of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "lowercase")]
pub enum PipelineState {
    /// Starting up (consumer joining its group).
    Starting,
    /// Consuming and processing.
    Running,
    /// Paused, with the reason (error budget exceeded, operator request).
    Paused(String),
    /// Stopped after draining (shutdown).
    Stopped,
    /// Halted on an error, with the reason; nothing past it was committed.
    Failed(String),
}

/// Live counters of one pipeline.
#[derive(Debug)]
pub struct PipelineStats {
    /// Records consumed (`weir_records_in_total`).
    pub records_in: AtomicU64,
    /// Records produced to the output topic or accepted by the sink (`weir_records_out_total`).
    pub records_out: AtomicU64,
    /// Records dropped by filters (`weir_records_filtered_total`).
    pub records_filtered: AtomicU64,
    /// Records sent to the dead-letter topic (`weir_records_dead_lettered_total`).
    pub records_dead_lettered: AtomicU64,
    /// Records that an aggregate folded (no 1:1 output) (`weir_records_aggregated_total`).
    pub records_aggregated: AtomicU64,
    /// Retries of transient failures (`weir_retries_total`).
    pub retries: AtomicU64,
    /// Batches processed (`weir_batches_total`).
    pub batches: AtomicU64,
    /// Guest traps (`weir_guest_traps_total`).
    pub traps: AtomicU64,
    /// Dead letters by error kind (`weir_records_dead_lettered_total{kind}`).
    pub dead_letters_by_kind: Mutex<BTreeMap<String, u64>>,
    /// Last committed offset (next to consume) per topic/partition.
    pub committed: Mutex<BTreeMap<(String, i32), i64>>,
    /// Current state.
    pub state: Mutex<PipelineState>,
}

impl Default for PipelineStats {
    fn default() -> Self {
        PipelineStats {
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            records_filtered: AtomicU64::new(0),
            records_dead_lettered: AtomicU64::new(0),
            records_aggregated: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            traps: AtomicU64::new(0),
            dead_letters_by_kind: Mutex::default(),
            committed: Mutex::default(),
            state: Mutex::new(PipelineState::Starting),
        }
    }
}

/// A consistent copy of the counters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    /// See [`PipelineStats::records_in`].
    pub records_in: u64,
    /// See [`PipelineStats::records_out`].
    pub records_out: u64,
    /// See [`PipelineStats::records_filtered`].
    pub records_filtered: u64,
    /// See [`PipelineStats::records_dead_lettered`].
    pub records_dead_lettered: u64,
    /// See [`PipelineStats::records_aggregated`].
    pub records_aggregated: u64,
    /// See [`PipelineStats::retries`].
    pub retries: u64,
    /// See [`PipelineStats::batches`].
    pub batches: u64,
    /// See [`PipelineStats::traps`].
    pub traps: u64,
    /// See [`PipelineStats::dead_letters_by_kind`].
    pub dead_letters_by_kind: BTreeMap<String, u64>,
    /// Committed offsets as `topic/partition -> offset`.
    pub committed: BTreeMap<String, i64>,
    /// See [`PipelineStats::state`].
    pub state: PipelineState,
}

impl PipelineStats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a dead letter of `kind`.
    pub fn dead_lettered(&self, kind: &str) {
        Self::add(&self.records_dead_lettered, 1);
        *self.dead_letters_by_kind.lock().unwrap_or_else(|e| e.into_inner()).entry(kind.to_owned()).or_default() += 1;
    }

    /// Sets the state.
    pub fn set_state(&self, state: PipelineState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    /// A consistent copy of everything.
    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            records_in: load(&self.records_in),
            records_out: load(&self.records_out),
            records_filtered: load(&self.records_filtered),
            records_dead_lettered: load(&self.records_dead_lettered),
            records_aggregated: load(&self.records_aggregated),
            retries: load(&self.retries),
            batches: load(&self.batches),
            traps: load(&self.traps),
            dead_letters_by_kind: self.dead_letters_by_kind.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            committed: self
                .committed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|((t, p), o)| (format!("{t}/{p}"), *o))
                .collect(),
            state: self.state.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}
