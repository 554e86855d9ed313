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
    count_by_key_matches_rust(&LANGS);
}

/// The count-by-key ports of `langs` against the Rust original: the same
/// output batches, snapshot bytes, and totals after restoring each other's
/// snapshots.
fn count_by_key_matches_rust(langs: &[&str]) {
    let data = orders(900);
    for config in ["{}", r#"{"key": "quantity", "value": "total_amount"}"#] {
        let mut want = rust(guests::COUNT_BY_KEY, config);
        let mut ops: Vec<(&str, Operator)> = langs.iter().map(|l| (*l, guest(l, "count-by-key", config))).collect();
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
    count_by_key_refuses_a_garbage_snapshot(&LANGS);
}

fn count_by_key_refuses_a_garbage_snapshot(langs: &[&str]) {
    for &lang in langs {
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
    let guests: Vec<(&str, PathBuf)> =
        LANGS.iter().map(|l| (*l, polyglot(&format!("{l}-webhook-alert")))).chain([("c", c_component("webhook-alert"))]).collect();
    webhook_alert_matches_rust(&orders(40), guests);
}

/// The webhook-alert ports against the Rust original on `batch`: the same
/// request line and JSON rows, 5xx retryable, 4xx permanent, a destination
/// outside the allowlist refused before anything is sent, no request for
/// an empty batch.
fn webhook_alert_matches_rust(batch: &RecordBatch, guests: Vec<(&str, PathBuf)>) {
    let batch = batch.clone();
    let rust_path = PathBuf::from(guests::WEBHOOK_ALERT);
    let (line, expected) = posted(&rust_path, &batch);
    assert_eq!(line, "POST /alerts HTTP/1.1");
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

/// Checkpoint cost of the keyed C and Go count-by-key: the whole snapshot
/// against `snapshot-changes` after a batch touched 1% or 10% of 20,000
/// keys (Rust: whole snapshot only). Informational:
/// `cargo test -p weir-tests --test polyglot keyed_checkpoint_timings -- --ignored --nocapture`.
#[test]
#[ignore]
fn keyed_checkpoint_timings() {
    let keys = 20_000i64;
    let batch = |ids: Vec<i64>| {
        let n = ids.len();
        RecordBatch::try_from_iter([
            ("k", Arc::new(Int64Array::from(ids)) as ArrayRef),
            ("v", Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64)))),
        ])
        .unwrap()
    };
    let config = r#"{"key": "k", "value": "v"}"#;
    let mut rows = Vec::new();
    let mut ops = vec![("rust", rust(guests::COUNT_BY_KEY, config))];
    ops.push(("c", open(&c_component("count-by-key"), config)));
    ops.push(("go", open(&go_component("count-by-key"), config)));
    for (lang, mut op) in ops {
        op.aggregate(&batch((0..keys).collect()), None).unwrap();
        let n = 20;
        let start = Instant::now();
        let mut bytes = 0;
        for _ in 0..n {
            bytes = op.snapshot().unwrap().len();
        }
        rows.push(format!("{lang:<5} whole snapshot      {:>8.3} ms {bytes:>8} bytes", start.elapsed().as_secs_f64() * 1e3 / n as f64));
        if !op.keyed_state() {
            continue;
        }
        op.snapshot_entries().unwrap();
        for touched in [keys / 100, keys / 10] {
            let (mut elapsed, mut bytes) = (Duration::ZERO, 0);
            for round in 0..n as i64 {
                op.aggregate(&batch((0..touched).map(|i| (i * 7919 + round) % keys).collect()), None).unwrap();
                let start = Instant::now();
                let changes = op.snapshot_changes().unwrap();
                elapsed += start.elapsed();
                bytes = changes.iter().map(|e| e.key.len() + e.value.as_ref().map_or(0, Vec::len)).sum();
            }
            rows.push(format!("{lang:<5} changes, {:>5} keys {:>8.3} ms {bytes:>8} bytes", touched, elapsed.as_secs_f64() * 1e3 / n as f64));
        }
    }
    println!("checkpoints of count-by-key over {keys} keys:\n{}", rows.join("\n"));
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
        // Contract 0.1.2: batches up to 4 KiB (the slices below) go packed,
        // the 1,000-row batch column by column; both must match Rust.
        assert!(op.plugin().packed(), "the C SDK's filters take packed batches");
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
        assert!(op.plugin().packed(), "the C SDK's maps take packed batches");
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
    refuses_configs_like_rust("c", &cases, c_component);
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

#[test]
fn c_wrong_column_type_is_invalid_input_like_rust() {
    filter_column_type_errors_like_rust("c", &c_component("high-value-orders"));
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

/// Every record of `topic` from the start: the first record waits for the
/// group join, then 1 s of quiet ends the read.
async fn read_topic(bootstrap: String, topic: String) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("reader-{topic}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut records = Vec::new();
    let mut wait = Duration::from_secs(15);
    while let Ok(Ok(message)) = tokio::time::timeout(wait, consumer.recv()).await {
        records.push(message.detach());
        wait = Duration::from_secs(1);
    }
    records
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

    let read = |topic: String| read_topic(bootstrap.clone(), topic);
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
        ("go", go_component("enrich-order"), go_component("high-value-orders")),
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
    for lang in LANGS.into_iter().chain(["go", "c"]) {
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
        ("sink-go", go_component("webhook-alert")),
    ] {
        assert_eq!(posted(label, path).await, rust, "{label}: posted rows");
    }
}

// ---------------------------------------------------------------------------
// fraud-detector (Python and JS ports of the Rust guest, on the SDKs' window
// and sketch helpers)

/// One transaction: user, event time (ms), amount, merchant, location, device.
type TxRow = (Option<String>, Option<i64>, Option<f64>, Option<String>, String, String);

/// Card transactions from a deterministic generator: eight ordinary users
/// spread over ~20 minutes (a little out of order, a few nulls), and one
/// planted burst user with many merchants, locations and devices within two
/// minutes. `time_us` carries the same instants in microseconds.
fn transactions(n: usize) -> RecordBatch {
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
fn on_time(chunk: &RecordBatch, watermark: Option<i64>) -> RecordBatch {
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
fn assert_same_rows(got: &[RecordBatch], want: &[RecordBatch], context: &str) {
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

// ---------------------------------------------------------------------------
// Keyed (incremental) state of the fraud-detector ports (contract 0.1.1,
// `keyed-aggregate-operator`): one entry per user, only the changed users.

/// A keyed-state call's entries as (key text, whether a value is present).
fn entry_keys(entries: &[StateChange]) -> BTreeSet<(String, bool)> {
    entries.iter().map(|e| (String::from_utf8(e.key.clone()).unwrap(), e.value.is_some())).collect()
}

/// What the host keeps of a keyed operator: entries, then the changes after
/// them (a removed key is dropped).
fn apply(stored: &mut BTreeMap<Vec<u8>, Vec<u8>>, changes: Vec<StateChange>) {
    for StateChange { key, value } in changes {
        match value {
            Some(value) => stored.insert(key, value),
            None => stored.remove(&key),
        };
    }
}

/// A fresh instance of `make()` restored from `stored` with `restore-entries`.
fn restored(mut op: Operator, stored: &BTreeMap<Vec<u8>, Vec<u8>>, context: &str) -> Operator {
    let entries: Vec<(&[u8], &[u8])> = stored.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    op.restore_entries(&entries).unwrap_or_else(|e| panic!("{context}: restore-entries: {e}"));
    assert!(op.snapshot_changes().unwrap().is_empty(), "{context}: restore-entries starts change tracking afresh");
    op
}

/// The users with a row the detector counts (key and time present), as JSON keys.
fn users_with_rows(chunk: &RecordBatch) -> BTreeSet<String> {
    use arrow_array::cast::AsArray;
    let (users, times) = (chunk.column_by_name("user_id").unwrap().as_string::<i32>(), chunk.column_by_name("timestamp").unwrap());
    (0..chunk.num_rows()).filter(|&i| users.is_valid(i) && times.is_valid(i)).map(|i| serde_json::to_string(users.value(i)).unwrap()).collect()
}

#[test]
fn fraud_detector_ports_checkpoint_only_the_changed_users_and_restore_from_their_entries() {
    let data = transactions(600);
    let config = r#"{"emit": "all"}"#;
    let mut want = rust(guests::FRAUD_DETECTOR, config);
    assert!(want.keyed_state(), "the Rust fraud detector is keyed");
    let mut ops: Vec<(&str, Operator)> = LANGS.iter().map(|l| (*l, guest(l, "fraud-detector", config))).collect();
    for (lang, op) in &mut ops {
        assert!(op.keyed_state(), "{lang}: the fraud detector exports weir:operator/keyed-state");
        assert!(op.snapshot_entries().unwrap().is_empty(), "{lang}: no state yet");
    }
    let mut stored: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = vec![BTreeMap::new(); ops.len()];
    // Instances restored mid-stream, fed the rest: (label, instance).
    let mut resumed: Vec<(String, Operator)> = Vec::new();
    let times = data.column_by_name("timestamp").unwrap().as_any().downcast_ref::<TimestampMillisecondArray>().unwrap().clone();
    let (step, mut max_seen) = (90, i64::MIN);
    let mut starts: Vec<usize> = (0..data.num_rows()).step_by(step).collect();
    starts.push(data.num_rows()); // a last, empty batch whose watermark closes every window
    let mut previous = None;
    for start in starts {
        let len = step.min(data.num_rows() - start);
        let chunk = on_time(&data.slice(start, len), previous);
        max_seen = (start..start + len).filter(|i| times.is_valid(*i)).map(|i| times.value(i)).fold(max_seen, i64::max);
        let watermark = Some(if len == 0 { i64::MAX / 2 } else { max_seen - 20_000 });
        previous = watermark;
        let expected = want.aggregate(&chunk, watermark).unwrap();
        let rust_changes = entry_keys(&want.snapshot_changes().unwrap());
        let touched = users_with_rows(&chunk);
        for ((lang, op), stored) in ops.iter_mut().zip(&mut stored) {
            let context = format!("{lang}: batch at {start}");
            let got = op.aggregate(&chunk, watermark).unwrap_or_else(|e| panic!("{context}: {e}"));
            assert_same_rows(&got, &expected, &context);
            let changes = op.snapshot_changes().unwrap();
            let keys = entry_keys(&changes);
            assert_eq!(keys, rust_changes, "{context}: changed (true) and removed (false) users, as the Rust detector reports them");
            let reported: BTreeSet<String> = keys.iter().map(|(k, _)| k.clone()).collect();
            assert!(touched.is_subset(&reported), "{context}: every user with a row is reported: {touched:?} vs {reported:?}");
            assert!(op.snapshot_changes().unwrap().is_empty(), "{context}: a second call reports nothing new");
            apply(stored, changes);
            // The stored entries (merged changes) are the whole state.
            let entries: BTreeMap<Vec<u8>, Vec<u8>> = op.snapshot_entries().unwrap().into_iter().map(|e| (e.key, e.value.unwrap())).collect();
            assert_eq!(&entries, stored, "{context}: snapshot-entries equals the entries merged with the changes since");
        }
        for (label, op) in &mut resumed {
            let got = op.aggregate(&chunk, watermark).unwrap_or_else(|e| panic!("{label} at {start}: {e}"));
            assert_same_rows(&got, &expected, &format!("{label}: batch at {start}"));
        }
        if start == 270 {
            for (i, lang) in LANGS.iter().enumerate() {
                assert!(stored[i].len() > 3, "{lang}: users with open windows: {}", stored[i].len());
                resumed.push((format!("{lang} restored from its entries"), restored(guest(lang, "fraud-detector", config), &stored[i], lang)));
                // Same entry layout in both languages: each restores the other's.
                let other = LANGS[1 - i];
                resumed.push((format!("{other} restored from {lang}'s entries"), restored(guest(other, "fraud-detector", config), &stored[i], other)));
                // The whole snapshot (hot swaps) still restores.
                let mut whole = guest(lang, "fraud-detector", config);
                whole.restore(&ops[i].1.snapshot().unwrap()).unwrap();
                resumed.push((format!("{lang} restored from its whole snapshot"), whole));
            }
        }
    }
    for ((lang, op), stored) in ops.iter_mut().zip(&stored) {
        assert!(stored.is_empty() && op.snapshot_entries().unwrap().is_empty(), "{lang}: every window closed, every user removed");
    }
}

#[test]
fn fraud_detector_ports_checkpoint_one_user_after_a_batch_of_that_users_rows() {
    use arrow_array::cast::AsArray;
    let data = transactions(300);
    let users = data.column_by_name("user_id").unwrap().as_string::<i32>();
    let one_user = BooleanArray::from_iter((0..data.num_rows()).map(|i| Some(users.is_valid(i) && users.value(i) == "user-3")));
    let batch = arrow_select::filter::filter_record_batch(&data, &one_user).unwrap();
    assert!(batch.num_rows() > 5);
    for lang in LANGS {
        let mut op = guest(lang, "fraud-detector", "{}");
        // No window closes: the watermark is far behind the data.
        op.aggregate(&data, Some(0)).unwrap();
        let all = op.snapshot_changes().unwrap();
        assert!(all.len() > 5 && all.iter().all(|e| e.value.is_some()), "{lang}: every user changed: {:?}", entry_keys(&all));
        op.aggregate(&batch, Some(0)).unwrap();
        let changes = op.snapshot_changes().unwrap();
        assert_eq!(entry_keys(&changes), BTreeSet::from([("\"user-3\"".to_owned(), true)]), "{lang}: only the user with rows");
        let entries = op.snapshot_entries().unwrap();
        assert_eq!(entries.len(), all.len(), "{lang}: the whole state still holds every user");
        assert_eq!(entries.iter().find(|e| e.key == changes[0].key).unwrap().value, changes[0].value, "{lang}: the change is the user's current entry");
    }
}

#[test]
fn fraud_detector_ports_without_keyed_state_checkpoint_their_snapshot_as_one_entry() {
    let data = transactions(200);
    let config = r#"{"keyed": false}"#;
    for lang in LANGS {
        let mut op = guest(lang, "fraud-detector", config);
        op.aggregate(&data, Some(0)).unwrap();
        let snapshot = op.snapshot().unwrap();
        for changes in [op.snapshot_changes().unwrap(), op.snapshot_entries().unwrap()] {
            assert_eq!(changes.len(), 1, "{lang}: one entry");
            assert!(changes[0].key.is_empty() && changes[0].value.as_deref() == Some(snapshot.as_slice()), "{lang}: the whole snapshot under the empty key");
        }
        let mut fresh = guest(lang, "fraud-detector", config);
        fresh.restore_entries(&[(b"", &snapshot)]).unwrap();
        assert_eq!(fresh.snapshot().unwrap(), snapshot, "{lang}: restore-entries restores the snapshot");
        // Garbage entries are refused by a keyed instance, which keeps working.
        let mut keyed = guest(lang, "fraud-detector", "{}");
        let error = keyed.restore_entries(&[(b"\"u\"", b"not windows")]).unwrap_err();
        assert!(error.to_string().contains("window state entry"), "{lang}: {error}");
        assert!(keyed.aggregate(&data, Some(0)).is_ok(), "{lang}: still works");
    }
}

/// `users` users paying every 2 minutes for 40 minutes (a batch), and one
/// later payment of each user `touched` selects (another batch).
fn user_payments(users: usize, touched: impl Fn(usize) -> bool) -> (RecordBatch, RecordBatch) {
    const T0: i64 = 1_700_000_000_000;
    let batch = |rows: Vec<(usize, i64)>| {
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("user_id", Arc::new(StringArray::from_iter_values(rows.iter().map(|(u, _)| format!("u-{u:05}"))))),
            ("timestamp", Arc::new(TimestampMillisecondArray::from_iter_values(rows.iter().map(|(_, t)| *t)).with_timezone("UTC"))),
            ("amount", Arc::new(Float64Array::from_iter_values(rows.iter().map(|(u, t)| (*u as i64 + t / 1000) as f64 % 300.0)))),
            ("merchant_id", Arc::new(StringArray::from_iter_values(rows.iter().map(|(u, t)| format!("m-{}", (u + *t as usize / 120_000) % 3))))),
            ("location", Arc::new(StringArray::from_iter_values(rows.iter().map(|(u, _)| format!("loc-{}", u % 200))))),
            ("device_id", Arc::new(StringArray::from_iter_values(rows.iter().map(|(u, _)| format!("d-{u}"))))),
        ];
        RecordBatch::try_from_iter(columns).unwrap()
    };
    let history = (0..20).flat_map(|k| (0..users).map(move |u| (u, T0 + k * 120_000 + u as i64 * 37))).collect();
    let later = (0..users).filter(|u| touched(*u)).map(|u| (u, T0 + 40 * 60_000 + 1_000)).collect();
    (batch(history), batch(later))
}

/// Guest-side cost of a checkpoint of the fraud detectors with 1,000 users
/// (whole snapshot against keyed changes, by share of users touched since
/// the last checkpoint) and of a restore. Informational:
/// `cargo test -p weir-tests --test polyglot fraud_detector_keyed_checkpoint_timings -- --ignored --nocapture`.
#[test]
#[ignore]
fn fraud_detector_keyed_checkpoint_timings() {
    // The JavaScript detector traps (`unreachable` in `process`) near 28k
    // open windows, e.g. with 2,000 users (the old build too).
    let users = 1000;
    let mut rows = vec!["| guest | users touched | whole: time | whole: bytes | keyed: time | keyed: entries | keyed: bytes |".to_owned(), "|---|---|---|---|---|---|---|".to_owned()];
    // The whole state outgrows the default memory limit.
    let limits = weir::engine::SandboxLimits { memory_limit_bytes: 1 << 30, call_deadline_ms: 600_000, ..Default::default() };
    let cache = weir_tests::repo_root().join("target/tmp/polyglot-artifact-cache");
    let engine = Engine::new(EngineConfig { limits, cache_dir: Some(cache) }).unwrap();
    let make = |lang: &str| {
        let path = if lang == "rust" { PathBuf::from(guests::FRAUD_DETECTOR) } else { polyglot(&format!("{lang}-fraud-detector")) };
        Operator::new(engine.load_file(&path).unwrap(), "{}", HttpAllowlist::default()).unwrap()
    };
    let ms = |start: Instant| format!("{:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    let mib = |bytes: usize| format!("{:.2} MiB", bytes as f64 / (1 << 20) as f64);
    for lang in ["rust", "python", "js"] {
        for percent in [1, 10, 100] {
            let (history, later) = user_payments(users, |u| u * 100 / users < percent);
            let mut op = make(lang);
            for start in (0..history.num_rows()).step_by(2000) {
                op.aggregate(&history.slice(start, 2000.min(history.num_rows() - start)), None).unwrap();
            }
            op.snapshot_entries().unwrap();
            op.aggregate(&later, None).unwrap();
            let start = Instant::now();
            let whole = op.snapshot().unwrap().len();
            let whole_time = ms(start);
            let start = Instant::now();
            let changes = op.snapshot_changes().unwrap();
            let keyed_time = ms(start);
            let bytes: usize = changes.iter().map(|c| c.key.len() + c.value.as_ref().map_or(0, Vec::len)).sum();
            rows.push(format!("| {lang} | {percent}% ({}) | {whole_time} | {} | {keyed_time} | {} | {} |", later.num_rows(), mib(whole), changes.len(), mib(bytes)));
            if percent == 100 {
                let snapshot = op.snapshot().unwrap();
                let entries: Vec<(Vec<u8>, Vec<u8>)> = op.snapshot_entries().unwrap().into_iter().map(|e| (e.key, e.value.unwrap())).collect();
                let entries: Vec<(&[u8], &[u8])> = entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
                let (mut a, mut b) = (make(lang), make(lang));
                // Reported, not asserted: the JavaScript detector runs out of memory reading large whole snapshots.
                let timed = |result: Result<(), weir::engine::Error>, start: Instant| result.map_or_else(|e| format!("fails: {e}"), |()| ms(start));
                let start = Instant::now();
                let whole_time = timed(a.restore(&snapshot), start);
                let start = Instant::now();
                let keyed_time = timed(b.restore_entries(&entries), start);
                rows.push(format!("| {lang} | restore into a fresh instance | {whole_time} | {} | {keyed_time} | {} | |", mib(snapshot.len()), entries.len()));
            }
        }
    }
    println!("{}", rows.join("\n"));
}

/// The Rust SDK's sketch (sdk/rust/src/sketch.rs), restated: the reference
/// the Python and JavaScript sketches must reproduce bit for bit.
fn rust_hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn rust_hll_estimate(values: impl Iterator<Item = String>, precision: u32) -> u64 {
    let mut registers = vec![0u8; 1 << precision];
    for v in values {
        let hash = rust_hash64(v.as_bytes());
        let rest = (hash << precision) | (1 << (precision - 1));
        let r = &mut registers[(hash >> (64 - precision)) as usize];
        *r = (*r).max(rest.leading_zeros() as u8 + 1);
    }
    let m = registers.len() as f64;
    let alpha = match registers.len() {
        16 => 0.673,
        32 => 0.697,
        64 => 0.709,
        _ => 0.7213 / (1.0 + 1.079 / m),
    };
    let sum: f64 = registers.iter().map(|&r| 2f64.powi(-(r as i32))).sum();
    let raw = alpha * m * m / sum;
    let zeros = registers.iter().filter(|&&r| r == 0).count();
    (if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw }).round() as u64
}

/// Python: the SDK's window semantics (the Rust SDK's unit tests, restated)
/// and sketch numbers, one `name value` line each.
const PY_SDK_CHECK: &str = r#"
from weir_sdk.sketch import HyperLogLog, hash64
from weir_sdk.window import Accumulator, Window, WindowSpec, Windows
class Count(Accumulator):
    def __init__(self): self.n = 0
    def add(self, row): self.n += 1
    def merge(self, other): self.n += other.n
MIN = 60_000
assert WindowSpec.tumbling(60 * MIN).assign(-1) == [Window(-60 * MIN, 0)]
assert [w.start_ms // MIN for w in WindowSpec.hopping(5 * MIN, MIN).assign(7 * MIN + 30_000)] == [3, 4, 5, 6, 7]
w = Windows(WindowSpec.hopping(5 * MIN, MIN), Count)
w.add("u1", 30_000, None); w.add("u1", 4 * MIN, None); w.add("u2", 90_000, None)
assert w.close(MIN - 1) == []
assert [(c[0], c[1], c[2].n) for c in w.close(MIN)] == [(Window(-4 * MIN, MIN), "u1", 1)]
assert [(c[0].end_ms // MIN, c[1], c[2].n) for c in w.close(5 * MIN)] == [(2, "u1", 1), (2, "u2", 1), (3, "u1", 1), (3, "u2", 1), (4, "u1", 1), (4, "u2", 1), (5, "u1", 2), (5, "u2", 1)]
assert w.is_late(30_000, 5 * MIN) and not w.is_late(4 * MIN, 5 * MIN)
s = Windows(WindowSpec.session(10_000), Count)
s.add("k", 0, None); s.add("k", 18_000, None); s.add("j", 5_000, None)
assert s.len() == 3
s.add("k", 9_000, None)
assert s.len() == 2 and len(s.close(27_999)) == 1
assert [(c[0], c[1], c[2].n) for c in s.close(28_000)] == [(Window(0, 28_000), "k", 3)]
t = Windows(WindowSpec.tumbling(MIN), Count); t.add("a", 10, None); t.add("a", 20, None)
r = Windows(WindowSpec.tumbling(1), Count); r.restore(t.snapshot()); r.add("a", 30, None)
assert [(c[0], c[2].n) for c in r.close(MIN)] == [(Window(0, MIN), 3)]
n = Windows(WindowSpec.tumbling(MIN), Count)  # keyed state: tracking starts with the host's first call
for i in range(100): n.add("k%d" % i, 0, None)
n.close(MIN); n.add("late", MIN, None)
assert n.changed is None and [e.key for e in n.changes()] == [b'"late"']
k = Windows(WindowSpec.session(10_000), Count)  # then the keys touched since the last call
k.add("a", 0, None); k.add("b", 0, None)
assert sorted(e.key for e in k.changes()) == [b'"a"', b'"b"'] and k.changes() == []
k.add("a", 5_000, None)  # merges with a's session
assert [(e.key, e.value is not None) for e in k.changes()] == [(b'"a"', True)]
assert [c[1] for c in k.close(10_000)] == ["b"] and [(e.key, e.value) for e in k.changes()] == [(b'"b"', None)]
c = Windows(WindowSpec.session(10_000), Count); c.restore_entries(k.entries())
assert c.snapshot() == k.snapshot() and c.changes() == [] and k.changes() == []
assert c.get("a", Window(0, 15_000)).n == 2 and [e.key for e in c.changes()] == [b'"a"']
e = Windows(WindowSpec.tumbling(MIN), Count); e.add(("eu", 3), 0, None); e.add("z\u00fc", 0, None)
assert sorted(x.key for x in e.entries()) == ['"z\u00fc"'.encode(), b'["eu",3]']
f = Windows(WindowSpec.tumbling(MIN), Count); f.restore_entries(e.entries())
assert set(f.open) == {("eu", 3), "z\u00fc"}
for v in ["", "a", "customer-1", "h\u00e9llo w\u00f6rld \u2713 \U0001d11e"]:
    print("hash", hash64(v))
for n, p in [(10, 12), (1000, 12), (20000, 12), (5000, 4), (300, 5), (3000, 6), (100000, 14)]:
    h = HyperLogLog(p)
    for i in range(n): h.insert("customer-%d" % i)
    print("estimate", h.estimate())
a, b = HyperLogLog(), HyperLogLog()
for i in range(5000): a.insert("c-%d" % i)
for i in range(2500, 7500): b.insert("c-%d" % i)
a.merge(b)
assert HyperLogLog.from_json(a.to_json()) == a
print("union", a.estimate())
"#;

/// JavaScript: the same checks and numbers.
const JS_SDK_CHECK: &str = r#"
import assert from "node:assert/strict";
const { HyperLogLog, hash64 } = await import(process.env.WEIR_SDK_JS + "/sketch.js");
const { WindowSpec, Windows } = await import(process.env.WEIR_SDK_JS + "/window.js");
class Count { constructor() { this.n = 0; } add() { this.n++; } merge(o) { this.n += o.n; } }
const MIN = 60000;
const brief = (closed) => closed.map(([w, k, c]) => [w.startMs, w.endMs, k, c.n]);
assert.deepEqual(WindowSpec.tumbling(60 * MIN).assign(-1).map((w) => [w.startMs, w.endMs]), [[-60 * MIN, 0]]);
assert.deepEqual(WindowSpec.hopping(5 * MIN, MIN).assign(7 * MIN + 30000).map((w) => w.startMs / MIN), [3, 4, 5, 6, 7]);
const w = new Windows(WindowSpec.hopping(5 * MIN, MIN), Count);
w.add("u1", 30000); w.add("u1", 4 * MIN); w.add("u2", 90000);
assert.deepEqual(w.close(MIN - 1), []);
assert.deepEqual(brief(w.close(BigInt(MIN))), [[-4 * MIN, MIN, "u1", 1]]);
assert.deepEqual(w.close(5 * MIN).map(([win, k, c]) => `${win.endMs / MIN}:${k}:${c.n}`), ["2:u1:1", "2:u2:1", "3:u1:1", "3:u2:1", "4:u1:1", "4:u2:1", "5:u1:2", "5:u2:1"]);
assert.ok(w.isLate(30000, 5 * MIN) && !w.isLate(4 * MIN, 5 * MIN));
const s = new Windows(WindowSpec.session(10000), Count);
s.add("k", 0); s.add("k", 18000); s.add("j", 5000);
assert.equal(s.len(), 3);
s.add("k", 9000);
assert.ok(s.len() === 2 && s.close(27999).length === 1);
assert.deepEqual(brief(s.close(28000)), [[0, 28000, "k", 3]]);
const t = new Windows(WindowSpec.tumbling(MIN), Count); t.add("a", 10); t.add("a", 20);
const r = new Windows(WindowSpec.tumbling(1), Count); r.restore(t.snapshot()); r.add("a", 30);
assert.deepEqual(brief(r.close(MIN)), [[0, MIN, "a", 3]]);
const text = (entries) => entries.map((e) => [new TextDecoder().decode(e.key), e.value !== undefined]).sort();
const n = new Windows(WindowSpec.tumbling(MIN), Count); // keyed state: tracking starts with the host's first call
for (let i = 0; i < 100; i++) n.add(`k${i}`, 0);
n.close(MIN); n.add("late", MIN);
assert.equal(n.changed, null);
assert.deepEqual(text(n.changes()), [['"late"', true]]);
const k = new Windows(WindowSpec.session(10000), Count); // then the keys touched since the last call
k.add("a", 0); k.add("b", 0);
assert.deepEqual(text(k.changes()), [['"a"', true], ['"b"', true]]);
assert.deepEqual(k.changes(), []);
k.add("a", 5000); // merges with a's session
assert.deepEqual(text(k.changes()), [['"a"', true]]);
assert.deepEqual(k.close(10000).map((c) => c[1]), ["b"]);
assert.deepEqual(text(k.changes()), [['"b"', false]]);
const c = new Windows(WindowSpec.session(10000), Count); c.restoreEntries(k.entries());
assert.deepEqual([c.snapshot(), c.changes(), k.changes()], [k.snapshot(), [], []]);
assert.ok(c.get("a", c.openWindows("a")[0][0]).n === 2);
assert.deepEqual(text(c.changes()), [['"a"', true]]);
const e = new Windows(WindowSpec.tumbling(MIN), Count); e.add(7, 0); e.add("z\u00fc", 0);
const f = new Windows(WindowSpec.tumbling(MIN), Count); f.restoreEntries(e.entries());
assert.deepEqual([...f.open.keys()].sort(), [7, "z\u00fc"]);
const out = [];
for (const v of ["", "a", "customer-1", "h\u00e9llo w\u00f6rld \u2713 \u{1d11e}"]) out.push(`hash ${hash64(v)}`);
for (const [n, p] of [[10, 12], [1000, 12], [20000, 12], [5000, 4], [300, 5], [3000, 6], [100000, 14]]) {
  const h = new HyperLogLog(p);
  for (let i = 0; i < n; i++) h.insert(`customer-${i}`);
  out.push(`estimate ${h.estimate()}`);
}
const a = new HyperLogLog(), b = new HyperLogLog();
for (let i = 0; i < 5000; i++) a.insert(`c-${i}`);
for (let i = 2500; i < 7500; i++) b.insert(`c-${i}`);
a.merge(b);
assert.deepEqual(HyperLogLog.fromJSON(JSON.parse(JSON.stringify(a))).registers, a.registers);
out.push(`union ${a.estimate()}`);
console.log(out.join("\n"));
"#;

fn run_script(program: &str, args: &[&str], env: (&str, PathBuf)) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .env(env.0, env.1)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(out.status.success(), "{program} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn python_and_js_sdk_windows_follow_the_rust_semantics_and_sketches_match_rust_estimates() {
    let root = weir_tests::repo_root();
    let mut want: Vec<String> =
        ["", "a", "customer-1", "héllo wörld ✓ 𝄞"].iter().map(|v| format!("hash {}", rust_hash64(v.as_bytes()))).collect();
    for (n, p) in [(10, 12), (1000, 12), (20000, 12), (5000, 4), (300, 5), (3000, 6), (100000, 14)] {
        want.push(format!("estimate {}", rust_hll_estimate((0..n).map(|i| format!("customer-{i}")), p)));
    }
    let union = (0..7500).map(|i| format!("c-{i}"));
    want.push(format!("union {}", rust_hll_estimate(union, 12)));
    let venv = root.join("target/tools/py-venv/bin/python");
    let python = if venv.exists() { venv.to_string_lossy().into_owned() } else { "python3".to_owned() };
    let py = run_script(&python, &["-c", PY_SDK_CHECK], ("PYTHONPATH", root.join("sdk/python")));
    assert_eq!(py.lines().collect::<Vec<_>>(), want, "python");
    let js = run_script(
        "node",
        &["--experimental-default-type=module", "--input-type=module", "-e", JS_SDK_CHECK],
        ("WEIR_SDK_JS", root.join("sdk/js")),
    );
    assert_eq!(js.lines().collect::<Vec<_>>(), want, "javascript");
}

// ---------------------------------------------------------------------------
// Go (sdk/go over wit-bindgen-go; built by `scripts/build-polyglot-guests go`).

/// Path of a Go example component; fails (never skips) when it was not built.
fn go_component(name: &str) -> PathBuf {
    let path = weir_tests::repo_root().join("target/guests/polyglot").join(format!("go-{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `scripts/build-polyglot-guests go` to build the Go example operators",
        path.display()
    );
    path
}

#[test]
fn go_high_value_orders_keeps_the_same_rows_as_rust() {
    let batch = orders(1000);
    let configs = ["{}", r#"{"threshold": 500}"#, r#"{"column": "quantity", "threshold": 4}"#, r#" {"threshold": -1.5e2} "#];
    for config in configs {
        let expected = rust(guests::HIGH_VALUE_ORDERS, config).filter(&batch).unwrap();
        assert!(expected.batch.num_rows() > 0 && expected.batch.num_rows() < batch.num_rows());
        let mut op = open(&go_component("high-value-orders"), config);
        assert_eq!(op.kind(), OperatorKind::Filter);
        // Contract 0.1.2: the slices below go packed, the 1,000 rows column by column.
        assert!(op.plugin().packed(), "the Go SDK's filters take packed batches");
        let got = op.filter(&batch).unwrap_or_else(|e| panic!("go {config}: {e}"));
        assert_eq!(got.input_rows, expected.input_rows, "go {config}: kept rows");
        assert_eq!(got.batch, expected.batch, "go {config}");
        // The same instance again: slices (buffers at other offsets), one row, no rows.
        for (start, len) in [(10, 100), (3, 1), (999, 1), (0, 0)] {
            let slice = batch.slice(start, len);
            let want = rust(guests::HIGH_VALUE_ORDERS, config).filter(&slice).unwrap();
            let got = op.filter(&slice).unwrap_or_else(|e| panic!("go {config}: slice {start}+{len}: {e}"));
            assert_eq!(got.batch, want.batch, "go {config}: slice {start}+{len}");
        }
    }
    // An int64 column with nulls, and many calls on one instance (the Go
    // garbage collector runs between and inside them).
    let ints = RecordBatch::try_from_iter([(
        "n",
        Arc::new(Int64Array::from_iter((0..300).map(|i| (i % 7 != 2).then_some(i * 10 - 700)))) as ArrayRef,
    )])
    .unwrap();
    let config = r#"{"column": "n", "threshold": 100}"#;
    let expected = rust(guests::HIGH_VALUE_ORDERS, config).filter(&ints).unwrap();
    let mut op = open(&go_component("high-value-orders"), config);
    for _ in 0..200 {
        assert_eq!(op.filter(&ints).unwrap().batch, expected.batch);
    }
    let big = orders(50_000);
    let expected = rust(guests::HIGH_VALUE_ORDERS, "{}").filter(&big).unwrap();
    let mut op = open(&go_component("high-value-orders"), "{}");
    // 40 x 400 KB of input: the SDK's collections (outside cabi_realloc) run.
    for _ in 0..40 {
        assert_eq!(op.filter(&big).unwrap().batch, expected.batch);
    }
    assert_eq!(op.stats().traps, 0);
}

#[test]
fn go_bad_configs_are_refused_like_rust() {
    let configs = [
        r#"{"threshold": "high"}"#,
        r#"{"treshold": 5}"#,
        r#"{"Threshold": 5}"#,
        r#"{"column": 5}"#,
        r#"{"threshold": null}"#,
        r#"{"threshold": 1, "threshold": 2}"#,
        r#"{"threshold": 5,}"#,
        r#"{"threshold": 5} x"#,
        "[1, 2]",
        "null",
        "not json",
    ];
    let cases: Vec<(&str, &str, &str)> = configs.iter().map(|c| ("high-value-orders", guests::HIGH_VALUE_ORDERS, *c)).collect();
    refuses_configs_like_rust("go", &cases, go_component);
}

#[test]
fn go_wrong_column_type_is_invalid_input_like_rust() {
    filter_column_type_errors_like_rust("go", &go_component("high-value-orders"));
}

#[test]
fn go_enrich_order_derives_the_same_columns_and_rejections_as_rust() {
    let batch = orders(1200);
    for config in ["{}", r#"{"tax_rate": 0.25}"#, r#"{"tax_rate": 1e-3}"#] {
        let expected = rust(guests::ENRICH_ORDER, config).map(&batch).unwrap();
        assert!(expected.rejected.iter().any(|r| r.reason == "negative total_amount: -5"));
        assert!(expected.rejected.iter().any(|r| r.reason == "negative total_amount: -0.0000001"));
        let mut op = open(&go_component("enrich-order"), config);
        assert_eq!(op.kind(), OperatorKind::Map);
        assert!(op.plugin().packed(), "the Go SDK's maps take packed batches");
        let got = op.map(&batch).unwrap_or_else(|e| panic!("go {config}: {e}"));
        assert_eq!(got.rejected, expected.rejected, "go {config}: rejections and reasons");
        assert_eq!(got.input_rows, expected.input_rows, "go {config}");
        assert_eq!(got.batch, expected.batch, "go {config}: derived columns");
        // The same instance again, on a slice (buffers at other offsets) and an empty batch.
        let slice = batch.slice(7, 333);
        let want = rust(guests::ENRICH_ORDER, config).map(&slice).unwrap();
        let again = op.map(&slice).unwrap();
        assert_eq!((again.batch, again.rejected), (want.batch, want.rejected), "go {config}: slice");
        assert_eq!(op.map(&batch.slice(0, 0)).unwrap().batch.num_rows(), 0);
    }
    // Formatting like Rust's f64 Display and saturation like `as i64`, value by value.
    let values = [-5.0, -1.5, -0.1, -1e-7, -1.5e22, -1e21, -123456.789, -f64::MIN_POSITIVE, -f64::MAX, -1.0 / 3.0, -5e-324, f64::NEG_INFINITY];
    let batch = RecordBatch::try_from_iter([(
        "total_amount",
        Arc::new(Float64Array::from(values.to_vec())) as ArrayRef,
    )])
    .unwrap();
    let got = open(&go_component("enrich-order"), "{}").map(&batch).unwrap();
    let reasons: Vec<String> = got.rejected.iter().map(|r| r.reason.clone()).collect();
    let want: Vec<String> = values.iter().map(|v| format!("negative total_amount: {v}")).collect();
    assert_eq!(reasons, want);
    assert_eq!(got.batch, rust(guests::ENRICH_ORDER, "{}").map(&batch).unwrap().batch);
    // Refused configs and a wrong input type, like Rust.
    for config in [r#"{"tax_rate": true}"#, r#"{"tax_rate": 0.2} x"#, r#"{"tax": 0.2}"#] {
        let rust_error = Operator::new(load(std::path::Path::new(guests::ENRICH_ORDER)), config, Default::default()).err().unwrap();
        assert_eq!(rust_error.kind_str(), "invalid_config", "rust {config}");
        let error = Operator::new(load(&go_component("enrich-order")), config, Default::default())
            .err()
            .unwrap_or_else(|| panic!("go accepted {config}"));
        assert_eq!(error.kind_str(), "invalid_config", "go {config}: {error}");
    }
    let ints = RecordBatch::try_from_iter([("total_amount", Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef)]).unwrap();
    let expected = rust(guests::ENRICH_ORDER, "{}").map(&ints).unwrap_err();
    let got = open(&go_component("enrich-order"), "{}").map(&ints).unwrap_err();
    assert_eq!(got.kind_str(), expected.kind_str(), "{got}");
    let message = |e: &weir::engine::Error| e.to_string().split_once("`process`: ").map(|(_, m)| m.to_owned());
    assert_eq!(message(&got), message(&expected));
}

#[test]
fn go_count_by_key_matches_rust_including_snapshots() {
    go_component("count-by-key");
    count_by_key_matches_rust(&["go"]);
    count_by_key_refuses_a_garbage_snapshot(&["go"]);
    let mut op = open(&go_component("count-by-key"), "{}");
    assert_eq!(op.kind(), OperatorKind::Aggregate);
    // Truncated Rust snapshots are refused too, and leave the totals alone.
    let mut want = rust(guests::COUNT_BY_KEY, "{}");
    let data = orders(300);
    count_batches(&mut want, &data);
    count_batches(&mut op, &data);
    let snapshot = want.snapshot().unwrap();
    for cut in [0, 7, 8, 12, snapshot.len() - 1] {
        let error = op.restore(&snapshot[..cut]).unwrap_err();
        assert!(error.to_string().contains("corrupt count-by-key snapshot"), "cut at {cut}: {error}");
    }
    assert_eq!(op.snapshot().unwrap(), snapshot, "a refused restore keeps the state");
    // int64 keys with nulls, null values (count, add 0), -0.0 sums, and many
    // calls on one instance (the SDK's collections run between them).
    let n = 5000;
    let batch = RecordBatch::try_from_iter([
        ("k", Arc::new(Int64Array::from_iter((0..n).map(|i| (i % 13 != 4).then_some(i64::from(i % 97) - 48)))) as ArrayRef),
        ("v", Arc::new(Float64Array::from_iter((0..n).map(|i| match i % 5 { 0 => None, 1 => Some(-0.0), _ => Some(f64::from(i) * 0.1) })))),
    ])
    .unwrap();
    let config = r#"{"key": "k", "value": "v"}"#;
    let mut want = rust(guests::COUNT_BY_KEY, config);
    let mut op = open(&go_component("count-by-key"), config);
    for round in 0..30 {
        let chunk = batch.slice(round * 97 % 4000, 1000);
        assert_eq!(count_batches(&mut op, &chunk), count_batches(&mut want, &chunk), "round {round}");
    }
    assert_eq!(op.snapshot().unwrap(), want.snapshot().unwrap());
    assert_eq!(op.stats().traps, 0);
    // Wrong types and missing columns: invalid input with Rust's messages.
    let message = |e: &weir::engine::Error| e.to_string().split_once("`process`: ").map(|(_, m)| m.to_owned());
    let data = orders(20);
    for config in [r#"{"key": "express"}"#, r#"{"value": "quantity"}"#, r#"{"key": "nope"}"#, r#"{"value": "nope"}"#] {
        let expected = rust(guests::COUNT_BY_KEY, config).aggregate(&data, None).unwrap_err();
        let got = open(&go_component("count-by-key"), config).aggregate(&data, None).unwrap_err();
        assert_eq!(got.kind_str(), expected.kind_str(), "{config}: {got}");
        assert_eq!(message(&got), message(&expected), "{config}");
    }
    for config in [r#"{"key": 5}"#, r#"{"keys": "a"}"#, "[1, 2]"] {
        let error = Operator::new(load(&go_component("count-by-key")), config, Default::default())
            .err()
            .unwrap_or_else(|| panic!("go accepted {config}"));
        assert_eq!(error.kind_str(), "invalid_config", "go {config}: {error}");
    }
}

/// Every column type the webhook sink turns into JSON, with nulls: float32,
/// binary, list<utf8> (with null items), and floats serde_json writes in
/// exponent form or as null.
fn typed_rows() -> RecordBatch {
    use arrow_array::{BinaryArray, Float32Array, builder::{ListBuilder, StringBuilder}};
    let n = 12;
    let mut lists = ListBuilder::new(StringBuilder::new());
    for i in 0..n {
        if i % 5 == 2 {
            lists.append(false);
            continue;
        }
        for j in 0..i % 4 {
            lists.values().append_option((j != 1).then(|| format!("t\"{i}-{j}")));
        }
        lists.append(true);
    }
    let floats = [0.0, -0.0, 1e21, 1e-7, f64::NAN, f64::INFINITY, 1e300, 1000.0, -1.5, 0.1, 5e-324, f64::MAX];
    RecordBatch::try_from_iter([
        ("f64", Arc::new(Float64Array::from_iter((0..n).map(|i| (i != 3).then_some(floats[i])))) as ArrayRef),
        ("f32", Arc::new(Float32Array::from_iter((0..n).map(|i| (i % 4 != 1).then_some(i as f32 * 0.1 - 0.3))))),
        ("bin", Arc::new(BinaryArray::from_iter((0..n).map(|i| (i % 3 != 0).then(|| vec![i as u8, 0xab, 0x0f]))))),
        ("tags", Arc::new(lists.finish())),
        ("text", Arc::new(StringArray::from_iter((0..n).map(|i| (i % 6 != 5).then(|| format!("<é&\u{1}{i}>")))))),
    ])
    .unwrap()
}

#[test]
fn go_webhook_alert_posts_the_same_json_as_rust() {
    let go = || vec![("go", go_component("webhook-alert"))];
    webhook_alert_matches_rust(&orders(40), go());
    webhook_alert_matches_rust(&orders(500), go());
    webhook_alert_matches_rust(&typed_rows(), go());
    // A required url, strictly parsed, like Rust.
    for config in ["{}", r#"{"url": 5}"#, r#"{"url": "http://a/", "x": 1}"#] {
        let rust_error = Operator::new(load(std::path::Path::new(guests::WEBHOOK_ALERT)), config, Default::default()).err().unwrap();
        assert_eq!(rust_error.kind_str(), "invalid_config", "rust {config}");
        let error = Operator::new(load(&go_component("webhook-alert")), config, Default::default())
            .err()
            .unwrap_or_else(|| panic!("go accepted {config}"));
        assert_eq!(error.kind_str(), "invalid_config", "go {config}: {error}");
    }
    // Nothing listens: a connection error is retryable; a bad scheme is permanent.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    for (url, retryable) in [(format!("http://{closed}/"), true), ("ftp://127.0.0.1/".to_owned(), false)] {
        let mut op = sink(&go_component("webhook-alert"), &url, &["127.0.0.1"]);
        let mut want = sink(std::path::Path::new(guests::WEBHOOK_ALERT), &url, &["127.0.0.1"]);
        let (got, expected) = (op.write(&orders(5)).unwrap(), want.write(&orders(5)).unwrap());
        assert_eq!(matches!(got, SinkResult::Retryable(_)), retryable, "{url}: {got:?}");
        assert_eq!(std::mem::discriminant(&got), std::mem::discriminant(&expected), "{url}: {got:?} vs rust {expected:?}");
    }
}

// ---------------------------------------------------------------------------
// Keyed state (contract 0.1.1): the C and Go count-by-key keep their totals
// in the SDKs' keyed stores, one state entry per key.

#[test]
fn c_count_by_key_matches_rust_including_snapshots() {
    c_component("count-by-key");
    count_by_key_matches_rust(&["c"]);
    count_by_key_refuses_a_garbage_snapshot(&["c"]);
}

#[test]
fn c_count_by_key_checkpoints_only_the_keys_a_batch_touched() {
    count_by_key_checkpoints_by_key(&c_component("count-by-key"));
}

#[test]
fn go_count_by_key_checkpoints_only_the_keys_a_batch_touched() {
    count_by_key_checkpoints_by_key(&go_component("count-by-key"));
}

/// The entries a Rust count-by-key snapshot holds: key bytes -> `i64 count`,
/// `f64 sum` (the 16 bytes after each key), parsed from its documented layout.
fn entries_of_rust_snapshot(snapshot: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let n = u64::from_le_bytes(snapshot[..8].try_into().unwrap());
    let mut at = 8;
    let mut entries = Vec::new();
    for _ in 0..n {
        let len = u32::from_le_bytes(snapshot[at..at + 4].try_into().unwrap()) as usize;
        at += 4;
        entries.push((snapshot[at..at + len].to_vec(), snapshot[at + len..at + len + 16].to_vec()));
        at += len + 16;
    }
    assert_eq!(at, snapshot.len(), "the whole Rust snapshot parsed");
    entries
}

/// Guest entries as (key, value) pairs; every value present.
fn present(entries: Vec<weir::engine::StateChange>) -> Vec<(Vec<u8>, Vec<u8>)> {
    entries.into_iter().map(|e| (e.key, e.value.expect("a present value"))).collect()
}

/// Orders of the customers `ids` (in that order), amount = 10 x position + 0.5.
fn orders_of(ids: &[&str]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("customer_id", Arc::new(StringArray::from_iter_values(ids.iter().copied())) as ArrayRef),
        ("total_amount", Arc::new(Float64Array::from_iter_values((0..ids.len()).map(|i| i as f64 * 10.0 + 0.5))))
    ])
    .unwrap()
}

/// A count-by-key built for the keyed-aggregate world against the Rust
/// original: one entry per key holding that key's totals of the Rust
/// snapshot; `snapshot-changes` names exactly the keys touched since the
/// previous call; a fresh instance restored from `snapshot-entries` (or the
/// whole Rust snapshot) continues with the Rust totals.
fn count_by_key_checkpoints_by_key(component: &std::path::Path) {
    let mut op = open(component, "{}");
    assert!(op.keyed_state(), "{} exports weir:operator/keyed-state", component.display());
    let mut want = rust(guests::COUNT_BY_KEY, "{}");
    let data = orders(600);
    for chunk in [data.slice(0, 300), data.slice(300, 300)] {
        assert_eq!(count_batches(&mut op, &chunk), count_batches(&mut want, &chunk));
    }
    let rust_entries = entries_of_rust_snapshot(&want.snapshot().unwrap());
    assert_eq!(rust_entries.len(), 5, "customers c-0 .. c-4");
    let changes = present(op.snapshot_changes().unwrap());
    assert_eq!(changes, rust_entries, "since init, every key changed: one entry each with the Rust totals");
    assert!(op.snapshot_changes().unwrap().is_empty(), "nothing touched since the last call");

    // A batch that touches two existing keys and adds one.
    let touch = orders_of(&["c-3", "c-1", "new", "c-3"]);
    assert_eq!(count_batches(&mut op, &touch), count_batches(&mut want, &touch));
    let rust_entries = entries_of_rust_snapshot(&want.snapshot().unwrap());
    let touched: Vec<_> = rust_entries.iter().filter(|(k, _)| [&b"c-1"[..], b"c-3", b"new"].contains(&k.as_slice())).cloned().collect();
    assert_eq!(present(op.snapshot_changes().unwrap()), touched, "only the touched keys, in key order");
    assert!(op.snapshot_changes().unwrap().is_empty());
    let entries = present(op.snapshot_entries().unwrap());
    assert_eq!(entries, rust_entries, "snapshot-entries: every key");
    assert!(op.snapshot_changes().unwrap().is_empty(), "snapshot-entries starts tracking afresh");

    // A fresh instance restored from the entries continues like Rust.
    let borrowed: Vec<(&[u8], &[u8])> = entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    let mut fresh = open(component, "{}");
    fresh.restore_entries(&borrowed).unwrap();
    assert!(fresh.snapshot_changes().unwrap().is_empty(), "restore-entries starts tracking afresh");
    let rest = orders(900).slice(600, 300);
    let expected = count_batches(&mut want, &rest);
    assert_eq!(count_batches(&mut fresh, &rest), expected, "after restore-entries");
    assert_eq!(fresh.snapshot().unwrap(), want.snapshot().unwrap(), "whole snapshot after restore-entries");

    // Whole snapshots still restore (hot swaps): the Rust one into an
    // instance that never had a keyed-state call continues the same. Its
    // first changes are every present key (nothing was tracked yet; after a
    // whole restore the host diffs `snapshot-entries` against what it holds).
    let mut whole = open(component, "{}");
    count_batches(&mut whole, &orders_of(&["gone"]));
    whole.restore(&want.snapshot().unwrap()).unwrap();
    let changes = whole.snapshot_changes().unwrap();
    assert_eq!(present(changes), entries_of_rust_snapshot(&want.snapshot().unwrap()), "untracked: every present key, `gone` not among them");
    let more = orders(1200).slice(900, 300);
    let expected = count_batches(&mut want, &more);
    assert_eq!(count_batches(&mut whole, &more), expected, "after a whole restore");
    assert_eq!(present(whole.snapshot_entries().unwrap()), entries_of_rust_snapshot(&want.snapshot().unwrap()));
    assert_eq!(whole.stats().traps, 0);
}

/// Stops a pipeline abruptly (no drain, no final checkpoint) once it wrote
/// `checkpoints` checkpoints.
async fn abort_after_checkpoints(handle: weir::pipeline::PipelineHandle, checkpoints: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while handle.stats().snapshot().checkpoints < checkpoints {
        assert!(Instant::now() < deadline && !handle.is_finished(), "no checkpoints: {:?}", handle.stats().snapshot().state);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.abort();
    let _ = handle.join().await;
}

/// The C and Go count-by-key in a stateful pipeline: their state topic holds
/// one entry record per customer, and after an abrupt stop a restarted
/// pipeline restores them key by key and reaches the totals of the whole
/// stream (computed here from the produced values). Both languages run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_c_and_go_count_by_key_restore_their_entries_after_an_abrupt_stop() {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    for lang in ["go", "c"] {
        cluster.create_topic(&format!("keyed-in-{lang}"), 2, 1).unwrap();
        cluster.create_topic(&format!("keyed-out-{lang}"), 1, 1).unwrap();
        cluster.create_topic(&format!("keyed-state-{lang}"), 1, 1).unwrap();
    }
    let bootstrap = cluster.bootstrap_servers();
    futures::future::join_all(["go", "c"].map(|lang| keyed_count_by_key_survives_an_abrupt_stop(&bootstrap, lang))).await;
}

/// One order of the keyed pipeline test: (key, JSON value).
fn keyed_order(i: usize) -> (String, String) {
    (format!("c-{}", i % 7), format!(r#"{{"order_id":"o-{i:04}","customer_id":"c-{}","total_amount":{}.5,"quantity":1}}"#, i % 7, i % 40))
}

async fn keyed_count_by_key_survives_an_abrupt_stop(bootstrap: &str, lang: &str) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let n = 400;
    let mut want: std::collections::BTreeMap<String, (i64, f64)> = Default::default();
    for i in 0..n {
        let total = want.entry(keyed_order(i).0).or_default();
        *total = (total.0 + 1, total.1 + (i % 40) as f64 + 0.5);
    }
    let (input, output, state) = (format!("keyed-in-{lang}"), format!("keyed-out-{lang}"), format!("keyed-state-{lang}"));
    let produce = |range: std::ops::Range<usize>| {
        let (producer, input) = (&producer, &input);
        futures::future::join_all(range.map(move |i| async move {
            let (key, value) = keyed_order(i);
            producer.send(FutureRecord::to(input).key(&key).payload(&value), Duration::from_secs(10)).await.unwrap();
        }))
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schema.json"),
        r#"{"fields":[{"name":"order_id","type":"utf8","nullable":false},{"name":"customer_id","type":"utf8"},{"name":"total_amount","type":"float64"},{"name":"quantity","type":"int32"}]}"#,
    )
    .unwrap();
    let plugin = polyglot(&format!("{lang}-count-by-key"));
    std::fs::write(
        dir.path().join("p.toml"),
        format!(
            r#"
            [pipelines.p]
            state = {{ topic = "{state}", checkpoint_records = 40, checkpoint_interval_ms = 200 }}
            [pipelines.p.source]
            bootstrap_servers = "{bootstrap}"
            group_id = "keyed-{lang}"
            topics = ["{input}"]
            properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}
            [pipelines.p.format]
            type = "json"
            schema = "schema.json"
            [pipelines.p.batch]
            max_records = 32
            max_wait_ms = 20
            [[pipelines.p.operators]]
            plugin = {plugin:?}
            name = "count"
            [pipelines.p.output]
            topic = "{output}"
            key_column = "key"
            "#
        ),
    )
    .unwrap();
    let config = weir::config::Config::load(&dir.path().join("p.toml")).unwrap().pipelines["p"].clone();
    produce(0..n / 2).await;
    let crashed = weir::pipeline::start("p", config.clone(), engine().clone()).unwrap();
    abort_after_checkpoints(crashed, 2).await;
    produce(n / 2..n).await;
    let restarted = weir::pipeline::start("p", config, engine().clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while restarted.stats().snapshot().committed.values().sum::<i64>() < n as i64 {
        assert!(Instant::now() < deadline && !restarted.is_finished(), "{lang}: {:?}", restarted.stats().snapshot().state);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    restarted.shutdown();
    restarted.join().await.unwrap();

    let read = |topic: &str| read_topic(bootstrap.to_owned(), topic.to_owned());
    use rdkafka::Message;
    let entry_keys: std::collections::BTreeSet<Vec<u8>> = read(&state)
        .await
        .iter()
        .filter_map(|m| m.key().and_then(weir::pipeline::changelog::parse_entry_key).map(|e| e.key.to_vec()))
        .collect();
    let customers: std::collections::BTreeSet<Vec<u8>> = want.keys().map(|k| k.as_bytes().to_vec()).collect();
    assert_eq!(entry_keys, customers, "{lang}: one entry record per customer on the state topic");
    // Records after the last checkpoint are replayed, so a key's running
    // total may appear twice; its largest count is the final one.
    let mut got: std::collections::BTreeMap<String, (i64, f64)> = Default::default();
    for m in read(&output).await {
        let row: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        let (count, sum) = (row["count"].as_i64().unwrap(), row["sum"].as_f64().unwrap());
        let total = got.entry(row["key"].as_str().unwrap().to_owned()).or_default();
        if count > total.0 {
            *total = (count, sum);
        }
    }
    assert_eq!(got, want, "{lang}: the totals of the whole stream after the restore");
}

