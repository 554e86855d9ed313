//! Pipeline counters, in one place. Metric names follow
//! `weir_<name>_<unit>` (counters end in `_total`); [`PipelineStats::snapshot`]
//! gives a consistent copy for progress lines, summaries and `/metrics`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Lifecycle state of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
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
    /// Batches decoded chunk by chunk while the chain ran
    /// (`weir_batches_overlapped_total`, see `batch.overlap`).
    pub batches_overlapped: AtomicU64,
    /// Guest traps (`weir_guest_traps_total`).
    pub traps: AtomicU64,
    /// Dead letters by error kind (`weir_records_dlq_total{reason}`).
    pub dead_letters_by_kind: Mutex<BTreeMap<String, u64>>,
    /// Guest traps by kind (`weir_guest_traps_total{kind}`).
    pub traps_by_kind: Mutex<BTreeMap<String, u64>>,
    /// Operators hot-swapped (`weir_plugin_swaps_total`).
    pub plugin_swaps: AtomicU64,
    /// Records behind the watermark on arrival (`weir_records_late_total`), whatever the policy.
    pub records_late: AtomicU64,
    /// Dead letters replayed by redrive (`weir_records_redriven_total`).
    pub records_redriven: AtomicU64,
    /// State checkpoints written (`weir_state_checkpoints_total`).
    pub checkpoints: AtomicU64,
    /// Bytes of aggregate state in the last checkpoint of each owned task, summed (`weir_state_bytes`).
    pub state_bytes: AtomicU64,
    /// Duration of the last checkpoint, snapshot to commit, in microseconds (`weir_state_checkpoint_seconds`).
    pub checkpoint_us: AtomicU64,
    /// Time the worker spent taking checkpoint snapshots (guest calls and
    /// encoding), in microseconds (`weir_state_checkpoint_phase_seconds_total{phase="snapshot"}`).
    pub checkpoint_snapshot_us: AtomicU64,
    /// Time the worker was stopped waiting for state-topic writes to be
    /// acknowledged, in microseconds (`weir_state_checkpoint_phase_seconds_total{phase="wait"}`).
    pub checkpoint_wait_us: AtomicU64,
    /// Records written to the state topic: checkpoints and keyed entries (`weir_state_written_records_total`).
    pub state_written_records: AtomicU64,
    /// Bytes (keys and values) written to the state topic (`weir_state_written_bytes_total`).
    pub state_written_bytes: AtomicU64,
    /// Reads of the state topic to its end, to restore tasks (`weir_state_topic_reads_total`).
    pub state_topic_reads: AtomicU64,
    /// Live version label per operator.
    pub plugin_versions: Mutex<BTreeMap<String, String>>,
    /// Last committed offset (next to consume) per topic/partition.
    pub committed: Mutex<BTreeMap<(String, i32), i64>>,
    /// Partitions assigned to this process (none before the first assignment).
    pub assigned: Mutex<Option<BTreeSet<(String, i32)>>>,
    /// High watermark per partition, from librdkafka's statistics.
    pub high_watermarks: Mutex<BTreeMap<(String, i32), i64>>,
    /// Broker connections up, from librdkafka's statistics.
    pub brokers_up: AtomicU64,
    /// Event-time watermark (Unix ms; `i64::MIN` before the first), with `event_time` configured.
    pub watermark_ms: std::sync::atomic::AtomicI64,
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
            batches_overlapped: AtomicU64::new(0),
            traps: AtomicU64::new(0),
            dead_letters_by_kind: Mutex::default(),
            traps_by_kind: Mutex::default(),
            plugin_swaps: AtomicU64::new(0),
            records_late: AtomicU64::new(0),
            records_redriven: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            state_bytes: AtomicU64::new(0),
            checkpoint_us: AtomicU64::new(0),
            checkpoint_snapshot_us: AtomicU64::new(0),
            checkpoint_wait_us: AtomicU64::new(0),
            state_written_records: AtomicU64::new(0),
            state_written_bytes: AtomicU64::new(0),
            state_topic_reads: AtomicU64::new(0),
            plugin_versions: Mutex::default(),
            committed: Mutex::default(),
            assigned: Mutex::default(),
            high_watermarks: Mutex::default(),
            brokers_up: AtomicU64::new(0),
            watermark_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
            state: Mutex::new(PipelineState::Starting),
        }
    }
}

/// Offsets and lag of one assigned partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PartitionStatus {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset to consume, as committed by this process.
    pub committed: Option<i64>,
    /// End of the partition (high watermark), as last reported.
    pub high_watermark: Option<i64>,
    /// Records not yet processed: high watermark minus committed.
    pub lag: Option<i64>,
}

/// A consistent copy of the counters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
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
    /// See [`PipelineStats::batches_overlapped`].
    pub batches_overlapped: u64,
    /// See [`PipelineStats::traps`].
    pub traps: u64,
    /// See [`PipelineStats::dead_letters_by_kind`].
    pub dead_letters_by_kind: BTreeMap<String, u64>,
    /// See [`PipelineStats::traps_by_kind`].
    pub traps_by_kind: BTreeMap<String, u64>,
    /// See [`PipelineStats::checkpoints`].
    pub checkpoints: u64,
    /// See [`PipelineStats::state_bytes`].
    pub state_bytes: u64,
    /// See [`PipelineStats::checkpoint_us`].
    pub checkpoint_us: u64,
    /// See [`PipelineStats::checkpoint_snapshot_us`].
    pub checkpoint_snapshot_us: u64,
    /// See [`PipelineStats::checkpoint_wait_us`].
    pub checkpoint_wait_us: u64,
    /// See [`PipelineStats::state_written_records`].
    pub state_written_records: u64,
    /// See [`PipelineStats::state_written_bytes`].
    pub state_written_bytes: u64,
    /// See [`PipelineStats::state_topic_reads`].
    pub state_topic_reads: u64,
    /// See [`PipelineStats::plugin_swaps`].
    pub plugin_swaps: u64,
    /// See [`PipelineStats::records_late`].
    pub records_late: u64,
    /// See [`PipelineStats::records_redriven`].
    pub records_redriven: u64,
    /// See [`PipelineStats::plugin_versions`].
    pub plugin_versions: BTreeMap<String, String>,
    /// Committed offsets as `topic/partition -> offset`.
    pub committed: BTreeMap<String, i64>,
    /// Assigned partitions with committed offset and lag.
    pub partitions: Vec<PartitionStatus>,
    /// Number of assigned partitions (none before the first assignment).
    pub assigned_partitions: Option<usize>,
    /// See [`PipelineStats::brokers_up`].
    pub brokers_up: u64,
    /// Event-time watermark (Unix ms), once there is one.
    pub watermark_ms: Option<i64>,
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

    /// Counts a guest trap of `kind`.
    pub fn trapped(&self, kind: &str) {
        Self::add(&self.traps, 1);
        *self.traps_by_kind.lock().unwrap_or_else(|e| e.into_inner()).entry(kind.to_owned()).or_default() += 1;
    }

    /// Records the live version of an operator.
    pub fn set_plugin_version(&self, operator: &str, label: &str) {
        self.plugin_versions.lock().unwrap_or_else(|e| e.into_inner()).insert(operator.to_owned(), label.to_owned());
    }

    /// Sets the state.
    pub fn set_state(&self, state: PipelineState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    /// A consistent copy of everything.
    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let committed = self.committed.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let assigned = self.assigned.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let high_watermarks = self.high_watermarks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let partitions = assigned
            .iter()
            .flatten()
            .map(|key| {
                let committed = committed.get(key).copied();
                let high_watermark = high_watermarks.get(key).copied().filter(|h| *h >= 0);
                let lag = high_watermark.map(|h| (h - committed.unwrap_or(0)).max(0));
                PartitionStatus { topic: key.0.clone(), partition: key.1, committed, high_watermark, lag }
            })
            .collect();
        StatsSnapshot {
            partitions,
            assigned_partitions: assigned.as_ref().map(BTreeSet::len),
            brokers_up: load(&self.brokers_up),
            watermark_ms: Some(self.watermark_ms.load(Ordering::Relaxed)).filter(|w| *w != i64::MIN),
            records_in: load(&self.records_in),
            records_out: load(&self.records_out),
            records_filtered: load(&self.records_filtered),
            records_dead_lettered: load(&self.records_dead_lettered),
            records_aggregated: load(&self.records_aggregated),
            retries: load(&self.retries),
            batches: load(&self.batches),
            batches_overlapped: load(&self.batches_overlapped),
            traps: load(&self.traps),
            dead_letters_by_kind: self.dead_letters_by_kind.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            traps_by_kind: self.traps_by_kind.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            plugin_swaps: load(&self.plugin_swaps),
            records_late: load(&self.records_late),
            records_redriven: load(&self.records_redriven),
            checkpoints: load(&self.checkpoints),
            state_bytes: load(&self.state_bytes),
            checkpoint_us: load(&self.checkpoint_us),
            checkpoint_snapshot_us: load(&self.checkpoint_snapshot_us),
            checkpoint_wait_us: load(&self.checkpoint_wait_us),
            state_written_records: load(&self.state_written_records),
            state_written_bytes: load(&self.state_written_bytes),
            state_topic_reads: load(&self.state_topic_reads),
            plugin_versions: self.plugin_versions.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            committed: committed
                .iter()
                .map(|((t, p), o)| (format!("{t}/{p}"), *o))
                .collect(),
            state: self.state.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

/// Labels of `weir_operator_call_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct CallLabels {
    /// Pipeline name.
    pub pipeline: String,
    /// Operator name.
    pub operator: String,
    /// Live version label of the operator.
    pub plugin_version: String,
}

/// Labels of per-pipeline histograms.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct PipelineLabels {
    /// Pipeline name.
    pub pipeline: String,
}

/// Labels of per-plugin guest metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct PluginLabels {
    /// Plugin name.
    pub plugin: String,
}

/// Guest log lines (stdout, stderr, host `log`) dropped by the per-call
/// limit, by plugin (`weir_guest_log_lines_dropped_total`).
pub fn guest_log_lines_dropped() -> &'static prometheus_client::metrics::family::Family<PluginLabels, prometheus_client::metrics::counter::Counter> {
    static DROPPED: std::sync::OnceLock<prometheus_client::metrics::family::Family<PluginLabels, prometheus_client::metrics::counter::Counter>> =
        std::sync::OnceLock::new();
    DROPPED.get_or_init(Default::default)
}

type HistogramFamily<L> = prometheus_client::metrics::family::Family<L, prometheus_client::metrics::histogram::Histogram, fn() -> prometheus_client::metrics::histogram::Histogram>;

/// Process-wide latency histograms (the counters live in [`PipelineStats`]).
pub struct Histograms {
    /// Guest call time by pipeline, operator and plugin version (`weir_operator_call_seconds`).
    pub operator_call_seconds: HistogramFamily<CallLabels>,
    /// Time to process one batch, decode to commit (`weir_batch_seconds`).
    pub batch_seconds: HistogramFamily<PipelineLabels>,
    /// Running totals of the guest calls per label set, readable back (the
    /// histograms are not): the admin API's rate history reads them.
    call_totals: Mutex<std::collections::HashMap<CallLabels, std::sync::Arc<CallTotals>>>,
}

/// Total time and number of guest calls of one operator version.
#[derive(Debug, Default)]
pub struct CallTotals {
    /// Nanoseconds spent in guest calls.
    pub nanos: AtomicU64,
    /// Calls made.
    pub calls: AtomicU64,
}

impl Histograms {
    /// The call totals of `labels`: (seconds, calls); none before the operator existed.
    pub fn call_totals(&self, labels: &CallLabels) -> Option<(f64, u64)> {
        let totals = self.call_totals.lock().unwrap_or_else(|e| e.into_inner());
        totals.get(labels).map(|t| (t.nanos.load(Ordering::Relaxed) as f64 / 1e9, t.calls.load(Ordering::Relaxed)))
    }

    fn totals_for(&self, labels: &CallLabels) -> std::sync::Arc<CallTotals> {
        self.call_totals.lock().unwrap_or_else(|e| e.into_inner()).entry(labels.clone()).or_default().clone()
    }
}

impl Histograms {
    /// The process-wide instance.
    pub fn global() -> &'static Histograms {
        static HISTOGRAMS: std::sync::OnceLock<Histograms> = std::sync::OnceLock::new();
        HISTOGRAMS.get_or_init(|| {
            fn calls() -> prometheus_client::metrics::histogram::Histogram {
                // 10 µs .. ~5 s
                prometheus_client::metrics::histogram::Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(1e-5, 3.0, 13))
            }
            fn batches() -> prometheus_client::metrics::histogram::Histogram {
                // 100 µs .. ~50 s
                prometheus_client::metrics::histogram::Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(1e-4, 3.0, 13))
            }
            Histograms {
                operator_call_seconds: prometheus_client::metrics::family::Family::new_with_constructor(calls),
                batch_seconds: prometheus_client::metrics::family::Family::new_with_constructor(batches),
                call_totals: Mutex::default(),
            }
        })
    }
}

/// What an operator reports to its pipeline: call times and traps by kind.
#[derive(Clone)]
pub struct OperatorMetrics {
    /// Histogram for this operator's calls (labels fixed at creation).
    pub call_seconds: prometheus_client::metrics::histogram::Histogram,
    /// The pipeline's counters (traps).
    pub stats: std::sync::Arc<PipelineStats>,
    /// Readable totals of the same calls.
    totals: std::sync::Arc<CallTotals>,
}

impl OperatorMetrics {
    /// Metrics of operator `operator` at `version` in `pipeline`.
    pub fn new(stats: std::sync::Arc<PipelineStats>, pipeline: &str, operator: &str, version: &str) -> OperatorMetrics {
        let labels = CallLabels { pipeline: pipeline.to_owned(), operator: operator.to_owned(), plugin_version: version.to_owned() };
        let histograms = Histograms::global();
        OperatorMetrics { call_seconds: histograms.operator_call_seconds.get_or_create(&labels).clone(), stats, totals: histograms.totals_for(&labels) }
    }

    /// Records one guest call that took `elapsed`.
    pub fn observe_call(&self, elapsed: std::time::Duration) {
        self.call_seconds.observe(elapsed.as_secs_f64());
        self.totals.nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.totals.calls.fetch_add(1, Ordering::Relaxed);
    }
}
