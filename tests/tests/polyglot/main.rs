//! The Python, JavaScript, C and Go example operators, run through the real host
//! next to their Rust originals on the same batches: same rows kept, same
//! derived columns, same rejections (and reasons), same aggregate output and
//! snapshot bytes, same webhook bodies; and the same filter/map chain in a
//! Kafka pipeline on the mock cluster: same output records and dead letters.
//!
//! The components come from `target/guests/polyglot/` and are built by
//! `scripts/build-polyglot-guests` (not by cargo: they need componentize-py
//! and componentize-js). A missing component fails the test, naming the
//! script to run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use weir::engine::{Engine, EngineConfig, HttpAllowlist, OperatorKind, Plugin, SinkResult};
use weir::operator::{Operator, StateChange};
use weir_tests::guests;
use weir_tests::http_server::http_server;

const LANGS: [&str; 2] = ["python", "js"];

/// One engine for the whole test binary, with an artifact cache under
/// `target/` so the large interpreter components compile once.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let cache = weir_tests::repo_root().join("target/tmp/polyglot-artifact-cache");
        Engine::new(EngineConfig { limits: Default::default(), cache_dir: Some(cache) }).expect("engine")
    })
}

/// Path of a polyglot component; fails (never skips) when it was not built.
fn polyglot(name: &str) -> PathBuf {
    let path = weir_tests::repo_root().join("target/guests/polyglot").join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `scripts/build-polyglot-guests` to build the Python and JavaScript example operators",
        path.display()
    );
    path
}

fn load(path: &std::path::Path) -> Plugin {
    engine().load_file(path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
}

fn open(path: &std::path::Path, config: &str) -> Operator {
    Operator::new(load(path), config, HttpAllowlist::default())
        .unwrap_or_else(|e| panic!("{} with config {config}: {e}", path.display()))
}

fn rust(path: &str, config: &str) -> Operator {
    open(std::path::Path::new(path), config)
}

fn guest(lang: &str, name: &str, config: &str) -> Operator {
    open(&polyglot(&format!("{lang}-{name}")), config)
}

/// Orders with nulls and negatives (whole and fractional), and amounts that
/// exercise formatting and saturation: tiny, huge and infinite ones.
fn orders(n: usize) -> RecordBatch {
    let amount = |i: usize| -> Option<f64> {
        match i {
            _ if i % 7 == 3 => None,
            _ if i % 11 == 5 => Some(-(i as f64)),
            _ if i % 13 == 6 => Some(-(i as f64) - 0.5),
            _ => Some((i * 137 % 2000) as f64 + 0.25),
        }
    };
    let mut amounts: Vec<Option<f64>> = (0..n).map(amount).collect();
    let specials = [Some(-1e-7), Some(-1.5e22), Some(f64::INFINITY), Some(1e300), Some(-0.0), Some(1000.0)];
    for (slot, value) in amounts.iter_mut().skip(1).step_by(97).zip(specials) {
        *slot = value;
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("order_id", Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("o-{i}"))))),
        (
            "customer_id",
            Arc::new(StringArray::from_iter((0..n).map(|i| (i % 17 != 9).then(|| format!("c-{}", i % 5))))),
        ),
        ("total_amount", Arc::new(Float64Array::from(amounts))),
        ("quantity", Arc::new(Int32Array::from_iter((0..n).map(|i| (i % 10 != 4).then_some((i % 9) as i32))))),
        ("express", Arc::new(BooleanArray::from_iter((0..n).map(|i| Some(i % 3 == 0))))),
        (
            "timestamp",
            Arc::new(
                TimestampMillisecondArray::from_iter_values((0..n).map(|i| 1_700_000_000_000 + i as i64 * 1000))
                    .with_timezone("UTC"),
            ),
        ),
    ];
    RecordBatch::try_from_iter(columns).expect("order batch")
}

fn sink(path: &std::path::Path, url: &str, allow: &[&str]) -> Operator {
    let config = serde_json::json!({ "url": url }).to_string();
    Operator::new(load(path), config, HttpAllowlist::new(allow.iter().copied()))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn posted(path: &std::path::Path, batch: &RecordBatch) -> (String, serde_json::Value) {
    let (addr, requests) = http_server(200);
    let mut op = sink(path, &format!("http://{addr}/alerts"), &[addr.as_str()]);
    assert_eq!(op.write(batch).unwrap(), SinkResult::Written, "{}", path.display());
    let (line, body) = requests.recv_timeout(Duration::from_secs(10)).expect("a request");
    (line, serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{}: body is not JSON: {e}", path.display())))
}

/// Every config in `cases` ((example, Rust guest, config)) is refused with
/// `invalid_config` by the Rust guest and by `lang`'s component of the
/// same example; a column name with a JSON escape is decoded like serde.
fn refuses_configs_like_rust(lang: &str, cases: &[(&str, &str, &str)], component: fn(&str) -> PathBuf) {
    for &(name, rust_path, config) in cases {
        let error = Operator::new(load(std::path::Path::new(rust_path)), config, Default::default()).err().unwrap();
        assert_eq!(error.kind_str(), "invalid_config", "rust {name} {config}: {error}");
        let error = Operator::new(load(&component(name)), config, Default::default())
            .err()
            .unwrap_or_else(|| panic!("{lang} {name} accepted {config}"));
        assert_eq!(error.kind_str(), "invalid_config", "{lang} {name} {config}: {error}");
    }
    // Escapes in strings: the column name is decoded like serde does.
    let batch = orders(100);
    let expected = rust(guests::HIGH_VALUE_ORDERS, "{}").filter(&batch).unwrap();
    let got = open(&component("high-value-orders"), r#"{"column": "total\u005famount"}"#).filter(&batch).unwrap();
    assert_eq!(got.batch, expected.batch);
}

/// A filter column of the wrong type is `invalid_input` with the Rust
/// guest's message, not a trap, and the instance keeps working.
fn filter_column_type_errors_like_rust(lang: &str, component: &std::path::Path) {
    let batch = orders(50);
    let message = |e: &weir::engine::Error| e.to_string().split_once("`evaluate`: ").map(|(_, m)| m.to_owned());
    for column in ["order_id", "express"] {
        let config = format!(r#"{{"column": "{column}"}}"#);
        let expected = rust(guests::HIGH_VALUE_ORDERS, &config).filter(&batch).unwrap_err();
        assert_eq!(expected.kind_str(), "invalid_input");
        let mut op = open(component, &config);
        let error = op.filter(&batch).unwrap_err();
        assert_eq!(error.kind_str(), "invalid_input", "{lang}: {error}");
        assert_eq!(message(&error), message(&expected), "{lang}: same message");
        assert_eq!(op.stats().traps, 0, "{lang}: an operator error is not a trap");
        assert!(op.filter(&batch).is_err(), "{lang}: the instance lives on");
    }
}

/// `lang`'s enrich-order (`component`) against the Rust original: the same
/// derived columns and rejections (reasons included) for three tax rates,
/// then on a slice (buffers at other offsets) and an empty batch with the
/// same instance; and each negative total of `amounts` rejected with the
/// reason Rust writes (its `f64` Display), value by value.
fn enrich_order_matches_rust(lang: &str, component: &std::path::Path, amounts: &[f64]) {
    let batch = orders(1200);
    for config in ["{}", r#"{"tax_rate": 0.25}"#, r#"{"tax_rate": 1e-3}"#] {
        let expected = rust(guests::ENRICH_ORDER, config).map(&batch).unwrap();
        assert!(expected.rejected.iter().any(|r| r.reason == "negative total_amount: -5"));
        assert!(expected.rejected.iter().any(|r| r.reason == "negative total_amount: -0.0000001"));
        let mut op = open(component, config);
        assert_eq!(op.kind(), OperatorKind::Map);
        assert!(op.plugin().packed(), "{lang}: the SDK's maps take packed batches");
        let got = op.map(&batch).unwrap_or_else(|e| panic!("{lang} {config}: {e}"));
        assert_eq!(got.rejected, expected.rejected, "{lang} {config}: rejections and reasons");
        assert_eq!(got.input_rows, expected.input_rows, "{lang} {config}");
        assert_eq!(got.batch, expected.batch, "{lang} {config}: derived columns");
        let slice = batch.slice(7, 333);
        let want = rust(guests::ENRICH_ORDER, config).map(&slice).unwrap();
        let again = op.map(&slice).unwrap();
        assert_eq!((again.batch, again.rejected), (want.batch, want.rejected), "{lang} {config}: slice");
        assert_eq!(op.map(&batch.slice(0, 0)).unwrap().batch.num_rows(), 0);
    }
    let batch = RecordBatch::try_from_iter([("total_amount", Arc::new(Float64Array::from(amounts.to_vec())) as ArrayRef)]).unwrap();
    let got = open(component, "{}").map(&batch).unwrap();
    let reasons: Vec<String> = got.rejected.iter().map(|r| r.reason.clone()).collect();
    let want: Vec<String> = amounts.iter().map(|v| format!("negative total_amount: {v}")).collect();
    assert_eq!(reasons, want, "{lang}");
    assert_eq!(got.batch, rust(guests::ENRICH_ORDER, "{}").map(&batch).unwrap().batch, "{lang}");
}

/// `lang`'s high-value-orders (`component`) against the Rust original: the
/// same kept rows for four configs on 1,000 rows (column by column), then on
/// slices of the same instance (packed: buffers at other offsets, one row,
/// none), and on an int64 column with nulls.
fn high_value_orders_matches_rust(lang: &str, component: &std::path::Path) {
    let batch = orders(1000);
    for config in ["{}", r#"{"threshold": 500}"#, r#"{"column": "quantity", "threshold": 4}"#, r#" {"threshold": -1.5e2} "#] {
        let expected = rust(guests::HIGH_VALUE_ORDERS, config).filter(&batch).unwrap();
        assert!(expected.batch.num_rows() > 0 && expected.batch.num_rows() < batch.num_rows());
        let mut op = open(component, config);
        assert_eq!(op.kind(), OperatorKind::Filter);
        // Contract 0.1.2: batches up to 4 KiB (the slices below) go packed,
        // the 1,000-row batch column by column; both must match Rust.
        assert!(op.plugin().packed(), "{lang}: the SDK's filters take packed batches");
        let got = op.filter(&batch).unwrap_or_else(|e| panic!("{lang} {config}: {e}"));
        assert_eq!(got.input_rows, expected.input_rows, "{lang} {config}: kept rows");
        assert_eq!(got.batch, expected.batch, "{lang} {config}");
        for (start, len) in [(10, 100), (3, 1), (999, 1), (0, 0)] {
            let slice = batch.slice(start, len);
            let want = rust(guests::HIGH_VALUE_ORDERS, config).filter(&slice).unwrap();
            let got = op.filter(&slice).unwrap_or_else(|e| panic!("{lang} {config}: slice {start}+{len}: {e}"));
            assert_eq!((got.input_rows, got.batch), (want.input_rows, want.batch), "{lang} {config}: slice {start}+{len}");
        }
    }
    let config = r#"{"column": "n", "threshold": 100}"#;
    let expected = rust(guests::HIGH_VALUE_ORDERS, config).filter(&int64_with_nulls()).unwrap();
    assert_eq!(open(component, config).filter(&int64_with_nulls()).unwrap().batch, expected.batch, "{lang}: int64");
}

/// One int64 column `n`, 300 rows from -700 by 10, every seventh null.
fn int64_with_nulls() -> RecordBatch {
    let values = Int64Array::from_iter((0..300).map(|i| (i % 7 != 2).then_some(i * 10 - 700)));
    RecordBatch::try_from_iter([("n", Arc::new(values) as ArrayRef)]).unwrap()
}

// Helpers the modules share with each other.
use c::c_component;
use fraud::{transactions, on_time, assert_same_rows};
use go::go_component;
use kafka::read_topic;
use python_js::{count_batches, count_by_key_matches_rust, count_by_key_refuses_a_garbage_snapshot, webhook_alert_matches_rust};

mod c;
mod fraud;
mod fraud_keyed;
mod go;
mod kafka;
mod keyed;
mod python_js;
mod sdk_windows;
mod timings;
