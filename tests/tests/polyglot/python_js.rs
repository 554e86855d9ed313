//! The Python and JavaScript ports against the Rust originals, batch by
//! batch: filters, maps, count-by-key (with snapshots), sentiment, webhook
//! sinks.

use super::*;

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

pub(super) fn count_batches(op: &mut Operator, batch: &RecordBatch) -> Vec<RecordBatch> {
    op.aggregate(batch, None).unwrap_or_else(|e| panic!("aggregate: {e}"))
}

#[test]
fn count_by_key_matches_rust_including_snapshots() {
    count_by_key_matches_rust(&LANGS);
}

/// The count-by-key ports of `langs` against the Rust original: the same
/// output batches, snapshot bytes, and totals after restoring each other's
/// snapshots.
pub(super) fn count_by_key_matches_rust(langs: &[&str]) {
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

pub(super) fn count_by_key_refuses_a_garbage_snapshot(langs: &[&str]) {
    for &lang in langs {
        let mut op = guest(lang, "count-by-key", "{}");
        let error = op.restore(b"definitely not a snapshot").unwrap_err();
        assert!(matches!(error, weir::engine::Error::Guest { .. }), "{lang}: {error}");
        assert!(error.to_string().contains("corrupt count-by-key snapshot"), "{lang}: {error}");
        assert_eq!(count_batches(&mut op, &orders(10)).len(), 1, "{lang}: still works");
    }
}

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
pub(super) fn webhook_alert_matches_rust(batch: &RecordBatch, guests: Vec<(&str, PathBuf)>) {
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
