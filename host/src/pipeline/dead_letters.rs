//! Reading a pipeline's dead-letter topic: peeking at the newest dead
//! letters (API, `weir dlq export`) and the reader behind redrive, which
//! consumes in its own group (`<group_id>.redrive`) so a redrive resumes
//! where the last one stopped, and turns each dead letter back into the
//! record it came from.

use crate::config::PipelineConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::{ClientConfig, Message, Offset, Timestamp, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a reader waits for the first dead letter.
const FIRST_RECORD_TIMEOUT: Duration = Duration::from_secs(5);
/// A reader that then sees nothing new for this long considers the topic
/// read. Readers do not trust high watermarks alone (some Kafka-compatible
/// brokers report them wrong); watermarks only say where to start.
const IDLE_END: Duration = Duration::from_millis(1000);
/// After the ends a peek saw at its start: how long it reads on at most ...
const PAST_END_GRACE: Duration = Duration::from_millis(2000);
/// ... and how long a pause ends it.
const PAST_END_IDLE: Duration = Duration::from_millis(300);

/// Header on dead letters a redrive wrote back: the run that wrote them.
pub const REDRIVE_RUN_HEADER: &str = "weir.redrive.run";

/// Where a pipeline's dead letters are, and how to reach them.
#[derive(Debug, Clone)]
pub struct DeadLetterTopic {
    /// Brokers.
    pub bootstrap_servers: String,
    /// The source's librdkafka properties (security settings apply here too).
    pub properties: BTreeMap<String, String>,
    /// The dead-letter topic.
    pub topic: String,
    /// The pipeline's consumer group.
    pub group_id: String,
}

impl DeadLetterTopic {
    /// The dead-letter topic of `config`.
    pub fn of(config: &PipelineConfig) -> DeadLetterTopic {
        DeadLetterTopic {
            bootstrap_servers: config.source.bootstrap_servers.clone(),
            properties: config.source.properties.clone(),
            topic: config.dead_letter_topic(),
            group_id: config.source.group_id.clone(),
        }
    }

    /// The consumer group that records redrive progress.
    pub fn redrive_group(&self) -> String {
        format!("{}.redrive", self.group_id)
    }

    fn client_config(&self, group: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "100");
        config
    }

    /// Partitions with their (low, high) watermarks.
    fn watermarks<C: rdkafka::consumer::ConsumerContext>(&self, consumer: &impl Consumer<C>) -> Result<Vec<(i32, i64, i64)>, rdkafka::error::KafkaError> {
        let metadata = consumer.fetch_metadata(Some(&self.topic), METADATA_TIMEOUT)?;
        let mut partitions = Vec::new();
        for topic in metadata.topics() {
            if topic.error().is_some() {
                continue; // not created yet: no dead letters
            }
            for partition in topic.partitions() {
                let (low, high) = consumer.fetch_watermarks(&self.topic, partition.id(), METADATA_TIMEOUT)?;
                partitions.push((partition.id(), low, high));
            }
        }
        Ok(partitions)
    }
}

/// One dead letter as the API shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DeadLetterView {
    /// Dead-letter topic.
    pub topic: String,
    /// Partition in the dead-letter topic.
    pub partition: i32,
    /// Offset in the dead-letter topic.
    pub offset: i64,
    /// Timestamp of the dead letter (Unix ms).
    pub timestamp_ms: Option<i64>,
    /// Key (UTF-8, or hex when not text).
    pub key: Option<String>,
    /// The original value (UTF-8, or hex when not text; see `value_encoding`).
    pub value: Option<String>,
    /// `utf8` or `hex`.
    pub value_encoding: String,
    /// Every header, `weir.error.*` and `weir.source.*` included.
    pub headers: BTreeMap<String, String>,
}

impl DeadLetterView {
    fn of(message: &OwnedMessage) -> DeadLetterView {
        let text = |bytes: &[u8]| std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| hex::encode(bytes));
        let value = message.payload().map(text);
        let headers = message
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default())).collect())
            .unwrap_or_default();
        DeadLetterView {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis(),
            key: message.key().map(|k| text(k).unwrap_or_else(|h| h)),
            value_encoding: if matches!(value, Some(Err(_))) { "hex" } else { "utf8" }.to_owned(),
            value: value.map(|v| v.unwrap_or_else(|h| h)),
            headers,
        }
    }

    /// The error kind (`weir.error.kind`).
    pub fn kind(&self) -> Option<&str> {
        self.headers.get("weir.error.kind").map(String::as_str)
    }
}

/// The newest `limit` dead letters (optionally only of `kind`), oldest
/// first. Blocking: call from a blocking thread.
pub fn peek(topic: &DeadLetterTopic, limit: usize, kind: Option<&str>) -> Result<Vec<DeadLetterView>, rdkafka::error::KafkaError> {
    let consumer: BaseConsumer = topic.client_config(&format!("{}.peek", topic.group_id)).create()?;
    let partitions = topic.watermarks(&consumer)?;
    // Without a kind filter the newest `limit` of each partition suffice;
    // with one, read everything (the DLQ is small compared to the source).
    let window = if kind.is_some() { i64::MAX } else { limit as i64 };
    let mut assignment = TopicPartitionList::new();
    // Where each partition ended when the peek started: a DLQ that keeps
    // growing (a live pipeline) is never idle, so stop there too.
    let mut ends = std::collections::BTreeMap::new();
    for (partition, low, high) in partitions {
        if high > low {
            let start = low.max(high.saturating_sub(window));
            assignment.add_partition_offset(&topic.topic, partition, Offset::Offset(start))?;
            ends.insert(partition, high);
        }
    }
    let mut views = Vec::new();
    if assignment.count() == 0 {
        return Ok(views);
    }
    consumer.assign(&assignment)?;
    let mut last_progress = Instant::now();
    let mut idle_limit = FIRST_RECORD_TIMEOUT;
    // Once past the ends seen at the start, read on briefly: some
    // Kafka-compatible brokers report a high watermark behind the records they serve.
    let mut past_ends: Option<Instant> = None;
    while last_progress.elapsed() < idle_limit && past_ends.is_none_or(|at| at.elapsed() < PAST_END_GRACE) {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
        let message = message?.detach();
        last_progress = Instant::now();
        idle_limit = if past_ends.is_some() { PAST_END_IDLE } else { IDLE_END };
        if ends.get(&message.partition()).is_some_and(|end| message.offset() + 1 >= *end) {
            ends.remove(&message.partition());
        }
        let view = DeadLetterView::of(&message);
        if kind.is_none_or(|k| view.kind() == Some(k)) {
            views.push(view);
        }
        if ends.is_empty() && past_ends.is_none() {
            past_ends = Some(Instant::now());
            idle_limit = PAST_END_IDLE;
        }
    }
    views.sort_by_key(|v| (v.timestamp_ms, v.partition, v.offset));
    let skip = views.len().saturating_sub(limit);
    views.drain(..skip);
    Ok(views)
}

/// Reads dead letters for a redrive: from the redrive group's committed
/// position (or the first at/after `since_ms`) until the topic is idle or,
/// per partition, the first letter this redrive wrote back (left, with
/// everything after it, for the next redrive).
pub struct RedriveReader {
    consumer: StreamConsumer,
    topic: String,
    run_id: String,
    /// Partitions still being read.
    pending: std::collections::BTreeSet<i32>,
    /// Whether a first record arrived (then the shorter idle end applies).
    started: bool,
    /// Skip dead letters written before this time (Unix ms).
    since_ms: Option<i64>,
}

impl RedriveReader {
    /// Opens the reader. Blocking (metadata, committed offsets).
    pub fn open(topic: &DeadLetterTopic, since_ms: Option<i64>) -> Result<RedriveReader, rdkafka::error::KafkaError> {
        let consumer: StreamConsumer = topic.client_config(&topic.redrive_group()).create()?;
        let partitions = topic.watermarks(&consumer)?;
        let mut positions = TopicPartitionList::new();
        for (partition, _, _) in &partitions {
            let start = match since_ms {
                Some(ms) => Offset::Offset(ms),
                None => Offset::Invalid,
            };
            positions.add_partition_offset(&topic.topic, *partition, start)?;
        }
        let starts = match since_ms {
            Some(_) => consumer.offsets_for_times(positions, METADATA_TIMEOUT)?,
            None => consumer.committed_offsets(positions, METADATA_TIMEOUT)?,
        };
        let mut assignment = TopicPartitionList::new();
        let mut pending = std::collections::BTreeSet::new();
        for (partition, low, high) in partitions {
            // A broker that cannot look up times answers End: start at the
            // beginning then, and let the timestamp filter in next_batch skip.
            let start = match starts.find_partition(&topic.topic, partition).map(|e| e.offset()) {
                Some(Offset::Offset(offset)) => offset.max(low),
                _ => low,
            };
            let _ = high;
            assignment.add_partition_offset(&topic.topic, partition, Offset::Offset(start))?;
            pending.insert(partition);
        }
        if assignment.count() > 0 {
            consumer.assign(&assignment)?;
        }
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let run_id = format!("{}-{}-{nanos}", topic.redrive_group(), std::process::id());
        Ok(RedriveReader { consumer, topic: topic.topic.clone(), run_id, pending, started: false, since_ms })
    }

    /// This run's id (the value of [`REDRIVE_RUN_HEADER`] on letters it writes back).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Up to `max` dead letters; empty when everything up to the end was read.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<OwnedMessage>, rdkafka::error::KafkaError> {
        let mut batch = Vec::new();
        while batch.len() < max && !self.pending.is_empty() {
            let idle = if self.started { IDLE_END } else { FIRST_RECORD_TIMEOUT };
            let message = match tokio::time::timeout(idle, self.consumer.recv()).await {
                Ok(message) => message?.detach(),
                Err(_) => {
                    self.pending.clear();
                    break;
                }
            };
            self.started = true;
            if !self.pending.contains(&message.partition()) {
                continue;
            }
            let ours = message.headers().is_some_and(|h| h.iter().any(|h| h.key == REDRIVE_RUN_HEADER && h.value == Some(self.run_id.as_bytes())));
            if ours {
                self.pending.remove(&message.partition());
                continue;
            }
            let too_old = self.since_ms.is_some_and(|since| message.timestamp().to_millis().is_some_and(|t| t < since));
            if !too_old {
                batch.push(message);
            }
        }
        Ok(batch)
    }

    /// Records progress: everything in `batch` was redriven.
    pub fn commit(&self, batch: &[OwnedMessage]) -> Result<(), rdkafka::error::KafkaError> {
        let list = self.next_offsets(batch)?;
        if list.count() == 0 {
            return Ok(());
        }
        self.consumer.commit(&list, CommitMode::Sync)
    }

    /// The redrive group's metadata (to commit progress in a transaction).
    pub fn group_metadata(&self) -> Option<rdkafka::consumer::ConsumerGroupMetadata> {
        self.consumer.group_metadata()
    }

    /// The offsets to commit once `batch` was redriven.
    pub fn next_offsets(&self, batch: &[OwnedMessage]) -> Result<TopicPartitionList, rdkafka::error::KafkaError> {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for message in batch {
            let entry = next.entry(message.partition()).or_default();
            *entry = (*entry).max(message.offset() + 1);
        }
        let mut list = TopicPartitionList::new();
        for (partition, offset) in next {
            list.add_partition_offset(&self.topic, partition, Offset::Offset(offset))?;
        }
        Ok(list)
    }
}

/// The record a dead letter came from (original topic, partition, offset,
/// timestamp, key, value and headers, minus weir's error headers), and how
/// many attempts it already had.
pub fn original_record(dead: &OwnedMessage) -> (OwnedMessage, u32) {
    let mut fields: BTreeMap<&str, String> = BTreeMap::new();
    let mut headers = OwnedHeaders::new();
    if let Some(original) = dead.headers() {
        for header in original.iter() {
            let ours = header.key.starts_with("weir.error.")
                || header.key.starts_with("weir.source.")
                || header.key == "weir.attempts"
                || header.key == REDRIVE_RUN_HEADER
                || header.key.starts_with("__connect.errors.");
            if ours {
                fields.insert(header.key, header.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default());
            } else {
                headers = headers.insert(Header { key: header.key, value: header.value });
            }
        }
    }
    let field = |key: &str| fields.get(key).and_then(|v| v.parse::<i64>().ok());
    let topic = fields.get("weir.source.topic").filter(|t| !t.is_empty()).cloned().unwrap_or_else(|| dead.topic().to_owned());
    let partition = field("weir.source.partition").map_or(dead.partition(), |p| p as i32);
    let offset = field("weir.source.offset").unwrap_or(dead.offset());
    let timestamp = field("weir.source.timestamp").map_or(dead.timestamp(), Timestamp::CreateTime);
    let attempts = field("weir.attempts").map_or(1, |a| a.max(0) as u32);
    let record = OwnedMessage::new(
        dead.payload().map(<[u8]>::to_vec),
        dead.key().map(<[u8]>::to_vec),
        topic,
        timestamp,
        partition,
        offset,
        if headers.count() > 0 { Some(headers) } else { None },
    );
    (record, attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_turns_back_into_its_source_record() {
        let headers = OwnedHeaders::new()
            .insert(Header { key: "trace-id", value: Some("abc") })
            .insert(Header { key: "weir.error.kind", value: Some("panic") })
            .insert(Header { key: "weir.source.topic", value: Some("orders") })
            .insert(Header { key: "weir.source.partition", value: Some("3") })
            .insert(Header { key: "weir.source.offset", value: Some("42") })
            .insert(Header { key: "weir.source.timestamp", value: Some("1700000000000") })
            .insert(Header { key: "weir.attempts", value: Some("2") });
        let dead = OwnedMessage::new(Some(b"{}".to_vec()), Some(b"k".to_vec()), "orders.dlq".into(), Timestamp::CreateTime(1), 0, 7, Some(headers));
        let (record, attempts) = original_record(&dead);
        assert_eq!(attempts, 2);
        assert_eq!((record.topic(), record.partition(), record.offset()), ("orders", 3, 42));
        assert_eq!(record.timestamp().to_millis(), Some(1_700_000_000_000));
        assert_eq!(record.key(), Some(&b"k"[..]));
        let kept: Vec<&str> = record.headers().unwrap().iter().map(|h| h.key).collect();
        assert_eq!(kept, ["trace-id"]);
    }
}
