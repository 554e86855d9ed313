//! `weir offsets reset`: moves a stopped consumer group's committed offsets
//! to the earliest or latest offsets, or to the first offset at or after a
//! time (the seeds' `kafka-consumer-groups --reset-offsets` recipes).

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::Duration;

/// Where to move the offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// The first retained offset of each partition.
    Earliest,
    /// The end of each partition (skip everything there now).
    Latest,
    /// The first offset whose timestamp is at or after this time (ms since the epoch).
    Timestamp(i64),
}

/// Errors of an offsets reset.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// Kafka refused (unknown topic, group still active...).
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The group still has live members: stop its pipelines first.
    #[error("group `{0}` still has active members: stop its pipelines (and let their sessions expire) before resetting offsets")]
    GroupActive(String),
    /// The topic has no partitions (does it exist?).
    #[error("topic `{0}` has no partitions (does it exist?)")]
    UnknownTopic(String),
}

/// Commits new offsets for `group` on every partition of `topic`; returns
/// `(partition, offset)` pairs. The group's consumers must be stopped.
pub fn reset(bootstrap: &str, group: &str, topic: &str, to: ResetTo) -> Result<Vec<(i32, i64)>, ResetError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(ResetError::UnknownTopic(topic.to_owned()));
    }
    let mut offsets = Vec::new();
    match to {
        ResetTo::Earliest | ResetTo::Latest => {
            for &partition in &partitions {
                let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
                offsets.push((partition, if to == ResetTo::Earliest { low } else { high }));
            }
        }
        ResetTo::Timestamp(ms) => {
            let mut query = TopicPartitionList::new();
            for &partition in &partitions {
                query.add_partition_offset(topic, partition, Offset::Offset(ms))?;
            }
            let found = consumer.offsets_for_times(query, timeout)?;
            for element in found.elements() {
                let offset = match element.offset() {
                    Offset::Offset(o) => o,
                    // No record at or after the time: the end of the partition.
                    _ => consumer.fetch_watermarks(topic, element.partition(), timeout)?.1,
                };
                offsets.push((element.partition(), offset));
            }
        }
    }
    let mut list = TopicPartitionList::new();
    for (partition, offset) in &offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    consumer.commit(&list, CommitMode::Sync).map_err(|error| {
        use rdkafka::types::RDKafkaErrorCode::{IllegalGeneration, RebalanceInProgress, UnknownMemberId};
        match error.rdkafka_error_code() {
            Some(UnknownMemberId | IllegalGeneration | RebalanceInProgress) => ResetError::GroupActive(group.to_owned()),
            _ => ResetError::Kafka(error),
        }
    })?;
    offsets.sort();
    Ok(offsets)
}
