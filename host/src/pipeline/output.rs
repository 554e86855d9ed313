//! Output records: rows -> Kafka records (JSON per row, or one Arrow IPC
//! stream per batch), keys from a column or the source record, headers
//! carried over from the source record.

use crate::batch::{BatchError, write_json_lines};
use crate::config::{Encoding, FormatConfig, OutputConfig, SourceConfig};
use crate::engine::OperatorKind;
use arrow_array::RecordBatch;
use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;

/// One record to produce, with the source record it came from (if any).
#[derive(Debug, Clone)]
pub struct OutRecord {
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value.
    pub value: Vec<u8>,
    /// Index of the source record in the batch (headers are copied from it).
    pub source: Option<usize>,
}

/// Encodes a result batch; `sources` maps each row to its source record.
pub fn encode(
    batch: &RecordBatch,
    sources: Option<&[usize]>,
    output: &OutputConfig,
    source_key: &dyn Fn(usize) -> Option<Vec<u8>>,
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
            Ok(vec![OutRecord { key: None, value, source: None }])
        }
        Encoding::Json => {
            let mut text = Vec::with_capacity(batch.num_rows() * 128);
            write_json_lines(batch, &mut text)?;
            let keys = match &output.key_column {
                Some(column) => Some(column_keys(batch, column)?),
                None => None,
            };
            let mut records = Vec::with_capacity(batch.num_rows());
            for (row, line) in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
                let source = sources.map(|s| s[row]);
                let key = match &keys {
                    Some(keys) => keys[row].clone(),
                    None => source.and_then(source_key),
                };
                records.push(OutRecord { key, value: line.to_vec(), source });
            }
            Ok(records)
        }
    }
}

/// Whether a pipeline forwards its source records unchanged instead of
/// encoding result rows: JSON in, JSON out and only filters in the chain
/// (their rows are the source records, so the original bytes are exact:
/// fields outside the schema and the producer's formatting survive).
pub fn forwards_sources(format: &FormatConfig, output: &OutputConfig, kinds: impl IntoIterator<Item = OperatorKind>) -> bool {
    matches!(format, FormatConfig::Json { .. })
        && output.encoding == Encoding::Json
        && kinds.into_iter().all(|kind| matches!(kind, OperatorKind::Filter | OperatorKind::Sink))
}

/// Output records for rows that are their source records unchanged (see
/// [`forwards_sources`]): each row's source value byte for byte, keyed like
/// [`encode`] keys them.
pub fn forward(
    batch: &RecordBatch,
    sources: &[usize],
    output: &OutputConfig,
    source_key: &dyn Fn(usize) -> Option<Vec<u8>>,
    source_value: &dyn Fn(usize) -> Vec<u8>,
) -> Result<Vec<OutRecord>, BatchError> {
    let keys = match &output.key_column {
        Some(column) => Some(column_keys(batch, column)?),
        None => None,
    };
    Ok(sources
        .iter()
        .enumerate()
        .map(|(row, &source)| OutRecord {
            key: match &keys {
                Some(keys) => keys[row].clone(),
                None => source_key(source),
            },
            value: source_value(source),
            source: Some(source),
        })
        .collect())
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
    config.create()
}
