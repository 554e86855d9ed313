//! Filter: keeps rows whose `column` (float64, int64 or int32) is greater
//! than `threshold`; null values are dropped. Only that column crosses
//! into the guest (`reads`).
//! Config (both optional): `{"column": "total_amount", "threshold": 1000.0}`
//!
//! Build: cargo build --release --target wasm32-wasip2 -p high-value-orders

use serde::Deserialize;
use weir_sdk::{Batch, DataType, Error, Filter, Selection};

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    column: String,
    threshold: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            column: "total_amount".into(),
            threshold: 1000.0,
        }
    }
}

struct HighValueOrders(Config);

impl Filter for HighValueOrders {
    type Config = Config;

    fn init(config: Config) -> Result<Self, Error> {
        Ok(HighValueOrders(config))
    }

    fn reads(&self) -> Option<Vec<String>> {
        Some(vec![self.0.column.clone()])
    }

    fn evaluate(&mut self, batch: &Batch) -> Result<Selection, Error> {
        let col = batch.column(&self.0.column)?;
        let t = self.0.threshold;
        let keep = match col.data_type() {
            DataType::Float64 => Selection::from_values(&col.f64_values()?, |v| *v > t),
            DataType::Int64 => Selection::from_values(&col.i64_values()?, |v| *v as f64 > t),
            DataType::Int32 => Selection::from_values(&col.i32_values()?, |v| *v as f64 > t),
            other => {
                let msg = format!(
                    "column `{}` is {other:?}, expected float64/int64/int32",
                    self.0.column
                );
                return Err(Error::InvalidInput(msg));
            }
        };
        Ok(keep.and_validity(col.validity()))
    }
}

weir_sdk::export_filter!(HighValueOrders);
