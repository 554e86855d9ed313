//! Map: reads every column through the SDK's typed accessors and rebuilds
//! it with the SDK's builders, so the output equals the input value for
//! value (nulls included). Exercises the SDK's decode/encode; no config.
//!
//! Build: cargo build --release --target wasm32-wasip2 -p typed-echo

use weir_sdk::{Batch, Column, DataType, Error, ListUtf8Builder, Map, MapOutput, NoConfig};

struct TypedEcho;

fn echo(col: &Column) -> Result<Column, Error> {
    let validity = col.validity().map(|v| v[..col.len().div_ceil(8)].to_vec());
    Ok(match col.data_type() {
        DataType::Boolean => Column::from_bools(col.bools()?),
        DataType::Int32 => {
            Column::from_values_with_validity(col.i32_values()?.into_owned(), validity)?
        }
        DataType::Int64 => {
            Column::from_values_with_validity(col.i64_values()?.into_owned(), validity)?
        }
        DataType::Float32 => {
            Column::from_values_with_validity(col.f32_values()?.into_owned(), validity)?
        }
        DataType::Float64 => {
            Column::from_values_with_validity(col.f64_values()?.into_owned(), validity)?
        }
        DataType::Timestamp { unit, timezone } => Column::timestamps(
            col.timestamp_values()?.into_owned(),
            validity,
            *unit,
            timezone.clone(),
        )?,
        DataType::Utf8 => Column::from_strs(col.strs()?),
        DataType::Binary => Column::from_binaries(col.binaries()?),
        DataType::ListUtf8 => {
            let lists = col.list_utf8()?;
            let mut b = ListUtf8Builder::new();
            for list in lists.iter() {
                b.push(list.map(|l| l.iter()));
            }
            b.finish()
        }
    })
}

impl Map for TypedEcho {
    type Config = NoConfig;

    fn init(_: NoConfig) -> Result<Self, Error> {
        Ok(TypedEcho)
    }

    fn process(&mut self, batch: Batch) -> Result<MapOutput, Error> {
        let columns = batch
            .columns()
            .iter()
            .map(echo)
            .collect::<Result<Vec<_>, _>>()?;
        let (fields, _, _) = batch.into_parts();
        Ok(MapOutput::new(Batch::new(fields, columns)?))
    }
}

weir_sdk::export_map!(TypedEcho);
