//! Shadow runs: a candidate version of a filter or map runs beside the live
//! one on the same input batches, its output discarded, for N batches or T
//! seconds. The comparison (rows out, rows that differ, errors, traps, time
//! per batch) is shared with the admin API while it runs.

use super::{Operator, StepOutput};
use crate::engine::OperatorKind;
use arrow_array::{Array, RecordBatch};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a shadow run has seen so far.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct ShadowReport {
    /// Pipeline.
    pub pipeline: String,
    /// Candidate version (SHA-256).
    pub candidate_sha256: String,
    /// `running`, `finished` or `discarded`.
    pub state: String,
    /// Batches both versions ran on.
    pub batches: u64,
    /// Rows given to both.
    pub rows_in: u64,
    /// Rows the live version produced (kept, for a filter).
    pub live_rows_out: u64,
    /// Rows the candidate produced.
    pub candidate_rows_out: u64,
    /// Output rows that differ (value or presence), compared row by row in
    /// batches where both produced the same number of rows; otherwise every
    /// row of the larger output counts.
    pub rows_differing: u64,
    /// Rows the live version rejected.
    pub live_rejected: u64,
    /// Rows the candidate rejected.
    pub candidate_rejected: u64,
    /// Candidate calls that failed (trap or error).
    pub candidate_errors: u64,
    /// The last candidate error.
    pub last_candidate_error: Option<String>,
    /// Mean live time per batch, microseconds.
    pub live_us_per_batch: f64,
    /// Mean candidate time per batch, microseconds.
    pub candidate_us_per_batch: f64,
    /// Up to 5 examples of differing rows (`row: live | candidate`).
    pub examples: Vec<String>,
}

/// A candidate running in shadow of the live operator with the same name.
pub struct Shadow {
    candidate: Operator,
    report: Arc<Mutex<ShadowReport>>,
    batches_left: u64,
    until: Instant,
    live_time: Duration,
    candidate_time: Duration,
}

impl Shadow {
    /// Shadows for at most `batches` batches and `duration`.
    pub fn new(candidate: Operator, report: Arc<Mutex<ShadowReport>>, batches: u64, duration: Duration) -> Shadow {
        report.lock().unwrap_or_else(|e| e.into_inner()).state = "running".into();
        // A duration past what `Instant` can hold means "no time limit" (a day is plenty).
        let until = Instant::now().checked_add(duration).unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
        Shadow { candidate, report, batches_left: batches, until, live_time: Duration::ZERO, candidate_time: Duration::ZERO }
    }

    /// The candidate's plugin name.
    pub fn name(&self) -> &str {
        self.candidate.plugin().name()
    }

    /// The columns the candidate reads (`None`: every column).
    pub fn reads(&mut self) -> Option<Vec<String>> {
        self.candidate.reads()
    }

    /// Whether the run is over (batch or time budget used, or discarded).
    pub fn done(&self) -> bool {
        self.batches_left == 0 || Instant::now() >= self.until || self.report.lock().unwrap_or_else(|e| e.into_inner()).state != "running"
    }

    /// Marks the run finished (unless discarded).
    pub fn finish(&self) {
        let mut report = self.report.lock().unwrap_or_else(|e| e.into_inner());
        if report.state == "running" {
            report.state = "finished".into();
        }
    }

    /// Runs the candidate on `batch`, which the live operator turned into
    /// `live` in `live_time`, and records the comparison.
    pub fn observe(&mut self, batch: &RecordBatch, live: &StepOutput, live_time: Duration) {
        if self.done() {
            return;
        }
        self.batches_left -= 1;
        let started = Instant::now();
        let candidate = match self.candidate.kind() {
            OperatorKind::Filter => self.candidate.filter(batch),
            _ => self.candidate.map(batch),
        };
        self.candidate_time += started.elapsed();
        self.live_time += live_time;
        let mut report = self.report.lock().unwrap_or_else(|e| e.into_inner());
        report.batches += 1;
        report.rows_in += batch.num_rows() as u64;
        report.live_rows_out += live.batch.num_rows() as u64;
        report.live_rejected += live.rejected.len() as u64;
        report.live_us_per_batch = self.live_time.as_secs_f64() * 1e6 / report.batches as f64;
        report.candidate_us_per_batch = self.candidate_time.as_secs_f64() * 1e6 / report.batches as f64;
        match candidate {
            Ok(output) => {
                report.candidate_rows_out += output.batch.num_rows() as u64;
                report.candidate_rejected += output.rejected.len() as u64;
                compare(live, &output, &mut report);
            }
            Err(error) => {
                report.candidate_errors += 1;
                report.rows_differing += live.batch.num_rows() as u64;
                report.last_candidate_error = Some(error.to_string());
            }
        }
    }
}

/// Row-by-row comparison of two step outputs (same input).
fn compare(live: &StepOutput, candidate: &StepOutput, report: &mut ShadowReport) {
    let (a, b) = (&live.batch, &candidate.batch);
    if a.num_rows() != b.num_rows() || live.input_rows != candidate.input_rows || a.schema().fields().len() != b.schema().fields().len() {
        report.rows_differing += a.num_rows().max(b.num_rows()) as u64;
        if report.examples.len() < 5 {
            report.examples.push(format!("batch: live {} rows {:?} | candidate {} rows {:?}", a.num_rows(), field_names(a), b.num_rows(), field_names(b)));
        }
        return;
    }
    for row in 0..a.num_rows() {
        let differs = a.columns().iter().zip(b.columns()).any(|(x, y)| x.slice(row, 1).to_data() != y.slice(row, 1).to_data())
            || a.schema().fields().iter().zip(b.schema().fields()).any(|(x, y)| x.name() != y.name());
        if differs {
            report.rows_differing += 1;
            if report.examples.len() < 5 {
                report.examples.push(format!("row {row}: {} | {}", render_row(a, row), render_row(b, row)));
            }
        }
    }
}

fn field_names(batch: &RecordBatch) -> Vec<String> {
    batch.schema().fields().iter().map(|f| f.name().clone()).collect()
}

fn render_row(batch: &RecordBatch, row: usize) -> String {
    let options = arrow_cast::display::FormatOptions::default();
    let cells: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| {
            let value = arrow_cast::display::ArrayFormatter::try_new(column.as_ref(), &options)
                .map(|f| f.value(row).to_string())
                .unwrap_or_else(|_| "?".into());
            format!("{}={value}", field.name())
        })
        .collect();
    cells.join(",")
}
