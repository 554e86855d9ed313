//! `/metrics` in the OpenMetrics text format, encoded by `prometheus-client`:
//! the pipeline counters are read from [`PipelineStats`] snapshots at scrape
//! time (a collector, so the atomics stay the one source of truth) and the
//! latency histograms are the process-wide [`Histograms`].
//!
//! [`PipelineStats`]: crate::telemetry::PipelineStats

use crate::pipeline::PipelineControl;
use crate::telemetry::{Histograms, PipelineState, StatsSnapshot};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Renders the metrics of `pipelines`.
pub fn render<'a>(pipelines: impl Iterator<Item = &'a PipelineControl>) -> String {
    let snapshots = pipelines.map(|p| (p.name.clone(), p.stats.snapshot())).collect();
    let mut registry = Registry::default();
    registry.register_collector(Box::new(PipelineCollector { snapshots }));
    let histograms = Histograms::global();
    registry.register("weir_operator_call_seconds", "Duration of one guest call", histograms.operator_call_seconds.clone());
    registry.register("weir_batch_seconds", "Duration of one batch, decode to commit", histograms.batch_seconds.clone());
    registry.register(
        "weir_guest_log_lines_dropped",
        "Guest log lines dropped by the per-call limit, by plugin",
        crate::telemetry::guest_log_lines_dropped().clone(),
    );
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

#[derive(Debug)]
struct PipelineCollector {
    snapshots: Vec<(String, StatsSnapshot)>,
}

/// A counter read from a snapshot: name (without `_total`), help, value.
type CounterField = (&'static str, &'static str, fn(&StatsSnapshot) -> u64);

const COUNTERS: [CounterField; 15] = [
    ("weir_state_checkpoints", "Aggregate state checkpoints written", |s| s.checkpoints),
    ("weir_state_written_records", "Records written to the state topic (checkpoints and keyed entries)", |s| s.state_written_records),
    ("weir_state_written_bytes", "Bytes (keys and values) written to the state topic", |s| s.state_written_bytes),
    ("weir_state_topic_reads", "Reads of the state topic to its end to restore tasks (one per assignment, not one per partition)", |s| s.state_topic_reads),
    ("weir_records_late", "Records behind the event-time watermark on arrival", |s| s.records_late),
    ("weir_records_in", "Records consumed", |s| s.records_in),
    ("weir_records_out", "Records written to the output or accepted by the sink", |s| s.records_out),
    ("weir_records_filtered", "Records dropped by filters", |s| s.records_filtered),
    ("weir_records_aggregated", "Records folded by aggregates", |s| s.records_aggregated),
    ("weir_records_redriven", "Dead letters replayed by redrive", |s| s.records_redriven),
    ("weir_retries", "Retries of transient failures", |s| s.retries),
    ("weir_batches", "Batches processed", |s| s.batches),
    ("weir_batches_overlapped", "Batches decoded chunk by chunk while the operators ran on the previous chunk", |s| s.batches_overlapped),
    ("weir_plugin_swaps", "Operators hot-swapped", |s| s.plugin_swaps),
    ("weir_records_dead_lettered", "Records sent to the dead-letter topic", |s| s.records_dead_lettered),
];

impl Collector for PipelineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in COUNTERS {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (pipeline, stats) in &self.snapshots {
                ConstCounter::new(value(stats)).encode(metric.encode_family(&[("pipeline", pipeline.as_str())])?)?;
            }
        }
        let mut metric = encoder.encode_descriptor("weir_records_dlq", "Records sent to the dead-letter topic, by reason", None, MetricType::Counter)?;
        for (pipeline, stats) in &self.snapshots {
            for (reason, count) in &stats.dead_letters_by_kind {
                ConstCounter::new(*count).encode(metric.encode_family(&[("pipeline", pipeline.as_str()), ("reason", reason.as_str())])?)?;
            }
        }
        let mut metric = encoder.encode_descriptor("weir_guest_traps", "Guest traps (each cost an instance), by kind", None, MetricType::Counter)?;
        for (pipeline, stats) in &self.snapshots {
            for (kind, count) in &stats.traps_by_kind {
                ConstCounter::new(*count).encode(metric.encode_family(&[("pipeline", pipeline.as_str()), ("kind", kind.as_str())])?)?;
            }
        }
        let mut metric = encoder.encode_descriptor("weir_state_bytes", "Aggregate state in the last checkpoints of the owned partitions", None, MetricType::Gauge)?;
        for (pipeline, stats) in &self.snapshots {
            ConstGauge::new(stats.state_bytes as i64).encode(metric.encode_family(&[("pipeline", pipeline.as_str())])?)?;
        }
        let mut metric = encoder.encode_descriptor("weir_state_checkpoint_seconds", "Duration of the last checkpoint, snapshot to commit", None, MetricType::Gauge)?;
        for (pipeline, stats) in &self.snapshots {
            ConstGauge::new(stats.checkpoint_us as f64 / 1e6).encode(metric.encode_family(&[("pipeline", pipeline.as_str())])?)?;
        }
        let mut metric = encoder.encode_descriptor(
            "weir_state_checkpoint_phase_seconds",
            "Time the worker spent on checkpoints, by phase: taking snapshots, and stopped waiting for state-topic acknowledgements",
            None,
            MetricType::Counter,
        )?;
        for (pipeline, stats) in &self.snapshots {
            for (phase, us) in [("snapshot", stats.checkpoint_snapshot_us), ("wait", stats.checkpoint_wait_us)] {
                ConstCounter::new(us as f64 / 1e6).encode(metric.encode_family(&[("pipeline", pipeline.as_str()), ("phase", phase)])?)?;
            }
        }
        let mut metric = encoder.encode_descriptor("weir_consumer_lag", "Records behind the end of the partition (high watermark minus committed)", None, MetricType::Gauge)?;
        for (pipeline, stats) in &self.snapshots {
            for partition in &stats.partitions {
                if let Some(lag) = partition.lag {
                    let number = partition.partition.to_string();
                    let labels = [("pipeline", pipeline.as_str()), ("topic", partition.topic.as_str()), ("partition", number.as_str())];
                    ConstGauge::new(lag).encode(metric.encode_family(&labels)?)?;
                }
            }
        }
        let mut metric = encoder.encode_descriptor("weir_committed_offset", "Next offset to consume, as committed", None, MetricType::Gauge)?;
        for (pipeline, stats) in &self.snapshots {
            for (partition, offset) in &stats.committed {
                ConstGauge::new(*offset).encode(metric.encode_family(&[("pipeline", pipeline.as_str()), ("partition", partition.as_str())])?)?;
            }
        }
        let mut metric = encoder.encode_descriptor("weir_pipeline_running", "1 when the pipeline is running", None, MetricType::Gauge)?;
        for (pipeline, stats) in &self.snapshots {
            ConstGauge::new(i64::from(stats.state == PipelineState::Running)).encode(metric.encode_family(&[("pipeline", pipeline.as_str())])?)?;
        }
        Ok(())
    }
}
