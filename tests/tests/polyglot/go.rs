//! Go (sdk/go over wit-bindgen-go; built by `scripts/build-polyglot-guests go`).

use super::*;

/// Path of a Go example component; fails (never skips) when it was not built.
pub(super) fn go_component(name: &str) -> PathBuf {
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
    high_value_orders_matches_rust("go", &go_component("high-value-orders"));
    // Many calls on one instance (the Go garbage collector runs between and
    // inside them).
    let ints = int64_with_nulls();
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
    // Formatting like Rust's f64 Display and saturation like `as i64`, value by value.
    let amounts = [-5.0, -1.5, -0.1, -1e-7, -1.5e22, -1e21, -123456.789, -f64::MIN_POSITIVE, -f64::MAX, -1.0 / 3.0, -5e-324, f64::NEG_INFINITY];
    enrich_order_matches_rust("go", &go_component("enrich-order"), &amounts);
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
