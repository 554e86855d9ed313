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
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

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

/// Running totals of one key, and the call that last touched it.
#[derive(Default)]
struct Total {
    count: i64,
    sum: f64,
    call: u64,
}

/// Fixed-key SipHash (no randomness needed from the sandbox). Iteration order
/// is never observable: outputs are in first-seen order, snapshots sorted.
type Totals = HashMap<String, Total, BuildHasherDefault<DefaultHasher>>;

struct CountByKey {
    config: Config,
    totals: Totals,
    calls: u64,
}

impl Aggregate for CountByKey {
    type Config = Config;

    fn init(config: Config) -> Result<Self, Error> {
        Ok(CountByKey {
            config,
            totals: Totals::default(),
            calls: 0,
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
        self.calls += 1;
        let call = self.calls;
        let mut touched = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let Some(key) = key.as_deref() else { continue };
            let add = if vcol.is_valid(i) { values[i] } else { 0.0 };
            let total = match self.totals.get_mut(key) {
                Some(total) => total,
                None => self.totals.entry(key.to_owned()).or_default(),
            };
            total.count += 1;
            total.sum += add;
            if total.call != call {
                total.call = call;
                touched.push(key);
            }
        }
        if touched.is_empty() {
            return Ok(Vec::new());
        }
        let mut out_keys = StringBuilder::new();
        let (mut counts, mut sums) = (Vec::with_capacity(touched.len()), Vec::with_capacity(touched.len()));
        for key in touched {
            let total = &self.totals[key];
            out_keys.push_str(key);
            counts.push(total.count);
            sums.push(total.sum);
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
        let mut sorted: Vec<(&String, &Total)> = self.totals.iter().collect();
        sorted.sort_unstable_by_key(|(key, _)| *key);
        let mut out = (sorted.len() as u64).to_le_bytes().to_vec();
        for (key, Total { count, sum, .. }) in sorted {
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
        let mut totals = Totals::default();
        for _ in 0..u64::from_le_bytes(take(8)?.try_into().unwrap()) {
            let len = u32::from_le_bytes(take(4)?.try_into().unwrap()) as usize;
            let key = String::from_utf8(take(len)?.to_vec()).map_err(|_| bad())?;
            let count = i64::from_le_bytes(take(8)?.try_into().unwrap());
            let sum = f64::from_le_bytes(take(8)?.try_into().unwrap());
            totals.insert(key, Total { count, sum, call: 0 });
        }
        self.totals = totals;
        self.calls = 0;
        Ok(())
    }
}

weir_sdk::export_aggregate!(CountByKey);
