//! A chain of operators run in order on each batch.

use super::shadow::Shadow;
use super::{EmptyBatch, Operator, RowRejection, StepOutput};
use crate::engine::{OperatorKind, Result, SinkResult};
use arrow_array::RecordBatch;

/// A row rejected somewhere in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRejection {
    /// Index of the operator in the chain.
    pub operator: usize,
    /// Row index in the batch given to the chain, when still known (rows
    /// produced by an aggregate have no single source row).
    pub input_row: Option<u32>,
    /// Reason given by the operator.
    pub reason: String,
}

/// What one batch produced.
#[derive(Debug, Default)]
pub struct ChainOutput {
    /// Result batches (after the last non-sink operator).
    pub batches: Vec<RecordBatch>,
    /// For each row of each result batch, its input row (none after an aggregate).
    pub input_rows: Vec<Option<Vec<u32>>>,
    /// Rows dropped by filters.
    pub filtered: usize,
    /// Rows rejected by maps or sinks.
    pub rejected: Vec<ChainRejection>,
    /// What each sink call returned.
    pub sink_results: Vec<SinkResult>,
    /// Columns the maps returned (added or replaced), in first-seen order.
    pub map_columns: Vec<String>,
}

/// Operators applied in order.
pub struct Chain {
    operators: Vec<Operator>,
    shadow: Option<Shadow>,
    rows_only_tail: bool,
    empty: EmptyBatch,
}

impl Chain {
    /// A chain of `operators`; sinks may only come last.
    pub fn new(operators: Vec<Operator>) -> Chain {
        Chain { operators, shadow: None, rows_only_tail: false, empty: EmptyBatch::default() }
    }

    /// The same operators with instances of their own (no shadow run).
    pub fn fresh(&self) -> Result<Chain> {
        Ok(Chain::new(self.operators.iter().map(Operator::fresh).collect::<Result<_>>()?))
    }

    /// Starts (or, with `None`, stops) a shadow run beside the operator of
    /// the same name; a previous one is marked finished.
    pub fn set_shadow(&mut self, shadow: Option<Shadow>) {
        if let Some(old) = std::mem::replace(&mut self.shadow, shadow) {
            old.finish();
        }
    }

    /// With `true`, a filter at the end of the chain reports only which rows
    /// it kept (an empty batch with their input rows), copying no columns: for
    /// a pipeline that forwards its source records and reads nothing from the
    /// result rows. Ignored while a shadow run compares the outputs.
    pub fn set_rows_only_tail(&mut self, rows_only: bool) {
        self.rows_only_tail = rows_only;
    }

    /// Whether a shadow run is active.
    pub fn has_shadow(&self) -> bool {
        self.shadow.is_some()
    }

    /// The operators.
    pub fn operators(&self) -> &[Operator] {
        &self.operators
    }

    /// The operators, mutably (hot swap replaces one between batches).
    pub fn operators_mut(&mut self) -> &mut [Operator] {
        &mut self.operators
    }

    /// Runs one batch through every operator.
    pub fn run(&mut self, batch: RecordBatch, watermark_ms: Option<i64>) -> Result<ChainOutput> {
        let mut out = ChainOutput::default();
        let rows: Option<Vec<u32>> = Some((0..batch.num_rows() as u32).collect());
        let mut current = vec![(batch, rows)];
        let count = self.operators.len();
        for (index, operator) in self.operators.iter_mut().enumerate() {
            let mut next = Vec::new();
            for (batch, rows) in current {
                if batch.num_rows() == 0 {
                    continue;
                }
                let source = |row: u32| rows.as_ref().map(|r| r[row as usize]);
                let reject = |out: &mut ChainOutput, rejected: Vec<RowRejection>| {
                    for r in rejected {
                        out.rejected.push(ChainRejection { operator: index, input_row: source(r.row), reason: r.reason });
                    }
                };
                match operator.kind() {
                    OperatorKind::Filter | OperatorKind::Map => {
                        let started = std::time::Instant::now();
                        let last = index + 1 == count;
                        let step = match operator.kind() {
                            OperatorKind::Filter if last && self.rows_only_tail && self.shadow.is_none() => {
                                let input_rows = operator.select(&batch)?;
                                StepOutput { batch: self.empty.like(&batch), input_rows, rejected: Vec::new(), returned: Vec::new() }
                            }
                            OperatorKind::Filter => operator.filter(&batch)?,
                            _ => operator.map(&batch)?,
                        };
                        if let Some(shadow) = self.shadow.as_mut().filter(|s| s.name() == operator.plugin().name()) {
                            shadow.observe(&batch, &step, started.elapsed());
                            if shadow.done() {
                                shadow.finish();
                                self.shadow = None;
                            }
                        }
                        if operator.kind() == OperatorKind::Filter {
                            out.filtered += batch.num_rows() - step.input_rows.len();
                        }
                        for column in &step.returned {
                            if !out.map_columns.contains(column) {
                                out.map_columns.push(column.clone());
                            }
                        }
                        let new_rows = rows.as_ref().map(|r| step.input_rows.iter().map(|&i| r[i as usize]).collect());
                        reject(&mut out, step.rejected);
                        next.push((step.batch, new_rows));
                    }
                    OperatorKind::Aggregate => {
                        for result in operator.aggregate(&batch, watermark_ms)? {
                            next.push((result, None));
                        }
                    }
                    OperatorKind::Sink => {
                        let result = operator.write(&batch)?;
                        if let SinkResult::RejectedRows(rejected) = &result {
                            reject(&mut out, rejected.clone());
                        }
                        out.sink_results.push(result);
                    }
                }
            }
            current = next;
        }
        for (batch, rows) in current {
            out.batches.push(batch);
            out.input_rows.push(rows);
        }
        Ok(out)
    }
}
