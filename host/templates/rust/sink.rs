//! Sink: logs how many rows each batch has (replace with your destination).
use weir_sdk::{Batch, Error, NoConfig, Sink, SinkError};

struct Operator;

impl Sink for Operator {
    type Config = NoConfig;
    fn init(_: NoConfig) -> Result<Self, Error> { Ok(Operator) }
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        weir_sdk::log::info(&format!("received {} rows", batch.num_rows()));
        Ok(())
    }
}

weir_sdk::export_sink!(Operator);
