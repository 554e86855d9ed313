//! C guests (sdk/c): the same comparisons against the Rust originals.

use super::*;

/// Path of a C example component; fails (never skips) when it was not built.
pub(super) fn c_component(name: &str) -> PathBuf {
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
