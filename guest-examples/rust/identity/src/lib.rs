//! Map: returns its input batch unchanged (moved, no copy); no config.
//! Used to measure the host's per-call overhead.
//!
//! Build: cargo build --release --target wasm32-wasip2 -p identity

use weir_sdk::{Batch, Error, Map, MapOutput, NoConfig};

struct Identity;

impl Map for Identity {
    type Config = NoConfig;

    fn init(_: NoConfig) -> Result<Self, Error> {
        Ok(Identity)
    }

    fn process(&mut self, batch: Batch) -> Result<MapOutput, Error> {
        Ok(MapOutput::new(batch))
    }
}

weir_sdk::export_map!(Identity);
