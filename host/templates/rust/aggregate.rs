//! Aggregate: running count per `key`; emits the keys touched by each batch.
use std::collections::BTreeMap;
use weir_sdk::{Aggregate, Batch, Column, DataType, Error, Field, NoConfig};

struct Operator(BTreeMap<String, i64>);

impl Aggregate for Operator {
    type Config = NoConfig;
    fn init(_: NoConfig) -> Result<Self, Error> { Ok(Operator(BTreeMap::new())) }
    fn reads(&self) -> Option<Vec<String>> { Some(vec!["key".into()]) }
    fn process(&mut self, batch: &Batch, _watermark_ms: Option<i64>) -> Result<Vec<Batch>, Error> {
        let keys = batch.column("key")?;
        let mut touched = Vec::new();
        for i in 0..batch.num_rows() {
            if let Some(key) = keys.str_value(i) {
                *self.0.entry(key.to_owned()).or_default() += 1;
                if !touched.iter().any(|k: &String| k == key) { touched.push(key.to_owned()); }
            }
        }
        if touched.is_empty() { return Ok(Vec::new()); }
        let counts: Vec<i64> = touched.iter().map(|k| self.0[k]).collect();
        Ok(vec![Batch::new(
            vec![Field::new("key", DataType::Utf8, false), Field::new("count", DataType::Int64, false)],
            vec![Column::from(touched), Column::from(counts)],
        )?])
    }
    fn snapshot(&self) -> Result<Vec<u8>, Error> {
        Ok(self.0.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect::<String>().into_bytes())
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), Error> {
        let text = std::str::from_utf8(state).map_err(|e| Error::InvalidInput(e.to_string()))?;
        self.0 = text.lines().filter_map(|l| l.split_once('\t')).map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(0))).collect();
        Ok(())
    }
}

weir_sdk::export_aggregate!(Operator);
