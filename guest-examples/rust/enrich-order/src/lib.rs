//! Map: appends `amount_bucket` (int64 = floor(total_amount / 100)) and
//! `tax_amount` (float64 = total_amount * tax_rate) to every row. A null
//! `total_amount` gives nulls; a negative one rejects the row. It declares
//! `reads = ["total_amount"]`, so only that column crosses in and only the
//! two new columns cross out; the host keeps every input column unchanged
//! and appends them.
//! Config (optional): `{"tax_rate": 0.2}`
//!
//! Build: cargo build --release --target wasm32-wasip2 -p enrich-order

use serde::Deserialize;
use weir_sdk::{Batch, Column, DataType, Error, Field, Map, MapOutput, RowRejection};

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    tax_rate: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config { tax_rate: 0.2 }
    }
}

struct EnrichOrder(Config);

impl Map for EnrichOrder {
    type Config = Config;

    fn init(config: Config) -> Result<Self, Error> {
        Ok(EnrichOrder(config))
    }

    fn reads(&self) -> Option<Vec<String>> {
        Some(vec!["total_amount".into()])
    }

    fn process(&mut self, batch: Batch) -> Result<MapOutput, Error> {
        let col = batch.column("total_amount")?;
        if col.data_type() != &DataType::Float64 {
            return Err(Error::InvalidInput(format!(
                "total_amount is {:?}, expected Float64",
                col.data_type()
            )));
        }
        let amounts = col.f64_values()?;
        let rate = self.0.tax_rate;
        let buckets: Vec<i64> = amounts.iter().map(|a| (a / 100.0).floor() as i64).collect();
        let tax: Vec<f64> = amounts.iter().map(|a| a * rate).collect();
        let rejected = (0..amounts.len())
            .filter(|&i| col.is_valid(i) && amounts[i] < 0.0)
            .map(|i| RowRejection::new(i, format!("negative total_amount: {}", amounts[i])))
            .collect();
        let validity = col.validity().map(<[u8]>::to_vec); // nulls in -> nulls out
        let batch = Batch::new(
            vec![
                Field::new("amount_bucket", DataType::Int64, true),
                Field::new("tax_amount", DataType::Float64, true),
            ],
            vec![
                Column::from_values_with_validity(buckets, validity.clone())?,
                Column::from_values_with_validity(tax, validity)?,
            ],
        )?;
        Ok(MapOutput { batch, rejected })
    }
}

weir_sdk::export_map!(EnrichOrder);
