//! World detection and clear errors for things that are not operators.

use super::support::*;
use weir::engine::{Error, OperatorKind};
use weir_tests::guests;

#[test]
fn each_example_is_detected_as_its_kind() {
    let engine = engine();
    for (path, kind) in [
        (guests::HIGH_VALUE_ORDERS, OperatorKind::Filter),
        (guests::ENRICH_ORDER, OperatorKind::Map),
        (guests::COUNT_BY_KEY, OperatorKind::Aggregate),
        (guests::WEBHOOK_ALERT, OperatorKind::Sink),
    ] {
        assert_eq!(load(&engine, path).kind(), kind, "{path}");
    }
}

#[test]
fn wrong_world_names_what_it_exports() {
    let error = engine().load_file(std::path::Path::new(guests::NOT_AN_OPERATOR)).err().unwrap();
    assert!(matches!(error, Error::UnknownWorld { .. }), "{error}");
    assert!(error.to_string().contains("wasi:cli/run"), "{error}");
}

#[test]
fn garbage_core_modules_and_truncated_components_are_refused() {
    let engine = engine();
    let garbage = engine.load("garbage", b"this is not wasm at all").err().unwrap();
    assert!(matches!(garbage, Error::NotWasm { .. }), "{garbage}");

    // The smallest valid core module: magic + version 1.
    let core = engine.load("core", b"\0asm\x01\0\0\0").err().unwrap();
    assert!(matches!(core, Error::CoreModule { .. }), "{core}");
    assert!(core.to_string().contains("wasm32-wasip2"), "{core}");

    let bytes = std::fs::read(guests::HIGH_VALUE_ORDERS).unwrap();
    let truncated = engine.load("truncated", &bytes[..bytes.len() / 2]).err().unwrap();
    assert!(matches!(truncated, Error::Compile { .. }), "{truncated}");
}

#[test]
fn a_component_built_for_contract_0_1_0_loads_and_keeps_whole_snapshots() {
    let engine = engine();
    // Built from a frozen copy of weir:operator@0.1.0: exports aggregate@0.1.0, imports host@0.1.0.
    let legacy = load(&engine, guests::LEGACY_AGGREGATE);
    assert_eq!(legacy.kind(), OperatorKind::Aggregate);
    assert!(!legacy.keyed_state(), "0.1.0 has no keyed-state");
    let mut operator = weir::operator::Operator::new(legacy, r#"{"key": "customer_id"}"#, Default::default()).unwrap();
    let out = operator.aggregate(&order_batch(&orders(20)), None).unwrap();
    assert!(out[0].num_rows() > 0, "it folds and emits");
    let snapshot = operator.snapshot().unwrap();
    let mut fresh = operator.fresh().unwrap();
    fresh.restore(&snapshot).unwrap();
    assert_eq!(fresh.snapshot().unwrap(), snapshot, "whole snapshots round-trip");
    assert!(fresh.snapshot_changes().is_err(), "no keyed calls on a 0.1.0 component");
    // The SDK's aggregates follow 0.1.1 and export keyed-state.
    assert!(load(&engine, guests::FRAUD_DETECTOR).keyed_state());
    assert!(load(&engine, guests::ORDER_REVENUE).keyed_state());
}
