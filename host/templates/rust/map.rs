//! Map: adds `amount_doubled` (float64) and rejects negative amounts.
use weir_sdk::{Batch, Column, DataType, Error, Field, Map, MapOutput, NoConfig, RowRejection};

struct Operator;

impl Map for Operator {
    type Config = NoConfig;
    fn init(_: NoConfig) -> Result<Self, Error> { Ok(Operator) }
    fn reads(&self) -> Option<Vec<String>> { Some(vec!["amount".into()]) }
    fn process(&mut self, batch: Batch) -> Result<MapOutput, Error> {
        let amount = batch.column("amount")?;
        let values = amount.f64_values()?;
        let doubled: Vec<f64> = values.iter().map(|v| v * 2.0).collect();
        let rejected = (0..values.len())
            .filter(|&i| amount.is_valid(i) && values[i] < 0.0)
            .map(|i| RowRejection::new(i, format!("negative amount: {}", values[i])))
            .collect();
        let column = Column::from_values_with_validity(doubled, amount.validity().map(<[u8]>::to_vec))?;
        let batch = Batch::new(vec![Field::new("amount_doubled", DataType::Float64, true)], vec![column])?;
        Ok(MapOutput { batch, rejected })
    }
}

weir_sdk::export_map!(Operator);
