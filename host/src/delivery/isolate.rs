//! Poison-record isolation. A batch whose chain call fails (trap, contract
//! breach, operator error) is retried once on a fresh instance; if it fails
//! again it is bisected until the failing rows are alone. Those go to the
//! dead-letter path, every other row is processed: O(k log n) calls for k
//! poison records in n rows.

use crate::engine::Error;
use crate::operator::ChainOutput;
use arrow_array::RecordBatch;

/// The outcome of running one batch with isolation.
#[derive(Debug, Default)]
pub struct Isolated {
    /// Successful chain outputs, each from a (sub-)batch, with the source
    /// record of each output row (`None` after an aggregate).
    pub outputs: Vec<(ChainOutput, Vec<usize>)>,
    /// Rows that failed alone: the source record index and the last error.
    pub failed: Vec<(usize, Error, u32)>,
    /// Chain calls made (for metrics and tests).
    pub calls: usize,
}

/// Whether bisecting can help with this error (it concerns the data or the
/// instance, not the engine).
pub fn is_isolatable(error: &Error) -> bool {
    matches!(error, Error::Trap { .. } | Error::Contract { .. } | Error::Guest { .. } | Error::Batch(_))
}

/// Runs `batch` (whose rows come from source records `records`) through
/// `run`, isolating failing rows. Errors that bisection cannot help with are
/// returned as they are.
pub fn run_isolated(
    batch: RecordBatch,
    records: Vec<usize>,
    run: &mut dyn FnMut(RecordBatch) -> Result<ChainOutput, Error>,
) -> Result<Isolated, Error> {
    let mut isolated = Isolated::default();
    isolated.calls += 1;
    match run(batch.clone()) {
        Ok(output) => {
            isolated.outputs.push((output, records));
            return Ok(isolated);
        }
        Err(error) if is_isolatable(&error) => {
            tracing::warn!(rows = batch.num_rows(), %error, "batch failed; retrying once on a fresh instance");
        }
        Err(error) => return Err(error),
    }
    isolated.calls += 1;
    match run(batch.clone()) {
        Ok(output) => isolated.outputs.push((output, records)),
        Err(error) if is_isolatable(&error) => {
            if batch.num_rows() <= 1 {
                if let Some(&record) = records.first() {
                    isolated.failed.push((record, error, 2));
                }
            } else {
                let (left, right) = split(&batch, &records);
                bisect(left, run, &mut isolated)?;
                bisect(right, run, &mut isolated)?;
            }
        }
        Err(error) => return Err(error),
    }
    Ok(isolated)
}

type Part = (RecordBatch, Vec<usize>);

fn split(batch: &RecordBatch, records: &[usize]) -> (Part, Part) {
    let mid = batch.num_rows() / 2;
    (
        (batch.slice(0, mid), records[..mid].to_vec()),
        (batch.slice(mid, batch.num_rows() - mid), records[mid..].to_vec()),
    )
}

fn bisect(
    (batch, records): Part,
    run: &mut dyn FnMut(RecordBatch) -> Result<ChainOutput, Error>,
    isolated: &mut Isolated,
) -> Result<(), Error> {
    if batch.num_rows() == 0 {
        return Ok(());
    }
    isolated.calls += 1;
    match run(batch.clone()) {
        Ok(output) => {
            isolated.outputs.push((output, records));
            Ok(())
        }
        Err(error) if is_isolatable(&error) => {
            if batch.num_rows() == 1 {
                isolated.failed.push((records[0], error, 3));
                return Ok(());
            }
            let (left, right) = split(&batch, &records);
            bisect(left, run, isolated)?;
            bisect(right, run, isolated)
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TrapKind;
    use arrow_array::{Array, ArrayRef, Int64Array};
    use std::sync::Arc;

    fn batch(values: &[i64]) -> RecordBatch {
        RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(values.to_vec())) as ArrayRef)]).unwrap()
    }

    /// A chain that traps on any batch containing a negative value.
    fn poisoned(batch: RecordBatch) -> Result<ChainOutput, Error> {
        let values = batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        if values.iter().flatten().any(|v| v < 0) {
            return Err(Error::Trap { plugin: "p".into(), kind: TrapKind::Panic, function: "process", message: "poison".into() });
        }
        let rows = (0..batch.num_rows() as u32).collect();
        Ok(ChainOutput { batches: vec![batch], input_rows: vec![Some(rows)], ..ChainOutput::default() })
    }

    #[test]
    fn bisection_isolates_exactly_the_poison_rows_in_few_calls() {
        let n = 1024;
        let poison = [17usize, 500, 501, 1000];
        let values: Vec<i64> = (0..n as i64).map(|i| if poison.contains(&(i as usize)) { -1 } else { i }).collect();
        let records: Vec<usize> = (100..100 + n).collect();
        let isolated = run_isolated(batch(&values), records, &mut poisoned).unwrap();

        let mut failed: Vec<usize> = isolated.failed.iter().map(|(r, _, _)| *r).collect();
        failed.sort();
        assert_eq!(failed, poison.iter().map(|p| p + 100).collect::<Vec<_>>());
        let processed: usize = isolated.outputs.iter().map(|(o, _)| o.batches[0].num_rows()).sum();
        assert_eq!(processed, n - poison.len());
        let mut seen: Vec<usize> = isolated.outputs.iter().flat_map(|(_, r)| r.clone()).collect();
        seen.sort();
        assert!(seen.iter().all(|r| !failed.contains(r)));
        // k poison rows in n: about 2 k log2(n) calls, far below n.
        let bound = 2 + 2 * poison.len() * (n as f64).log2() as usize;
        assert!(isolated.calls <= bound, "{} calls > {bound}", isolated.calls);
    }

    #[test]
    fn a_clean_batch_takes_one_call_and_a_flaky_one_two() {
        let isolated = run_isolated(batch(&[1, 2, 3]), vec![0, 1, 2], &mut poisoned).unwrap();
        assert_eq!(isolated.calls, 1);
        let mut first = true;
        let mut flaky = |b: RecordBatch| {
            if std::mem::take(&mut first) {
                Err(Error::Trap { plugin: "p".into(), kind: TrapKind::Deadline, function: "process", message: String::new() })
            } else {
                poisoned(b)
            }
        };
        let isolated = run_isolated(batch(&[1, 2, 3]), vec![0, 1, 2], &mut flaky).unwrap();
        assert_eq!((isolated.calls, isolated.failed.len()), (2, 0));
    }

    #[test]
    fn engine_errors_are_not_bisected() {
        let mut broken = |_b: RecordBatch| -> Result<ChainOutput, Error> { Err(Error::Engine("down".into())) };
        assert!(run_isolated(batch(&[1, 2]), vec![0, 1], &mut broken).is_err());
    }
}
