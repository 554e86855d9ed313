//! Filter and map semantics with the example guests.

use super::support::*;
use arrow_array::{Array, Float64Array, Int64Array};
use weir::engine::OperatorKind;
use weir_tests::guests;

#[test]
fn high_value_filter_keeps_rows_above_the_configured_threshold() {
    let data = orders(1000);
    let mut filter = operator(guests::HIGH_VALUE_ORDERS, r#"{"threshold": 1000}"#);
    assert_eq!(filter.kind(), OperatorKind::Filter);
    let step = filter.filter(&order_batch(&data)).unwrap();
    let expected: Vec<Option<String>> = data
        .iter()
        .filter(|o| o.total_amount.is_some_and(|a| a > 1000.0))
        .map(|o| Some(o.order_id.clone()))
        .collect();
    assert!(!expected.is_empty() && expected.len() < data.len());
    assert_eq!(strings(&step.batch, "order_id"), expected);
    assert_eq!(step.batch.num_columns(), 6, "a filter keeps every column");
    let expected_rows: Vec<u32> = (0..data.len() as u32)
        .filter(|&i| data[i as usize].total_amount.is_some_and(|a| a > 1000.0))
        .collect();
    assert_eq!(step.input_rows, expected_rows);
}

#[test]
fn filter_config_changes_the_threshold_and_bad_config_is_refused() {
    let data = orders(300);
    let mut filter = operator(guests::HIGH_VALUE_ORDERS, r#"{"threshold": 1900}"#);
    let kept = filter.filter(&order_batch(&data)).unwrap().batch.num_rows();
    assert_eq!(kept, data.iter().filter(|o| o.total_amount.is_some_and(|a| a > 1900.0)).count());

    let engine = engine();
    let plugin = load(&engine, guests::HIGH_VALUE_ORDERS);
    let error = weir::operator::Operator::new(plugin, r#"{"threshold": "high"}"#, Default::default())
        .err()
        .expect("bad config must fail");
    assert_eq!(error.kind_str(), "invalid_config", "{error}");
}

#[test]
fn enrich_map_appends_derived_columns_and_rejects_negative_amounts() {
    let data = orders(500);
    let mut map = operator(guests::ENRICH_ORDER, r#"{"tax_rate": 0.25}"#);
    let step = map.map(&order_batch(&data)).unwrap();

    let expected_rejected: Vec<u32> =
        (0..data.len() as u32).filter(|&i| data[i as usize].total_amount.is_some_and(|a| a < 0.0)).collect();
    let rejected: Vec<u32> = step.rejected.iter().map(|r| r.row).collect();
    assert_eq!(rejected, expected_rejected);
    assert!(step.rejected[0].reason.contains("negative total_amount"), "{:?}", step.rejected[0]);

    let kept: Vec<_> = data.iter().filter(|o| !o.total_amount.is_some_and(|a| a < 0.0)).collect();
    assert_eq!(step.batch.num_rows(), kept.len());
    let names: Vec<String> = step.batch.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(
        names,
        ["order_id", "customer_id", "total_amount", "quantity", "express", "timestamp", "amount_bucket", "tax_amount"]
    );
    let bucket = step.batch.column_by_name("amount_bucket").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().clone();
    let tax = step.batch.column_by_name("tax_amount").unwrap().as_any().downcast_ref::<Float64Array>().unwrap().clone();
    for (row, order) in kept.iter().enumerate() {
        match order.total_amount {
            Some(amount) => {
                assert_eq!(bucket.value(row), (amount / 100.0).floor() as i64);
                assert!((tax.value(row) - amount * 0.25).abs() < 1e-9);
            }
            None => assert!(bucket.is_null(row) && tax.is_null(row), "null amount gives null outputs"),
        }
    }
    assert_eq!(strings(&step.batch, "order_id"), kept.iter().map(|o| Some(o.order_id.clone())).collect::<Vec<_>>());
}

#[test]
fn chain_tracks_input_rows_through_filter_and_map() {
    let data = orders(200);
    let engine = engine();
    let chain_ops = vec![
        weir::operator::Operator::new(load(&engine, guests::ENRICH_ORDER), "{}", Default::default()).unwrap(),
        weir::operator::Operator::new(load(&engine, guests::HIGH_VALUE_ORDERS), r#"{"threshold": 500}"#, Default::default()).unwrap(),
    ];
    let mut chain = weir::operator::Chain::new(chain_ops);
    let out = chain.run(order_batch(&data), None).unwrap();
    let negatives = data.iter().filter(|o| o.total_amount.is_some_and(|a| a < 0.0)).count();
    let kept: Vec<u32> = (0..data.len() as u32).filter(|&i| data[i as usize].total_amount.is_some_and(|a| a > 500.0)).collect();
    assert_eq!(out.rejected.len(), negatives);
    assert!(out.rejected.iter().all(|r| r.operator == 0 && r.input_row.is_some()));
    assert_eq!(out.input_rows, vec![Some(kept.clone())]);
    assert_eq!(out.filtered + out.batches[0].num_rows() + negatives, data.len());
}
