//! Avro record values -> Arrow. Each Kafka value is one Avro datum written
//! with the schema file's schema, either bare or in Confluent's wire format
//! (magic byte 0 + 4-byte schema id + datum). The Avro record schema maps to
//! an Arrow schema; decoding goes through the same per-record isolation as
//! JSON, so a value that does not decode is reported alone.
//!
//! Before decoding, every datum is scanned against the schema: each length
//! and item count must fit in the bytes that are left, and nesting is
//! bounded, so a 10-byte value cannot make the decoder reserve gigabytes.
//! With Confluent framing and a configured schema id, a value framed with
//! another id is a decode error of that record.
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
    schema_id: Option<u32>,
}

/// Deepest nesting of records, arrays and unions a datum may have.
pub const MAX_AVRO_DEPTH: usize = 32;
/// Most items an array block of zero-sized items (nulls) may claim.
const MAX_ZERO_SIZED_ITEMS: u64 = 1 << 16;

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
        Ok(AvroDecoder { schema, json: JsonDecoder::new(arrow), confluent_framing, schema_id: None })
    }

    /// Only accepts Confluent-framed values written with schema `id`.
    pub fn with_schema_id(mut self, id: Option<u32>) -> AvroDecoder {
        self.schema_id = id;
        self
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
            let id = u32::from_be_bytes([datum[1], datum[2], datum[3], datum[4]]);
            if let Some(expected) = self.schema_id.filter(|expected| *expected != id) {
                return Err(format!("written with schema id {id}, but the pipeline reads schema id {expected}"));
            }
            datum = &datum[5..];
        }
        let mut scan = datum;
        check_datum(&self.schema, &mut scan, 0).map_err(|e| format!("malformed Avro datum: {e}"))?;
        let decoded = apache_avro::from_avro_datum(&self.schema, &mut datum, None)
            .map_err(|e| format!("malformed Avro datum: {e}"))?;
        if !datum.is_empty() {
            return Err(format!("{} trailing bytes after the Avro datum", datum.len()));
        }
        serde_json::to_vec(&to_json(decoded)).map_err(|e| e.to_string())
    }
}

/// Walks one datum of `schema`, checking that every length and count fits in
/// the bytes left (what `apache-avro` would otherwise reserve up front).
fn check_datum(schema: &Schema, bytes: &mut &[u8], depth: usize) -> Result<(), String> {
    if depth > MAX_AVRO_DEPTH {
        return Err(format!("nested deeper than {MAX_AVRO_DEPTH} levels"));
    }
    match schema {
        Schema::Null => {}
        Schema::Boolean => take(bytes, 1)?,
        Schema::Int | Schema::Long | Schema::Date | Schema::TimeMillis | Schema::TimeMicros
        | Schema::TimestampMillis | Schema::TimestampMicros | Schema::Enum(_) => {
            varint(bytes)?;
        }
        Schema::Float => take(bytes, 4)?,
        Schema::Double => take(bytes, 8)?,
        Schema::String | Schema::Bytes | Schema::Uuid => {
            let len = length(bytes)?;
            take(bytes, len)?;
        }
        Schema::Fixed(fixed) => take(bytes, fixed.size)?,
        Schema::Union(union) => {
            let index = varint(bytes)?;
            let variant = usize::try_from(index).ok().and_then(|i| union.variants().get(i)).ok_or_else(|| format!("union index {index} out of range"))?;
            check_datum(variant, bytes, depth + 1)?;
        }
        Schema::Array(array) => loop {
            let mut count = varint(bytes)?;
            if count == 0 {
                break;
            }
            if count < 0 {
                count = count.checked_neg().ok_or("array block count overflows")?;
                varint(bytes)?; // block size in bytes
            }
            let count = count as u64;
            let zero_sized = matches!(array.items.as_ref(), Schema::Null);
            if (zero_sized && count > MAX_ZERO_SIZED_ITEMS) || (!zero_sized && count > bytes.len() as u64) {
                return Err(format!("array block of {count} items in {} remaining bytes", bytes.len()));
            }
            for _ in 0..count {
                check_datum(&array.items, bytes, depth + 1)?;
            }
        },
        Schema::Record(record) => {
            for field in &record.fields {
                check_datum(&field.schema, bytes, depth + 1)?;
            }
        }
        other => return Err(format!("unsupported schema {other:?}")),
    }
    Ok(())
}

fn take(bytes: &mut &[u8], n: usize) -> Result<(), String> {
    if n > bytes.len() {
        return Err(format!("needs {n} bytes, {} left", bytes.len()));
    }
    *bytes = &bytes[n..];
    Ok(())
}

/// A zig-zag varint (Avro int/long).
fn varint(bytes: &mut &[u8]) -> Result<i64, String> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or("truncated varint")?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err("varint longer than 10 bytes".into())
}

/// A length prefix: non-negative and within the bytes left.
fn length(bytes: &mut &[u8]) -> Result<usize, String> {
    let len = varint(bytes)?;
    usize::try_from(len).ok().filter(|&n| n <= bytes.len()).ok_or_else(|| format!("length {len} with {} bytes left", bytes.len()))
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
    fn a_tiny_datum_cannot_claim_huge_lengths_or_counts() {
        let decoder = AvroDecoder::new(SCHEMA, false).unwrap();
        // order_id claims a 2 GiB string: zig-zag varint 0x80 0x80 0x80 0x80 0x10 = 2^31.
        let error = decoder.to_json_line(&[0x80, 0x80, 0x80, 0x80, 0x10, b'a']).unwrap_err();
        assert!(error.contains("length 2147483648"), "{error}");
        // A valid id, a null amount, then an array block of 2^40 items.
        let mut bytes = vec![2, b'a', 0];
        bytes.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
        let error = decoder.to_json_line(&bytes).unwrap_err();
        assert!(error.contains("items in 0 remaining bytes"), "{error}");
        let truncated = &datum("abc", Some(1.0))[..5];
        assert!(decoder.to_json_line(truncated).is_err());
    }

    #[test]
    fn a_confluent_schema_id_other_than_the_configured_one_is_a_decode_error() {
        let framed = AvroDecoder::new(SCHEMA, true).unwrap().with_schema_id(Some(7));
        let mut wire = vec![0, 0, 0, 0, 7];
        wire.extend(datum("c", Some(1.0)));
        assert!(framed.to_json_line(&wire).is_ok());
        wire[4] = 8;
        let error = framed.to_json_line(&wire).unwrap_err();
        assert!(error.contains("schema id 8"), "{error}");
    }

    #[test]
    fn unsupported_avro_types_name_the_field() {
        let error = AvroDecoder::new(r#"{"type":"record","name":"R","fields":[{"name":"m","type":{"type":"map","values":"long"}}]}"#, false)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`m`"), "{error}");
    }
}
