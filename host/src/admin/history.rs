//! Rate history for the web console and `GET /v1/pipelines/{name}/rates`:
//! a sampler reads each pipeline's counters and operator call-time
//! histograms every [`SAMPLE_INTERVAL`] and keeps the last [`POINTS`]
//! per-second rates (15 minutes) in a ring buffer per pipeline. No external
//! Prometheus needed; the counters stay the one source of truth.

use crate::pipeline::PipelineControl;
use crate::telemetry::{CallLabels, Histograms};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Time between two samples.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// Points kept per pipeline: 15 minutes at [`SAMPLE_INTERVAL`].
pub const POINTS: usize = 180;

/// Cumulative values read at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// When (Unix ms).
    pub at_ms: i64,
    /// `records_in`.
    pub records_in: u64,
    /// `records_out`.
    pub records_out: u64,
    /// `records_filtered`.
    pub records_filtered: u64,
    /// `records_dead_lettered`.
    pub records_dead_lettered: u64,
    /// Guest call time per `operator@version`: (sum of seconds, calls).
    pub calls: BTreeMap<String, (f64, u64)>,
}

/// Rates over one sample interval, ending at `at_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RatePoint {
    /// End of the interval (Unix ms).
    pub at_ms: i64,
    /// Records consumed per second.
    pub records_in_per_s: f64,
    /// Records written per second.
    pub records_out_per_s: f64,
    /// Records filtered per second.
    pub records_filtered_per_s: f64,
    /// Records dead-lettered per second.
    pub records_dead_lettered_per_s: f64,
    /// Mean guest call time in milliseconds per `operator@version`, for the
    /// versions called in the interval.
    pub call_ms: BTreeMap<String, f64>,
}

/// A pipeline's recent rates, as served by `GET /v1/pipelines/{name}/rates`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RateHistoryView {
    /// Pipeline name.
    pub pipeline: String,
    /// Seconds between two points.
    pub interval_seconds: u64,
    /// Oldest first; at most 180 (15 minutes). Empty until two samples were taken.
    pub points: Vec<RatePoint>,
}

#[derive(Debug, Default)]
struct Series {
    last: Option<Counters>,
    points: VecDeque<RatePoint>,
}

/// The rate ring buffers of every pipeline (cheap to share).
#[derive(Debug, Default)]
pub struct RateHistory {
    series: Mutex<BTreeMap<String, Series>>,
}

impl RateHistory {
    /// Adds a sample of `pipeline`; from the second on, a rate point.
    pub fn record(&self, pipeline: &str, now: Counters) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let series = series.entry(pipeline.to_owned()).or_default();
        if let Some(point) = series.last.as_ref().and_then(|last| rates(last, &now)) {
            if series.points.len() == POINTS {
                series.points.pop_front();
            }
            series.points.push_back(point);
        }
        series.last = Some(now);
    }

    /// The points of `pipeline`, oldest first.
    pub fn points(&self, pipeline: &str) -> Vec<RatePoint> {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.get(pipeline).map(|s| s.points.iter().cloned().collect()).unwrap_or_default()
    }

    /// Samples every pipeline every [`SAMPLE_INTERVAL`] until `stop` turns true.
    pub async fn run(self: Arc<Self>, pipelines: Vec<PipelineControl>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(SAMPLE_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            for pipeline in &pipelines {
                self.record(&pipeline.name, read(pipeline));
            }
        }
    }
}

/// The counters of `pipeline` now, with the call times of its live operator versions.
fn read(pipeline: &PipelineControl) -> Counters {
    let stats = pipeline.stats.snapshot();
    let histograms = Histograms::global();
    let calls = stats
        .plugin_versions
        .iter()
        .filter_map(|(operator, version)| {
            let labels = CallLabels { pipeline: pipeline.name.clone(), operator: operator.clone(), plugin_version: version.clone() };
            Some((format!("{operator}@{version}"), histograms.call_totals(&labels)?))
        })
        .collect();
    Counters {
        at_ms: chrono::Utc::now().timestamp_millis(),
        records_in: stats.records_in,
        records_out: stats.records_out,
        records_filtered: stats.records_filtered,
        records_dead_lettered: stats.records_dead_lettered,
        calls,
    }
}

/// Per-second rates between two samples; none when no time passed.
pub fn rates(before: &Counters, after: &Counters) -> Option<RatePoint> {
    let seconds = (after.at_ms - before.at_ms) as f64 / 1000.0;
    if seconds <= 0.0 {
        return None;
    }
    let per_s = |a: u64, b: u64| b.saturating_sub(a) as f64 / seconds;
    let call_ms = after
        .calls
        .iter()
        .filter_map(|(key, (sum, count))| {
            let (sum_before, count_before) = before.calls.get(key).copied().unwrap_or_default();
            let calls = count.checked_sub(count_before).filter(|c| *c > 0)?;
            Some((key.clone(), (sum - sum_before).max(0.0) * 1000.0 / calls as f64))
        })
        .collect();
    Some(RatePoint {
        at_ms: after.at_ms,
        records_in_per_s: per_s(before.records_in, after.records_in),
        records_out_per_s: per_s(before.records_out, after.records_out),
        records_filtered_per_s: per_s(before.records_filtered, after.records_filtered),
        records_dead_lettered_per_s: per_s(before.records_dead_lettered, after.records_dead_lettered),
        call_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at_ms: i64, records_in: u64, calls: &[(&str, f64, u64)]) -> Counters {
        Counters {
            at_ms,
            records_in,
            records_out: records_in / 2,
            calls: calls.iter().map(|(k, s, c)| (k.to_string(), (*s, *c))).collect(),
            ..Counters::default()
        }
    }

    #[test]
    fn rates_are_per_second_and_call_times_are_means_over_the_interval() {
        let point = rates(&at(0, 100, &[("f@v1", 1.0, 10)]), &at(5000, 1100, &[("f@v1", 1.5, 20), ("f@v2", 0.0, 0)])).unwrap();
        assert_eq!(point.records_in_per_s, 200.0);
        assert_eq!(point.records_out_per_s, 100.0);
        assert_eq!(point.records_dead_lettered_per_s, 0.0);
        // 0.5 s over 10 calls = 50 ms; v2 was not called.
        assert_eq!(point.call_ms, BTreeMap::from([("f@v1".to_string(), 50.0)]));
    }

    #[test]
    fn the_ring_keeps_the_newest_points_and_needs_two_samples() {
        let history = RateHistory::default();
        history.record("p", at(0, 0, &[]));
        assert!(history.points("p").is_empty());
        for i in 1..=(POINTS as i64 + 10) {
            history.record("p", at(i * 5000, i as u64 * 50, &[]));
        }
        let points = history.points("p");
        assert_eq!(points.len(), POINTS);
        assert_eq!(points.last().unwrap().at_ms, (POINTS as i64 + 10) * 5000);
        assert_eq!(points[0].at_ms, 11 * 5000);
        assert!(points.iter().all(|p| p.records_in_per_s == 10.0));
        assert!(history.points("other").is_empty());
    }
}
