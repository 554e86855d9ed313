//! The Python, JavaScript and C example operators, run through the real host
//! next to their Rust originals on the same batches: same rows kept, same
//! derived columns, same rejections (and reasons), same aggregate output and
//! snapshot bytes, same webhook bodies; and the same filter/map chain in a
//! Kafka pipeline on the mock cluster: same output records and dead letters.
//!
//! The components come from `target/guests/polyglot/` and are built by
//! `scripts/build-polyglot-guests` (not by cargo: they need componentize-py
//! and componentize-js). A missing component fails the test, naming the
//! script to run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use weir::engine::{Engine, EngineConfig, HttpAllowlist, OperatorKind, Plugin, SinkResult};
use weir::operator::Operator;
use weir_tests::guests;

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

#[test]
fn high_value_orders_keeps_the_same_rows_as_rust() {
    let batch = orders(1000);
    for config in ["{}", r#"{"threshold": 500}"#, r#"{"column": "quantity", "threshold": 4}"#] {
        let expected = rust(guests::HIGH_VALUE_ORDERS, config).filter(&batch).unwrap();
        assert!(expected.batch.num_rows() > 0 && expected.batch.num_rows() < batch.num_rows());
        for lang in LANGS {
            let mut op = guest(lang, "high-value-orders", config);
            assert_eq!(op.kind(), OperatorKind::Filter);
            let got = op.filter(&batch).unwrap_or_else(|e| panic!("{lang} {config}: {e}"));
            assert_eq!(got.input_rows, expected.input_rows, "{lang} {config}: kept rows");
            assert_eq!(got.batch, expected.batch, "{lang} {config}");
            // A second call on the same instance, and an empty batch.
            assert_eq!(op.filter(&batch.slice(10, 100)).unwrap().input_rows, {
                rust(guests::HIGH_VALUE_ORDERS, config).filter(&batch.slice(10, 100)).unwrap().input_rows
            });
            assert_eq!(op.filter(&batch.slice(0, 0)).unwrap().batch.num_rows(), 0);
        }
    }
}

#[test]
fn bad_configs_are_refused_like_rust() {
    let cases = [
        ("high-value-orders", guests::HIGH_VALUE_ORDERS, r#"{"threshold": "high"}"#),
        ("high-value-orders", guests::HIGH_VALUE_ORDERS, r#"{"treshold": 5}"#),
        ("enrich-order", guests::ENRICH_ORDER, r#"{"tax_rate": true}"#),
        ("count-by-key", guests::COUNT_BY_KEY, r#"{"key": 5}"#),
        ("count-by-key", guests::COUNT_BY_KEY, "[1, 2]"),
    ];
    for (name, rust_path, config) in cases {
        let error = Operator::new(load(std::path::Path::new(rust_path)), config, Default::default()).err().unwrap();
        assert_eq!(error.kind_str(), "invalid_config", "rust {name} {config}: {error}");
        for lang in LANGS {
            let plugin = load(&polyglot(&format!("{lang}-{name}")));
            let error = Operator::new(plugin, config, Default::default())
                .err()
                .unwrap_or_else(|| panic!("{lang} {name} accepted {config}"));
            assert_eq!(error.kind_str(), "invalid_config", "{lang} {name} {config}: {error}");
        }
    }
}

#[test]
fn wrong_column_type_is_invalid_input_like_rust() {
    let batch = orders(50);
    let config = r#"{"column": "order_id"}"#;
    let expected = rust(guests::HIGH_VALUE_ORDERS, config).filter(&batch).unwrap_err();
    assert_eq!(expected.kind_str(), "invalid_input");
    for lang in LANGS {
        let mut op = guest(lang, "high-value-orders", config);
        let error = op.filter(&batch).unwrap_err();
        assert_eq!(error.kind_str(), "invalid_input", "{lang}: {error}");
        let message = |e: &weir::engine::Error| e.to_string().split_once("`evaluate`: ").map(|(_, m)| m.to_owned());
        assert_eq!(message(&error), message(&expected), "{lang}: same message");
        assert!(message(&expected).is_some_and(|m| m.contains("is Utf8")), "{expected}");
        assert_eq!(op.stats().traps, 0, "{lang}: an operator error is not a trap");
    }
}

#[test]
fn enrich_order_derives_the_same_columns_and_rejections_as_rust() {
    let batch = orders(1200);
    for config in ["{}", r#"{"tax_rate": 0.25}"#] {
        let expected = rust(guests::ENRICH_ORDER, config).map(&batch).unwrap();
        assert!(expected.rejected.len() > 10);
        assert!(expected.rejected.iter().any(|r| r.reason == "negative total_amount: -5"), "{:?}", expected.rejected);
        assert!(expected.rejected.iter().any(|r| r.reason.ends_with(".5")));
        assert!(expected.rejected.iter().any(|r| r.reason == "negative total_amount: -0.0000001"));
        assert!(expected.rejected.iter().any(|r| r.reason == "negative total_amount: -15000000000000000000000"));
        for lang in LANGS {
            let got = guest(lang, "enrich-order", config).map(&batch).unwrap_or_else(|e| panic!("{lang}: {e}"));
            assert_eq!(got.rejected, expected.rejected, "{lang} {config}: rejections and reasons");
            assert_eq!(got.input_rows, expected.input_rows, "{lang} {config}");
            let schema = got.batch.schema();
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(
                names,
                ["order_id", "customer_id", "total_amount", "quantity", "express", "timestamp", "amount_bucket", "tax_amount"]
            );
            assert_eq!(got.batch, expected.batch, "{lang} {config}: derived columns");
            let buckets = got.batch.column_by_name("amount_bucket").unwrap();
            let buckets = buckets.as_any().downcast_ref::<Int64Array>().unwrap();
            assert!(buckets.iter().any(|b| b == Some(i64::MAX)), "{lang}: inf and 1e300 saturate like Rust's `as`");
        }
    }
}

fn count_batches(op: &mut Operator, batch: &RecordBatch) -> Vec<RecordBatch> {
    op.aggregate(batch, None).unwrap_or_else(|e| panic!("aggregate: {e}"))
}

#[test]
fn count_by_key_matches_rust_including_snapshots() {
    let data = orders(900);
    for config in ["{}", r#"{"key": "quantity", "value": "total_amount"}"#] {
        let mut want = rust(guests::COUNT_BY_KEY, config);
        let mut ops: Vec<(&str, Operator)> = LANGS.iter().map(|l| (*l, guest(l, "count-by-key", config))).collect();
        for start in (0..600).step_by(200) {
            let chunk = data.slice(start, 200);
            let expected = count_batches(&mut want, &chunk);
            assert_eq!(expected.len(), 1);
            for (lang, op) in &mut ops {
                assert_eq!(count_batches(op, &chunk), expected, "{lang} {config}: batch at {start}");
            }
        }
        let snapshot = want.snapshot().unwrap();
        for (lang, op) in &mut ops {
            assert_eq!(op.snapshot().unwrap(), snapshot, "{lang} {config}: snapshot bytes");
            assert!(count_batches(op, &data.slice(0, 0)).is_empty(), "{lang}: no rows, no output");
        }
        // Restore the Rust snapshot into fresh Python / JS instances (and each
        // language's own snapshot into a fresh Rust one): the totals continue.
        let rest = data.slice(600, 300);
        let expected = count_batches(&mut want, &rest);
        for (lang, op) in &mut ops {
            let own = op.snapshot().unwrap();
            let mut fresh = guest(lang, "count-by-key", config);
            fresh.restore(&snapshot).unwrap();
            assert_eq!(count_batches(&mut fresh, &rest), expected, "{lang} {config}: after restore");
            let mut rust_fresh = rust(guests::COUNT_BY_KEY, config);
            rust_fresh.restore(&own).unwrap();
            assert_eq!(count_batches(&mut rust_fresh, &rest), expected, "rust restored from {lang}");
            assert_eq!(fresh.snapshot().unwrap(), want.snapshot().unwrap(), "{lang}: snapshot after restore");
        }
    }
}

#[test]
fn count_by_key_refuses_a_garbage_snapshot_and_keeps_working() {
    for lang in LANGS {
        let mut op = guest(lang, "count-by-key", "{}");
        let error = op.restore(b"definitely not a snapshot").unwrap_err();
        assert!(matches!(error, weir::engine::Error::Guest { .. }), "{lang}: {error}");
        assert!(error.to_string().contains("corrupt count-by-key snapshot"), "{lang}: {error}");
        assert_eq!(count_batches(&mut op, &orders(10)).len(), 1, "{lang}: still works");
    }
}

// ---------------------------------------------------------------------------
// sentiment (Python map) and negative-sentiment (JS filter)

/// The lexicon shipped with the Python example, parsed independently.
fn lexicon() -> HashMap<String, f64> {
    let path = weir_tests::repo_root().join("guest-examples/python/sentiment/lexicon.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (word, score) = l.split_once('\t').expect("word<TAB>score");
            (word.to_owned(), score.parse().expect("score"))
        })
        .collect()
}

/// Mean lexicon score over the words (runs of ASCII letters and apostrophes
/// of the lower-cased text); 0 without words.
fn expected_score(lexicon: &HashMap<String, f64>, text: &str) -> f64 {
    let lower = text.to_lowercase();
    let words: Vec<&str> =
        lower.split(|c: char| !(c.is_ascii_lowercase() || c == '\'')).filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return 0.0;
    }
    words.iter().map(|w| lexicon.get(*w).copied().unwrap_or(0.0)).sum::<f64>() / words.len() as f64
}

fn reviews() -> (Vec<Option<&'static str>>, RecordBatch) {
    let texts = vec![
        Some("Great product, I love it!"),
        Some("Terrible. Arrived broken and late; worst purchase ever."),
        Some("It is a table."),
        None,
        Some(""),
        Some("Not bad, not great: fine I guess"),
        Some("AWESOME service, thanks!!!"),
        Some("slow delivery, poor packaging, but nice people"),
        Some("Ça marche très bien — excellent"),
    ];
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int32Array::from_iter_values(0..texts.len() as i32)) as ArrayRef),
        ("text", Arc::new(StringArray::from(texts.clone())) as ArrayRef),
    ])
    .unwrap();
    (texts, batch)
}

#[test]
fn sentiment_scores_text_with_the_embedded_lexicon() {
    let lexicon = lexicon();
    let (texts, batch) = reviews();
    let mut op = guest("python", "sentiment", "{}");
    let out = op.map(&batch).unwrap();
    assert!(out.rejected.is_empty());
    assert_eq!(out.batch.num_columns(), 3, "id, text + sentiment");
    let scores = out.batch.column_by_name("sentiment").unwrap().as_any().downcast_ref::<Float64Array>().unwrap().clone();
    for (i, text) in texts.iter().enumerate() {
        match text {
            Some(t) => {
                let want = expected_score(&lexicon, t);
                assert!((scores.value(i) - want).abs() < 1e-12, "{t:?}: {} vs {want}", scores.value(i));
            }
            None => assert!(scores.is_null(i), "null text gives a null score"),
        }
    }
    assert!(scores.value(0) > 0.0 && scores.value(1) < 0.0 && scores.value(2) == 0.0 && scores.value(4) == 0.0);

    // The column is configurable; a missing one is invalid input.
    let renamed = RecordBatch::try_from_iter([("review", batch.column(1).clone())]).unwrap();
    let scored = guest("python", "sentiment", r#"{"column": "review"}"#).map(&renamed).unwrap();
    assert_eq!(scored.batch.column_by_name("sentiment").unwrap().as_ref(), &scores as &dyn Array);
    // `text` is declared in `reads`: the host itself refuses a batch without it.
    let error = op.map(&renamed).unwrap_err();
    assert!(error.to_string().contains("text"), "{error}");
}

#[test]
fn python_sentiment_then_js_negative_sentiment_keeps_the_negative_reviews() {
    let lexicon = lexicon();
    let (texts, batch) = reviews();
    let chain = vec![guest("python", "sentiment", "{}"), guest("js", "negative-sentiment", "{}")];
    let mut chain = weir::operator::Chain::new(chain);
    let out = chain.run(batch, None).unwrap();
    let kept: Vec<i32> = out
        .batches
        .iter()
        .flat_map(|b| b.column_by_name("id").unwrap().as_any().downcast_ref::<Int32Array>().unwrap().values().to_vec())
        .collect();
    let expected: Vec<i32> = (0..texts.len() as i32)
        .filter(|&i| texts[i as usize].is_some_and(|t| expected_score(&lexicon, t) < 0.0))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(kept, expected);

    let scored = RecordBatch::try_from_iter([(
        "sentiment",
        Arc::new(Float64Array::from(vec![Some(-0.5), None, Some(0.2), Some(-2.0), Some(0.0)])) as ArrayRef,
    )])
    .unwrap();
    let mut filter = guest("js", "negative-sentiment", r#"{"threshold": -1}"#);
    assert_eq!(filter.filter(&scored).unwrap().input_rows, vec![3]);
}

// ---------------------------------------------------------------------------
// webhook-alert (sinks over wasi:http)

use weir_tests::http_server::http_server;

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

#[test]
fn webhook_alert_posts_the_same_json_as_rust() {
    let batch = orders(40);
    let rust_path = PathBuf::from(guests::WEBHOOK_ALERT);
    let (line, expected) = posted(&rust_path, &batch);
    assert_eq!(line, "POST /alerts HTTP/1.1");
    let guests: Vec<(&str, PathBuf)> =
        LANGS.iter().map(|l| (*l, polyglot(&format!("{l}-webhook-alert")))).chain([("c", c_component("webhook-alert"))]).collect();
    for (lang, path) in guests {
        let (got_line, got) = posted(&path, &batch);
        assert_eq!(got_line, line, "{lang}");
        assert_eq!(got, expected, "{lang}: same JSON rows");

        let (addr, _requests) = http_server(503);
        let mut op = sink(&path, &format!("http://{addr}/"), &["127.0.0.1"]);
        assert!(matches!(op.write(&batch).unwrap(), SinkResult::Retryable(_)), "{lang}: 5xx is retryable");
        let (addr, _requests) = http_server(400);
        let mut op = sink(&path, &format!("http://{addr}/"), &["127.0.0.1"]);
        assert!(matches!(op.write(&batch).unwrap(), SinkResult::Permanent(_)), "{lang}: 4xx is permanent");

        let (addr, requests) = http_server(200);
        let mut op = sink(&path, &format!("http://{addr}/alerts"), &["alerts.example.com"]);
        match (lang, op.write(&batch)) {
            (_, Ok(SinkResult::Permanent(reason))) => assert!(reason.contains("denied"), "{lang}: {reason}"),
            // Known limitation of componentize-js 0.22 (StarlingMonkey): when the
            // host refuses the request, fetch() does not reject its promise, the
            // event loop aborts and the instance traps. Still nothing is sent.
            ("js", Err(weir::engine::Error::Trap { message, .. })) => {
                assert!(message.contains("event loop error"), "js: {message}")
            }
            (_, other) => panic!("{lang}: expected a permanent denial, got {other:?}"),
        }
        assert!(requests.recv_timeout(Duration::from_millis(300)).is_err(), "{lang}: nothing reached the server");
        assert_eq!(op.write(&batch.slice(0, 0)).unwrap(), SinkResult::Written, "{lang}: empty batch, no request");
    }
}

// ---------------------------------------------------------------------------

/// Per-batch cost of each implementation (8192-row batches). Informational:
/// `cargo test -p weir-tests --test polyglot -- --ignored --nocapture`.
#[test]
#[ignore]
fn per_batch_timings() {
    let batch = orders(8192);
    let mut rows = Vec::new();
    for (name, rust_path, config) in [
        ("high-value-orders", guests::HIGH_VALUE_ORDERS, "{}"),
        ("enrich-order", guests::ENRICH_ORDER, "{}"),
        ("count-by-key", guests::COUNT_BY_KEY, "{}"),
    ] {
        let mut ops = vec![("rust".to_string(), rust(rust_path, config))];
        for lang in LANGS {
            ops.push((lang.to_string(), guest(lang, name, config)));
        }
        for (lang, mut op) in ops {
            let run = |op: &mut Operator| match name {
                "high-value-orders" => drop(op.filter(&batch).unwrap()),
                "enrich-order" => drop(op.map(&batch).unwrap()),
                _ => drop(op.aggregate(&batch, None).unwrap()),
            };
            run(&mut op);
            let n = 20;
            let start = Instant::now();
            for _ in 0..n {
                run(&mut op);
            }
            rows.push(format!("{name:<18} {lang:<7} {:>9.3} ms/batch", start.elapsed().as_secs_f64() * 1e3 / n as f64));
        }
    }
    println!("8192-row batches:\n{}", rows.join("\n"));
}


// ---------------------------------------------------------------------------
// C guests (sdk/c): the same comparisons against the Rust originals.

/// Path of a C example component; fails (never skips) when it was not built.
fn c_component(name: &str) -> PathBuf {
    let path = weir_tests::repo_root().join("target/guests/polyglot").join(format!("c-{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `scripts/build-polyglot-guests c` to build the C example operators",
        path.display()
    );
    path
}

fn c_guest(name: &str, config: &str) -> Operator {
    open(&c_component(name), config)
}

#[test]
fn c_high_value_orders_keeps_the_same_rows_as_rust() {
    let batch = orders(1000);
    for config in ["{}", r#"{"threshold": 500}"#, r#"{"column": "quantity", "threshold": 4}"#, r#" {"threshold": -1.5e2} "#] {
        let expected = rust(guests::HIGH_VALUE_ORDERS, config).filter(&batch).unwrap();
        assert!(expected.batch.num_rows() > 0 && expected.batch.num_rows() < batch.num_rows());
        let mut op = c_guest("high-value-orders", config);
        assert_eq!(op.kind(), OperatorKind::Filter);
        let got = op.filter(&batch).unwrap_or_else(|e| panic!("c {config}: {e}"));
        assert_eq!(got.input_rows, expected.input_rows, "c {config}: kept rows");
        assert_eq!(got.batch, expected.batch, "c {config}");
        for (start, len) in [(10, 100), (3, 1), (999, 1), (0, 0)] {
            let slice = batch.slice(start, len);
            let want = rust(guests::HIGH_VALUE_ORDERS, config).filter(&slice).unwrap();
            assert_eq!(op.filter(&slice).unwrap().input_rows, want.input_rows, "c {config}: slice {start}+{len}");
        }
    }
    // An int64 column, with nulls.
    let ints = RecordBatch::try_from_iter([(
        "n",
        Arc::new(Int64Array::from_iter((0..300).map(|i| (i % 7 != 2).then_some(i * 10 - 700)))) as ArrayRef,
    )])
    .unwrap();
    let config = r#"{"column": "n", "threshold": 100}"#;
    let expected = rust(guests::HIGH_VALUE_ORDERS, config).filter(&ints).unwrap();
    assert_eq!(c_guest("high-value-orders", config).filter(&ints).unwrap().batch, expected.batch);
}

#[test]
fn c_enrich_order_derives_the_same_columns_and_rejections_as_rust() {
    let batch = orders(1200);
    for config in ["{}", r#"{"tax_rate": 0.25}"#, r#"{"tax_rate": 1e-3}"#] {
        let expected = rust(guests::ENRICH_ORDER, config).map(&batch).unwrap();
        assert!(expected.rejected.iter().any(|r| r.reason == "negative total_amount: -5"));
        assert!(expected.rejected.iter().any(|r| r.reason == "negative total_amount: -0.0000001"));
        let mut op = c_guest("enrich-order", config);
        let got = op.map(&batch).unwrap_or_else(|e| panic!("c {config}: {e}"));
        assert_eq!(got.rejected, expected.rejected, "c {config}: rejections and reasons");
        assert_eq!(got.input_rows, expected.input_rows, "c {config}");
        assert_eq!(got.batch, expected.batch, "c {config}: derived columns");
        // The same instance again, on a slice (buffers at other offsets) and an empty batch.
        let slice = batch.slice(7, 333);
        let want = rust(guests::ENRICH_ORDER, config).map(&slice).unwrap();
        let again = op.map(&slice).unwrap();
        assert_eq!((again.batch, again.rejected), (want.batch, want.rejected), "c {config}: slice");
        assert_eq!(op.map(&batch.slice(0, 0)).unwrap().batch.num_rows(), 0);
    }
    // Formatting like Rust's f64 Display, value by value.
    let values = [-5.0, -1.5, -0.1, -1e-7, -1.5e22, -1e21, -123456.789, -f64::MIN_POSITIVE, -f64::MAX, -1.0 / 3.0, -5e-324];
    let batch = RecordBatch::try_from_iter([(
        "total_amount",
        Arc::new(Float64Array::from(values.to_vec())) as ArrayRef,
    )])
    .unwrap();
    let got = c_guest("enrich-order", "{}").map(&batch).unwrap();
    let reasons: Vec<String> = got.rejected.iter().map(|r| r.reason.clone()).collect();
    let want: Vec<String> = values.iter().map(|v| format!("negative total_amount: {v}")).collect();
    assert_eq!(reasons, want);
    assert_eq!(got.batch, rust(guests::ENRICH_ORDER, "{}").map(&batch).unwrap().batch);
}

#[test]
fn c_bad_configs_are_refused_like_rust() {
    let cases = [
        ("high-value-orders", guests::HIGH_VALUE_ORDERS, r#"{"threshold": "high"}"#),
        ("high-value-orders", guests::HIGH_VALUE_ORDERS, r#"{"treshold": 5}"#),
        ("high-value-orders", guests::HIGH_VALUE_ORDERS, r#"{"column": 5}"#),
        ("high-value-orders", guests::HIGH_VALUE_ORDERS, r#"{"threshold": 5,}"#),
        ("high-value-orders", guests::HIGH_VALUE_ORDERS, "[1, 2]"),
        ("high-value-orders", guests::HIGH_VALUE_ORDERS, "not json"),
        ("enrich-order", guests::ENRICH_ORDER, r#"{"tax_rate": true}"#),
        ("enrich-order", guests::ENRICH_ORDER, r#"{"tax_rate": 0.2} x"#),
    ];
    for (name, rust_path, config) in cases {
        let error = Operator::new(load(std::path::Path::new(rust_path)), config, Default::default()).err().unwrap();
        assert_eq!(error.kind_str(), "invalid_config", "rust {name} {config}: {error}");
        let error = Operator::new(load(&c_component(name)), config, Default::default())
            .err()
            .unwrap_or_else(|| panic!("c {name} accepted {config}"));
        assert_eq!(error.kind_str(), "invalid_config", "c {name} {config}: {error}");
    }
    // Escapes in strings: the column name is decoded like serde does.
    let batch = orders(100);
    let expected = rust(guests::HIGH_VALUE_ORDERS, "{}").filter(&batch).unwrap();
    let got = c_guest("high-value-orders", r#"{"column": "total\u005famount"}"#).filter(&batch).unwrap();
    assert_eq!(got.batch, expected.batch);
}

#[test]
fn c_wrong_column_type_is_invalid_input_like_rust() {
    let batch = orders(50);
    let message = |e: &weir::engine::Error| e.to_string().split_once("`evaluate`: ").map(|(_, m)| m.to_owned());
    for column in ["order_id", "express"] {
        let config = format!(r#"{{"column": "{column}"}}"#);
        let expected = rust(guests::HIGH_VALUE_ORDERS, &config).filter(&batch).unwrap_err();
        assert_eq!(expected.kind_str(), "invalid_input");
        let mut op = c_guest("high-value-orders", &config);
        let error = op.filter(&batch).unwrap_err();
        assert_eq!(error.kind_str(), "invalid_input", "c: {error}");
        assert_eq!(message(&error), message(&expected), "c: same message");
        assert_eq!(op.stats().traps, 0, "c: an operator error is not a trap");
    }
    let expected = rust(guests::ENRICH_ORDER, "{}").map(&RecordBatch::try_from_iter([(
        "total_amount",
        Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef,
    )]).unwrap());
    let got = c_guest("enrich-order", "{}").map(&RecordBatch::try_from_iter([(
        "total_amount",
        Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef,
    )]).unwrap());
    let (expected, got) = (expected.unwrap_err(), got.unwrap_err());
    assert_eq!(got.kind_str(), expected.kind_str(), "{got}");
    assert_eq!(got.to_string().split_once("`process`: ").map(|x| x.1.to_owned()),
               expected.to_string().split_once("`process`: ").map(|x| x.1.to_owned()));
}

// ---------------------------------------------------------------------------
// Through a Kafka pipeline (librdkafka's mock cluster).

/// The operators of the filter/map chain: `enrich-order` -> `high-value-orders`.
fn enrich_then_filter(enrich: &std::path::Path, filter: &std::path::Path) -> String {
    format!(
        r#"
        [[pipelines.p.operators]]
        plugin = {enrich:?}
        name = "enrich"
        config = {{ tax_rate = 0.2 }}
        [[pipelines.p.operators]]
        plugin = {filter:?}
        name = "high-value"
        config = {{ threshold = 500.0 }}
        "#
    )
}

/// Runs `operators` (TOML) over `inputs` orders in a pipeline; returns the
/// output records (key, JSON value) in topic order and the dead letters
/// (order id -> error kind).
async fn run_chain(
    cluster: &rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    input: &str,
    label: &str,
    operators: &str,
    key_column: &str,
    inputs: usize,
) -> (Vec<(String, serde_json::Value)>, std::collections::BTreeMap<String, String>) {
    use rdkafka::Message;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let bootstrap = cluster.bootstrap_servers();
    let (output, dlq) = (format!("out-{label}"), format!("dlq-{label}"));
    cluster.create_topic(&output, 1, 1).unwrap();
    cluster.create_topic(&dlq, 1, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schema.json"),
        r#"{"fields":[{"name":"order_id","type":"utf8","nullable":false},{"name":"customer_id","type":"utf8"},{"name":"total_amount","type":"float64"},{"name":"quantity","type":"int32"}]}"#,
    )
    .unwrap();
    // No key column: the chain ends in a sink, no output topic.
    let output_section = if key_column.is_empty() {
        String::new()
    } else {
        format!("[pipelines.p.output]\n        topic = \"{output}\"\n        key_column = \"{key_column}\"")
    };
    let toml = format!(
        r#"
        [pipelines.p.source]
        bootstrap_servers = "{bootstrap}"
        group_id = "group-{label}"
        topics = ["{input}"]
        [pipelines.p.format]
        type = "json"
        schema = "schema.json"
        [pipelines.p.batch]
        max_records = 64
        max_wait_ms = 20
        {operators}
        {output_section}
        [pipelines.p.errors]
        dead_letter_topic = "{dlq}"
        "#
    );
    std::fs::write(dir.path().join("p.toml"), toml).unwrap();
    let config = weir::config::Config::load(&dir.path().join("p.toml")).unwrap().pipelines["p"].clone();
    let handle = weir::pipeline::start("p", config, engine().clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while handle.stats().snapshot().committed.values().sum::<i64>() < inputs as i64 {
        assert!(Instant::now() < deadline && !handle.is_finished(), "{label}: {:?}", handle.stats().snapshot().state);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let counts = handle.stats().snapshot();
    handle.shutdown();
    handle.join().await.unwrap();

    let read = |topic: String| {
        let bootstrap = bootstrap.clone();
        async move {
        let consumer: StreamConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("reader-{topic}"))
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[&topic]).unwrap();
        let mut records = Vec::new();
        // The first record waits for the group join; then 1 s of quiet ends the read.
        let mut wait = Duration::from_secs(15);
        while let Ok(Ok(message)) = tokio::time::timeout(wait, consumer.recv()).await {
            records.push(message.detach());
            wait = Duration::from_secs(1);
        }
        records
        }
    };
    // Topics known to be empty are not read (a read waits 15 s for a first record).
    let outputs = if key_column.is_empty() || counts.records_out == 0 { Vec::new() } else { read(output).await }
        .iter()
        .map(|m| (String::from_utf8_lossy(m.key().unwrap()).into_owned(), serde_json::from_slice(m.payload().unwrap()).unwrap()))
        .collect();
    let dead = if counts.records_dead_lettered == 0 { Vec::new() } else { read(dlq).await }
        .iter()
        .map(|m| {
            use rdkafka::message::Headers;
            let kind = m.headers().and_then(|h| h.iter().find(|h| h.key == "weir.error.kind")).and_then(|h| h.value).unwrap_or_default();
            (String::from_utf8_lossy(m.key().unwrap()).into_owned(), String::from_utf8_lossy(kind).into_owned())
        })
        .collect();
    (outputs, dead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polyglot_chains_in_a_kafka_pipeline_deliver_what_the_rust_chain_delivers() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let input = "orders";
    cluster.create_topic(input, 2, 1).unwrap();
    let n = 300;
    let producer: FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", cluster.bootstrap_servers()).create().unwrap();
    let values: Vec<(String, String)> = (0..n)
        .map(|i| {
            let amount = match i % 10 {
                3 => "null".to_owned(),
                7 => format!("-{i}.5"),
                _ => format!("{}.25", i * 37 % 1500),
            };
            (format!("o-{i:04}"), format!(r#"{{"order_id":"o-{i:04}","customer_id":"c-{}","total_amount":{amount},"quantity":{}}}"#, i % 7, i % 9))
        })
        .collect();
    for result in futures::future::join_all(values.iter().map(|(k, v)| producer.send(FutureRecord::to(input).key(k).payload(v), Duration::from_secs(10)))).await {
        result.unwrap();
    }
    let chain = |enrich: &std::path::Path, filter: &std::path::Path| enrich_then_filter(enrich, filter);
    let keyed = |(outputs, dead): (Vec<(String, serde_json::Value)>, std::collections::BTreeMap<String, String>)| {
        (outputs.into_iter().collect::<std::collections::BTreeMap<_, _>>(), dead)
    };
    let rust = keyed(run_chain(&cluster, input, "rust", &chain(std::path::Path::new(guests::ENRICH_ORDER), std::path::Path::new(guests::HIGH_VALUE_ORDERS)), "order_id", n).await);
    assert!(!rust.0.is_empty() && rust.1.values().all(|k| k == "rejected") && !rust.1.is_empty(), "{:?}", rust.1);
    let chains = [
        ("python", polyglot("python-enrich-order"), polyglot("python-high-value-orders")),
        ("js", polyglot("js-enrich-order"), polyglot("js-high-value-orders")),
        ("c", c_component("enrich-order"), c_component("high-value-orders")),
    ];
    for (label, enrich, filter) in chains {
        let got = keyed(run_chain(&cluster, input, label, &chain(&enrich, &filter), "order_id", n).await);
        assert_eq!(got.0, rust.0, "{label}: output records");
        assert_eq!(got.1, rust.1, "{label}: dead letters");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polyglot_aggregates_in_a_kafka_pipeline_reach_the_rust_totals() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let input = "orders";
    cluster.create_topic(input, 2, 1).unwrap();
    let n = 200;
    let producer: FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", cluster.bootstrap_servers()).create().unwrap();
    let values: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"order_id":"o-{i:04}","customer_id":"c-{}","total_amount":{}.5,"quantity":1}}"#, i % 7, i % 40))
        .collect();
    for result in futures::future::join_all(values.iter().map(|v| producer.send(FutureRecord::<(), _>::to(input).payload(v), Duration::from_secs(10)))).await {
        result.unwrap();
    }
    let operators = |path: &std::path::Path| {
        format!("[[pipelines.p.operators]]\n        plugin = {path:?}\n        name = \"count\"\n        config = {{ key = \"customer_id\", value = \"total_amount\" }}")
    };
    // Running totals are emitted per batch, and batches differ between runs:
    // compare the final total of each key (its largest count).
    let finals = |outputs: Vec<(String, serde_json::Value)>| {
        let mut last: std::collections::BTreeMap<String, (i64, f64)> = std::collections::BTreeMap::new();
        for (_, row) in outputs {
            let key = row["key"].as_str().unwrap().to_owned();
            let (count, sum) = (row["count"].as_i64().unwrap(), row["sum"].as_f64().unwrap());
            let entry = last.entry(key).or_insert((0, 0.0));
            if count > entry.0 {
                *entry = (count, sum);
            }
        }
        last
    };
    let rust = finals(run_chain(&cluster, input, "agg-rust", &operators(std::path::Path::new(guests::COUNT_BY_KEY)), "key", n).await.0);
    assert_eq!(rust.values().map(|(c, _)| c).sum::<i64>(), n as i64);
    for lang in LANGS {
        let got = finals(run_chain(&cluster, input, &format!("agg-{lang}"), &operators(&polyglot(&format!("{lang}-count-by-key"))), "key", n).await.0);
        assert_eq!(got, rust, "{lang}: final totals per key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polyglot_webhook_sinks_in_a_kafka_pipeline_post_the_rust_rows() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let input = "orders";
    cluster.create_topic(input, 2, 1).unwrap();
    let n = 120;
    let producer: FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", cluster.bootstrap_servers()).create().unwrap();
    let values: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"order_id":"o-{i:04}","customer_id":"c-{}","total_amount":{}.5,"quantity":{}}}"#, i % 7, i % 40, i % 5))
        .collect();
    for result in futures::future::join_all(values.iter().map(|v| producer.send(FutureRecord::<(), _>::to(input).payload(v), Duration::from_secs(10)))).await {
        result.unwrap();
    }
    // The rows each sink posted, sorted (batching differs between runs).
    let posted = |label: &'static str, path: PathBuf| {
        let cluster = &cluster;
        async move {
            let (addr, requests) = http_server(200);
            let operators = format!(
                "[[pipelines.p.operators]]\n        plugin = {path:?}\n        name = \"alert\"\n        config = {{ url = \"http://{addr}/alerts\" }}\n        allow_hosts = [\"{addr}\"]"
            );
            let (_, dead) = run_chain(cluster, input, label, &operators, "", n).await;
            assert!(dead.is_empty(), "{label}: {dead:?}");
            let mut rows: Vec<String> = Vec::new();
            while let Ok((_, body)) = requests.try_recv() {
                let batch: serde_json::Value = serde_json::from_slice(&body).unwrap();
                rows.extend(batch.as_array().unwrap().iter().map(|r| r.to_string()));
            }
            rows.sort();
            rows
        }
    };
    let rust = posted("sink-rust", PathBuf::from(guests::WEBHOOK_ALERT)).await;
    assert_eq!(rust.len(), n);
    for (label, path) in [
        ("sink-python", polyglot("python-webhook-alert")),
        ("sink-js", polyglot("js-webhook-alert")),
        ("sink-c", c_component("webhook-alert")),
    ] {
        assert_eq!(posted(label, path).await, rust, "{label}: posted rows");
    }
}
