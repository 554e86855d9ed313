//! The Kafka source: a consumer in the pipeline's group with manual offset
//! management (no auto-commit, no auto offset store), cooperative-sticky
//! assignment, and a context that tracks revocations so uncommitted records
//! of revoked partitions are dropped (their new owner re-reads them, from the
//! group's committed offset; that may be this process again).

use crate::config::{BatchConfig, SourceConfig};
use crate::telemetry::PipelineStats;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use super::watermark::Backlog;
use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use super::command::PipelineCommand;

/// Consumer callbacks: rebalance bookkeeping.
pub struct SourceContext {
    pipeline: String,
    stats: Arc<PipelineStats>,
    /// Exactly-once: offsets move only inside transactions, never on revoke.
    transactional: bool,
    /// Partitions revoked since the last [`SourceContext::take_revoked`].
    revoked: Mutex<HashSet<(String, i32)>>,
    /// Partitions revoked since [`collect`] last dropped the records it had
    /// collected from them.
    revoked_while_collecting: Mutex<HashSet<(String, i32)>>,
    /// Partitions assigned since the last [`SourceContext::take_assigned`].
    assigned: Mutex<Vec<(String, i32)>>,
    /// At-least-once with state: the producer that writes checkpoints in the
    /// background, flushed before partitions are given up.
    state_writes: std::sync::OnceLock<rdkafka::producer::FutureProducer>,
}

impl SourceContext {
    /// Takes the partitions revoked since the last call.
    pub fn take_revoked(&self) -> HashSet<(String, i32)> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Has revocations wait until everything `producer` has in flight (the
    /// checkpoint written in the background among it) is acknowledged, so
    /// that the next owner of a partition reads the newest checkpoint.
    pub fn flush_on_revoke(&self, producer: rdkafka::producer::FutureProducer) {
        let _ = self.state_writes.set(producer);
    }

    /// Takes the partitions assigned since the last call.
    pub fn take_assigned(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut *self.assigned.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Drops from `records` those of partitions revoked since the last call:
    /// they were delivered before the revocation. Records a partition
    /// delivers after it is assigned again (from the group's committed
    /// offset) are not touched by a later call.
    fn drop_revoked(&self, records: &mut Vec<OwnedMessage>) {
        let revoked = std::mem::take(&mut *self.revoked_while_collecting.lock().unwrap_or_else(|e| e.into_inner()));
        if revoked.is_empty() || records.is_empty() {
            return;
        }
        let before = records.len();
        records.retain(|r| !revoked.contains(&(r.topic().to_owned(), r.partition())));
        if records.len() < before {
            tracing::info!(pipeline = %self.pipeline, dropped = before - records.len(), "records of revoked partitions dropped (their next owner reads them again)");
        }
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
            let committed = self.stats.committed.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut list = TopicPartitionList::new();
            let mut revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
            let mut while_collecting = self.revoked_while_collecting.lock().unwrap_or_else(|e| e.into_inner());
            for element in partitions.elements() {
                let key = (element.topic().to_owned(), element.partition());
                if let Some(offset) = committed.get(&key) {
                    let _ = list.add_partition_offset(&key.0, key.1, Offset::Offset(*offset));
                }
                while_collecting.insert(key.clone());
                revoked.insert(key);
            }
            drop(while_collecting);
            // A checkpoint written in the background must be in the state
            // topic before the next owner reads it.
            if let Some(producer) = self.state_writes.get()
                && let Err(error) = rdkafka::producer::Producer::flush(producer, Duration::from_secs(30)) {
                    tracing::warn!(pipeline = %self.pipeline, %error, "flushing the state writes on revoke failed");
                }
            // At-least-once: processing is sequential, nothing but a
            // checkpoint (flushed above) is in flight here and every
            // processed batch was committed; commit those
            // offsets synchronously so the next owner starts exactly there.
            // Exactly-once: the transactions committed them already, and the
            // group's offsets move only inside transactions.
            if !self.transactional
                && list.count() > 0
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
            let mut new = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
            for element in partitions.elements() {
                assigned.insert((element.topic().to_owned(), element.partition()));
                new.push((element.topic().to_owned(), element.partition()));
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
/// `transactional` (exactly-once): offsets are committed by transactions only.
pub fn create_consumer(
    pipeline: &str,
    source: &SourceConfig,
    stats: Arc<PipelineStats>,
    co_partitioned: bool,
    transactional: bool,
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
    let context = SourceContext {
        pipeline: pipeline.to_owned(),
        stats,
        transactional,
        revoked: Mutex::default(),
        revoked_while_collecting: Mutex::default(),
        assigned: Mutex::default(),
        state_writes: std::sync::OnceLock::new(),
    };
    let consumer: SourceConsumer = config.create_with_context(context)?;
    let topics: Vec<&str> = source.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

/// The consumer's view of each partition's backlog, for the watermark (see
/// [`Backlog`]): a partition is caught up when its end offset is known (from
/// fetch responses; the last stable offset under `read_committed`) and the
/// records delivered so far, or the consumer's position (which moves past
/// transaction markers), reach it. An empty partition is caught up; one
/// not fetched yet is not.
pub struct ConsumerBacklog<'a> {
    consumer: &'a SourceConsumer,
    /// Next offset after the last record delivered, per partition.
    consumed: &'a HashMap<(String, i32), i64>,
    /// The consumer's positions, read once per check and only if needed.
    positions: OnceCell<Option<TopicPartitionList>>,
}

impl<'a> ConsumerBacklog<'a> {
    /// A view over `consumer` and the offsets delivered so far.
    pub fn new(consumer: &'a SourceConsumer, consumed: &'a HashMap<(String, i32), i64>) -> ConsumerBacklog<'a> {
        ConsumerBacklog { consumer, consumed, positions: OnceCell::new() }
    }
}

impl Backlog for ConsumerBacklog<'_> {
    fn caught_up(&self, topic: &str, partition: i32) -> bool {
        let Some((low, high)) = cached_watermarks(self.consumer, topic, partition) else { return false };
        if high < 0 {
            return false;
        }
        if low >= high {
            return true;
        }
        let delivered = self.consumed.get(&(topic.to_owned(), partition)).copied();
        let position = self
            .positions
            .get_or_init(|| self.consumer.position().ok())
            .as_ref()
            .and_then(|list| list.find_partition(topic, partition))
            .and_then(|element| match element.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            });
        delivered.max(position).is_some_and(|at| at >= high)
    }
}

/// The low and high offsets librdkafka last saw for a partition in fetch
/// responses (no broker round trip; the high one is the last stable offset
/// under `read_committed`). None when unknown.
fn cached_watermarks(consumer: &SourceConsumer, topic: &str, partition: i32) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid while `consumer` lives; the topic
    // is a NUL-terminated string that outlives the call; `low` and `high`
    // are valid for writes. rust-rdkafka exposes only the querying variant
    // (`fetch_watermarks`, a broker round trip).
    let error = unsafe {
        rdkafka_sys::rd_kafka_get_watermark_offsets(consumer.client().native_ptr(), topic.as_ptr(), partition, &mut low, &mut high)
    };
    (error == rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR).then_some((low, high))
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
///
/// Records of a partition revoked while collecting are dropped when the
/// revocation is seen (rebalance callbacks run inside `recv`), not when the
/// batch is cut: a partition revoked and assigned again before the cut (a
/// lapsed group session) delivers its records again from the committed
/// offset, and those are kept; dropping them too would move the consumer's
/// position, and the next commit, past records never processed.
pub async fn collect(
    consumer: &SourceConsumer,
    limits: &BatchConfig,
    shutdown: &mut watch::Receiver<bool>,
    control: &mut watch::Receiver<Option<String>>,
    commands: &mut mpsc::Receiver<PipelineCommand>,
    idle: Option<Duration>,
    state_written: Option<&tokio::sync::Notify>,
) -> (Vec<OwnedMessage>, Cut) {
    let (mut records, cut) = collect_until_cut(consumer, limits, shutdown, control, commands, idle, state_written).await;
    // A revocation seen by a `recv` that returned no record.
    consumer.context().drop_revoked(&mut records);
    (records, cut)
}

async fn collect_until_cut(
    consumer: &SourceConsumer,
    limits: &BatchConfig,
    shutdown: &mut watch::Receiver<bool>,
    control: &mut watch::Receiver<Option<String>>,
    commands: &mut mpsc::Receiver<PipelineCommand>,
    idle: Option<Duration>,
    state_written: Option<&tokio::sync::Notify>,
) -> (Vec<OwnedMessage>, Cut) {
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let mut deadline: Option<tokio::time::Instant> = idle.map(|d| tokio::time::Instant::now() + d);
    // Revocations before this batch concern records of earlier ones.
    consumer.context().drop_revoked(&mut records);
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
            // A checkpoint written in the background is acknowledged: while
            // no record waits, return so that its offsets are committed now.
            _ = async { match state_written { Some(written) => written.notified().await, None => std::future::pending().await } }, if records.is_empty() => {
                return (records, Cut::Limit)
            }
            Some(command) = commands.recv() => return (records, Cut::Command(Box::new(command))),
            message = consumer.recv() => match message {
                Ok(message) => {
                    let held = records.len();
                    consumer.context().drop_revoked(&mut records);
                    if records.len() < held {
                        bytes = records.iter().map(|r| r.payload().map_or(0, <[u8]>::len)).sum();
                    }
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
