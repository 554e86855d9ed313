//! Operator semantics on top of engine instances: filters select rows, maps
//! transform them (possibly rejecting some), aggregates fold, sinks write.
//! An [`Operator`] replaces its instance after a trap, and a [`Chain`] runs
//! several operators in order, tracking which input row each output row and
//! each rejection came from.

mod chain;
pub mod shadow;

pub use chain::{Chain, ChainOutput, ChainRejection};

use crate::batch::BatchError;
use crate::telemetry::OperatorMetrics;
use crate::engine::{Error, HttpAllowlist, Instance, OperatorKind, Plugin, Result, SinkResult};
pub use crate::engine::{MapResult, RowRejection, StateChange};
use arrow_array::{ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow_schema::{Field, Schema};
use std::sync::Arc;

/// Rows that survived one operator, with where they came from.
#[derive(Debug)]
pub struct StepOutput {
    /// The surviving (and, for maps, transformed) rows.
    pub batch: RecordBatch,
    /// For each output row, its row index in the operator's input.
    pub input_rows: Vec<u32>,
    /// Rows the operator rejected (input row indices) with reasons.
    pub rejected: Vec<RowRejection>,
    /// Columns a map returned (added, or replacing same-named input columns).
    pub returned: Vec<String>,
}

/// Counters of one operator.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OperatorStats {
    /// Guest calls made.
    pub calls: u64,
    /// Traps (each one cost an instance).
    pub traps: u64,
    /// Instances created (1 + one per trap, lazily).
    pub instances: u64,
}

/// One operator of a pipeline: a plugin, its config and a live instance
/// that is replaced by a fresh one after a trap.
pub struct Operator {
    plugin: Plugin,
    config_json: String,
    allowlist: HttpAllowlist,
    instance: Option<Instance>,
    stats: OperatorStats,
    version: String,
    metrics: Option<OperatorMetrics>,
    empty: EmptyBatch,
}

/// The zero-row batch of the last schema seen, so a filter that keeps no
/// row (most one-row calls of a selective filter) builds no empty columns.
#[derive(Default)]
pub(crate) struct EmptyBatch(Option<RecordBatch>);

impl EmptyBatch {
    /// A zero-row batch with `batch`'s schema.
    pub(crate) fn like(&mut self, batch: &RecordBatch) -> RecordBatch {
        match &self.0 {
            Some(empty) if Arc::ptr_eq(empty.schema_ref(), batch.schema_ref()) => empty.clone(),
            _ => self.0.insert(batch.slice(0, 0)).clone(),
        }
    }
}

impl Operator {
    /// Creates the operator and its first instance (so a bad config fails now).
    pub fn new(plugin: Plugin, config_json: impl Into<String>, allowlist: HttpAllowlist) -> Result<Operator> {
        let mut operator = Operator {
            plugin,
            config_json: config_json.into(),
            allowlist,
            instance: None,
            stats: OperatorStats::default(),
            version: String::new(),
            metrics: None,
            empty: EmptyBatch::default(),
        };
        operator.version = operator.plugin.sha256()[..12].to_owned();
        operator.instance()?;
        Ok(operator)
    }

    /// A new operator on the same plugin, config, version label and
    /// metrics, with its own instance (per-partition state needs one each).
    pub fn fresh(&self) -> Result<Operator> {
        let mut operator = Operator::new(self.plugin.clone(), self.config_json.clone(), self.allowlist.clone())?.with_version(self.version.clone());
        operator.metrics = self.metrics.clone();
        Ok(operator)
    }

    /// The plugin.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// Sets the version label (registry version such as `v3`; default: the
    /// first 12 hex digits of the plugin's SHA-256).
    pub fn with_version(mut self, label: impl Into<String>) -> Operator {
        self.version = label.into();
        self
    }

    /// Reports call times and traps to `metrics` from now on.
    pub fn set_metrics(&mut self, metrics: OperatorMetrics) {
        self.metrics = Some(metrics);
    }

    /// The version label, for output headers, dead letters and metrics.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The config JSON given to `init`.
    pub fn config_json(&self) -> &str {
        &self.config_json
    }

    /// The operator kind.
    pub fn kind(&self) -> OperatorKind {
        self.plugin.kind()
    }

    /// Columns the operator reads (none: all), from its live instance.
    pub fn reads(&mut self) -> Option<Vec<String>> {
        self.instance().ok()?.reads().map(<[String]>::to_vec)
    }

    /// Counters so far.
    pub fn stats(&self) -> OperatorStats {
        self.stats
    }

    /// The live instance (created when missing).
    pub fn instance(&mut self) -> Result<&mut Instance> {
        if self.instance.is_none() {
            self.stats.instances += 1;
            self.instance = Some(self.plugin.instantiate(&self.config_json, &self.allowlist)?);
        }
        Ok(self.instance.as_mut().expect("just created"))
    }

    /// Runs `f` on the live instance; a trap or contract breach discards it.
    fn with_instance<R>(&mut self, f: impl FnOnce(&mut Instance) -> Result<R>) -> Result<R> {
        self.stats.calls += 1;
        let started = self.metrics.as_ref().map(|_| std::time::Instant::now());
        let result = f(self.instance()?);
        if let (Some(metrics), Some(started)) = (&self.metrics, started) {
            metrics.observe_call(started.elapsed());
        }
        if let Err(error) = &result
            && matches!(error, Error::Trap { .. } | Error::Contract { .. }) {
                self.stats.traps += 1;
                self.instance = None;
                if let Some(metrics) = &self.metrics {
                    let kind = match error {
                        Error::Trap { kind, .. } => kind.as_str(),
                        _ => "contract",
                    };
                    metrics.stats.trapped(kind);
                }
            }
        result
    }

    fn mask(&mut self, batch: &RecordBatch) -> Result<BooleanArray> {
        self.with_instance(|instance| {
            let input = instance.prepare(batch)?;
            instance.evaluate(&input)
        })
    }

    /// Filter: the indices of the rows the operator keeps (no rows copied).
    pub fn select(&mut self, batch: &RecordBatch) -> Result<Vec<u32>> {
        Ok(set_bits(&self.mask(batch)?))
    }

    /// Filter: the rows the operator keeps.
    pub fn filter(&mut self, batch: &RecordBatch) -> Result<StepOutput> {
        let mask = self.mask(batch)?;
        let input_rows = set_bits(&mask);
        // Nothing or everything kept (always so for one-row batches): no copy.
        let kept = match input_rows.len() {
            0 => self.empty.like(batch),
            n if n == batch.num_rows() => batch.clone(),
            _ => arrow_select::filter::filter_record_batch(batch, &mask).map_err(BatchError::from)?,
        };
        Ok(StepOutput { batch: kept, input_rows, rejected: Vec::new(), returned: Vec::new() })
    }

    /// Map: the transformed rows, minus the ones the operator rejected.
    pub fn map(&mut self, batch: &RecordBatch) -> Result<StepOutput> {
        let (result, projected) = self.with_instance(|instance| {
            let input = instance.prepare(batch)?;
            Ok((instance.process_map(&input)?, instance.reads().is_some()))
        })?;
        let MapResult { batch: output, rejected } = result;
        let returned = output.schema().fields().iter().map(|f| f.name().clone()).collect();
        let merged = if projected { merge_columns(batch, &output)? } else { output };
        if rejected.is_empty() {
            let input_rows = (0..batch.num_rows() as u32).collect();
            return Ok(StepOutput { batch: merged, input_rows, rejected, returned });
        }
        let mut keep = vec![true; batch.num_rows()];
        for rejection in &rejected {
            keep[rejection.row as usize] = false;
        }
        let mask = BooleanArray::from(keep);
        let kept = arrow_select::filter::filter_record_batch(&merged, &mask).map_err(BatchError::from)?;
        Ok(StepOutput { batch: kept, input_rows: set_bits(&mask), rejected, returned })
    }

    /// Aggregate: folds the batch in; returns result batches.
    pub fn aggregate(&mut self, batch: &RecordBatch, watermark_ms: Option<i64>) -> Result<Vec<RecordBatch>> {
        self.with_instance(|instance| {
            let input = instance.prepare(batch)?;
            instance.process_aggregate(&input, watermark_ms)
        })
    }

    /// Aggregate: the operator's state.
    pub fn snapshot(&mut self) -> Result<Vec<u8>> {
        self.with_instance(|instance| instance.snapshot())
    }

    /// Aggregate: restores state from a snapshot.
    pub fn restore(&mut self, state: &[u8]) -> Result<()> {
        self.with_instance(|instance| instance.restore(state))
    }

    /// Aggregate: whether its state is checkpointed key by key (contract 0.1.1).
    pub fn keyed_state(&self) -> bool {
        self.plugin.keyed_state()
    }

    /// Keyed aggregate: the entries changed or removed since the last call.
    pub fn snapshot_changes(&mut self) -> Result<Vec<StateChange>> {
        self.with_instance(|instance| instance.snapshot_changes())
    }

    /// Keyed aggregate: every entry of the state.
    pub fn snapshot_entries(&mut self) -> Result<Vec<StateChange>> {
        self.with_instance(|instance| instance.snapshot_entries())
    }

    /// Keyed aggregate: replaces the state with these entries.
    pub fn restore_entries(&mut self, entries: &[(&[u8], &[u8])]) -> Result<()> {
        self.with_instance(|instance| instance.restore_entries(entries))
    }

    /// Sink: writes the batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<SinkResult> {
        self.with_instance(|instance| {
            let input = instance.prepare(batch)?;
            instance.write(&input)
        })
    }
}

fn set_bits(mask: &BooleanArray) -> Vec<u32> {
    mask.values().set_indices().map(|i| i as u32).collect()
}

/// Replaces same-named columns of `input` with those of `output` and appends
/// the rest (maps that declared the columns they read).
fn merge_columns(input: &RecordBatch, output: &RecordBatch) -> Result<RecordBatch> {
    let input_schema = input.schema();
    let output_schema = output.schema();
    let mut fields: Vec<Arc<Field>> = input_schema.fields().iter().cloned().collect();
    let mut columns: Vec<ArrayRef> = input.columns().to_vec();
    for (field, column) in output_schema.fields().iter().zip(output.columns()) {
        match input_schema.index_of(field.name()) {
            Ok(index) => {
                fields[index] = field.clone();
                columns[index] = column.clone();
            }
            Err(_) => {
                fields.push(field.clone());
                columns.push(column.clone());
            }
        }
    }
    let schema = Arc::new(Schema::new(fields));
    Ok(RecordBatch::try_new(schema, columns).map_err(BatchError::from)?)
}

/// Row indices as an Arrow array (for `take`).
pub fn row_indices(rows: &[u32]) -> UInt32Array {
    UInt32Array::from(rows.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Float64Array, Int64Array, StringArray};

    #[test]
    fn merge_replaces_same_named_columns_and_appends_new_ones() {
        let input = RecordBatch::try_from_iter([
            ("id", Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef),
            ("amount", Arc::new(Float64Array::from(vec![1.0, 2.0])) as ArrayRef),
        ])
        .unwrap();
        let output = RecordBatch::try_from_iter([
            ("amount", Arc::new(Float64Array::from(vec![10.0, 20.0])) as ArrayRef),
            ("bucket", Arc::new(Int64Array::from(vec![0, 0])) as ArrayRef),
        ])
        .unwrap();
        let merged = merge_columns(&input, &output).unwrap();
        let names: Vec<_> = merged.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["id", "amount", "bucket"]);
        let amount = merged.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(amount.values().to_vec(), vec![10.0, 20.0]);
        assert_eq!(merged.column(2).len(), 2);
    }
}
