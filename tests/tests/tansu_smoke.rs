//! Smoke test of the Tansu test broker (`weir_tests::broker::Tansu`) with the
//! client weir uses (rdkafka): create a 2-partition topic, produce 100 records
//! with an idempotent `acks=all` producer, consume them in a consumer group,
//! commit, and read the committed offsets back (from the same member and from
//! a new one).
//!
//! `transactions_probe` (ignored; run with `--ignored --nocapture`) prints how
//! Tansu handles transactions: the calls succeed, but aborted records stay
//! visible to `read_committed` consumers and transactional offset commits are
//! not applied to the group.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use weir_tests::broker::Tansu;

const RECORDS: usize = 100;
const PARTITIONS: i32 = 2;
const TIMEOUT: Duration = Duration::from_secs(30);

/// A name no other test run uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

fn config(broker: &Tansu) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", broker.bootstrap());
    config
}

/// A consumer-group member with the settings Tansu needs: Tansu holds each join
/// for `session.timeout.ms / 2`.
fn group_consumer(broker: &Tansu, group: &str) -> ClientConfig {
    let mut config = config(broker);
    config
        .set("group.id", group)
        .set("session.timeout.ms", "2000")
        .set("heartbeat.interval.ms", "500")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    config
}

async fn create_topic(broker: &Tansu, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = config(broker).create().expect("creating the admin client");
    let results = admin
        .create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .expect("CreateTopics request");
    for result in results {
        result.unwrap_or_else(|(name, code)| panic!("creating topic {name}: {code}"));
    }
}

/// `(partition, offset)` pairs of a topic partition list, for comparisons.
fn offsets_of(list: &TopicPartitionList) -> BTreeMap<i32, Offset> {
    list.elements().iter().map(|e| (e.partition(), e.offset())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_commit_round_trip() {
    let started = Instant::now();
    let broker = Tansu::start();
    let topic = unique("smoke");
    let group = unique("smoke-group");

    create_topic(&broker, &topic, PARTITIONS).await;

    let producer: FutureProducer = config(&broker)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "20000")
        .create()
        .expect("creating the producer");
    let metadata = producer.client().fetch_metadata(Some(&topic), TIMEOUT).expect("fetching metadata");
    assert_eq!(metadata.topics()[0].partitions().len(), PARTITIONS as usize, "partitions of {topic}");

    // Keys spread the records over both partitions; the header carries the
    // sequence number, so headers are checked to round-trip.
    let mut produced = BTreeMap::new();
    for i in 0..RECORDS {
        let key = format!("key-{i}");
        let payload = format!("payload-{i}-{}", "x".repeat(i));
        let seq = i.to_string();
        let record = FutureRecord::to(&topic)
            .key(&key)
            .payload(&payload)
            .headers(OwnedHeaders::new().insert(Header { key: "seq", value: Some(&seq) }));
        let delivery =
            producer.send(record, TIMEOUT).await.unwrap_or_else(|(e, _)| panic!("producing record {i}: {e}"));
        produced.insert(i, (delivery.partition, payload));
    }
    let per_partition =
        (0..PARTITIONS).map(|p| produced.values().filter(|(partition, _)| *partition == p).count()).collect::<Vec<_>>();
    assert!(per_partition.iter().all(|&n| n > 0), "records per partition {per_partition:?}");

    // Count what is consumed (Tansu's high watermark cannot be trusted for lag).
    let consumer: StreamConsumer = group_consumer(&broker, &group).create().expect("creating the consumer");
    consumer.subscribe(&[&topic]).expect("subscribing");
    let mut received = BTreeMap::new();
    let mut next_offset = BTreeMap::new();
    while received.len() < RECORDS {
        let message = tokio::time::timeout(TIMEOUT, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {RECORDS} records consumed in {TIMEOUT:?}", received.len()))
            .expect("consuming");
        let headers = message.headers().expect("record has headers");
        let header = headers.iter().find(|h| h.key == "seq").expect("seq header");
        let seq: usize = std::str::from_utf8(header.value.expect("seq value")).unwrap().parse().unwrap();
        let payload = std::str::from_utf8(message.payload().expect("payload")).unwrap().to_string();
        assert_eq!(message.key(), Some(format!("key-{seq}").as_bytes()), "key of record {seq}");
        assert!(received.insert(seq, (message.partition(), payload)).is_none(), "record {seq} received twice");
        next_offset.insert(message.partition(), Offset::Offset(message.offset() + 1));
    }
    assert_eq!(received, produced, "records received differ from those produced");

    let mut offsets = TopicPartitionList::new();
    for (&partition, &offset) in &next_offset {
        offsets.add_partition_offset(&topic, partition, offset).unwrap();
    }
    consumer.commit(&offsets, CommitMode::Sync).expect("committing offsets");
    // Lists returned by `committed` hold references into the client: they must
    // be dropped before the consumer, or dropping the consumer hangs forever
    // (rd_kafka_destroy waits for them). Hence only the offsets are kept.
    let committed = offsets_of(&consumer.committed(TIMEOUT).expect("fetching committed offsets"));
    assert_eq!(committed, next_offset, "committed offsets");
    drop(consumer);

    // A new member of the group sees the same committed offsets.
    let consumer: StreamConsumer = group_consumer(&broker, &group).create().expect("creating the consumer");
    let mut query = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        query.add_partition(&topic, partition);
    }
    let committed =
        offsets_of(&consumer.committed_offsets(query, TIMEOUT).expect("fetching committed offsets (new member)"));
    assert_eq!(committed, next_offset, "committed offsets seen by a new member");
    drop(consumer);
    eprintln!("tansu smoke: {RECORDS} records over partitions {per_partition:?} in {:?}", started.elapsed());
}

/// Prints what Tansu does with transactions; asserts nothing about them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "probe of Tansu's transaction support; run with --ignored --nocapture"]
async fn transactions_probe() {
    let broker = Tansu::start();
    let topic = unique("txn");
    create_topic(&broker, &topic, 1).await;
    let producer: FutureProducer =
        config(&broker).set("transactional.id", unique("txid")).create().expect("creating the producer");
    let result = producer.init_transactions(TIMEOUT);
    eprintln!("init_transactions: {result:?}");
    if result.is_err() {
        return;
    }
    for (prefix, count, commit) in [("committed", 3, true), ("aborted", 3, false), ("after", 1, true)] {
        producer.begin_transaction().expect("begin_transaction");
        for i in 0..count {
            let payload = format!("{prefix}-{i}");
            let delivery = producer.send(FutureRecord::<(), _>::to(&topic).payload(&payload), TIMEOUT).await;
            eprintln!("send {payload}: {:?}", delivery.map_err(|(e, _)| e));
        }
        let end = if commit { producer.commit_transaction(TIMEOUT) } else { producer.abort_transaction(TIMEOUT) };
        eprintln!("{} transaction: {end:?}", if commit { "commit" } else { "abort" });
    }
    for isolation in ["read_committed", "read_uncommitted"] {
        let consumer: StreamConsumer = group_consumer(&broker, &unique("txn-read"))
            .set("isolation.level", isolation)
            .create()
            .expect("creating the consumer");
        consumer.subscribe(&[&topic]).expect("subscribing");
        let mut seen = Vec::new();
        while let Ok(message) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await {
            let message = message.expect("consuming");
            seen.push(format!(
                "{}@{}",
                String::from_utf8_lossy(message.payload().unwrap_or_default()),
                message.offset()
            ));
        }
        eprintln!("{isolation} consumer sees: {seen:?}");
    }

    // Transactional offset commits (consume-transform-produce).
    let consumer: StreamConsumer =
        group_consumer(&broker, &unique("txn-group")).create().expect("creating the consumer");
    consumer.subscribe(&[&topic]).expect("subscribing");
    drop(consumer.recv().await.expect("consuming"));
    let mut plain = TopicPartitionList::new();
    plain.add_partition_offset(&topic, 0, Offset::Offset(1)).unwrap();
    consumer.commit(&plain, CommitMode::Sync).expect("plain commit");
    for (offset, commit) in [(2, false), (3, true)] {
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset(&topic, 0, Offset::Offset(offset)).unwrap();
        producer.begin_transaction().expect("begin_transaction");
        let metadata = consumer.group_metadata().expect("group metadata");
        let sent = producer.send_offsets_to_transaction(&offsets, &metadata, TIMEOUT);
        let end = if commit { producer.commit_transaction(TIMEOUT) } else { producer.abort_transaction(TIMEOUT) };
        tokio::time::sleep(Duration::from_secs(1)).await;
        let committed = consumer.committed(TIMEOUT).map(|list| offsets_of(&list));
        eprintln!(
            "send_offsets_to_transaction({offset}): {sent:?}, {}: {end:?}, group's committed offsets now {committed:?}",
            if commit { "commit" } else { "abort" }
        );
    }
}
