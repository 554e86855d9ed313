//! Test fixture: a stateful aggregate that fails on purpose. Counts rows per
//! `key` (utf8) and emits, per batch, the running count of every key it
//! touched (`key`, `count`). A row whose key is `panic` makes it panic (a
//! trap), `error` makes it return an operator error; either can leave its
//! state half-updated, which is what the host's task reset must handle. A
//! key `rows-bomb` makes it return a batch with no columns and u32::MAX rows.
//! Snapshot: JSON object key -> count.
//!
//! Build: cargo build --release --target wasm32-wasip2 -p misbehave-aggregate

use std::collections::BTreeMap;

use weir_sdk::{Aggregate, Batch, Column, DataType, Error, Field, StringBuilder};

struct MisbehaveAggregate {
    counts: BTreeMap<String, i64>,
}

impl Aggregate for MisbehaveAggregate {
    type Config = serde_json::Value;

    fn init(_config: serde_json::Value) -> Result<Self, Error> {
        Ok(MisbehaveAggregate { counts: BTreeMap::new() })
    }

    fn process(&mut self, batch: &Batch, _watermark_ms: Option<i64>) -> Result<Vec<Batch>, Error> {
        let keys = batch.column("key")?.utf8()?;
        let mut touched = Vec::new();
        for row in 0..batch.num_rows() {
            let Some(key) = keys.get(row) else { continue };
            // Fold first, fail after: the state is half-updated on purpose.
            *self.counts.entry(key.to_owned()).or_default() += 1;
            match key {
                "panic" => panic!("poison key at row {row}"),
                "error" => return Err(Error::Failed(format!("poison key at row {row}"))),
                "rows-bomb" => return Ok(vec![Batch::empty(u32::MAX as usize)]),
                _ => {}
            }
            if !touched.iter().any(|t: &String| t == key) {
                touched.push(key.to_owned());
            }
        }
        if touched.is_empty() {
            return Ok(Vec::new());
        }
        let mut out_keys = StringBuilder::new();
        let mut counts = Vec::new();
        for key in &touched {
            out_keys.push_str(key);
            counts.push(self.counts[key]);
        }
        Ok(vec![Batch::new(
            vec![Field::new("key", DataType::Utf8, false), Field::new("count", DataType::Int64, false)],
            vec![out_keys.finish(), Column::from(counts)],
        )?])
    }

    fn snapshot(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(&self.counts).map_err(|e| Error::Failed(e.to_string()))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), Error> {
        self.counts = serde_json::from_slice(state).map_err(|e| Error::InvalidInput(e.to_string()))?;
        Ok(())
    }
}

weir_sdk::export_aggregate!(MisbehaveAggregate);
