//! Every column type and null pattern crosses the boundary intact, through
//! the SDK's typed accessors and builders (typed-echo) and as raw buffers
//! (identity), including sliced batches whose buffers do not start at row 0.

use super::support::*;
use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use std::sync::Arc;
use weir_tests::guests;

/// Compares column by column so a failure names the column.
fn assert_same(actual: &RecordBatch, expected: &RecordBatch, context: &str) {
    assert_eq!(actual.schema(), expected.schema(), "{context}: schema");
    for (index, field) in expected.schema().fields().iter().enumerate() {
        assert_eq!(
            actual.column(index).to_data(),
            expected.column(index).to_data(),
            "{context}: column `{}`",
            field.name()
        );
    }
}

fn all_types_batch() -> RecordBatch {
    let mut lists = ListBuilder::new(StringBuilder::new());
    for row in 0..9 {
        match row % 4 {
            0 => lists.append_null(),
            1 => lists.append(true),
            2 => {
                lists.values().append_value(format!("item-{row}"));
                lists.values().append_null();
                lists.values().append_value("");
                lists.append(true);
            }
            _ => {
                lists.values().append_value("ünïcødé ✓");
                lists.append(true);
            }
        }
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("bool", Arc::new(BooleanArray::from(vec![Some(true), None, Some(false), Some(true), None, Some(false), Some(true), Some(true), Some(false)]))),
        ("i32", Arc::new(Int32Array::from(vec![Some(i32::MIN), None, Some(0), Some(-1), Some(7), None, Some(i32::MAX), Some(3), Some(4)]))),
        ("i64", Arc::new(Int64Array::from(vec![Some(i64::MIN), Some(1), None, Some(-1), Some(7), None, Some(i64::MAX), Some(3), None]))),
        ("f32", Arc::new(Float32Array::from(vec![Some(1.5), None, Some(-0.0), Some(f32::MAX), Some(f32::MIN_POSITIVE), None, Some(3.25), Some(4.0), Some(5.0)]))),
        ("f64", Arc::new(Float64Array::from(vec![Some(1e300), None, Some(-2.5), Some(0.1), None, Some(f64::MIN), Some(42.0), Some(-7.0), Some(8.5)]))),
        ("utf8", Arc::new(StringArray::from(vec![Some("a"), None, Some(""), Some("ünïcødé"), Some("longer string value"), None, Some("x"), Some(""), Some("end")]))),
        ("binary", Arc::new(BinaryArray::from(vec![Some(&b"\x00\x01"[..]), None, Some(&b""[..]), Some(&b"\xff"[..]), Some(&b"abc"[..]), None, Some(&b"z"[..]), Some(&b"\x00"[..]), Some(&b"q"[..])]))),
        ("ts_s", Arc::new(TimestampSecondArray::from(vec![Some(0), None, Some(1), Some(2), Some(3), Some(4), None, Some(6), Some(7)]))),
        ("ts_us_utc", Arc::new(TimestampMicrosecondArray::from(vec![Some(1), Some(2), None, Some(4), Some(5), Some(6), Some(7), None, Some(9)]).with_timezone("UTC"))),
        ("ts_ns_offset", Arc::new(TimestampNanosecondArray::from(vec![Some(-1), Some(2), Some(3), None, Some(5), Some(6), Some(7), Some(8), Some(9)]).with_timezone("+05:30"))),
        ("list", Arc::new(lists.finish())),
    ];
    RecordBatch::try_from_iter_with_nullable(columns.into_iter().map(|(n, a)| (n, a, true))).unwrap()
}

#[test]
fn typed_echo_round_trips_every_type_with_nulls() {
    let batch = all_types_batch();
    let mut echo = operator(guests::TYPED_ECHO, "{}");
    let step = echo.map(&batch).unwrap();
    assert!(step.rejected.is_empty());
    assert_same(&step.batch, &batch, "typed-echo");
}

#[test]
fn sliced_batches_cross_with_their_own_rows_only() {
    let batch = all_types_batch();
    for (offset, len) in [(1, 5), (3, 6), (8, 1), (2, 0)] {
        let slice = batch.slice(offset, len);
        for guest in [guests::TYPED_ECHO, guests::IDENTITY] {
            let mut op = operator(guest, "{}");
            let step = op.map(&slice).unwrap_or_else(|e| panic!("{guest} on slice {offset}+{len}: {e}"));
            assert_same(&step.batch, &slice, &format!("{guest} on slice {offset}+{len}"));
        }
    }
}

/// An operator whose batches never go packed (`packed_batch_max_bytes = 0`):
/// every batch crosses column by column, as to a component built before 0.1.2.
fn unpacked_operator(path: &str) -> weir::operator::Operator {
    let engine = engine_with(weir::engine::SandboxLimits { packed_batch_max_bytes: 0, ..Default::default() });
    weir::operator::Operator::new(load(&engine, path), "{}", weir::engine::HttpAllowlist::default()).expect("operator")
}

#[test]
fn packed_and_column_by_column_batches_reach_the_guest_alike() {
    // The SDK's maps take packed batches (contract 0.1.2); small batches go
    // packed by default, larger ones and every batch with packing off go
    // column by column. Both must give the guest the same batch.
    assert!(load(&engine(), guests::TYPED_ECHO).packed(), "the Rust SDK's maps export map-packed");
    let batch = all_types_batch();
    let mut cases = vec![("whole".to_owned(), batch.clone())];
    for (offset, len) in [(1, 5), (3, 6), (8, 1), (2, 0)] {
        cases.push((format!("slice {offset}+{len}"), batch.slice(offset, len)));
    }
    // One instance sees every case in turn, so batches of a schema it was
    // declared before and of new schemas (a projection) mix.
    let projected = batch.project(&[10, 0, 8]).unwrap();
    cases.push(("projection".to_owned(), projected.clone()));
    cases.push(("whole again".to_owned(), batch.clone()));
    cases.push(("projection again".to_owned(), projected));
    for guest in [guests::TYPED_ECHO, guests::IDENTITY] {
        let mut packed = operator(guest, "{}");
        let mut unpacked = unpacked_operator(guest);
        for (name, case) in &cases {
            let via_packed = packed.map(case).unwrap_or_else(|e| panic!("{guest}, {name}, packed: {e}"));
            let via_columns = unpacked.map(case).unwrap_or_else(|e| panic!("{guest}, {name}, column by column: {e}"));
            assert_same(&via_packed.batch, case, &format!("{guest}, {name}, packed"));
            assert_same(&via_columns.batch, case, &format!("{guest}, {name}, column by column"));
        }
    }
}

#[test]
fn an_instance_takes_batches_of_more_schemas_than_it_declares() {
    // The host declares at most 32 schemas to one instance; batches of
    // further schemas go column by column, and earlier ones stay packed.
    let mut op = operator(guests::TYPED_ECHO, "{}");
    let batch_named = |i: usize| {
        let values = Int64Array::from(vec![Some(i as i64), None, Some(-(i as i64))]);
        RecordBatch::try_from_iter_with_nullable([(format!("column_{i}"), Arc::new(values) as ArrayRef, true)]).unwrap()
    };
    for round in 0..2 {
        for i in 0..40 {
            let batch = batch_named(i);
            let step = op.map(&batch).unwrap_or_else(|e| panic!("schema {i}, round {round}: {e}"));
            assert_same(&step.batch, &batch, &format!("schema {i}, round {round}"));
        }
    }
}

#[test]
fn batches_above_the_packing_threshold_cross_column_by_column_on_the_same_instance() {
    // 5,000 orders are far above the 4 KiB default: the instance that took
    // small packed batches of the schema takes these column by column, then
    // small ones packed again.
    let data = orders(5000);
    let batch = order_batch(&data);
    let mut op = operator(guests::IDENTITY, "{}");
    for rows in [3, 5000, 1, 4999, 2] {
        let part = batch.slice(0, rows);
        assert_eq!(op.map(&part).unwrap().batch, part, "{rows} rows");
    }
}

#[test]
fn identity_round_trips_filtered_orders() {
    let data = orders(5000);
    let batch = order_batch(&data);
    let mask = BooleanArray::from_iter((0..data.len()).map(|i| Some(i % 3 != 0)));
    let filtered = arrow_select::filter::filter_record_batch(&batch, &mask).unwrap();
    let mut op = operator(guests::IDENTITY, "{}");
    assert_eq!(op.map(&filtered).unwrap().batch, filtered);
}

#[test]
fn unsupported_column_types_are_refused_with_the_column_name() {
    let batch = RecordBatch::try_from_iter([(
        "small",
        Arc::new(arrow_array::Int8Array::from(vec![1i8, 2])) as ArrayRef,
    )])
    .unwrap();
    let mut op = operator(guests::IDENTITY, "{}");
    let error = op.map(&batch).unwrap_err().to_string();
    assert!(error.contains("`small`") && error.contains("Int8"), "{error}");
}

#[test]
fn a_guest_time_zone_that_does_not_exist_is_that_operators_contract_error() {
    let stamps = TimestampMicrosecondArray::from(vec![Some(1), Some(2)]).with_timezone("Mars/Olympus_Mons");
    let batch = RecordBatch::try_from_iter([("ts", Arc::new(stamps) as ArrayRef)]).unwrap();
    let mut echo = operator(guests::TYPED_ECHO, "{}");
    let error = echo.map(&batch).expect_err("the echoed time zone is refused where the guest returns it");
    assert_eq!(error.kind_str(), "contract", "{error}");
    assert!(error.to_string().contains("Mars/Olympus_Mons"), "{error}");
    let valid = TimestampMicrosecondArray::from(vec![Some(1)]).with_timezone("Europe/Paris");
    let batch = RecordBatch::try_from_iter([("ts", Arc::new(valid) as ArrayRef)]).unwrap();
    assert_eq!(echo.map(&batch).unwrap().batch, batch, "named zones pass");
}
