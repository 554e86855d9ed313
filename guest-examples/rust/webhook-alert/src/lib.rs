//! Sink: POSTs each batch to `url` as a JSON array of row objects
//! (`Content-Type: application/json`, one request per non-empty batch).
//! Values: numbers as JSON numbers (NaN/inf as null), timestamps as integers
//! in the column's unit, binary as lowercase hex strings, list<utf8> as
//! arrays, nulls as null. 2xx -> ok; 5xx, timeouts, connection errors ->
//! retryable; 4xx and other statuses -> permanent; host refused the
//! destination -> permanent ("... denied ...").
//! Config (required): `{"url": "http://host:port/path"}`
//!
//! Build: cargo build --release --target wasm32-wasip2 -p webhook-alert

use serde::Deserialize;
use serde_json::{Map, Value};
use weir_sdk::http::{self, HttpError};
use weir_sdk::{Batch, Column, DataType, Error, Sink, SinkError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    url: String,
}

struct WebhookAlert(Config);

fn cell(col: &Column, i: usize) -> Value {
    match col.data_type() {
        DataType::Boolean => col.bool_value(i).into(),
        DataType::Int32 => col.i32_value(i).into(),
        DataType::Int64 => col.i64_value(i).into(),
        DataType::Float32 => col.f32_value(i).into(),
        DataType::Float64 => col.f64_value(i).into(),
        DataType::Timestamp { .. } => col.timestamp_value(i).into(),
        DataType::Utf8 => col.str_value(i).into(),
        DataType::Binary => col
            .binary_value(i)
            .map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>())
            .into(),
        DataType::ListUtf8 => col.list_value(i).into(),
    }
}

fn to_json(batch: &Batch) -> Vec<u8> {
    let rows: Vec<Value> = (0..batch.num_rows())
        .map(|i| {
            Value::Object(
                batch
                    .iter()
                    .map(|(f, c)| (f.name.clone(), cell(c, i)))
                    .collect::<Map<_, _>>(),
            )
        })
        .collect();
    serde_json::to_vec(&rows).expect("JSON values always serialise")
}

impl Sink for WebhookAlert {
    type Config = Config;

    fn init(config: Config) -> Result<Self, Error> {
        Ok(WebhookAlert(config))
    }

    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let url = &self.0.url;
        match http::post(url, "application/json", &to_json(batch)) {
            Ok(r) if r.is_success() => Ok(()),
            Ok(r) if r.status >= 500 => Err(SinkError::Retryable(format!(
                "{url} answered HTTP {}",
                r.status
            ))),
            Ok(r) => Err(SinkError::Permanent(format!(
                "{url} answered HTTP {}",
                r.status
            ))),
            Err(e @ HttpError::Denied(_)) => Err(SinkError::Permanent(format!("POST {url}: {e}"))),
            Err(e) if e.is_retryable() => Err(SinkError::Retryable(format!("POST {url}: {e}"))),
            Err(e) => Err(SinkError::Permanent(format!("POST {url}: {e}"))),
        }
    }
}

weir_sdk::export_sink!(WebhookAlert);
