//! Benchmark guest for the layout decision in docs/contract.md: the same
//! filter predicate (`total_amount > 1000`) and map (`floor(total_amount /
//! 100)`, `total_amount * 0.2`) as the examples, but the batch crosses as one
//! Arrow IPC stream in a binary column `ipc`, decoded and encoded with arrow-rs
//! inside the guest. Config: `{"op": "filter"}` returns the selection bitmap
//! in binary column `selection`; `{"op": "map"}` returns an IPC stream of the
//! two derived columns in binary column `ipc`.
//!
//! Build: cargo build --release --target wasm32-wasip2 -p ipc-bench

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch};
use arrow_buffer::BooleanBuffer;
use std::sync::Arc;
use weir_sdk::{Batch, Column, DataType, Error, Field, Map, MapOutput};

#[derive(serde::Deserialize)]
struct Config {
    op: String,
}

struct IpcBench {
    filter: bool,
}

fn decode(bytes: &[u8]) -> Result<RecordBatch, Error> {
    let mut reader = arrow_ipc::reader::StreamReader::try_new(bytes, None)
        .map_err(|e| Error::InvalidInput(e.to_string()))?;
    reader
        .next()
        .ok_or_else(|| Error::InvalidInput("empty IPC stream".into()))?
        .map_err(|e| Error::InvalidInput(e.to_string()))
}

fn encode(batch: &RecordBatch) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())
        .map_err(|e| Error::Failed(e.to_string()))?;
    writer.write(batch).map_err(|e| Error::Failed(e.to_string()))?;
    writer.finish().map_err(|e| Error::Failed(e.to_string()))?;
    drop(writer);
    Ok(out)
}

impl Map for IpcBench {
    type Config = Config;

    fn init(config: Config) -> Result<Self, Error> {
        Ok(IpcBench { filter: config.op == "filter" })
    }

    fn process(&mut self, batch: Batch) -> Result<MapOutput, Error> {
        let ipc = batch.column("ipc")?.binary_value(0).ok_or_else(|| Error::InvalidInput("null ipc".into()))?;
        let input = decode(ipc)?;
        let amounts = input
            .column_by_name("total_amount")
            .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
            .ok_or_else(|| Error::InvalidInput("total_amount float64 missing".into()))?;
        let values = amounts.values();
        let bytes = if self.filter {
            let keep = BooleanBuffer::collect_bool(values.len(), |i| values[i] > 1000.0);
            let keep = match amounts.nulls() {
                Some(nulls) => &keep & nulls.inner(),
                None => keep,
            };
            keep.values().to_vec()
        } else {
            let bucket: Int64Array = amounts.unary(|v| (v / 100.0).floor() as i64);
            let tax: Float64Array = amounts.unary(|v| v * 0.2);
            let out = RecordBatch::try_from_iter([
                ("amount_bucket", Arc::new(bucket) as Arc<dyn Array>),
                ("tax_amount", Arc::new(tax) as Arc<dyn Array>),
            ])
            .map_err(|e| Error::Failed(e.to_string()))?;
            encode(&out)?
        };
        let name = if self.filter { "selection" } else { "ipc" };
        let column = Column::from(vec![bytes]);
        Ok(MapOutput::new(Batch::new(vec![Field::new(name, DataType::Binary, false)], vec![column])?))
    }
}

weir_sdk::export_map!(IpcBench);
