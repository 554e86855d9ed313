//! Avro record values -> Arrow. Each Kafka value is one Avro datum written
//! with the schema file's schema, either bare or in Confluent's wire format
//! (magic byte 0 + 4-byte schema id + datum). The Avro record schema maps to
//! an Arrow schema; decoding goes through the same per-record isolation as
//! JSON, so a value that does not decode is reported alone.
//!
//! Written on `apache-avro` (datum decoding) + `arrow-json` (columnar
//! building): arrow-avro's streaming decoder needs a schema registry or
//! single-object framing, which plain "schema file" topics do not have.

use super::{BatchError, JsonDecoder};
use apache_avro::Schema;
use apache_avro::schema::RecordSchema;
use apache_avro::types::Value;
use arrow_schema::{DataType, Field, TimeUnit};
use std::sync::Arc;

/// Decodes Avro datums of one record schema.
#[derive(Debug, Clone)]
pub struct AvroDecoder {
    schema: Schema,
    json: JsonDecoder,
    confluent_framing: bool,
}

impl AvroDecoder {
    /// A decoder for the Avro schema in `text` (JSON); `confluent_framing`
    /// expects the 5-byte Confluent header before each datum.
    pub fn new(text: &str, confluent_framing: bool) -> Result<AvroDecoder, BatchError> {
        let schema = Schema::parse_str(text).map_err(|e| BatchError::Schema(format!("invalid Avro schema: {e}")))?;
        let Schema::Record(RecordSchema { fields, .. }) = &schema else {
            return Err(BatchError::Schema("the Avro schema must be a record".into()));
        };
        let mut arrow_fields = Vec::with_capacity(fields.len());
        for field in fields {
            let (data_type, nullable) = arrow_type(&field.schema)
                .ok_or_else(|| BatchError::Schema(format!("Avro field `{}`: unsupported type {:?}", field.name, field.schema)))?;
            arrow_fields.push(Field::new(&field.name, data_type, nullable));
        }
        let arrow = Arc::new(arrow_schema::Schema::new(arrow_fields));
        Ok(AvroDecoder { schema, json: JsonDecoder::new(arrow), confluent_framing })
    }

    /// The JSON decoder building the Arrow batches.
    pub fn json(&self) -> &JsonDecoder {
        &self.json
    }

    /// One datum as a JSON line for the Arrow decoder.
    pub fn to_json_line(&self, value: &[u8]) -> Result<Vec<u8>, String> {
        let mut datum = value;
        if self.confluent_framing {
            if datum.len() < 5 || datum[0] != 0 {
                return Err("not in Confluent wire format (magic byte 0 + schema id)".into());
            }
            datum = &datum[5..];
        }
        let decoded = apache_avro::from_avro_datum(&self.schema, &mut datum, None)
            .map_err(|e| format!("malformed Avro datum: {e}"))?;
        if !datum.is_empty() {
            return Err(format!("{} trailing bytes after the Avro datum", datum.len()));
        }
        serde_json::to_vec(&to_json(decoded)).map_err(|e| e.to_string())
    }
}

fn arrow_type(schema: &Schema) -> Option<(DataType, bool)> {
    Some(match schema {
        Schema::Boolean => (DataType::Boolean, false),
        Schema::Int => (DataType::Int32, false),
        Schema::Long => (DataType::Int64, false),
        Schema::Float => (DataType::Float32, false),
        Schema::Double => (DataType::Float64, false),
        Schema::String | Schema::Enum(_) | Schema::Uuid => (DataType::Utf8, false),
        Schema::Bytes => (DataType::Binary, false),
        Schema::TimestampMillis => (DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Schema::TimestampMicros => (DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Schema::Array(items) if matches!(items.items.as_ref(), Schema::String) => {
            (DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false)
        }
        Schema::Union(union) => {
            let variants = union.variants();
            let non_null: Vec<&Schema> = variants.iter().filter(|s| !matches!(s, Schema::Null)).collect();
            if non_null.len() != 1 {
                return None;
            }
            (arrow_type(non_null[0])?.0, true)
        }
        _ => return None,
    })
}

fn to_json(value: Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Boolean(b) => J::Bool(b),
        Value::Int(i) => J::from(i),
        Value::Long(l) | Value::TimestampMillis(l) | Value::TimestampMicros(l) => J::from(l),
        Value::Float(f) => serde_json::Number::from_f64(f as f64).map_or(J::Null, J::Number),
        Value::Double(d) => serde_json::Number::from_f64(d).map_or(J::Null, J::Number),
        Value::String(s) | Value::Enum(_, s) => J::String(s),
        Value::Uuid(u) => J::String(u.to_string()),
        Value::Bytes(b) => J::String(b.iter().map(|x| format!("{x:02x}")).collect()),
        Value::Union(_, inner) => to_json(*inner),
        Value::Array(items) => J::Array(items.into_iter().map(to_json).collect()),
        Value::Record(fields) => J::Object(fields.into_iter().map(|(k, v)| (k, to_json(v))).collect()),
        other => J::String(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Record;
    use arrow_array::{Array, Float64Array, StringArray};

    const SCHEMA: &str = r#"{"type":"record","name":"Order","fields":[
        {"name":"order_id","type":"string"},
        {"name":"total_amount","type":["null","double"]},
        {"name":"items","type":{"type":"array","items":"string"}},
        {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;

    fn datum(id: &str, amount: Option<f64>) -> Vec<u8> {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let mut record = Record::new(&schema).unwrap();
        record.put("order_id", id);
        record.put("total_amount", match amount {
            Some(a) => Value::Union(1, Box::new(Value::Double(a))),
            None => Value::Union(0, Box::new(Value::Null)),
        });
        record.put("items", Value::Array(vec![Value::String("book".into())]));
        record.put("ts", Value::TimestampMillis(1_732_000_000_000));
        apache_avro::to_avro_datum(&schema, record).unwrap()
    }

    #[test]
    fn avro_datums_decode_to_arrow_and_bad_ones_are_reported() {
        let decoder = AvroDecoder::new(SCHEMA, false).unwrap();
        let good = [datum("a", Some(12.5)), datum("b", None)];
        let lines: Vec<Vec<u8>> = good.iter().map(|d| decoder.to_json_line(d).unwrap()).collect();
        let slices: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let batch = decoder.json().decode_lines(&slices).unwrap().batch;
        let ids = batch.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let amounts = batch.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!((ids.value(0), ids.value(1)), ("a", "b"));
        assert_eq!(amounts.value(0), 12.5);
        assert!(amounts.is_null(1));
        assert!(decoder.to_json_line(b"\x02").unwrap_err().contains("malformed"));

        let framed = AvroDecoder::new(SCHEMA, true).unwrap();
        let mut wire = vec![0, 0, 0, 0, 7];
        wire.extend(datum("c", Some(1.0)));
        assert!(framed.to_json_line(&wire).is_ok());
        assert!(framed.to_json_line(&datum("c", Some(1.0))).is_err());
    }

    #[test]
    fn unsupported_avro_types_name_the_field() {
        let error = AvroDecoder::new(r#"{"type":"record","name":"R","fields":[{"name":"m","type":{"type":"map","values":"long"}}]}"#, false)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`m`"), "{error}");
    }
}
