//! Helpers: engines, plugins and order batches whose expected results the
//! tests compute independently of the code under test.

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use std::sync::Arc;
use weir::engine::{Engine, EngineConfig, HttpAllowlist, Plugin, SandboxLimits};
use weir::operator::Operator;

pub fn engine() -> Engine {
    engine_with(SandboxLimits::default())
}

pub fn engine_with(limits: SandboxLimits) -> Engine {
    Engine::new(EngineConfig { limits, cache_dir: None }).expect("engine")
}

pub fn load(engine: &Engine, path: &str) -> Plugin {
    engine.load_file(std::path::Path::new(path)).unwrap_or_else(|e| panic!("loading {path}: {e}"))
}

pub fn operator(path: &str, config: &str) -> Operator {
    let engine = engine();
    Operator::new(load(&engine, path), config, HttpAllowlist::default()).expect("operator")
}

/// One order row as plain Rust values.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub order_id: String,
    pub customer_id: String,
    pub total_amount: Option<f64>,
    pub quantity: i32,
    pub express: bool,
    pub timestamp_ms: i64,
}

/// Deterministic orders: amounts cycle through values around the 1000
/// threshold, including a null every 7th row and a negative every 11th.
pub fn orders(n: usize) -> Vec<Order> {
    (0..n)
        .map(|i| Order {
            order_id: format!("o-{i}"),
            customer_id: format!("c-{}", i % 5),
            total_amount: if i % 7 == 3 {
                None
            } else if i % 11 == 5 {
                Some(-(i as f64))
            } else {
                Some((i * 137 % 2000) as f64 + 0.25)
            },
            quantity: (i % 9) as i32,
            express: i % 3 == 0,
            timestamp_ms: 1_700_000_000_000 + i as i64 * 1000,
        })
        .collect()
}

pub fn order_batch(orders: &[Order]) -> RecordBatch {
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("order_id", Arc::new(StringArray::from_iter_values(orders.iter().map(|o| o.order_id.as_str())))),
        ("customer_id", Arc::new(StringArray::from_iter_values(orders.iter().map(|o| o.customer_id.as_str())))),
        ("total_amount", Arc::new(Float64Array::from_iter(orders.iter().map(|o| o.total_amount)))),
        ("quantity", Arc::new(Int32Array::from_iter_values(orders.iter().map(|o| o.quantity)))),
        ("express", Arc::new(BooleanArray::from_iter(orders.iter().map(|o| Some(o.express))))),
        (
            "timestamp",
            Arc::new(
                TimestampMillisecondArray::from_iter_values(orders.iter().map(|o| o.timestamp_ms))
                    .with_timezone("UTC"),
            ),
        ),
    ];
    RecordBatch::try_from_iter(columns).expect("order batch")
}

pub fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let array = batch.column_by_name(column).unwrap_or_else(|| panic!("no column {column}"));
    let array = array.as_any().downcast_ref::<StringArray>().expect("utf8 column");
    array.iter().map(|v| v.map(str::to_owned)).collect()
}

/// A batch with an `action` column for the misbehaving guest.
pub fn actions(values: &[&str]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("action", Arc::new(StringArray::from(values.to_vec())) as ArrayRef),
        ("n", Arc::new(Int32Array::from_iter_values(0..values.len() as i32)) as ArrayRef),
    ])
    .unwrap()
}

/// Routes weir's logs to the test output when `WEIR_LOG` is set (e.g.
/// `WEIR_LOG=weir=debug`); a no-op otherwise or when already installed.
pub fn logs() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    if let Some(targets) = std::env::var("WEIR_LOG").ok().and_then(|spec| spec.parse::<tracing_subscriber::filter::Targets>().ok()) {
        let _ = tracing_subscriber::registry().with(tracing_subscriber::fmt::layer().with_test_writer()).with(targets).try_init();
    }
}
