//! Schema files: a small, readable JSON description of a record layout that
//! maps onto Arrow types weir can pass to operators.
//!
//! ```json
//! {"fields": [
//!   {"name": "order_id", "type": "utf8"},
//!   {"name": "total_amount", "type": "float64", "nullable": true},
//!   {"name": "timestamp", "type": "timestamp", "unit": "ms", "timezone": "UTC"},
//!   {"name": "items", "type": "list<utf8>"}
//! ]}
//! ```

use super::BatchError;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A schema file's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaSpec {
    /// Columns, in order.
    pub fields: Vec<FieldSpec>,
}

/// One column of a schema file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Column name (the JSON key of the value).
    pub name: String,
    /// Type name: bool, int32, int64, float32, float64, utf8, binary, timestamp, list<utf8>.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Whether the column may be null or absent (default true).
    #[serde(default = "default_nullable")]
    pub nullable: bool,
    /// Timestamp unit: s, ms, us or ns (timestamps only; default ms).
    #[serde(default)]
    pub unit: Option<String>,
    /// Timestamp time zone, e.g. `UTC` (timestamps only).
    #[serde(default)]
    pub timezone: Option<String>,
}

fn default_nullable() -> bool {
    true
}

impl SchemaSpec {
    /// Parses a schema file's JSON text.
    pub fn from_json(text: &str) -> Result<SchemaSpec, BatchError> {
        serde_json::from_str(text).map_err(|e| BatchError::Schema(format!("invalid schema file: {e}")))
    }

    /// The Arrow schema; errors name the offending field.
    pub fn to_arrow(&self) -> Result<SchemaRef, BatchError> {
        let mut fields = Vec::with_capacity(self.fields.len());
        for (index, spec) in self.fields.iter().enumerate() {
            let data_type = spec.data_type().map_err(|reason| {
                BatchError::Schema(format!("fields[{index}] (`{}`): {reason}", spec.name))
            })?;
            fields.push(Field::new(&spec.name, data_type, spec.nullable));
        }
        Ok(Arc::new(Schema::new(fields)))
    }
}

impl FieldSpec {
    fn data_type(&self) -> Result<DataType, String> {
        if self.type_name != "timestamp" && (self.unit.is_some() || self.timezone.is_some()) {
            return Err("`unit` and `timezone` apply to timestamps only".into());
        }
        Ok(match self.type_name.as_str() {
            "bool" | "boolean" => DataType::Boolean,
            "int32" => DataType::Int32,
            "int64" => DataType::Int64,
            "float32" => DataType::Float32,
            "float64" => DataType::Float64,
            "utf8" | "string" => DataType::Utf8,
            "binary" => DataType::Binary,
            "list<utf8>" => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            "timestamp" => {
                let unit = match self.unit.as_deref().unwrap_or("ms") {
                    "s" => TimeUnit::Second,
                    "ms" => TimeUnit::Millisecond,
                    "us" => TimeUnit::Microsecond,
                    "ns" => TimeUnit::Nanosecond,
                    other => return Err(format!("unknown timestamp unit `{other}` (use s, ms, us or ns)")),
                };
                DataType::Timestamp(unit, self.timezone.as_deref().map(Arc::from))
            }
            other => {
                return Err(format!(
                    "unknown type `{other}` (use bool, int32, int64, float32, float64, utf8, binary, timestamp, list<utf8>)"
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_file_maps_to_arrow_and_names_bad_fields() {
        let spec = SchemaSpec::from_json(
            r#"{"fields":[{"name":"a","type":"float64"},{"name":"t","type":"timestamp","unit":"us","timezone":"UTC","nullable":false},{"name":"l","type":"list<utf8>"}]}"#,
        )
        .unwrap();
        let schema = spec.to_arrow().unwrap();
        assert_eq!(schema.field(0).data_type(), &DataType::Float64);
        assert_eq!(schema.field(1).data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
        assert!(!schema.field(1).is_nullable());

        let bad = SchemaSpec::from_json(r#"{"fields":[{"name":"ok","type":"int32"},{"name":"x","type":"decimal"}]}"#).unwrap();
        let error = bad.to_arrow().unwrap_err().to_string();
        assert!(error.contains("fields[1]") && error.contains("`x`") && error.contains("decimal"), "{error}");

        let unknown_key = SchemaSpec::from_json(r#"{"fields":[{"name":"a","typ":"int32"}]}"#).unwrap_err();
        assert!(unknown_key.to_string().contains("typ"), "{unknown_key}");
    }
}
