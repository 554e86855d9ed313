//! Prometheus text exposition of the pipeline counters. Written by hand: the
//! counters already live in `telemetry` as atomics, and the text format for
//! labelled counters and gauges is a few lines; a registry crate would
//! duplicate the state.

use crate::telemetry::{PipelineState, StatsSnapshot};
use std::fmt::Write;

/// A counter: metric name, help text, and how to read it from a snapshot.
type Counter = (&'static str, &'static str, fn(&StatsSnapshot) -> u64);

/// Renders every pipeline's counters.
pub fn render<'a>(pipelines: impl Iterator<Item = (&'a str, StatsSnapshot)>) -> String {
    let pipelines: Vec<(&str, StatsSnapshot)> = pipelines.collect();
    let mut out = String::new();
    let counters: [Counter; 8] = [
        ("weir_records_in_total", "Records consumed.", |s| s.records_in),
        ("weir_records_out_total", "Records written to the output or accepted by the sink.", |s| s.records_out),
        ("weir_records_filtered_total", "Records dropped by filters.", |s| s.records_filtered),
        ("weir_records_aggregated_total", "Records folded by aggregates.", |s| s.records_aggregated),
        ("weir_records_dead_lettered_total", "Records sent to the dead-letter topic.", |s| s.records_dead_lettered),
        ("weir_retries_total", "Retries of transient failures.", |s| s.retries),
        ("weir_batches_total", "Batches processed.", |s| s.batches),
        ("weir_guest_traps_total", "Guest traps (each cost an instance).", |s| s.traps),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (pipeline, stats) in &pipelines {
            let _ = writeln!(out, "{name}{{pipeline=\"{}\"}} {}", escape(pipeline), value(stats));
        }
    }
    let _ = writeln!(out, "# HELP weir_dead_letters_total Dead letters by error kind.\n# TYPE weir_dead_letters_total counter");
    for (pipeline, stats) in &pipelines {
        for (kind, count) in &stats.dead_letters_by_kind {
            let _ = writeln!(out, "weir_dead_letters_total{{pipeline=\"{}\",kind=\"{}\"}} {count}", escape(pipeline), escape(kind));
        }
    }
    let _ = writeln!(out, "# HELP weir_committed_offset Next offset to consume, as committed.\n# TYPE weir_committed_offset gauge");
    for (pipeline, stats) in &pipelines {
        for (partition, offset) in &stats.committed {
            let _ = writeln!(out, "weir_committed_offset{{pipeline=\"{}\",partition=\"{}\"}} {offset}", escape(pipeline), escape(partition));
        }
    }
    let _ = writeln!(out, "# HELP weir_pipeline_running 1 when the pipeline is running.\n# TYPE weir_pipeline_running gauge");
    for (pipeline, stats) in &pipelines {
        let running = u8::from(stats.state == PipelineState::Running);
        let _ = writeln!(out, "weir_pipeline_running{{pipeline=\"{}\"}} {running}", escape(pipeline));
    }
    out
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
