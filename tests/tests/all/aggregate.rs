//! The aggregate example: running count and sum per key, snapshot/restore.

use super::support::*;
use arrow_array::{Array, Float64Array, Int64Array, RecordBatch};
use std::collections::HashMap;
use weir_tests::guests;

fn totals(results: &[RecordBatch]) -> HashMap<String, (i64, f64)> {
    let mut latest = HashMap::new();
    for batch in results {
        let keys = strings(batch, "key");
        let counts = batch.column_by_name("count").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
        let sums = batch.column_by_name("sum").unwrap().as_any().downcast_ref::<Float64Array>().unwrap();
        for (row, key) in keys.iter().enumerate() {
            latest.insert(key.clone().unwrap(), (counts.value(row), sums.value(row)));
        }
    }
    latest
}

fn expected(data: &[Order]) -> HashMap<String, (i64, f64)> {
    let mut map: HashMap<String, (i64, f64)> = HashMap::new();
    for order in data {
        let entry = map.entry(order.customer_id.clone()).or_default();
        entry.0 += 1;
        entry.1 += order.total_amount.unwrap_or(0.0);
    }
    map
}

fn assert_close(actual: &HashMap<String, (i64, f64)>, expected: &HashMap<String, (i64, f64)>) {
    assert_eq!(actual.len(), expected.len());
    for (key, (count, sum)) in expected {
        let (a_count, a_sum) = actual[key];
        assert_eq!(a_count, *count, "count of {key}");
        assert!((a_sum - sum).abs() < 1e-6, "sum of {key}: {a_sum} vs {sum}");
    }
}

#[test]
fn count_by_key_keeps_running_totals_across_batches() {
    let data = orders(900);
    let mut agg = operator(guests::COUNT_BY_KEY, "{}");
    let mut results = Vec::new();
    for chunk in data.chunks(250) {
        results.extend(agg.aggregate(&order_batch(chunk), None).unwrap());
    }
    assert_close(&totals(&results), &expected(&data));
    assert!(agg.aggregate(&order_batch(&[]), None).unwrap().is_empty(), "no rows, no output");
}

#[test]
fn snapshot_restored_into_a_fresh_instance_continues_the_totals() {
    let data = orders(600);
    let (first, second) = data.split_at(350);
    let mut agg = operator(guests::COUNT_BY_KEY, r#"{"key": "customer_id", "value": "total_amount"}"#);
    agg.aggregate(&order_batch(first), None).unwrap();
    let snapshot = agg.snapshot().unwrap();

    let mut restored = operator(guests::COUNT_BY_KEY, "{}");
    restored.restore(&snapshot).unwrap();
    let results = restored.aggregate(&order_batch(second), None).unwrap();
    let mut want = expected(&data);
    let touched: std::collections::HashSet<_> = second.iter().map(|o| o.customer_id.clone()).collect();
    want.retain(|k, _| touched.contains(k));
    assert_close(&totals(&results), &want);
    assert_eq!(restored.snapshot().unwrap().len(), snapshot.len(), "same keys, same snapshot size");
}

#[test]
fn restore_of_garbage_is_a_guest_error_not_a_crash() {
    let mut agg = operator(guests::COUNT_BY_KEY, "{}");
    let error = agg.restore(b"definitely not a snapshot").unwrap_err();
    assert!(matches!(error, weir::engine::Error::Guest { .. } | weir::engine::Error::Trap { .. }), "{error}");
    agg.aggregate(&order_batch(&orders(10)), None).expect("the operator keeps working");
}

#[test]
fn an_aggregate_claiming_u32_max_rows_without_columns_is_a_contract_error() {
    use arrow_array::{ArrayRef, StringArray};
    let keys = |values: &[&str]| {
        RecordBatch::try_from_iter([("key", std::sync::Arc::new(StringArray::from(values.to_vec())) as ArrayRef)]).unwrap()
    };
    let mut op = operator(guests::MISBEHAVE_AGGREGATE, "{}");
    let error = op.aggregate(&keys(&["a", "rows-bomb"]), None).unwrap_err();
    assert!(matches!(error, weir::engine::Error::Contract { .. }), "{error}");
    assert!(error.to_string().contains("4294967295 rows"), "{error}");
    assert!(error.to_string().contains("max_output_rows_per_call"), "{error}");
    let results = op.aggregate(&keys(&["b"]), None).expect("a fresh instance after the breach");
    assert_eq!(strings(&results[0], "key"), [Some("b".to_owned())]);
}

#[test]
fn lists_aliasing_one_guest_buffer_are_refused_before_the_host_copies_them() {
    use arrow_array::{ArrayRef, StringArray};
    use weir::engine::HttpAllowlist;
    use weir::operator::Operator;
    let keys = |values: &[&str]| {
        RecordBatch::try_from_iter([("key", std::sync::Arc::new(StringArray::from(values.to_vec())) as ArrayRef)]).unwrap()
    };
    // 100 columns whose values all point at the same 1 MiB of guest memory:
    // 100 MiB to copy, under Wasmtime's default copy budget (128 MiB), far
    // over this engine's (twice the 16 MiB caps).
    let limits = weir::engine::SandboxLimits { memory_limit_bytes: 16 << 20, max_output_bytes_per_call: 16 << 20, ..Default::default() };
    let engine = engine_with(limits.clone());
    let mut op = Operator::new(load(&engine, guests::MISBEHAVE_AGGREGATE), "{}", HttpAllowlist::default()).unwrap();
    op.aggregate(&keys(&["warm-up"]), None).unwrap();
    let batch = keys(&["a", "alias-bomb"]);
    let before = super::allocations::allocated_on_this_thread();
    let error = op.aggregate(&batch, None).unwrap_err();
    let allocated = super::allocations::allocated_on_this_thread() - before;
    assert!(matches!(error, weir::engine::Error::Contract { .. }), "{error}");
    assert!(error.to_string().contains(&format!("more than {} bytes", limits.max_copied_bytes_per_call())), "{error}");
    assert!(
        allocated < (limits.max_copied_bytes_per_call() + (8 << 20)) as u64,
        "the host allocated {allocated} bytes for the call; the copy budget is {}",
        limits.max_copied_bytes_per_call()
    );
    let results = op.aggregate(&keys(&["b"]), None).expect("a fresh instance after the breach");
    assert_eq!(strings(&results[0], "key"), [Some("b".to_owned())]);
}

#[test]
fn keyed_changes_merged_by_key_restore_the_same_state_as_a_whole_snapshot() {
    // order-revenue keyed by customer, 1-minute windows: rows span ~17 minutes.
    let config = r#"{"key": "customer_id", "window_ms": 60000}"#;
    let data = orders(1000);
    let mut agg = operator(guests::ORDER_REVENUE, config);
    let mut merged: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    for (i, chunk) in data.chunks(100).enumerate() {
        // A watermark that closes windows, so keys are also removed.
        agg.aggregate(&order_batch(chunk), Some(chunk[0].timestamp_ms - 120_000)).unwrap();
        let changes = agg.snapshot_changes().unwrap();
        assert!(!changes.is_empty() && changes.len() <= 5, "batch {i}: one entry per changed customer (5), got {}", changes.len());
        for change in changes {
            match change.value {
                Some(value) => merged.insert(change.key, value),
                None => merged.remove(&change.key),
            };
        }
    }
    assert!(agg.snapshot_changes().unwrap().is_empty(), "nothing changed since the last call");
    let mut from_entries = operator(guests::ORDER_REVENUE, config);
    let entries: Vec<(&[u8], &[u8])> = merged.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    from_entries.restore_entries(&entries).unwrap();
    let mut from_snapshot = operator(guests::ORDER_REVENUE, config);
    from_snapshot.restore(&agg.snapshot().unwrap()).unwrap();
    assert_eq!(from_entries.snapshot().unwrap(), from_snapshot.snapshot().unwrap());
    // And both fold the rest of the stream the same way.
    let more = order_batch(&orders(1100)[1000..]);
    assert_eq!(from_entries.aggregate(&more, Some(i64::MAX)).unwrap(), from_snapshot.aggregate(&more, Some(i64::MAX)).unwrap());
}
