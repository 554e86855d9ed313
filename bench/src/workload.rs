//! The peer-benchmark workloads (issue: peer benchmarks): seed orders as JSON
//! lines, generated deterministically, and what each workload must output.
//! Every contender (native, weir, the peer engines) gets the same input bytes
//! and its output is checked against the native result before its time is
//! reported: outputs are compared by content (parsed JSON), since encoders
//! format the same record differently.

use crate::orders::Rng;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

/// Amount above which an order passes the filter.
pub const FILTER_THRESHOLD: f64 = 1000.0;
/// Tax rate of the map's `tax_amount`.
pub const TAX_RATE: f64 = 0.2;

/// What the contenders compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Keep orders with `total_amount > 1000` (null: drop); records unchanged.
    Filter,
    /// Append `amount_bucket = floor(total_amount / 100)` and
    /// `tax_amount = total_amount * 0.2` (null in, nulls out).
    Map,
    /// Running count and sum of `total_amount` per `customer_id`: each batch
    /// emits `{"key","count","sum"}` for the keys it touched (first-seen order).
    Aggregate,
}

impl Workload {
    /// Name used in tables, JSON results and the peer drivers' `--workload`.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Filter => "filter",
            Workload::Map => "map",
            Workload::Aggregate => "aggregate",
        }
    }

    /// What it computes, for table titles.
    pub fn describe(self) -> &'static str {
        match self {
            Workload::Filter => "filter `total_amount > 1000`",
            Workload::Map => "map: + amount_bucket, tax_amount",
            Workload::Aggregate => "keyed count + sum by customer_id",
        }
    }
}

const CENTERS: [&str; 6] = ["berlin", "chicago", "singapore", "sao-paulo", "lagos", "sydney"];
const ITEMS: [&str; 8] = ["book", "lamp", "phone", "desk", "chair", "cable", "mug", "bag"];

/// `records` seed orders as JSON lines (each ending in `\n`): order_id,
/// customer_id (20,000 customers), processing_center, total_amount (2% null,
/// 0-2000), quantity, express, timestamp (epoch ms), items (0-3 strings),
/// then `extra_fields` string attributes `attr_NN` of 16 characters (to vary
/// the record width).
pub fn order_lines(records: usize, extra_fields: usize) -> Vec<u8> {
    let mut rng = Rng::new(0x5eed_0de5);
    let mut out = String::with_capacity(records * (200 + extra_fields * 30));
    for i in 0..records {
        let customer = rng.next_u64() % 20_000;
        let center = CENTERS[(rng.next_u64() % CENTERS.len() as u64) as usize];
        let amount = if rng.next_u64().is_multiple_of(50) { None } else { Some((rng.unit() * 2000.0 * 100.0).round() / 100.0) };
        let _ = write!(out, r#"{{"order_id":"o-{i:08}","customer_id":"c-{customer:05}","processing_center":"{center}","total_amount":"#);
        match amount {
            Some(amount) => {
                let _ = write!(out, "{amount:?}");
            }
            None => out.push_str("null"),
        }
        let _ = write!(
            out,
            r#","quantity":{},"express":{},"timestamp":{},"items":["#,
            rng.next_u64() % 9 + 1,
            rng.next_u64().is_multiple_of(4),
            1_732_000_000_000i64 + i as i64 * 37
        );
        for n in 0..rng.next_u64() % 4 {
            if n > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{}\"", ITEMS[(rng.next_u64() % ITEMS.len() as u64) as usize]);
        }
        out.push(']');
        for field in 0..extra_fields {
            let _ = write!(out, r#","attr_{field:02}":"{:016x}""#, rng.next_u64());
        }
        out.push_str("}\n");
    }
    out.into_bytes()
}

/// The weir schema (JSON) of [`order_lines`] with `extra_fields` attributes.
pub fn schema_json(extra_fields: usize) -> String {
    let mut fields = vec![
        r#"{"name":"order_id","type":"utf8","nullable":false}"#.to_owned(),
        r#"{"name":"customer_id","type":"utf8","nullable":false}"#.to_owned(),
        r#"{"name":"processing_center","type":"utf8"}"#.to_owned(),
        r#"{"name":"total_amount","type":"float64"}"#.to_owned(),
        r#"{"name":"quantity","type":"int32"}"#.to_owned(),
        r#"{"name":"express","type":"bool"}"#.to_owned(),
        r#"{"name":"timestamp","type":"int64","nullable":false}"#.to_owned(),
        r#"{"name":"items","type":"list<utf8>"}"#.to_owned(),
    ];
    fields.extend((0..extra_fields).map(|f| format!(r#"{{"name":"attr_{f:02}","type":"utf8"}}"#)));
    format!(r#"{{"fields":[{}]}}"#, fields.join(","))
}

/// The lines of a JSON-lines buffer (without their `\n`).
pub fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect()
}

/// The canonical content of a workload's output, comparable across encoders.
#[derive(Debug, PartialEq)]
pub enum Digest {
    /// Order ids kept, sorted.
    Kept(Vec<String>),
    /// Per order id: (amount_bucket, tax_amount), each null when the amount was.
    Mapped(BTreeMap<String, (Option<i64>, Option<f64>)>),
    /// Per key, the last (count, sum) emitted.
    Totals(BTreeMap<String, (i64, f64)>),
}

/// Why an output does not match.
#[derive(Debug, thiserror::Error)]
pub enum Mismatch {
    /// A line is not the JSON the workload outputs.
    #[error("output line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The content differs from the reference.
    #[error("output differs from the native result: {0}")]
    Differs(String),
}

/// Parses a contender's output (JSON lines) into its [`Digest`].
pub fn digest(workload: Workload, output: &[u8]) -> Result<Digest, Mismatch> {
    let mut kept = Vec::new();
    let mut mapped = BTreeMap::new();
    let mut totals = BTreeMap::new();
    for (index, line) in lines(output).into_iter().enumerate() {
        let malformed = |reason: &str| Mismatch::Malformed { line: index + 1, reason: reason.to_owned() };
        let value: Value = serde_json::from_slice(line).map_err(|e| malformed(&e.to_string()))?;
        let text = |field: &str| value.get(field).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| malformed(&format!("no string {field}")));
        match workload {
            Workload::Filter => kept.push(text("order_id")?),
            Workload::Map => {
                let bucket = value.get("amount_bucket").ok_or_else(|| malformed("no amount_bucket"))?.as_i64();
                let tax = value.get("tax_amount").ok_or_else(|| malformed("no tax_amount"))?.as_f64();
                mapped.insert(text("order_id")?, (bucket, tax));
            }
            Workload::Aggregate => {
                let count = value.get("count").and_then(Value::as_i64).ok_or_else(|| malformed("no integer count"))?;
                let sum = value.get("sum").and_then(Value::as_f64).ok_or_else(|| malformed("no number sum"))?;
                totals.insert(text("key")?, (count, sum));
            }
        }
    }
    kept.sort();
    Ok(match workload {
        Workload::Filter => Digest::Kept(kept),
        Workload::Map => Digest::Mapped(mapped),
        Workload::Aggregate => Digest::Totals(totals),
    })
}

/// Checks `actual` against the reference digest (floats to 1e-9 relative:
/// sums folded in a different order may differ in the last bits).
pub fn check(expected: &Digest, actual: &Digest) -> Result<(), Mismatch> {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
    let differs = |what: String| Err(Mismatch::Differs(what));
    match (expected, actual) {
        (Digest::Kept(a), Digest::Kept(b)) => {
            if a != b {
                return differs(format!("{} records kept, expected {}", b.len(), a.len()));
            }
        }
        (Digest::Mapped(a), Digest::Mapped(b)) => {
            if a.len() != b.len() {
                return differs(format!("{} records mapped, expected {}", b.len(), a.len()));
            }
            for (id, (bucket, tax)) in a {
                let Some((other_bucket, other_tax)) = b.get(id) else { return differs(format!("{id} missing")) };
                let tax_ok = match (tax, other_tax) {
                    (Some(x), Some(y)) => close(*x, *y),
                    (None, None) => true,
                    _ => false,
                };
                if bucket != other_bucket || !tax_ok {
                    return differs(format!("{id}: ({other_bucket:?}, {other_tax:?}), expected ({bucket:?}, {tax:?})"));
                }
            }
        }
        (Digest::Totals(a), Digest::Totals(b)) => {
            if a.len() != b.len() {
                return differs(format!("{} keys, expected {}", b.len(), a.len()));
            }
            for (key, (count, sum)) in a {
                match b.get(key) {
                    Some((c, s)) if c == count && close(*s, *sum) => {}
                    other => return differs(format!("{key}: {other:?}, expected ({count}, {sum})")),
                }
            }
        }
        _ => return differs("a different workload's output".into()),
    }
    Ok(())
}

/// Running per-key totals with the touched keys of the current batch in
/// first-seen order (the aggregate's changelog semantics).
#[derive(Default)]
pub struct KeyedTotals {
    /// key -> (count, sum, batch that last touched it)
    totals: HashMap<String, (i64, f64, u64)>,
    touched: Vec<String>,
    batch: u64,
}

impl KeyedTotals {
    /// Folds one order; a null amount counts and adds 0.
    pub fn add(&mut self, key: &str, amount: Option<f64>) {
        let batch = self.batch;
        match self.totals.get_mut(key) {
            Some(entry) => {
                if entry.2 != batch {
                    entry.2 = batch;
                    self.touched.push(key.to_owned());
                }
                entry.0 += 1;
                entry.1 += amount.unwrap_or(0.0);
            }
            None => {
                self.totals.insert(key.to_owned(), (1, amount.unwrap_or(0.0), batch));
                self.touched.push(key.to_owned());
            }
        }
    }

    /// Appends the touched keys' totals as JSON lines and starts a new batch.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        for key in self.touched.drain(..) {
            let (count, sum, _) = self.totals[&key];
            let _ = writeln!(JsonBuffer(out), r#"{{"key":{},"count":{count},"sum":{sum:?}}}"#, Value::String(key));
        }
        self.batch += 1;
    }
}

/// `fmt::Write` over a byte buffer.
struct JsonBuffer<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for JsonBuffer<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_deterministic_json_with_the_schema_fields() {
        let a = order_lines(500, 2);
        assert_eq!(a, order_lines(500, 2));
        let parsed: Vec<Value> = lines(&a).iter().map(|l| serde_json::from_slice(l).unwrap()).collect();
        assert_eq!(parsed.len(), 500);
        assert!(parsed.iter().any(|v| v["total_amount"].is_null()));
        assert!(parsed.iter().any(|v| v["total_amount"].as_f64().unwrap_or(0.0) > FILTER_THRESHOLD));
        assert_eq!(parsed[3]["attr_01"].as_str().unwrap().len(), 16);
    }

    #[test]
    fn check_catches_a_missing_record_and_a_wrong_value() {
        let reference = digest(Workload::Map, b"{\"order_id\":\"a\",\"amount_bucket\":1,\"tax_amount\":0.5}\n").unwrap();
        let wrong = digest(Workload::Map, b"{\"order_id\":\"a\",\"amount_bucket\":2,\"tax_amount\":0.5}\n").unwrap();
        assert!(check(&reference, &wrong).is_err());
        assert!(check(&reference, &digest(Workload::Map, b"").unwrap()).is_err());
        let reformatted = digest(Workload::Map, b"{\"tax_amount\":0.50,\"order_id\":\"a\",\"amount_bucket\":1}\n").unwrap();
        check(&reference, &reformatted).unwrap();
    }
}
