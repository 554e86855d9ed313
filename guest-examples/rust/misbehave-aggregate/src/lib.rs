//! Test fixture: a stateful aggregate that fails on purpose. Counts rows per
//! `key` (utf8) and emits, per batch, the running count of every key it
//! touched (`key`, `count`). A row whose key is `panic` makes it panic (a
//! trap), `error` makes it return an operator error; either can leave its
//! state half-updated, which is what the host's task reset must handle. A
//! key `rows-bomb` makes it return a batch with no columns and u32::MAX rows.
//! A key `alias-bomb` makes it return one row in 100 binary columns whose
//! value buffers all point at the same 1 MiB of its memory: 100 MiB for the
//! host to copy out of 1 MiB of guest memory (aliasing that no SDK does, but
//! a hand-written guest can).
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
                "alias-bomb" => return Ok(vec![alias_bomb()?]),
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

/// One row in [`ALIASED_COLUMNS`] binary columns sharing one value buffer.
const ALIASED_COLUMNS: usize = 100;

fn alias_bomb() -> Result<Batch, Error> {
    const LEN: usize = 1 << 20;
    let shared: &'static mut [u8] = Vec::leak(vec![7u8; LEN]);
    let offsets: Vec<u8> = [0u32, LEN as u32].iter().flat_map(|o| o.to_le_bytes()).collect();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for i in 0..ALIASED_COLUMNS {
        // SAFETY: deliberately not: every column claims the same leaked
        // buffer; the host must bound what it copies before it copies it.
        let values = unsafe { Vec::from_raw_parts(shared.as_mut_ptr(), LEN, LEN) };
        fields.push(Field::new(format!("c{i}"), DataType::Binary, false));
        columns.push(Column::from_raw_parts(DataType::Binary, 1, None, offsets.clone(), values, None)?);
    }
    Batch::new(fields, columns)
}

weir_sdk::export_aggregate!(MisbehaveAggregate);
