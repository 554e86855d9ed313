//! Kafka records -> Arrow batch, per the pipeline's format. Records that do
//! not decode are reported individually; the rest of the batch goes on.

use crate::batch::{AvroDecoder, BatchError, JsonDecoder, SchemaSpec};
use crate::config::{DecodeScope, FormatConfig, OutputConfig};
use crate::engine::OperatorKind;
use crate::operator::Operator;
use crate::pipeline::output::Emit;
use arrow_array::builder::{BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::Message;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Batches smaller than this are decoded (and their output written) on one thread.
pub(super) const PARALLEL_MIN_RECORDS: usize = 2048;

/// Decoded records: a batch, the record behind each row, and the failures.
#[derive(Debug)]
pub struct Decoded {
    /// The records that decoded, as one batch.
    pub batch: RecordBatch,
    /// Index (into the input records) of each row.
    pub record_of_row: Vec<usize>,
    /// Records that did not decode, with the reason.
    pub failed: Vec<(usize, String)>,
    /// Time spent decoding, summed over the decoder's threads.
    pub busy: Duration,
}

/// Turns records into batches.
#[derive(Debug, Clone)]
pub enum RecordDecoder {
    /// JSON objects with a schema.
    Json(JsonDecoder),
    /// Raw records as columns.
    Raw,
    /// Avro datums.
    Avro(AvroDecoder),
}

impl RecordDecoder {
    /// The decoder for a format (reads the schema file).
    pub fn new(format: &FormatConfig) -> Result<RecordDecoder, BatchError> {
        Ok(match format {
            FormatConfig::Json { schema, .. } => {
                let text = std::fs::read_to_string(schema)
                    .map_err(|e| BatchError::Schema(format!("{}: {e}", schema.display())))?;
                RecordDecoder::Json(JsonDecoder::new(SchemaSpec::from_json(&text)?.to_arrow()?))
            }
            FormatConfig::Raw => RecordDecoder::Raw,
            FormatConfig::Avro { schema, confluent_framing, schema_id } => {
                let text = std::fs::read_to_string(schema)
                    .map_err(|e| BatchError::Schema(format!("{}: {e}", schema.display())))?;
                RecordDecoder::Avro(AvroDecoder::new(&text, *confluent_framing)?.with_schema_id(*schema_id))
            }
        })
    }

    /// The decoder and output mode for a pipeline's chain. When every
    /// operator declares `reads` and no step needs the source rows whole (a
    /// chain of filters, or of filters and maps under `decode = "read"`,
    /// whose output is the source record forwarded or with the maps' fields
    /// spliced in, with no sink; or a chain ending in an aggregate), the
    /// batches hold only the schema fields the operators read plus
    /// `host_columns` (event time, output key). With `decode = "read"` only
    /// those fields are decoded; with `decode = "schema"` every field is
    /// still checked (a record that does not fit the schema is dead-lettered)
    /// but only those are built. The whole schema otherwise.
    pub fn for_chain(
        format: &FormatConfig,
        output: Option<&OutputConfig>,
        operators: &mut [Operator],
        sink: bool,
        host_columns: &[&str],
    ) -> Result<(RecordDecoder, Emit), BatchError> {
        let decoder = RecordDecoder::new(format)?;
        let kinds: Vec<OperatorKind> = operators.iter().map(Operator::kind).collect();
        let (RecordDecoder::Json(json), FormatConfig::Json { decode: scope, .. }) = (&decoder, format) else {
            return Ok((decoder, Emit::for_chain(format, output, &kinds, sink, None)));
        };
        let mut read: std::collections::BTreeSet<String> = host_columns.iter().map(|c| c.to_string()).collect();
        let mut every_operator_reads = true;
        for operator in operators.iter_mut() {
            match operator.reads() {
                Some(columns) => read.extend(columns),
                None => every_operator_reads = false,
            }
        }
        let schema = json.schema().clone();
        let schema_fields: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let splice = (*scope == DecodeScope::Read && every_operator_reads).then(|| schema_fields.clone());
        let emit = Emit::for_chain(format, output, &kinds, sink, splice);
        let ends_in_aggregate = kinds.last() == Some(&OperatorKind::Aggregate);
        let whole_rows_unused = ends_in_aggregate || matches!(emit, Emit::Forward | Emit::Splice { .. });
        // Columns a map adds are read by later operators but are not in the schema.
        let indices: Vec<usize> = (0..schema_fields.len()).filter(|&i| read.contains(&schema_fields[i])).collect();
        if !every_operator_reads || !whole_rows_unused || indices.is_empty() || indices.len() == schema_fields.len() {
            return Ok((decoder, emit));
        }
        let projected = match scope {
            DecodeScope::Read => JsonDecoder::new(Arc::new(schema.project(&indices)?)),
            DecodeScope::Schema => JsonDecoder::checking(schema, &indices)?,
        };
        Ok((RecordDecoder::Json(projected), emit))
    }

    /// Decodes `records`, splitting large batches across the machine's
    /// cores (JSON decoding dominates a pipeline's CPU time).
    pub fn decode(&self, records: &[OwnedMessage]) -> Result<Decoded, BatchError> {
        let threads = super::cores();
        if threads < 2 || records.len() < PARALLEL_MIN_RECORDS || matches!(self, RecordDecoder::Raw) {
            return self.decode_serial(records);
        }
        let chunk = records.len().div_ceil(threads);
        let parts: Vec<Result<Decoded, BatchError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = records.chunks(chunk).map(|part| scope.spawn(move || self.decode_serial(part))).collect();
            handles.into_iter().map(|h| h.join().expect("decoder thread panicked")).collect()
        });
        let mut batches = Vec::with_capacity(parts.len());
        let mut record_of_row = Vec::with_capacity(records.len());
        let mut failed = Vec::new();
        let mut busy = Duration::ZERO;
        for (index, part) in parts.into_iter().enumerate() {
            let part = part?;
            let base = index * chunk;
            record_of_row.extend(part.record_of_row.into_iter().map(|r| r + base));
            failed.extend(part.failed.into_iter().map(|(r, reason)| (r + base, reason)));
            busy += part.busy;
            batches.push(part.batch);
        }
        let schema = batches[0].schema();
        let batch = arrow_select::concat::concat_batches(&schema, &batches)?;
        Ok(Decoded { batch, record_of_row, failed, busy })
    }

    /// Decodes `records` on the calling thread alone.
    pub fn decode_serial(&self, records: &[OwnedMessage]) -> Result<Decoded, BatchError> {
        let started = Instant::now();
        let mut decoded = self.decode_chunk(records)?;
        decoded.busy = started.elapsed();
        Ok(decoded)
    }

    fn decode_chunk(&self, records: &[OwnedMessage]) -> Result<Decoded, BatchError> {
        match self {
            RecordDecoder::Json(decoder) => {
                let mut failed = Vec::new();
                let mut lines = Vec::with_capacity(records.len());
                let mut line_records = Vec::with_capacity(records.len());
                for (index, record) in records.iter().enumerate() {
                    match record.payload() {
                        Some(value) if !value.is_empty() => {
                            lines.push(value);
                            line_records.push(index);
                        }
                        _ => failed.push((index, "empty record value".to_owned())),
                    }
                }
                let decoded = decoder.decode_lines(&lines)?;
                failed.extend(decoded.rejected.into_iter().map(|r| (line_records[r.index], r.reason)));
                failed.sort_by_key(|(index, _)| *index);
                let record_of_row = decoded.line_of_row.into_iter().map(|line| line_records[line]).collect();
                Ok(Decoded { batch: decoded.batch, record_of_row, failed, busy: Duration::ZERO })
            }
            RecordDecoder::Avro(avro) => {
                let mut failed = Vec::new();
                let mut lines = Vec::with_capacity(records.len());
                let mut line_records = Vec::with_capacity(records.len());
                for (index, record) in records.iter().enumerate() {
                    match record.payload().map(|value| avro.to_json_line(value)) {
                        Some(Ok(line)) => {
                            lines.push(line);
                            line_records.push(index);
                        }
                        Some(Err(reason)) => failed.push((index, reason)),
                        None => failed.push((index, "empty record value".to_owned())),
                    }
                }
                let slices: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
                let decoded = avro.json().decode_lines(&slices)?;
                failed.extend(decoded.rejected.into_iter().map(|r| (line_records[r.index], r.reason)));
                failed.sort_by_key(|(index, _)| *index);
                let record_of_row = decoded.line_of_row.into_iter().map(|line| line_records[line]).collect();
                Ok(Decoded { batch: decoded.batch, record_of_row, failed, busy: Duration::ZERO })
            }
            RecordDecoder::Raw => Ok(Decoded { batch: raw_batch(records)?, record_of_row: (0..records.len()).collect(), failed: Vec::new(), busy: Duration::ZERO }),
        }
    }
}

/// Columns: key, value (binary), topic (utf8), partition (int32), offset
/// (int64), timestamp (ms, UTC), headers (list of `name=value`, lossy UTF-8).
fn raw_batch(records: &[OwnedMessage]) -> Result<RecordBatch, BatchError> {
    let mut key = BinaryBuilder::new();
    let mut value = BinaryBuilder::new();
    let mut topic = StringBuilder::new();
    let mut partition = Int32Builder::new();
    let mut offset = Int64Builder::new();
    let mut timestamp = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut headers = ListBuilder::new(StringBuilder::new());
    for record in records {
        key.append_option(record.key());
        value.append_option(record.payload());
        topic.append_value(record.topic());
        partition.append_value(record.partition());
        offset.append_value(record.offset());
        timestamp.append_option(record.timestamp().to_millis());
        if let Some(list) = record.headers() {
            for header in list.iter() {
                let value = header.value.map(String::from_utf8_lossy).unwrap_or_default();
                headers.values().append_value(format!("{}={}", header.key, value));
            }
        }
        headers.append(true);
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("key", Arc::new(key.finish())),
        ("value", Arc::new(value.finish())),
        ("topic", Arc::new(topic.finish())),
        ("partition", Arc::new(partition.finish())),
        ("offset", Arc::new(offset.finish())),
        ("timestamp", Arc::new(timestamp.finish())),
        ("headers", Arc::new(headers.finish())),
    ];
    Ok(RecordBatch::try_from_iter(columns)?)
}
