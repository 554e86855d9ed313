//! Fluvio SmartModule `map` for weir's peer benchmark: appends
//! `amount_bucket` = floor(total_amount / 100) (an integer) and
//! `tax_amount` = total_amount * 0.2 to each order, both `null` when the
//! amount is null or missing. Only `total_amount` is deserialized (serde_json,
//! unknown fields ignored); the output is the input bytes with the final `}`
//! replaced by `,"amount_bucket":<n>,"tax_amount":<x>}`, numbers written by
//! serde_json (ryu's shortest round-trip for the f64). An unparsable record
//! is an error, which Fluvio reports in the output's `error`.

use fluvio_smartmodule::{eyre, smartmodule, RecordData, Result, SmartModuleRecord};
use serde::Deserialize;

/// Rate of `tax_amount`.
const TAX_RATE: f64 = 0.2;

#[derive(Deserialize)]
struct Order {
    total_amount: Option<f64>,
}

#[smartmodule(map)]
pub fn map(record: &SmartModuleRecord) -> Result<(Option<RecordData>, RecordData)> {
    let line = record.value.as_ref();
    let order: Order = serde_json::from_slice(line)?;
    let close = line.iter().rposition(|b| *b == b'}').ok_or_else(|| eyre!("record is not a JSON object"))?;
    let mut out = Vec::with_capacity(close + 64);
    out.extend_from_slice(&line[..close]);
    out.extend_from_slice(b",\"amount_bucket\":");
    serde_json::to_writer(&mut out, &order.total_amount.map(|a| (a / 100.0).floor() as i64))?;
    out.extend_from_slice(b",\"tax_amount\":");
    serde_json::to_writer(&mut out, &order.total_amount.map(|a| a * TAX_RATE))?;
    out.push(b'}');
    Ok((record.key.clone(), out.into()))
}
