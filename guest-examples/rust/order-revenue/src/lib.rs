//! Aggregate: the seed's order analytics. Per processing center and 1-hour
//! tumbling event-time window: revenue (sum of `total_amount`), order count,
//! average order value and unique customers (HyperLogLog, under 1% error).
//! A window's final row is emitted once the host's watermark passes its end;
//! with `early_updates`, every batch also emits the current values of the
//! windows it touched (`is_final = false`). `result_key` (center/start) is the
//! same for every emission of a window, so downstream keeps the last one.
//!
//! Config (all optional):
//! `{"key": "processing_center", "time": "timestamp", "amount": "total_amount",
//!   "customer": "customer_id", "window_ms": 3600000, "early_updates": false}`
//!
//! Build: cargo build --release --target wasm32-wasip2 -p order-revenue

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use weir_sdk::sketch::{HyperLogLog, hash64};
use weir_sdk::state::KeyedState;
use weir_sdk::window::{Accumulator, Window, WindowSpec, Windows, event_times_ms};
use weir_sdk::{Aggregate, Batch, Column, DataType, Error, Field, StringBuilder, TimeUnit};

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    key: String,
    time: String,
    amount: String,
    customer: String,
    window_ms: i64,
    early_updates: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            key: "processing_center".into(),
            time: "timestamp".into(),
            amount: "total_amount".into(),
            customer: "customer_id".into(),
            window_ms: 3_600_000,
            early_updates: false,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Revenue {
    revenue: f64,
    orders: u64,
    customers: HyperLogLog,
}

impl Default for Revenue {
    /// Precision 14 (16,384 registers, 16 KiB): under 1% standard error,
    /// and near-exact linear counting up to ~40,000 customers per window.
    fn default() -> Self {
        Revenue { revenue: 0.0, orders: 0, customers: HyperLogLog::new(14) }
    }
}

impl Accumulator for Revenue {
    /// (amount, hash of the customer id)
    type Row = (f64, u64);
    fn add(&mut self, &(amount, customer): &(f64, u64)) {
        self.revenue += amount;
        self.orders += 1;
        self.customers.insert_hash(customer);
    }
    fn merge(&mut self, other: &Self) {
        self.revenue += other.revenue;
        self.orders += other.orders;
        self.customers.merge(&other.customers);
    }
}

struct OrderRevenue {
    config: Config,
    windows: Windows<String, Revenue>,
}

/// Output rows under construction.
#[derive(Default)]
struct Rows {
    start: Vec<i64>,
    end: Vec<i64>,
    key: StringBuilder,
    revenue: Vec<f64>,
    orders: Vec<i64>,
    average: Vec<f64>,
    customers: Vec<i64>,
    is_final: Vec<Option<bool>>,
    result_key: StringBuilder,
}

impl Rows {
    fn push(&mut self, window: &Window, key: &str, acc: &Revenue, is_final: bool) {
        self.start.push(window.start_ms);
        self.end.push(window.end_ms);
        self.key.push_str(key);
        self.revenue.push(acc.revenue);
        self.orders.push(acc.orders as i64);
        self.average.push(if acc.orders == 0 { 0.0 } else { acc.revenue / acc.orders as f64 });
        self.customers.push(acc.customers.estimate() as i64);
        self.is_final.push(Some(is_final));
        self.result_key.push_str(&format!("{key}/{}", window.start_ms));
    }

    fn finish(self, key_name: &str) -> Result<Batch, Error> {
        let utc = Some("UTC".to_owned());
        let ts = DataType::Timestamp { unit: TimeUnit::Millisecond, timezone: utc.clone() };
        Batch::new(
            vec![
                Field::new("window_start", ts.clone(), false),
                Field::new("window_end", ts, false),
                Field::new(key_name, DataType::Utf8, false),
                Field::new("revenue", DataType::Float64, false),
                Field::new("order_count", DataType::Int64, false),
                Field::new("average_order_value", DataType::Float64, false),
                Field::new("unique_customers", DataType::Int64, false),
                Field::new("is_final", DataType::Boolean, false),
                Field::new("result_key", DataType::Utf8, false),
            ],
            vec![
                Column::timestamps(self.start, None, TimeUnit::Millisecond, utc.clone())?,
                Column::timestamps(self.end, None, TimeUnit::Millisecond, utc)?,
                self.key.finish(),
                Column::from(self.revenue),
                Column::from(self.orders),
                Column::from(self.average),
                Column::from(self.customers),
                Column::from_bools(self.is_final),
                self.result_key.finish(),
            ],
        )
    }
}

impl Aggregate for OrderRevenue {
    type Config = Config;

    fn init(config: Config) -> Result<Self, Error> {
        let spec = WindowSpec::Tumbling { size_ms: config.window_ms };
        spec.validate().map_err(Error::InvalidConfig)?;
        Ok(OrderRevenue { config, windows: Windows::new(spec) })
    }

    fn reads(&self) -> Option<Vec<String>> {
        let c = &self.config;
        Some(vec![c.key.clone(), c.time.clone(), c.amount.clone(), c.customer.clone()])
    }

    fn process(&mut self, batch: &Batch, watermark_ms: Option<i64>) -> Result<Vec<Batch>, Error> {
        let times = event_times_ms(batch.column(&self.config.time)?)?;
        let keys = batch.column(&self.config.key)?.utf8()?;
        let amount_column = batch.column(&self.config.amount)?;
        // Any numeric type (float64, float32, int32, int64); nulls add 0.
        let amounts = amount_column.as_f64_values()?;
        let customers = batch.column(&self.config.customer)?.utf8()?;
        let mut touched: BTreeSet<(String, Window)> = BTreeSet::new();
        for (row, time) in times.into_iter().enumerate() {
            let (Some(t), Some(key)) = (time, keys.get(row)) else { continue };
            // No lateness check here: the host took out the rows behind the
            // previous watermark; the others still belong to open windows.
            let amount = if amount_column.is_valid(row) { amounts[row] } else { 0.0 };
            let customer = hash64(customers.get(row).unwrap_or_default().as_bytes());
            self.windows.add(key.to_owned(), t, &(amount, customer));
            if self.config.early_updates {
                for window in self.windows.spec().assign(t) {
                    touched.insert((key.to_owned(), window));
                }
            }
        }
        let mut rows = Rows::default();
        if let Some(watermark) = watermark_ms {
            for (window, key, acc) in self.windows.close(watermark) {
                touched.remove(&(key.clone(), window));
                rows.push(&window, &key, &acc, true);
            }
        }
        for (key, window) in touched {
            if let Some(acc) = self.windows.get(&key, &window) {
                let acc = acc.clone();
                rows.push(&window, &key, &acc, false);
            }
        }
        if rows.start.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![rows.finish(&self.config.key)?])
    }

    fn snapshot(&self) -> Result<Vec<u8>, Error> {
        Ok(self.windows.snapshot())
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), Error> {
        self.windows = Windows::restore(state).map_err(Error::InvalidInput)?;
        Ok(())
    }

    /// Checkpoints store one entry per key, and only the keys that changed.
    fn keyed_state(&mut self) -> Option<&mut dyn KeyedState> {
        Some(&mut self.windows)
    }
}

weir_sdk::export_aggregate!(OrderRevenue);
