//! The seed order schema, generated deterministically as Arrow batches.

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use std::sync::Arc;

/// A small deterministic generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    /// A generator with the given seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const CENTERS: [&str; 6] = ["berlin", "chicago", "singapore", "sao-paulo", "lagos", "sydney"];
const ITEMS: [&str; 8] = ["book", "lamp", "phone", "desk", "chair", "cable", "mug", "bag"];

/// `rows` orders starting at order number `first`: order_id, customer_id,
/// processing_center, total_amount (2% null), quantity, express, timestamp,
/// items (list of 0-3 strings).
pub fn order_batch(first: usize, rows: usize, seed: u64) -> RecordBatch {
    let mut rng = Rng::new(seed ^ first as u64);
    let mut order_id = StringBuilder::with_capacity(rows, rows * 10);
    let mut customer_id = StringBuilder::with_capacity(rows, rows * 8);
    let mut center = StringBuilder::with_capacity(rows, rows * 8);
    let mut amount = Vec::with_capacity(rows);
    let mut quantity = Vec::with_capacity(rows);
    let mut express = Vec::with_capacity(rows);
    let mut ts = Vec::with_capacity(rows);
    let mut items = ListBuilder::new(StringBuilder::new());
    for i in first..first + rows {
        order_id.append_value(format!("o-{i:08}"));
        customer_id.append_value(format!("c-{:05}", rng.next_u64() % 20_000));
        center.append_value(CENTERS[(rng.next_u64() % CENTERS.len() as u64) as usize]);
        amount.push(if rng.next_u64().is_multiple_of(50) { None } else { Some((rng.unit() * 2000.0 * 100.0).round() / 100.0) });
        quantity.push((rng.next_u64() % 9 + 1) as i32);
        express.push(rng.next_u64().is_multiple_of(4));
        ts.push(1_732_000_000_000 + i as i64 * 37);
        for _ in 0..rng.next_u64() % 4 {
            items.values().append_value(ITEMS[(rng.next_u64() % ITEMS.len() as u64) as usize]);
        }
        items.append(true);
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("order_id", Arc::new(order_id.finish())),
        ("customer_id", Arc::new(customer_id.finish())),
        ("processing_center", Arc::new(center.finish())),
        ("total_amount", Arc::new(Float64Array::from(amount))),
        ("quantity", Arc::new(Int32Array::from(quantity))),
        ("express", Arc::new(BooleanArray::from(express))),
        ("timestamp", Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC"))),
        ("items", Arc::new(items.finish())),
    ];
    RecordBatch::try_from_iter(columns).expect("order batch")
}

/// `total` orders in batches of `batch_rows`.
pub fn order_batches(total: usize, batch_rows: usize) -> Vec<RecordBatch> {
    (0..total)
        .step_by(batch_rows)
        .map(|first| order_batch(first, batch_rows.min(total - first), 42))
        .collect()
}

/// The order ids of a batch (for checks).
pub fn order_ids(batch: &RecordBatch) -> &StringArray {
    batch.column(0).as_any().downcast_ref().expect("order_id")
}
