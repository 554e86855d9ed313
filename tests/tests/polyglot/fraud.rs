//! fraud-detector (Python and JS ports of the Rust guest, on the SDKs' window
//! and sketch helpers).

use super::*;

/// One transaction: user, event time (ms), amount, merchant, location, device.
type TxRow = (Option<String>, Option<i64>, Option<f64>, Option<String>, String, String);

/// Card transactions from a deterministic generator: eight ordinary users
/// spread over ~20 minutes (a little out of order, a few nulls), and one
/// planted burst user with many merchants, locations and devices within two
/// minutes. `time_us` carries the same instants in microseconds.
pub(super) fn transactions(n: usize) -> RecordBatch {
    const T0: i64 = 1_700_000_012_345; // not aligned to a minute
    let mut state: u64 = 0x5eed;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let mut rows: Vec<TxRow> = Vec::new();
    for i in 0..n {
        let r = next();
        let jitter = (r % 30_000) as i64 - 15_000; // out of order by up to 15 s
        let t = T0 + (i as i64 * 1_200_000 / n as i64) + jitter;
        let user = (r >> 8) % 8;
        let key = (i % 97 != 13).then(|| format!("user-{user}"));
        let time = (i % 89 != 7).then_some(t);
        let amount = (i % 23 != 5).then(|| ((r >> 12) % 90_000) as f64 / 100.0);
        let merchant = (i % 31 != 3).then(|| format!("m-{}", (r >> 20) % 4 + user));
        rows.push((key, time, amount, merchant, format!("city-{}", (r >> 24) % 2), format!("dev-{user}")));
        if (n / 2..n / 2 + 24).contains(&i) {
            // The burst: one tx every 5 s, each at a new merchant, city and device.
            let k = (i - n / 2) as u64;
            let t = T0 + 600_000 + k as i64 * 5_000;
            let amount = Some(if k.is_multiple_of(6) { 1999.99 } else { 25.5 });
            rows.push((Some("burst".into()), Some(t), amount, Some(format!("bm-{k}")), format!("bc-{}", k % 5), format!("bd-{}", k % 4)));
        }
    }
    let times: Vec<Option<i64>> = rows.iter().map(|r| r.1).collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("user_id", Arc::new(StringArray::from_iter(rows.iter().map(|r| r.0.clone())))),
        ("timestamp", Arc::new(TimestampMillisecondArray::from(times.clone()).with_timezone("UTC"))),
        (
            "time_us",
            Arc::new(arrow_array::TimestampMicrosecondArray::from(
                times.iter().map(|t| t.map(|t| t * 1000 + 999)).collect::<Vec<_>>(),
            )),
        ),
        ("amount", Arc::new(Float64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>()))),
        ("merchant_id", Arc::new(StringArray::from_iter(rows.iter().map(|r| r.3.clone())))),
        ("location", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.4.clone())))),
        ("device_id", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.5.clone())))),
    ];
    RecordBatch::try_from_iter(columns).expect("transaction batch")
}

/// `chunk` without the rows behind `watermark` (the one handed over with the
/// previous batch), as the host feeds an aggregate: it takes those rows out
/// (dead letters or dropped, per `event_time.late`). `time_us` holds the same
/// times, so the filter is the same for either time column.
pub(super) fn on_time(chunk: &RecordBatch, watermark: Option<i64>) -> RecordBatch {
    let Some(watermark) = watermark else { return chunk.clone() };
    let times = chunk.column_by_name("timestamp").unwrap().as_any().downcast_ref::<TimestampMillisecondArray>().unwrap();
    let keep = arrow_array::BooleanArray::from_iter((0..chunk.num_rows()).map(|i| Some(times.is_null(i) || times.value(i) >= watermark)));
    arrow_select::filter::filter_record_batch(chunk, &keep).unwrap()
}

/// Each output row as text, sorted by result_key then is_final: equal sets
/// of rows whatever order a language emits them in.
fn fraud_rows(batches: &[RecordBatch]) -> Vec<String> {
    fraud_rows_with(batches, |v| format!("{v:?}"))
}

fn fraud_rows_with(batches: &[RecordBatch], float: fn(f64) -> String) -> Vec<String> {
    let mut rows = Vec::new();
    for b in batches {
        let text: Vec<Vec<String>> = b
            .columns()
            .iter()
            .map(|c| {
                (0..b.num_rows())
                    .map(|i| arrow_cast_value(c.as_ref(), i, float))
                    .collect()
            })
            .collect();
        let is_final = b.schema().index_of("is_final").unwrap();
        let result_key = b.schema().index_of("result_key").unwrap();
        for i in 0..b.num_rows() {
            let all: Vec<&str> = text.iter().map(|c| c[i].as_str()).collect();
            rows.push(format!("{}|{}|{}", text[result_key][i], text[is_final][i], all.join(",")));
        }
    }
    rows.sort();
    rows
}

/// Asserts equal row sets, naming only the rows that differ. Amounts to
/// 1e-6: the Rust SDK keeps sliding windows as panes and sums a window's
/// panes, the Python and JS ports sum its rows in arrival order, so the
/// last bits of a float sum may differ.
pub(super) fn assert_same_rows(got: &[RecordBatch], want: &[RecordBatch], context: &str) {
    assert_same_rows_with(got, want, context, |v| format!("{v:.6}"));
}

fn assert_same_rows_with(got: &[RecordBatch], want: &[RecordBatch], context: &str, float: fn(f64) -> String) {
    let (got, want) = (fraud_rows_with(got, float), fraud_rows_with(want, float));
    if got != want {
        let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).collect();
        let extra: Vec<_> = got.iter().filter(|r| !want.contains(r)).collect();
        panic!("{context}: {} rows, expected {}\nmissing: {missing:#?}\nunexpected: {extra:#?}", got.len(), want.len());
    }
}

fn arrow_cast_value(array: &dyn Array, i: usize, float: fn(f64) -> String) -> String {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMillisecondType};
    assert!(array.is_valid(i), "output columns are not nullable");
    match array.data_type() {
        arrow_schema::DataType::Utf8 => array.as_string::<i32>().value(i).to_owned(),
        arrow_schema::DataType::Int64 => array.as_primitive::<Int64Type>().value(i).to_string(),
        arrow_schema::DataType::Float64 => float(array.as_primitive::<arrow_array::types::Float64Type>().value(i)),
        arrow_schema::DataType::Boolean => array.as_boolean().value(i).to_string(),
        arrow_schema::DataType::Timestamp(..) => array.as_primitive::<TimestampMillisecondType>().value(i).to_string(),
        other => panic!("unexpected output type {other}"),
    }
}

#[test]
fn fraud_detector_ports_emit_the_rust_rows_and_restore_its_snapshots() {
    let data = transactions(600);
    let configs = [
        "{}".to_owned(),
        r#"{"emit": "all", "time": "time_us", "max_total_amount": 3000}"#.to_owned(),
        r#"{"size_ms": 120000, "slide_ms": 30000, "max_tx_count": 4, "max_devices": 1}"#.to_owned(),
    ];
    for config in &configs {
        let mut want = rust(guests::FRAUD_DETECTOR, config);
        let mut ops: Vec<(&str, Operator)> = LANGS.iter().map(|l| (*l, guest(l, "fraud-detector", config))).collect();
        let mut outputs = Vec::new();
        let mut max_seen = i64::MIN;
        let times = data.column_by_name("timestamp").unwrap().as_any().downcast_ref::<TimestampMillisecondArray>().unwrap().clone();
        let step = 90;
        let mut snapshot_at = None;
        let mut previous = None;
        for start in (0..data.num_rows()).step_by(step) {
            let len = step.min(data.num_rows() - start);
            let chunk = on_time(&data.slice(start, len), previous);
            max_seen = (start..start + len).filter(|i| times.is_valid(*i)).map(|i| times.value(i)).fold(max_seen, i64::max);
            // Watermark: 20 s behind the newest event (the data is out of order
            // by up to 15 s, and by more across batches: those rows are late).
            let watermark = Some(max_seen - 20_000);
            previous = watermark;
            let expected = want.aggregate(&chunk, watermark).unwrap();
            for (lang, op) in &mut ops {
                let got = op.aggregate(&chunk, watermark).unwrap_or_else(|e| panic!("{lang} {config}: {e}"));
                assert_same_rows(&got, &expected, &format!("{lang} {config}: batch at {start}"));
                if let (Some(g), Some(e)) = (got.first(), expected.first()) {
                    assert_eq!(g.schema(), e.schema(), "{lang} {config}: output schema");
                }
            }
            if start == 270 {
                snapshot_at = Some((want.snapshot().unwrap(), start + len, watermark));
            }
            outputs.extend(expected);
        }
        // Flush every window.
        let flush = want.aggregate(&data.slice(0, 0), Some(i64::MAX / 2)).unwrap();
        for (lang, op) in &mut ops {
            let got = op.aggregate(&data.slice(0, 0), Some(i64::MAX / 2)).unwrap();
            assert_same_rows(&got, &flush, &format!("{lang} {config}: flush"));
        }
        outputs.extend(flush);
        // The data exercises the interesting paths: early alerts for the burst
        // user, final rows, several reasons.
        let rows = fraud_rows(&outputs);
        assert!(rows.iter().any(|r| r.starts_with("burst/") && r.contains("|false|")), "{config}: no early burst alert");
        assert!(rows.iter().any(|r| r.contains("|true|")), "{config}: no final rows");
        assert!(rows.iter().any(|r| r.contains("merchants")) && rows.iter().any(|r| r.contains("devices")), "{config}");

        // The Rust snapshot restores into fresh Python / JS instances (and
        // theirs into a fresh Rust one): the rest of the stream gives the same
        // rows. Amounts to 1e-6: serde_json (without `float_roundtrip`) may
        // read a snapshot's float back 1 ulp off, Python and JS read it exactly.
        let micros = |v: f64| format!("{v:.6}");
        let (snapshot, resume, watermark) = snapshot_at.unwrap();
        let rest = on_time(&data.slice(resume, data.num_rows() - resume), watermark);
        let mut rust_after = rust(guests::FRAUD_DETECTOR, config);
        rust_after.restore(&snapshot).unwrap();
        let expected = rust_after.aggregate(&rest, Some(i64::MAX / 2)).unwrap();
        assert!(!expected.is_empty());
        for lang in LANGS {
            let mut fresh = guest(lang, "fraud-detector", config);
            fresh.restore(&snapshot).unwrap_or_else(|e| panic!("{lang} restoring the Rust snapshot: {e}"));
            let own = fresh.snapshot().unwrap();
            let got = fresh.aggregate(&rest, Some(i64::MAX / 2)).unwrap();
            assert_same_rows_with(&got, &expected, &format!("{lang} {config}: after restoring the Rust snapshot"), micros);
            let mut rust_fresh = rust(guests::FRAUD_DETECTOR, config);
            rust_fresh.restore(&own).unwrap_or_else(|e| panic!("rust restoring the {lang} snapshot: {e}"));
            let got = rust_fresh.aggregate(&rest, Some(i64::MAX / 2)).unwrap();
            assert_same_rows_with(&got, &expected, &format!("rust restored from {lang} {config}"), micros);
        }
    }
}

#[test]
fn fraud_detector_ports_refuse_bad_configs_and_garbage_snapshots_like_rust() {
    let configs = [
        r#"{"emit": "sometimes"}"#,
        r#"{"slide_ms": 600000}"#,
        r#"{"size_ms": 0}"#,
        r#"{"max_tx_count": -1}"#,
        r#"{"max_tx_count": 2.5}"#,
        r#"{"window": 5}"#,
    ];
    for config in configs {
        let error = Operator::new(load(std::path::Path::new(guests::FRAUD_DETECTOR)), config, Default::default()).err().unwrap();
        assert_eq!(error.kind_str(), "invalid_config", "rust {config}: {error}");
        for lang in LANGS {
            let error = Operator::new(load(&polyglot(&format!("{lang}-fraud-detector"))), config, Default::default())
                .err()
                .unwrap_or_else(|| panic!("{lang} accepted {config}"));
            assert_eq!(error.kind_str(), "invalid_config", "{lang} {config}: {error}");
        }
    }
    for lang in LANGS {
        let mut op = guest(lang, "fraud-detector", "{}");
        let error = op.restore(b"definitely not a snapshot").unwrap_err();
        assert!(error.to_string().contains("window state"), "{lang}: {error}");
        assert!(op.aggregate(&transactions(50), Some(0)).is_ok(), "{lang}: still works");
    }
}
