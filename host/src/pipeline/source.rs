//! The Kafka source: a consumer in the pipeline's group with manual offset
//! management (no auto-commit, no auto offset store), cooperative-sticky
//! assignment, and a context that tracks revocations so uncommitted records
//! of revoked partitions are dropped (their new owner re-reads them).

use crate::config::{BatchConfig, SourceConfig};
use crate::telemetry::PipelineStats;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use super::command::PipelineCommand;

/// Consumer callbacks: rebalance bookkeeping.
pub struct SourceContext {
    pipeline: String,
    stats: Arc<PipelineStats>,
    revoked: Mutex<HashSet<(String, i32)>>,
}

impl SourceContext {
    /// Takes the partitions revoked since the last call.
    pub fn take_revoked(&self) -> HashSet<(String, i32)> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl ClientContext for SourceContext {
    /// librdkafka's periodic statistics: high watermarks (for lag) and broker reachability.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let up = statistics.brokers.values().filter(|b| b.state == "UP").count() as u64;
        self.stats.brokers_up.store(up, std::sync::atomic::Ordering::Relaxed);
        let mut marks = self.stats.high_watermarks.lock().unwrap_or_else(|e| e.into_inner());
        for (topic, data) in &statistics.topics {
            for (partition, p) in &data.partitions {
                if *partition >= 0 && p.hi_offset >= 0 {
                    marks.insert((topic.clone(), *partition), p.hi_offset);
                }
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            // Processing is sequential: nothing is in flight here, and every
            // processed batch was committed. Commit those offsets
            // synchronously so the next owner starts exactly there.
            let committed = self.stats.committed.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut list = TopicPartitionList::new();
            let mut revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
            for element in partitions.elements() {
                let key = (element.topic().to_owned(), element.partition());
                if let Some(offset) = committed.get(&key) {
                    let _ = list.add_partition_offset(&key.0, key.1, Offset::Offset(*offset));
                }
                revoked.insert(key);
            }
            if list.count() > 0
                && let Err(error) = consumer.commit(&list, CommitMode::Sync) {
                    tracing::warn!(pipeline = %self.pipeline, %error, "commit on revoke failed");
                }
            let mut assigned = self.stats.assigned.lock().unwrap_or_else(|e| e.into_inner());
            let assigned = assigned.get_or_insert_default();
            for element in partitions.elements() {
                assigned.remove(&(element.topic().to_owned(), element.partition()));
            }
            tracing::info!(pipeline = %self.pipeline, partitions = partitions.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            let mut assigned = self.stats.assigned.lock().unwrap_or_else(|e| e.into_inner());
            let assigned = assigned.get_or_insert_default();
            for element in partitions.elements() {
                assigned.insert((element.topic().to_owned(), element.partition()));
            }
            tracing::info!(pipeline = %self.pipeline, partitions = partitions.count(), "partitions assigned");
        }
    }
}

/// The pipeline's consumer.
pub type SourceConsumer = StreamConsumer<SourceContext>;

/// Creates the consumer and subscribes to the topics.
///
/// `co_partitioned` (stateful pipelines) selects the range assignor, which
/// gives partition `n` of every source topic to the same member, so a task's
/// partitions move together; otherwise partitions move one at a time
/// (cooperative-sticky). With the KIP-848 protocol (`group.protocol =
/// "consumer"` among the properties) the broker assigns: the client-side
/// `partition.assignment.strategy` is not allowed there, and co-partitioned
/// pipelines ask for the broker's range assignor (`group.remote.assignor`).
pub fn create_consumer(
    pipeline: &str,
    source: &SourceConfig,
    stats: Arc<PipelineStats>,
    co_partitioned: bool,
) -> Result<SourceConsumer, rdkafka::error::KafkaError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &source.bootstrap_servers)
        .set("group.id", &source.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("queued.max.messages.kbytes", "32768")
        // Low-volume partitions: do not let a fetch wait long for data.
        .set("fetch.wait.max.ms", "100")
        // Inputs written by transactional producers (weir's exactly-once
        // outputs among them): never read aborted records.
        .set("isolation.level", "read_committed")
        // Statistics feed per-partition lag and broker reachability (readiness).
        .set("statistics.interval.ms", "1000");
    if source.properties.get("group.protocol").is_some_and(|p| p.eq_ignore_ascii_case("consumer")) {
        if co_partitioned {
            config.set("group.remote.assignor", "range");
        }
    } else {
        config.set("partition.assignment.strategy", if co_partitioned { "range" } else { "cooperative-sticky" });
    }
    for (key, value) in &source.properties {
        config.set(key, value);
    }
    let context = SourceContext { pipeline: pipeline.to_owned(), stats, revoked: Mutex::default() };
    let consumer: SourceConsumer = config.create_with_context(context)?;
    let topics: Vec<&str> = source.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

/// Why batch collection ended.
pub enum Cut {
    /// A limit was reached (records, bytes or wait).
    Limit,
    /// Shutdown was requested; process what was collected, then stop.
    Shutdown,
    /// A request arrived: process what was collected, then handle it.
    Command(Box<PipelineCommand>),
}

/// Collects one batch: until `max_records`, `max_bytes`, `max_wait_ms` after
/// the first record, a pause/resume request, a command, or shutdown; with
/// `idle`, also when nothing arrived for that long (an empty batch, so
/// periodic work such as checkpoints runs while the input is quiet).
pub async fn collect(
    consumer: &SourceConsumer,
    limits: &BatchConfig,
    shutdown: &mut watch::Receiver<bool>,
    control: &mut watch::Receiver<Option<String>>,
    commands: &mut mpsc::Receiver<PipelineCommand>,
    idle: Option<Duration>,
) -> (Vec<OwnedMessage>, Cut) {
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let mut deadline: Option<tokio::time::Instant> = idle.map(|d| tokio::time::Instant::now() + d);
    loop {
        if *shutdown.borrow() {
            return (records, Cut::Shutdown);
        }
        let wait = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.changed() => return (records, Cut::Shutdown),
            // Pause or resume requested: cut here so the loop sees it.
            _ = control.changed() => return (records, Cut::Limit),
            _ = wait => return (records, Cut::Limit),
            Some(command) = commands.recv() => return (records, Cut::Command(Box::new(command))),
            message = consumer.recv() => match message {
                Ok(message) => {
                    bytes += message.payload_len();
                    records.push(message.detach());
                    if records.len() == 1 {
                        deadline = Some(tokio::time::Instant::now() + Duration::from_millis(limits.max_wait_ms));
                    }
                    if records.len() >= limits.max_records || bytes >= limits.max_bytes {
                        return (records, Cut::Limit);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Commits `next` offsets (next offset to consume, per partition).
pub fn commit(
    consumer: &SourceConsumer,
    next: &BTreeMap<(String, i32), i64>,
    mode: CommitMode,
) -> Result<(), rdkafka::error::KafkaError> {
    if next.is_empty() {
        return Ok(());
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    consumer.commit(&list, mode)
}
