//! Output records: rows -> Kafka records (JSON per row, or one Arrow IPC
//! stream per batch), keys from a column or the source record, headers
//! carried over from the source record.

use crate::batch::{BatchError, write_json_lines};
use crate::config::{Encoding, FormatConfig, OutputConfig, SourceConfig};
use crate::engine::OperatorKind;
use arrow_array::RecordBatch;
use bytes::Bytes;
use crate::delivery::dead_letter::{DeadLetter, record_size};
use crate::delivery::message_size::MessageLimits;
use rdkafka::ClientConfig;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::FutureProducer;

/// One record to produce, with the source record it came from (if any).
#[derive(Debug, Clone)]
pub struct OutRecord {
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value (a slice of the batch's encoded output: no copy per record).
    pub value: Bytes,
    /// Index of the source record in the batch (headers are copied from it).
    pub source: Option<usize>,
}

/// Encodes a result batch on the calling thread; `sources` maps each row
/// to its source record.
pub fn encode(
    batch: &RecordBatch,
    sources: Option<&[usize]>,
    output: &OutputConfig,
    source_key: &dyn Fn(usize) -> Option<Vec<u8>>,
) -> Result<Vec<OutRecord>, BatchError> {
    encode_in_parts(batch, sources, output, source_key, 1)
}

/// [`encode`], with a large batch's JSON written on every core (what a
/// pipeline's worker does: its decoder splits large batches the same way).
pub fn encode_on_every_core(
    batch: &RecordBatch,
    sources: Option<&[usize]>,
    output: &OutputConfig,
    source_key: &dyn Fn(usize) -> Option<Vec<u8>>,
) -> Result<Vec<OutRecord>, BatchError> {
    let parts = if batch.num_rows() >= super::decode::PARALLEL_MIN_RECORDS { super::cores() } else { 1 };
    encode_in_parts(batch, sources, output, source_key, parts)
}

fn encode_in_parts(
    batch: &RecordBatch,
    sources: Option<&[usize]>,
    output: &OutputConfig,
    source_key: &dyn Fn(usize) -> Option<Vec<u8>>,
    parts: usize,
) -> Result<Vec<OutRecord>, BatchError> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    match output.encoding {
        Encoding::ArrowIpc => {
            let mut value = Vec::new();
            let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut value, &batch.schema())?;
            writer.write(batch)?;
            writer.finish()?;
            drop(writer);
            Ok(vec![OutRecord { key: None, value: value.into(), source: None }])
        }
        Encoding::Json => {
            let keys = OutputKeys::new(batch, output)?;
            let mut records = Vec::with_capacity(batch.num_rows());
            let mut row = 0;
            for text in json_lines_in_parts(batch, 128, parts)? {
                let mut start = 0;
                for end in memchr::memchr_iter(b'\n', &text) {
                    let source = sources.map(|s| s[row]);
                    let key = keys.key(row, || source.and_then(source_key));
                    records.push(OutRecord { key, value: text.slice(start..end), source });
                    start = end + 1;
                    row += 1;
                }
            }
            Ok(records)
        }
    }
}

/// `batch` as JSON lines, in row order, in `parts` buffers written on a
/// thread each (one buffer, on the calling thread, for `parts` <= 1).
/// `row_bytes` is the expected size of a line.
fn json_lines_in_parts(batch: &RecordBatch, row_bytes: usize, parts: usize) -> Result<Vec<Bytes>, BatchError> {
    let write = |part: &RecordBatch| -> Result<Bytes, BatchError> {
        let mut text = Vec::with_capacity(part.num_rows() * row_bytes);
        write_json_lines(part, &mut text)?;
        Ok(text.into())
    };
    let rows = batch.num_rows();
    if parts <= 1 || rows < 2 {
        return Ok(vec![write(batch)?]);
    }
    let part = rows.div_ceil(parts);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..rows)
            .step_by(part)
            .map(|start| {
                let slice = batch.slice(start, part.min(rows - start));
                scope.spawn(move || write(&slice))
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("encoder thread panicked")).collect()
    })
}

/// How a pipeline's result rows become output record values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emit {
    /// Encode each result row (JSON or Arrow IPC per `output.encoding`).
    Encode,
    /// Forward each row's source record byte for byte: a chain of filters
    /// (its rows are the source records, so the original bytes are exact:
    /// fields outside the schema and the producer's formatting survive).
    Forward,
    /// The source record with the fields the maps added appended
    /// (`decode = "read"`, a chain of filters and maps that all declare
    /// `reads`): the unread fields are never decoded, so they cannot be
    /// re-encoded. `schema_fields` are every field of the format's schema: a
    /// map returning one of them would leave the source's old value beside
    /// the new one, so such a batch fails instead.
    Splice {
        /// Names of the schema's fields.
        schema_fields: Vec<String>,
    },
}

impl Emit {
    /// The mode for a chain: JSON in, JSON out, no sink, and only filters
    /// forward; filters and maps splice when `splice` (decode = "read" with
    /// every operator declaring `reads`); anything else encodes.
    pub fn for_chain(format: &FormatConfig, output: Option<&OutputConfig>, kinds: &[OperatorKind], sink: bool, splice: Option<Vec<String>>) -> Emit {
        let json = matches!(format, FormatConfig::Json { .. }) && output.is_some_and(|o| o.encoding == Encoding::Json);
        if !json || sink {
            return Emit::Encode;
        }
        if kinds.iter().all(|k| *k == OperatorKind::Filter) {
            return Emit::Forward;
        }
        match splice {
            Some(schema_fields) if kinds.iter().all(|k| matches!(k, OperatorKind::Filter | OperatorKind::Map)) => Emit::Splice { schema_fields },
            _ => Emit::Encode,
        }
    }
}

/// A map returned a column the source record may already hold.
#[derive(Debug, thiserror::Error)]
#[error(
    "decode = \"read\": a map returned column `{0}`, which the schema also has; the source record's own `{0}` would stay beside it. \
     Use decode = \"schema\" (the rows are then re-encoded) or give the column another name"
)]
pub struct SpliceConflict(pub String);

/// Output records for rows that are their source records with `added`
/// columns (see [`Emit::Splice`]): the source value with those fields
/// appended to the object, keyed like [`encode`] keys them.
pub fn splice<'a>(
    batch: &RecordBatch,
    sources: &[usize],
    added: &[String],
    output: &OutputConfig,
    source_key: &dyn Fn(usize) -> Option<Vec<u8>>,
    source_value: &dyn Fn(usize) -> &'a [u8],
) -> Result<Vec<OutRecord>, BatchError> {
    let indices: Vec<usize> = added.iter().map(|name| batch.schema().index_of(name)).collect::<Result<_, _>>()?;
    let fields = batch.project(&indices)?;
    let mut text = Vec::with_capacity(batch.num_rows() * 32);
    write_json_lines(&fields, &mut text)?;
    let keys = OutputKeys::new(batch, output)?;
    let mut records = Vec::with_capacity(sources.len());
    let mut start = 0;
    for (row, end) in memchr::memchr_iter(b'\n', &text).enumerate() {
        // `{"a":1,"b":2}` -> `"a":1,"b":2`
        let members = &text[start + 1..end - 1];
        start = end + 1;
        let source = sources[row];
        let value = source_value(source);
        let close = value.iter().rposition(|b| !b.is_ascii_whitespace()).filter(|&i| value[i] == b'}').ok_or(BatchError::Json("source record is not a JSON object".into()))?;
        let empty = value[..close].iter().rposition(|b| !b.is_ascii_whitespace()).is_some_and(|i| value[i] == b'{');
        let mut spliced = Vec::with_capacity(close + members.len() + 2);
        spliced.extend_from_slice(&value[..close]);
        if !empty && !members.is_empty() {
            spliced.push(b',');
        }
        spliced.extend_from_slice(members);
        spliced.push(b'}');
        let key = keys.key(row, || source_key(source));
        records.push(OutRecord { key, value: spliced.into(), source: Some(source) });
    }
    Ok(records)
}

/// Output records for rows that are their source records unchanged (see
/// [`Emit::Forward`]): each row's source value byte for byte, keyed like
/// [`encode`] keys them.
pub fn forward(
    batch: &RecordBatch,
    sources: &[usize],
    output: &OutputConfig,
    source_key: &dyn Fn(usize) -> Option<Vec<u8>>,
    source_value: &dyn Fn(usize) -> Bytes,
) -> Result<Vec<OutRecord>, BatchError> {
    let keys = OutputKeys::new(batch, output)?;
    Ok(sources
        .iter()
        .enumerate()
        .map(|(row, &source)| OutRecord {
            key: keys.key(row, || source_key(source)),
            value: source_value(source),
            source: Some(source),
        })
        .collect())
}

/// Output record keys: from `output.key_column` when set, else the source record's.
struct OutputKeys(Option<Vec<Option<Vec<u8>>>>);

impl OutputKeys {
    fn new(batch: &RecordBatch, output: &OutputConfig) -> Result<OutputKeys, BatchError> {
        Ok(OutputKeys(output.key_column.as_deref().map(|column| column_keys(batch, column)).transpose()?))
    }

    /// The key of result row `row`; `source_key` when no key column is set.
    fn key(&self, row: usize, source_key: impl FnOnce() -> Option<Vec<u8>>) -> Option<Vec<u8>> {
        match &self.0 {
            Some(keys) => keys[row].clone(),
            None => source_key(),
        }
    }
}

/// The key column rendered as bytes (strings as they are, others as text).
fn column_keys(batch: &RecordBatch, column: &str) -> Result<Vec<Option<Vec<u8>>>, BatchError> {
    let array = batch
        .column_by_name(column)
        .ok_or_else(|| BatchError::MissingColumn(column.to_owned()))?;
    if let Some(strings) = array.as_any().downcast_ref::<arrow_array::StringArray>() {
        return Ok(strings.iter().map(|v| v.map(|s| s.as_bytes().to_vec())).collect());
    }
    if let Some(binary) = array.as_any().downcast_ref::<arrow_array::BinaryArray>() {
        return Ok(binary.iter().map(|v| v.map(<[u8]>::to_vec)).collect());
    }
    let formatter = arrow_cast::display::ArrayFormatter::try_new(array.as_ref(), &Default::default())?;
    Ok((0..array.len())
        .map(|row| array.is_valid(row).then(|| formatter.value(row).to_string().into_bytes()))
        .collect())
}

use arrow_array::Array;

/// A producer for outputs and dead letters: acks=all, idempotent; with a
/// `transactional_id`, transactional (the caller initialises transactions);
/// with `max_message_bytes`, room for records that large (state checkpoints).
pub fn create_producer(
    source: &SourceConfig,
    output: Option<&OutputConfig>,
    transactional: Option<(&str, u64)>,
    max_message_bytes: Option<u64>,
) -> Result<FutureProducer, rdkafka::error::KafkaError> {
    producer_config(source, output, transactional, max_message_bytes).create()
}

/// The record size limits of the producer [`create_producer`] makes from
/// the same arguments (its `message.max.bytes`, lowered per topic to the
/// broker's `max.message.bytes`).
pub fn message_limits(source: &SourceConfig, output: Option<&OutputConfig>, max_message_bytes: Option<u64>) -> MessageLimits {
    MessageLimits::new(&producer_config(source, output, None, max_message_bytes))
}

fn producer_config(
    source: &SourceConfig,
    output: Option<&OutputConfig>,
    transactional: Option<(&str, u64)>,
    max_message_bytes: Option<u64>,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    let servers = output.and_then(|o| o.bootstrap_servers.clone()).unwrap_or_else(|| source.bootstrap_servers.clone());
    config
        .set("bootstrap.servers", servers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .set("queue.buffering.max.kbytes", "65536");
    if let Some(bytes) = max_message_bytes {
        config.set("message.max.bytes", bytes.to_string());
    }
    if let Some(output) = output {
        for (key, value) in &output.properties {
            config.set(key, value);
        }
    }
    if let Some((id, timeout_ms)) = transactional {
        config
            .set("transactional.id", id)
            .set("transaction.timeout.ms", timeout_ms.to_string())
            // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
            .set("message.timeout.ms", timeout_ms.min(30_000).to_string());
    }
    config
}

/// An output record that was not produced: why (`kind`, a dead-letter kind:
/// `delivery` after retries, `too-large` for a record over the topic's
/// limit) and the last error.
#[derive(Debug, Clone)]
pub struct Undelivered {
    /// Dead-letter kind.
    pub kind: &'static str,
    /// The producer's last error.
    pub message: String,
}

/// Dead-letter kind of an output record larger than its topic takes.
pub const TOO_LARGE: &str = "too-large";

impl Undelivered {
    /// A record of `size` bytes over the topic's `max` bytes.
    pub fn too_large(size: usize, max: usize) -> Undelivered {
        Undelivered { kind: TOO_LARGE, message: format!("output record of {size} bytes exceeds the topic's limit of {max} bytes") }
    }

    /// The dead letter of the record's source.
    pub fn letter(&self) -> DeadLetter {
        DeadLetter::host(self.kind, self.message.clone())
    }
}

/// Splits `pending` output records into those that fit under `max` bytes
/// (returned) and those that do not (appended to `failed`).
pub fn drop_oversize(
    out: &[OutRecord],
    pending: Vec<usize>,
    max: usize,
    headers_of: impl Fn(&OutRecord) -> Option<OwnedHeaders>,
    failed: &mut Vec<(usize, Undelivered)>,
) -> Vec<usize> {
    pending
        .into_iter()
        .filter(|&i| {
            let record = &out[i];
            let size = record_size(record.key.as_deref(), Some(&record.value[..]), headers_of(record).as_ref());
            if size > max {
                failed.push((i, Undelivered::too_large(size, max)));
                return false;
            }
            true
        })
        .collect()
}

/// An aggregate's result record too large for its topic: it has no source
/// record to dead-letter, so it is logged and dropped (the pipeline goes on).
pub fn drop_sourceless(pipeline: &str, error: &Undelivered) {
    tracing::error!(pipeline, kind = error.kind, "{}; the aggregate result is dropped (it has no source record to dead-letter)", error.message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use std::sync::Arc;

    fn json_output(key_column: Option<&str>) -> OutputConfig {
        OutputConfig {
            topic: "out".into(),
            key_column: key_column.map(str::to_owned),
            encoding: Encoding::Json,
            bootstrap_servers: None,
            properties: Default::default(),
            plugin_version_header: false,
        }
    }

    #[test]
    fn a_large_batch_encoded_on_every_core_matches_one_written_whole() {
        let rows = 5_001;
        let ids = StringArray::from_iter((0..rows).map(|i| (i % 7 != 3).then(|| format!("id-{i} \"q\""))));
        let amounts = Int64Array::from_iter((0..rows).map(|i| (i % 5 != 0).then_some(i as i64 * 3)));
        let batch = RecordBatch::try_from_iter([("id", Arc::new(ids) as arrow_array::ArrayRef), ("amount", Arc::new(amounts) as _)]).unwrap();
        let mut whole = Vec::new();
        write_json_lines(&batch, &mut whole).unwrap();
        for parts in [2, 3, 16] {
            let written = json_lines_in_parts(&batch, 64, parts).unwrap();
            assert_eq!(written.len(), parts);
            assert_eq!(written.concat(), whole);
        }
        let sources: Vec<usize> = (0..rows).map(|i| i * 2).collect();
        let records = encode_in_parts(&batch, Some(&sources), &json_output(Some("id")), &|_| None, 3).unwrap();
        let lines: Vec<&[u8]> = whole.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        assert_eq!(records.len(), rows);
        for (row, record) in records.iter().enumerate() {
            assert_eq!(&record.value[..], lines[row], "row {row}");
            assert_eq!(record.source, Some(row * 2));
            assert_eq!(record.key, (row % 7 != 3).then(|| format!("id-{row} \"q\"").into_bytes()));
        }
    }
}
