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
    high_value_orders_matches_rust("c", &c_component("high-value-orders"));
}

#[test]
fn c_enrich_order_derives_the_same_columns_and_rejections_as_rust() {
    let amounts = [-5.0, -1.5, -0.1, -1e-7, -1.5e22, -1e21, -123456.789, -f64::MIN_POSITIVE, -f64::MAX, -1.0 / 3.0, -5e-324];
    enrich_order_matches_rust("c", &c_component("enrich-order"), &amounts);
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
