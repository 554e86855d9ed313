//! Independent batch computations of the seed pipelines' window results,
//! for the tests to compare weir's streaming results with. Written from the
//! issue's definitions, sharing no code with the host or the guests:
//! an event is late when its event time is more than the allowed lateness
//! behind the largest event time seen before it on its partition; a window
//! is final once its end is at or before its task's last watermark (the
//! smallest, over the partitions of the task, of the largest on-time event
//! time minus the allowed lateness).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A produced record: topic, partition, JSON value.
pub type Input = (String, i32, String);

/// One window's expected values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expected {
    /// Rows (orders or transactions).
    pub count: u64,
    /// Sum of the amounts.
    pub total: f64,
    /// Exact distinct values per distinct column, in the order asked.
    pub distinct: Vec<u64>,
}

/// Windows keyed by (key, window start) -> expected values.
pub type Windows = BTreeMap<(String, i64), Expected>;

fn field<'a>(value: &'a Value, name: &str) -> &'a Value {
    value.get(name).unwrap_or(&Value::Null)
}

/// The on-time inputs (index, partition, parsed value, event time) and each
/// task's final watermark.
#[allow(clippy::type_complexity)]
fn on_time(inputs: &[Input], lateness_ms: i64) -> (Vec<(usize, i32, Value, i64)>, HashMap<i32, i64>) {
    let mut max_seen: HashMap<(String, i32), i64> = HashMap::new();
    let mut kept = Vec::new();
    for (index, (topic, partition, json)) in inputs.iter().enumerate() {
        let value: Value = serde_json::from_str(json).expect("generated JSON");
        let t = field(&value, "timestamp").as_i64().expect("timestamp");
        let max = max_seen.entry((topic.clone(), *partition)).or_insert(i64::MIN);
        if *max != i64::MIN && t < *max - lateness_ms {
            continue;
        }
        *max = (*max).max(t);
        kept.push((index, *partition, value, t));
    }
    let mut watermarks: HashMap<i32, i64> = HashMap::new();
    for ((_, partition), max) in max_seen {
        let w = watermarks.entry(partition).or_insert(i64::MAX);
        *w = (*w).min(max - lateness_ms);
    }
    (kept, watermarks)
}

/// Indexes of the late inputs: more than `lateness_ms` behind the largest
/// event time seen before them on their own partition.
pub fn late_inputs(inputs: &[Input], lateness_ms: i64) -> BTreeSet<usize> {
    let (kept, _) = on_time(inputs, lateness_ms);
    let kept: BTreeSet<usize> = kept.into_iter().map(|(index, ..)| index).collect();
    (0..inputs.len()).filter(|i| !kept.contains(i)).collect()
}

/// Every window (closed or not) of `size_ms` starting every `slide_ms` over
/// the on-time inputs, keyed by `key`: row count, sum of `amount`, exact
/// distinct counts of `distinct` columns, and the partition of its key.
pub fn all_windows(inputs: &[Input], lateness_ms: i64, key: &str, amount: &str, distinct: &[&str], size_ms: i64, slide_ms: i64) -> BTreeMap<(String, i64), (Expected, i32)> {
    let (kept, _) = on_time(inputs, lateness_ms);
    let mut tallies: BTreeMap<(String, i64), Tally> = BTreeMap::new();
    for (_, partition, value, t) in kept {
        let k = field(&value, key).as_str().expect("key").to_owned();
        let last_start = t.div_euclid(slide_ms) * slide_ms;
        let mut start = last_start;
        while start > t - size_ms {
            let tally = tallies.entry((k.clone(), start)).or_insert_with(|| Tally {
                count: 0,
                total: 0.0,
                distinct: vec![BTreeSet::new(); distinct.len()],
                partition,
            });
            tally.count += 1;
            tally.total += field(&value, amount).as_f64().unwrap_or(0.0);
            for (set, column) in tally.distinct.iter_mut().zip(distinct) {
                set.insert(field(&value, column).as_str().unwrap_or_default().to_owned());
            }
            start -= slide_ms;
        }
    }
    tallies
        .into_iter()
        .map(|(k, Tally { count, total, distinct, partition })| {
            (k, (Expected { count, total, distinct: distinct.iter().map(|s| s.len() as u64).collect() }, partition))
        })
        .collect()
}

/// One window's running tally in [`all_windows`].
struct Tally {
    count: u64,
    total: f64,
    /// The distinct values seen, per distinct column.
    distinct: Vec<BTreeSet<String>>,
    /// The partition of the window's key.
    partition: i32,
}

/// Final windows of `size_ms` starting every `slide_ms`, keyed by `key`:
/// row count, sum of `amount`, exact distinct counts of `distinct` columns.
pub fn windows(inputs: &[Input], lateness_ms: i64, key: &str, amount: &str, distinct: &[&str], size_ms: i64, slide_ms: i64) -> Windows {
    let (_, watermarks) = on_time(inputs, lateness_ms);
    all_windows(inputs, lateness_ms, key, amount, distinct, size_ms, slide_ms)
        .into_iter()
        .filter(|((_, start), (_, partition))| start + size_ms <= watermarks[partition])
        .map(|(k, (expected, _))| (k, expected))
        .collect()
}

/// The final window rows of an output topic (JSON values), by `result_key`
/// (`key/start`), the last emission of each key winning.
pub fn final_rows(values: impl IntoIterator<Item = Vec<u8>>) -> BTreeMap<(String, i64), Value> {
    let mut rows = BTreeMap::new();
    for bytes in values {
        let value: Value = serde_json::from_slice(&bytes).expect("output JSON");
        if field(&value, "is_final").as_bool() != Some(true) {
            continue;
        }
        let result_key = field(&value, "result_key").as_str().expect("result_key").to_owned();
        let (key, start) = result_key.rsplit_once('/').expect("key/start");
        rows.insert((key.to_owned(), start.parse().expect("start ms")), value);
    }
    rows
}

/// Panics unless `got` is within a relative 1e-6 of `want`.
pub fn assert_close(what: &str, got: f64, want: f64) {
    assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "{what}: got {got}, want {want}");
}

/// Panics unless the order-revenue final rows (JSON values of the output
/// topic) equal the batch computation over `inputs`.
pub fn check_orders(inputs: &[Input], outputs: &[Vec<u8>]) {
    check_orders_closed_by(inputs, outputs, Watermark::PerTask)
}

/// Which watermark closes a window in the batch computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watermark {
    /// Pipelines with `state`: each task's own (its partitions' minimum).
    PerTask,
    /// Pipelines without `state`: one for the pipeline (every partition's minimum).
    Shared,
}

/// [`check_orders`] with the windows closed by `watermark`.
pub fn check_orders_closed_by(inputs: &[Input], outputs: &[Vec<u8>], watermark: Watermark) {
    let mut expected = windows(inputs, 600_000, "processing_center", "total_amount", &["customer_id"], 3_600_000, 3_600_000);
    if watermark == Watermark::Shared {
        let (_, tasks) = on_time(inputs, 600_000);
        let shared = tasks.values().copied().min().unwrap_or(i64::MIN);
        expected.retain(|(_, start), _| start + 3_600_000 <= shared);
    }
    let rows = final_rows(outputs.iter().cloned());
    assert!(expected.len() >= 10, "the generator should close at least 10 windows, closed {}", expected.len());
    assert_eq!(rows.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "final windows differ");
    for (key, want) in &expected {
        let row = &rows[key];
        if row["order_count"].as_u64() != Some(want.count) && std::env::var_os("WEIR_DEBUG_SEEDS").is_some() {
            for value in outputs {
                let v: Value = serde_json::from_slice(value).unwrap();
                if v["result_key"].as_str() == Some(&format!("{}/{}", key.0, key.1)) {
                    eprintln!("{v}");
                }
            }
        }
        assert_eq!(row["order_count"].as_u64(), Some(want.count), "{key:?} order_count");
        assert_close(&format!("{key:?} revenue"), row["revenue"].as_f64().unwrap(), want.total);
        assert_close(&format!("{key:?} average"), row["average_order_value"].as_f64().unwrap(), want.total / want.count as f64);
        let (unique, exact) = (row["unique_customers"].as_u64().unwrap() as f64, want.distinct[0] as f64);
        assert!((unique - exact).abs() <= 0.02 * exact, "{key:?} unique_customers {unique} vs exact {exact}");
    }
}

/// Panics unless the fraud-detector final rows equal the batch computation
/// over `inputs` and the alerted users are exactly `fraud_users`.
pub fn check_fraud(inputs: &[Input], fraud_users: &BTreeSet<String>, outputs: &[Vec<u8>]) {
    let expected = windows(inputs, 1_800_000, "user_id", "amount", &["merchant_id", "location", "device_id"], 300_000, 60_000);
    let rows = final_rows(outputs.iter().cloned());
    assert!(expected.len() > 1000, "expected many closed windows, got {}", expected.len());
    let extra: Vec<_> = rows.keys().filter(|k| !expected.contains_key(k)).take(5).collect();
    let missing: Vec<_> = expected.keys().filter(|k| !rows.contains_key(k)).take(5).collect();
    assert!(extra.is_empty() && missing.is_empty(), "final windows differ: {} rows vs {} expected; extra {extra:?}, missing {missing:?}", rows.len(), expected.len());
    assert_eq!(rows.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "final windows differ");
    for (key, want) in &expected {
        let row = &rows[key];
        assert_eq!(row["tx_count"].as_u64(), Some(want.count), "{key:?} tx_count");
        assert_close(&format!("{key:?} total_amount"), row["total_amount"].as_f64().unwrap(), want.total);
        let distinct: Vec<u64> = ["distinct_merchants", "distinct_locations", "distinct_devices"].iter().map(|c| row[*c].as_u64().unwrap()).collect();
        assert_eq!(distinct, want.distinct, "{key:?} distinct merchants/locations/devices");
        let alert = want.count > 10 || want.total > 5000.0 || want.distinct[0] > 5 || want.distinct[1] > 3 || want.distinct[2] > 2;
        assert_eq!(row["alert"].as_bool(), Some(alert), "{key:?} alert");
    }
    let alerted: BTreeSet<String> = outputs
        .iter()
        .map(|b| serde_json::from_slice::<Value>(b).unwrap())
        .filter(|v| v["alert"].as_bool() == Some(true))
        .map(|v| v["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(&alerted, fraud_users, "alerted users must be exactly the planted ones");
    // Early alerts come before the windows close (is_final = false).
    let early = outputs.iter().map(|b| serde_json::from_slice::<Value>(b).unwrap()).filter(|v| v["is_final"].as_bool() == Some(false)).count();
    assert!(early >= fraud_users.len(), "every planted user gets an early alert ({early} early rows)");
}

