//! Durable aggregate state. A checkpoint holds, for one task (an input
//! partition number, across the pipeline's co-partitioned source topics),
//! every aggregate operator's snapshot, the next offset of each of the task's
//! partitions and their event-time progress. Checkpoints are records of a
//! compacted topic keyed `task/<n>`, so the newest one per task survives
//! compaction; see docs/state.md for the protocol around them. Keyed
//! aggregates (contract 0.1.1) keep their entries in records of their own
//! next to the checkpoint ([`super::changelog`]).

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use super::changelog::{Collected, KeyedLog, KeyedWrite, parse_entry_key};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Leading bytes of every checkpoint value (format version 1).
const MAGIC: &[u8; 8] = b"WEIRCKP1";

/// How long reading the state topic to its end may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Why state could not be stored or loaded.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A Kafka call on the state topic failed.
    #[error("state topic `{topic}`: {source}")]
    Kafka {
        /// The state topic.
        topic: String,
        /// The client error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A record of the state topic is not a checkpoint weir can read.
    #[error("state topic `{topic}`, key `{key}`: {reason}")]
    Corrupt {
        /// The state topic.
        topic: String,
        /// The record key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The topic's metadata could not be read.
    #[error("state topic `{topic}`: {reason}")]
    Probe {
        /// The state topic.
        topic: String,
        /// What failed.
        reason: String,
    },
    /// Reading the topic to its end took too long.
    #[error("state topic `{topic}`: not read to its end within {timeout:?}")]
    Timeout {
        /// The state topic.
        topic: String,
        /// The limit.
        timeout: Duration,
    },
}

/// One operator's snapshot inside a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorState {
    /// Operator (plugin) name in the chain.
    pub operator: String,
    /// Version label that wrote it.
    pub version: String,
    /// The bytes `snapshot` returned.
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// Length of `bytes` (the header's record of it).
    len: u64,
    /// Whether the state is keyed: its entries are records of their own
    /// ([`super::changelog`]) and `bytes` is empty.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keyed: bool,
}

impl OperatorState {
    /// A snapshot of `operator` at `version`.
    pub fn new(operator: impl Into<String>, version: impl Into<String>, bytes: Vec<u8>) -> OperatorState {
        OperatorState { operator: operator.into(), version: version.into(), len: bytes.len() as u64, bytes, keyed: false }
    }

    /// The keyed state of `operator` at `version` (entries stored apart).
    pub fn keyed(operator: impl Into<String>, version: impl Into<String>) -> OperatorState {
        OperatorState { operator: operator.into(), version: version.into(), len: 0, bytes: Vec::new(), keyed: true }
    }
}

/// The durable state of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The task: the input partition number.
    pub task: i32,
    /// Per source topic, the next offset to read in partition `task`: every
    /// record before it is folded into the snapshots.
    pub offsets: BTreeMap<String, i64>,
    /// Per source topic, the largest event time seen in partition `task`.
    pub max_event_ms: BTreeMap<String, i64>,
    /// The task's watermark when the checkpoint was taken (windows before
    /// it are closed in the snapshots).
    #[serde(default)]
    pub watermark_ms: Option<i64>,
    /// When it was written (Unix ms).
    pub written_at_ms: i64,
    /// Snapshots of the chain's aggregate operators, in chain order.
    pub operators: Vec<OperatorState>,
    /// Sequence number of the checkpoint within its task (entries of keyed
    /// operators carry the number of the checkpoint that wrote them).
    #[serde(default)]
    pub seq: u64,
    /// Entry records of keyed operators, written before this record.
    #[serde(skip)]
    pub keyed: Vec<KeyedWrite>,
}

impl Checkpoint {
    /// The record key of task `task`.
    pub fn key_of(task: i32) -> String {
        format!("task/{task}")
    }

    /// The snapshot stored for `operator`, if any (none for keyed state).
    pub fn state_of(&self, operator: &str) -> Option<&[u8]> {
        self.operators.iter().find(|o| o.operator == operator && !o.keyed).map(|o| o.bytes.as_slice())
    }

    /// Whether `operator`'s state is keyed (its entries stored apart).
    pub fn is_keyed(&self, operator: &str) -> bool {
        self.operators.iter().any(|o| o.operator == operator && o.keyed)
    }

    /// Total snapshot bytes (whole snapshots only).
    pub fn state_bytes(&self) -> u64 {
        self.operators.iter().map(|o| o.bytes.len() as u64).sum()
    }

    /// `WEIRCKP1`, u32 LE header length, JSON header, then the snapshots back to back.
    pub fn encode(&self) -> Vec<u8> {
        let header = serde_json::to_vec(self).expect("a checkpoint header serialises");
        let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + self.state_bytes() as usize);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for operator in &self.operators {
            out.extend_from_slice(&operator.bytes);
        }
        out
    }

    /// Reads what [`Checkpoint::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or("not a weir checkpoint (bad magic)")?;
        let (len, rest) = rest.split_at_checked(4).ok_or("truncated header length")?;
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let (header, mut body) = rest.split_at_checked(len).ok_or("truncated header")?;
        let mut checkpoint: Checkpoint = serde_json::from_slice(header).map_err(|e| format!("header: {e}"))?;
        for operator in &mut checkpoint.operators {
            let (state, tail) = body.split_at_checked(operator.len as usize).ok_or_else(|| format!("truncated snapshot of `{}`", operator.operator))?;
            operator.bytes = state.to_vec();
            body = tail;
        }
        if !body.is_empty() {
            return Err(format!("{} trailing bytes", body.len()));
        }
        Ok(checkpoint)
    }
}

/// Where checkpoints live: the topic, and the newest checkpoint of each task
/// this process has read or written (so resets do not reread the topic).
pub struct StateStore {
    topic: String,
    client: ClientConfig,
    cache: HashMap<i32, Checkpoint>,
    /// Per task and keyed operator, the durable entries.
    keyed: HashMap<i32, HashMap<String, KeyedLog>>,
    /// Per task, the sequence number of its next checkpoint.
    next_seq: HashMap<i32, u64>,
}

impl StateStore {
    /// A store on `topic`, reached with the source's connection settings
    /// (`properties` are the source's extra librdkafka properties).
    pub fn new(topic: impl Into<String>, bootstrap_servers: &str, properties: &BTreeMap<String, String>) -> StateStore {
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", bootstrap_servers);
        for (key, value) in properties {
            // Connection and security settings carry over; consumer tuning does not.
            if key.starts_with("security.") || key.starts_with("sasl.") || key.starts_with("ssl.") || key == "client.id" {
                client.set(key, value);
            }
        }
        StateStore { topic: topic.into(), client, cache: HashMap::new(), keyed: HashMap::new(), next_seq: HashMap::new() }
    }

    /// The state topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn kafka(&self, source: rdkafka::error::KafkaError) -> StateError {
        StateError::Kafka { topic: self.topic.clone(), source }
    }

    /// Creates the topic (one partition, `cleanup.policy=compact`, room for
    /// `max_bytes` snapshots) unless it exists.
    pub fn ensure_topic(&self, max_bytes: u64) -> impl std::future::Future<Output = Result<(), StateError>> + Send + 'static {
        let (client, topic) = (self.client.clone(), self.topic.clone());
        async move {
            let kafka = |source| StateError::Kafka { topic: topic.clone(), source };
            let exists = tokio::task::spawn_blocking({
                let (client, topic) = (client.clone(), topic.clone());
                move || -> Result<bool, rdkafka::error::KafkaError> {
                    let probe: BaseConsumer = client.clone().set("allow.auto.create.topics", "false").create()?;
                    let metadata = probe.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
                    Ok(metadata.topics().iter().any(|t| t.error().is_none() && !t.partitions().is_empty()))
                }
            })
            .await
            .map_err(|e| StateError::Probe { topic: topic.clone(), reason: format!("metadata probe: {e}") })?
            .map_err(kafka)?;
            if exists {
                return Ok(());
            }
            let admin: AdminClient<DefaultClientContext> = client.create().map_err(kafka)?;
            let message_bytes = (max_bytes + (1 << 20)).to_string();
            let new_topic = NewTopic::new(&topic, 1, TopicReplication::Fixed(-1))
                .set("cleanup.policy", "compact")
                .set("max.message.bytes", &message_bytes);
            let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
            let results = admin.create_topics([&new_topic], &options).await.map_err(kafka)?;
            for result in results {
                match result {
                    Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((_, code)) => return Err(kafka(rdkafka::error::KafkaError::AdminOp(code))),
                }
            }
            Ok(())
        }
    }

    /// The cached checkpoint of `task` (read or written by this process).
    pub fn cached(&self, task: i32) -> Option<&Checkpoint> {
        self.cache.get(&task)
    }

    /// The durable keyed entries of `operator` in `task`.
    pub fn keyed_log(&self, task: i32, operator: &str) -> Option<&KeyedLog> {
        self.keyed.get(&task).and_then(|logs| logs.get(operator))
    }

    /// Takes the sequence number of `task`'s next checkpoint.
    pub fn take_seq(&mut self, task: i32) -> u64 {
        let next = self.next_seq.entry(task).or_insert_with(|| self.cache.get(&task).map_or(1, |c| c.seq + 1));
        let seq = *next;
        *next += 1;
        seq
    }

    /// Bytes of `task`'s durable state: whole snapshots and keyed entries.
    pub fn state_bytes(&self, task: i32) -> u64 {
        let whole = self.cache.get(&task).map_or(0, Checkpoint::state_bytes);
        whole + self.keyed.get(&task).map_or(0, |logs| logs.values().map(KeyedLog::bytes).sum())
    }

    /// Remembers a checkpoint that is now durable.
    pub fn confirm(&mut self, mut checkpoint: Checkpoint) {
        let logs = self.keyed.entry(checkpoint.task).or_default();
        for write in std::mem::take(&mut checkpoint.keyed) {
            logs.entry(write.operator.clone()).or_default().apply(write);
        }
        self.cache.insert(checkpoint.task, checkpoint);
    }

    /// Forgets the cached checkpoint of `task` (another process may own it next).
    pub fn forget(&mut self, task: i32) {
        self.cache.remove(&task);
        self.keyed.remove(&task);
        self.next_seq.remove(&task);
    }

    /// Reads the topic to its end (as of the call) and caches the newest checkpoint of each
    /// of `tasks` (tasks without one stay uncached). Blocking.
    pub fn load(&mut self, tasks: &[i32]) -> Result<(), StateError> {
        let wanted: HashMap<String, i32> = tasks.iter().map(|&t| (Checkpoint::key_of(t), t)).collect();
        let consumer: BaseConsumer = self
            .client
            .clone()
            .set("group.id", "weir.state-reader")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .map_err(|e| self.kafka(e))?;
        let metadata = consumer.fetch_metadata(Some(&self.topic), Duration::from_secs(10)).map_err(|e| self.kafka(e))?;
        let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
        // Read each partition up to its end as of now (the last stable
        // offset under read_committed: what later reads could see at least).
        let mut remaining: HashMap<i32, i64> = HashMap::new();
        let mut assignment = TopicPartitionList::new();
        for &partition in &partitions {
            let (low, high) = consumer.fetch_watermarks(&self.topic, partition, Duration::from_secs(10)).map_err(|e| self.kafka(e))?;
            if high > low {
                remaining.insert(partition, high);
                assignment.add_partition_offset(&self.topic, partition, Offset::Beginning).map_err(|e| self.kafka(e))?;
            }
        }
        let mut found: HashMap<i32, Checkpoint> = HashMap::new();
        let mut entries: HashMap<i32, HashMap<String, Collected>> = HashMap::new();
        let mut max_seq: HashMap<i32, u64> = HashMap::new();
        let wanted_tasks: std::collections::HashSet<i32> = tasks.iter().copied().collect();
        if !remaining.is_empty() {
            consumer.assign(&assignment).map_err(|e| self.kafka(e))?;
        }
        let deadline = Instant::now() + LOAD_TIMEOUT;
        while !remaining.is_empty() {
            if Instant::now() > deadline {
                return Err(StateError::Timeout { topic: self.topic.clone(), timeout: LOAD_TIMEOUT });
            }
            let polled = consumer.poll(Duration::from_millis(100));
            // The position passes transaction markers and aborted records too.
            if let Ok(positions) = consumer.position() {
                for element in positions.elements() {
                    if let (Offset::Offset(position), Some(&end)) = (element.offset(), remaining.get(&element.partition()))
                        && position >= end
                    {
                        remaining.remove(&element.partition());
                    }
                }
            }
            let Some(message) = polled else { continue };
            let message = message.map_err(|e| self.kafka(e))?;
            if let Some(entry) = parse_entry_key(message.key().unwrap_or_default()) {
                if wanted_tasks.contains(&entry.task) {
                    let seq = entries.entry(entry.task).or_default().entry(entry.operator.to_owned()).or_default().apply(entry.slot, entry.key, message.payload()).map_err(|reason| {
                        StateError::Corrupt { topic: self.topic.clone(), key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(), reason }
                    })?;
                    let max = max_seq.entry(entry.task).or_default();
                    *max = (*max).max(seq);
                }
                continue;
            }
            let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
            let Some(&task) = wanted.get(&key) else { continue };
            let Some(value) = message.payload() else {
                found.remove(&task);
                continue;
            };
            let checkpoint = Checkpoint::decode(value).map_err(|reason| StateError::Corrupt { topic: self.topic.clone(), key: key.clone(), reason })?;
            let max = max_seq.entry(task).or_default();
            *max = (*max).max(checkpoint.seq);
            found.insert(task, checkpoint);
        }
        for &task in tasks {
            // Entries newer than the checkpoint (or without one) are an
            // unfinished checkpoint's: ignored, deleted by the next one.
            let seq = found.get(&task).map_or(0, |c| c.seq);
            let logs: HashMap<String, KeyedLog> = entries.remove(&task).unwrap_or_default().into_iter().map(|(operator, collected)| (operator, collected.resolve(seq))).collect();
            self.keyed.insert(task, logs);
            self.next_seq.insert(task, max_seq.get(&task).copied().unwrap_or(0) + 1);
            match found.remove(&task) {
                Some(checkpoint) => {
                    self.cache.insert(task, checkpoint);
                }
                None => {
                    self.cache.remove(&task);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_reject_damage() {
        let checkpoint = Checkpoint {
            task: 3,
            offsets: BTreeMap::from([("orders".to_owned(), 42)]),
            max_event_ms: BTreeMap::from([("orders".to_owned(), 1_700_000_000_000)]),
            watermark_ms: Some(1_699_999_000_000),
            written_at_ms: 5,
            operators: vec![OperatorState::new("revenue", "v2", vec![1, 2, 3]), OperatorState::new("other", "v1", Vec::new()), OperatorState::keyed("fraud", "v3")],
            seq: 7,
            keyed: Vec::new(),
        };
        let bytes = checkpoint.encode();
        assert_eq!(Checkpoint::decode(&bytes).unwrap(), checkpoint);
        assert_eq!(Checkpoint::decode(&bytes).unwrap().state_of("revenue"), Some(&[1u8, 2, 3][..]));
        assert!(Checkpoint::decode(&bytes).unwrap().is_keyed("fraud") && !Checkpoint::decode(&bytes).unwrap().is_keyed("revenue"));
        assert!(Checkpoint::decode(&bytes[..bytes.len() - 1]).unwrap_err().contains("truncated snapshot"));
        assert!(Checkpoint::decode(b"garbage").unwrap_err().contains("magic"));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Checkpoint::decode(&longer).unwrap_err().contains("trailing"));
    }
}
