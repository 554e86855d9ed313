//! The Apache Kafka test broker (`weir_tests::broker::Kafka`) with the client
//! weir uses (rdkafka): produce, consume and commit in a group; transactions
//! (aborted records hidden from `read_committed` consumers, offsets sent in a
//! transaction applied only on commit: what the earlier test brokers could not
//! show); weir reading a topic's largest record size from the broker; and no
//! JVM left behind when the test process is killed with -9.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use weir_tests::broker::Kafka;

const RECORDS: usize = 100;
const PARTITIONS: i32 = 2;
const TIMEOUT: Duration = Duration::from_secs(30);

/// A name no other test run uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

fn group_consumer(kafka: &Kafka, group: &str) -> ClientConfig {
    let mut config = kafka.client_config();
    config.set("group.id", group).set("auto.offset.reset", "earliest").set("enable.auto.commit", "false");
    config
}

/// `(partition, offset)` pairs of a topic partition list, for comparisons.
fn offsets_of(list: &TopicPartitionList) -> BTreeMap<i32, Offset> {
    list.elements().iter().map(|e| (e.partition(), e.offset())).collect()
}

/// Payloads a consumer with `isolation` reads from `topic`: at least
/// `expected` (or what came in 60 s), then until it is idle for 1 s.
async fn read_payloads(kafka: &Kafka, topic: &str, isolation: &str, expected: usize) -> Vec<String> {
    let consumer: StreamConsumer = group_consumer(kafka, &unique("reader"))
        .set("isolation.level", isolation)
        .create()
        .expect("creating the consumer");
    consumer.subscribe(&[topic]).expect("subscribing");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let wait = if seen.len() >= expected { Duration::from_secs(1) } else { deadline.saturating_duration_since(Instant::now()) };
        let Ok(message) = tokio::time::timeout(wait, consumer.recv()).await else { break };
        let message = message.expect("consuming");
        seen.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_commit_round_trip() {
    let kafka = Kafka::shared();
    let topic = unique("smoke");
    let group = unique("smoke-group");
    kafka.create_topics(&[(&topic, PARTITIONS)]).await;

    let producer: FutureProducer = kafka
        .client_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .expect("creating the producer");
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

    let consumer: StreamConsumer = group_consumer(kafka, &group).create().expect("creating the consumer");
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
    let committed = offsets_of(&consumer.committed(TIMEOUT).expect("fetching committed offsets"));
    assert_eq!(committed, next_offset, "committed offsets");
    drop(consumer);

    // A new member of the group sees the same committed offsets.
    let consumer: StreamConsumer = group_consumer(kafka, &group).create().expect("creating the consumer");
    let mut query = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        query.add_partition(&topic, partition);
    }
    let committed = offsets_of(&consumer.committed_offsets(query, TIMEOUT).expect("committed offsets (new member)"));
    assert_eq!(committed, next_offset, "committed offsets seen by a new member");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_transactions_are_hidden_and_their_offsets_not_applied() {
    let kafka = Kafka::shared();
    let topic = unique("txn");
    let input = unique("txn-input");
    kafka.create_topics(&[(&topic, 1), (&input, 1)]).await;
    let producer: FutureProducer =
        kafka.client_config().set("transactional.id", unique("txid")).create().expect("creating the producer");
    producer.init_transactions(TIMEOUT).expect("init_transactions");
    for (prefix, commit) in [("committed", true), ("aborted", false), ("after", true)] {
        producer.begin_transaction().expect("begin_transaction");
        for i in 0..3 {
            let payload = format!("{prefix}-{i}");
            producer.send(FutureRecord::<(), _>::to(&topic).payload(&payload), TIMEOUT).await.expect("send");
        }
        if commit { producer.commit_transaction(TIMEOUT) } else { producer.abort_transaction(TIMEOUT) }
            .expect("ending the transaction");
    }
    let committed = read_payloads(kafka, &topic, "read_committed", 6).await;
    assert_eq!(committed, ["committed-0", "committed-1", "committed-2", "after-0", "after-1", "after-2"]);
    let uncommitted = read_payloads(kafka, &topic, "read_uncommitted", 9).await;
    assert_eq!(uncommitted.len(), 9, "read_uncommitted sees the aborted records too: {uncommitted:?}");

    // Offsets sent in a transaction are committed with it, and only then.
    let plain: FutureProducer = kafka.client_config().create().unwrap();
    for i in 0..5 {
        plain.send(FutureRecord::<(), _>::to(&input).payload(&i.to_string()), TIMEOUT).await.expect("send");
    }
    let group = unique("txn-group");
    let consumer: StreamConsumer = group_consumer(kafka, &group).create().expect("creating the consumer");
    consumer.subscribe(&[&input]).expect("subscribing");
    drop(consumer.recv().await.expect("consuming"));
    for (offset, commit) in [(2, false), (3, true)] {
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset(&input, 0, Offset::Offset(offset)).unwrap();
        producer.begin_transaction().expect("begin_transaction");
        let metadata = consumer.group_metadata().expect("group metadata");
        producer.send_offsets_to_transaction(&offsets, &metadata, TIMEOUT).expect("send_offsets_to_transaction");
        if commit { producer.commit_transaction(TIMEOUT) } else { producer.abort_transaction(TIMEOUT) }
            .expect("ending the transaction");
        let committed = offsets_of(&consumer.committed(TIMEOUT).expect("committed offsets"));
        let expected = if commit { Offset::Offset(offset) } else { Offset::Invalid };
        assert_eq!(committed.get(&0), Some(&expected), "after {} of offset {offset}", if commit { "commit" } else { "abort" });
    }
}

/// Environment variable telling [`child_starts_a_broker_and_waits`] to run.
const CHILD_ENV: &str = "WEIR_KAFKA_SMOKE_CHILD";

/// The largest record weir produces to a topic comes from the topic's
/// `max.message.bytes` (a record over it is a `too-large` dead letter before
/// any produce), until then from the producer's own limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_reads_the_largest_record_size_from_the_topic_config() {
    use weir::delivery::message_size::{DEFAULT_MESSAGE_MAX_BYTES, MessageLimits};
    let kafka = Kafka::shared();
    let topic = unique("small-records");
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create().unwrap();
    let new = NewTopic::new(&topic, 1, TopicReplication::Fixed(kafka.replication_factor())).set("max.message.bytes", "65536");
    for result in admin.create_topics([&new], &AdminOptions::new()).await.unwrap() {
        result.unwrap();
    }
    let limits = MessageLimits::new(&kafka.client_config());
    assert_eq!(limits.max_for(&topic), DEFAULT_MESSAGE_MAX_BYTES, "the producer's limit while the broker is asked");
    let deadline = Instant::now() + TIMEOUT;
    while limits.max_for(&topic) != 65_536 {
        assert!(Instant::now() < deadline, "the topic's max.message.bytes was not read: {}", limits.max_for(&topic));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_jvm_dies_when_the_test_process_is_killed() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_starts_a_broker_and_waits", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the test binary as a child");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (pids, dir): (Vec<u32>, String) = loop {
        let line = lines.next().expect("the child printed its broker pids").expect("reading the child's output");
        // libtest may print "test <name> ... " in front of it.
        let rest = line.split_once("BROKER PIDS ").map(|(_, rest)| rest);
        if let Some((pids, dir)) = rest.and_then(|rest| rest.split_once(" DIR ")) {
            break (pids.split(',').map(|p| p.parse().unwrap()).collect(), dir.to_owned());
        }
    };
    assert!(!pids.is_empty());
    let alive = |pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
            .unwrap_or(false)
    };
    assert!(pids.iter().all(alive), "the broker runs while its test process does");
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids.iter().any(alive) {
        assert!(Instant::now() < deadline, "broker JVM(s) {pids:?} outlived their killed test process");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing cleans up after a process killed with -9.
    let _ = std::fs::remove_dir_all(dir);
}

/// Run by [`the_broker_jvm_dies_when_the_test_process_is_killed`] in a child process.
#[test]
#[ignore = "run as a child process by the_broker_jvm_dies_when_the_test_process_is_killed"]
fn child_starts_a_broker_and_waits() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let kafka = Kafka::single();
    let pids: Vec<String> = kafka.pids().iter().map(u32::to_string).collect();
    println!("BROKER PIDS {} DIR {}", pids.join(","), kafka.dir().display());
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}
