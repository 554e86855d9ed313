//! Record batches: schema files, JSON lines <-> Arrow, and Arrow <-> the WIT
//! batch layout that crosses into guests.

mod avro;
mod json;
mod json_scan;
mod schema;
mod wit;

pub use avro::AvroDecoder;
pub use json::{DecodedLines, JsonDecoder, RejectedLine, write_json_lines};
pub use schema::{FieldSpec, SchemaSpec};
pub use wit::{GuestBatch, batch_from_guest, guest_batch_bytes, selection_to_mask};

/// Errors converting batches.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A column type that the WIT contract cannot carry.
    #[error("column `{column}` has type {data_type}, which operators cannot receive (supported: bool, int32, int64, float32, float64, utf8, binary, timestamp, list<utf8>)")]
    UnsupportedType {
        /// Column name.
        column: String,
        /// Arrow type, printed.
        data_type: String,
    },
    /// A column the operator reads is missing from the batch.
    #[error("the operator reads column `{0}`, which the batch does not have")]
    MissingColumn(String),
    /// A guest-produced batch is malformed (lengths, offsets, UTF-8...).
    #[error("invalid batch from guest: {0}")]
    InvalidGuestBatch(String),
    /// A schema file is invalid.
    #[error("{0}")]
    Schema(String),
    /// JSON decoding or encoding failed.
    #[error("JSON: {0}")]
    Json(String),
    /// An Arrow kernel failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}
