//! Fluvio SmartModule `filter` for weir's peer benchmark: keeps an order iff
//! its `total_amount` is a number > 1000.0 (null or missing: dropped); kept
//! records pass through unchanged. Only `total_amount` is deserialized
//! (serde_json, unknown fields ignored), the fastest fair form of the check.
//! An unparsable record is an error, which Fluvio reports in the output's
//! `error` (processing of that call stops there).

use fluvio_smartmodule::{smartmodule, Result, SmartModuleRecord};
use serde::Deserialize;

/// Amount above which an order is kept.
const THRESHOLD: f64 = 1000.0;

#[derive(Deserialize)]
struct Order {
    total_amount: Option<f64>,
}

#[smartmodule(filter)]
pub fn filter(record: &SmartModuleRecord) -> Result<bool> {
    let order: Order = serde_json::from_slice(record.value.as_ref())?;
    Ok(order.total_amount.is_some_and(|amount| amount > THRESHOLD))
}
