//! Filter: keeps rows whose `amount` is above `threshold` (config, default 100).
use weir_sdk::{Batch, Error, Filter, Selection};

#[derive(serde::Deserialize)]
#[serde(default)]
struct Config { threshold: f64 }
impl Default for Config { fn default() -> Self { Config { threshold: 100.0 } } }

struct Operator(Config);

impl Filter for Operator {
    type Config = Config;
    fn init(config: Config) -> Result<Self, Error> { Ok(Operator(config)) }
    fn reads(&self) -> Option<Vec<String>> { Some(vec!["amount".into()]) }
    fn evaluate(&mut self, batch: &Batch) -> Result<Selection, Error> {
        let amount = batch.column("amount")?;
        let t = self.0.threshold;
        Ok(Selection::from_values(&amount.f64_values()?, |v| *v > t).and_validity(amount.validity()))
    }
}

weir_sdk::export_filter!(Operator);
