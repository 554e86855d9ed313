//! Aggregate: running count and sum of `value` per `key`. Each call emits
//! one batch (`key` utf8, `count` int64, `sum` float64) with the keys it
//! touched, in first-seen order, and their running totals. Null keys are
//! skipped; a null value counts but adds 0. Key columns may be utf8, int32
//! or int64 (stringified); the value column must be float64.
//! Config (optional): `{"key": "customer_id", "value": "total_amount"}`
//! Snapshot: `u64 n` then n × (`u32 len`, key bytes, `i64 count`, `f64 sum`),
//! little-endian, keys in sorted order.
//!
//! Build: cargo build --release --target wasm32-wasip2 -p count-by-key

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use weir_sdk::{Aggregate, Batch, Column, DataType, Error, Field, StringBuilder};

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    key: String,
    value: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            key: "customer_id".into(),
            value: "total_amount".into(),
        }
    }
}

struct CountByKey {
    config: Config,
    totals: BTreeMap<String, (i64, f64)>,
}

impl Aggregate for CountByKey {
    type Config = Config;

    fn init(config: Config) -> Result<Self, Error> {
        Ok(CountByKey {
            config,
            totals: BTreeMap::new(),
        })
    }

    fn reads(&self) -> Option<Vec<String>> {
        Some(vec![self.config.key.clone(), self.config.value.clone()])
    }

    fn process(&mut self, batch: &Batch, _watermark_ms: Option<i64>) -> Result<Vec<Batch>, Error> {
        let (kcol, vcol) = (
            batch.column(&self.config.key)?,
            batch.column(&self.config.value)?,
        );
        let keys: Vec<Option<Cow<str>>> = match kcol.data_type() {
            DataType::Utf8 => kcol.strs()?.map(|k| k.map(Cow::Borrowed)).collect(),
            DataType::Int32 => (0..kcol.len())
                .map(|i| kcol.i32_value(i).map(|k| k.to_string().into()))
                .collect(),
            DataType::Int64 => (0..kcol.len())
                .map(|i| kcol.i64_value(i).map(|k| k.to_string().into()))
                .collect(),
            t => {
                return Err(Error::InvalidInput(format!(
                    "key column is {t:?}, expected utf8/int32/int64"
                )));
            }
        };
        let values = vcol.f64_values()?;
        let mut seen = HashSet::new();
        let mut touched = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let Some(key) = key.as_deref() else { continue };
            let add = if vcol.is_valid(i) { values[i] } else { 0.0 };
            let entry = match self.totals.get_mut(key) {
                Some(e) => e,
                None => self.totals.entry(key.to_owned()).or_default(),
            };
            entry.0 += 1;
            entry.1 += add;
            if seen.insert(key) {
                touched.push(key);
            }
        }
        if touched.is_empty() {
            return Ok(Vec::new());
        }
        let mut out_keys = StringBuilder::new();
        let (mut counts, mut sums) = (Vec::new(), Vec::new());
        for key in touched {
            let (count, sum) = self.totals[key];
            out_keys.push_str(key);
            counts.push(count);
            sums.push(sum);
        }
        let fields = vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("count", DataType::Int64, false),
            Field::new("sum", DataType::Float64, false),
        ];
        Ok(vec![Batch::new(
            fields,
            vec![out_keys.finish(), Column::from(counts), Column::from(sums)],
        )?])
    }

    fn snapshot(&self) -> Result<Vec<u8>, Error> {
        let mut out = (self.totals.len() as u64).to_le_bytes().to_vec();
        for (key, (count, sum)) in &self.totals {
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&sum.to_le_bytes());
        }
        Ok(out)
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), Error> {
        let bad = || Error::Failed("corrupt count-by-key snapshot".into());
        let mut rest = state;
        let mut take = |n: usize| -> Result<&[u8], Error> {
            let (head, tail) = rest.split_at_checked(n).ok_or_else(bad)?;
            rest = tail;
            Ok(head)
        };
        let mut totals = BTreeMap::new();
        for _ in 0..u64::from_le_bytes(take(8)?.try_into().unwrap()) {
            let len = u32::from_le_bytes(take(4)?.try_into().unwrap()) as usize;
            let key = String::from_utf8(take(len)?.to_vec()).map_err(|_| bad())?;
            let count = i64::from_le_bytes(take(8)?.try_into().unwrap());
            let sum = f64::from_le_bytes(take(8)?.try_into().unwrap());
            totals.insert(key, (count, sum));
        }
        self.totals = totals;
        Ok(())
    }
}

weir_sdk::export_aggregate!(CountByKey);
