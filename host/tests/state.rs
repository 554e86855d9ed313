//! Durable aggregate state across a crash: `weir run` as a child process
//! runs the fraud pipeline (checkpoints to the state topic), is killed with
//! SIGKILL mid-stream, and a new process finishes the stream. The final
//! window results must still equal the batch computation: no window
//! contribution lost, none counted twice. The broker is librdkafka's mock
//! cluster in this test process, reached over TCP like any broker.

use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, TopicPartitionList};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weir::scenario;
use weir_tests::guests;
use weir_tests::seeds;

const PARTITIONS: i32 = 3;
const GROUP: &str = "fraud-crash";

fn spawn_weir(config: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LOG", "weir=info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting weir")
}

async fn produce(bootstrap: &str, events: &[scenario::Event]) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("linger.ms", "5").create().unwrap();
    let sends = events.iter().map(|e| producer.send(FutureRecord::to(e.topic).partition(e.partition).key(&e.key).payload(&e.value), Duration::from_secs(10)));
    for result in futures::future::join_all(sends).await {
        result.expect("produce");
    }
}

/// Records in `topic` (all partitions), from the watermarks.
fn count(bootstrap: &str, topic: &str, partitions: i32) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    (0..partitions).map(|p| consumer.fetch_watermarks(topic, p, Duration::from_secs(5)).map(|(low, high)| high - low).unwrap_or(0)).sum()
}

/// Whether the group committed the end of every input partition.
fn caught_up(bootstrap: &str) -> bool {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", GROUP).create().unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition(scenario::TRANSACTIONS_TOPIC, p);
    }
    let Ok(committed) = consumer.committed_offsets(list, Duration::from_secs(5)) else { return false };
    (0..PARTITIONS).all(|p| {
        let end = consumer.fetch_watermarks(scenario::TRANSACTIONS_TOPIC, p, Duration::from_secs(5)).map(|(_, high)| high).unwrap_or(-1);
        matches!(committed.find_partition(scenario::TRANSACTIONS_TOPIC, p).map(|e| e.offset()), Some(rdkafka::Offset::Offset(o)) if o == end)
    })
}

async fn read_values(bootstrap: &str, topic: &str) -> Vec<Vec<u8>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "reader")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut values = Vec::new();
    let mut wait = Duration::from_secs(20);
    while let Ok(Ok(message)) = tokio::time::timeout(wait, consumer.recv()).await {
        values.push(message.payload().unwrap_or_default().to_vec());
        wait = Duration::from_secs(2);
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_keeps_the_fraud_windows_equal_to_the_batch_computation() {
    let cluster = MockCluster::new(1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    cluster.create_topic(scenario::TRANSACTIONS_TOPIC, PARTITIONS, 1).unwrap();
    cluster.create_topic("fraud.state", 1, 1).unwrap();
    cluster.create_topic("fraud-windows", PARTITIONS, 1).unwrap();
    cluster.create_topic("transactions.dlq", 1, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.json"), scenario::TRANSACTION_SCHEMA).unwrap();
    let config = dir.path().join("fraud.toml");
    std::fs::write(
        &config,
        format!(
            r#"
            [engine]
            cache_dir = {cache:?}
            [pipelines.fraud]
            event_time = {{ column = "timestamp", allowed_lateness_ms = 1800000, idle_timeout_ms = 600000 }}
            state = {{ checkpoint_records = 400, checkpoint_interval_ms = 500 }}
            [pipelines.fraud.source]
            bootstrap_servers = "{bootstrap}"
            group_id = "{GROUP}"
            topics = ["transactions"]
            properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}
            [pipelines.fraud.format]
            type = "json"
            schema = "schema.json"
            [pipelines.fraud.batch]
            max_records = 200
            max_wait_ms = 50
            [[pipelines.fraud.operators]]
            plugin = "{plugin}"
            name = "fraud-detector"
            config = {{ emit = "all" }}
            [pipelines.fraud.output]
            topic = "fraud-windows"
            key_column = "result_key"
            "#,
            cache = dir.path().join("cache"),
            plugin = guests::FRAUD_DETECTOR,
        ),
    )
    .unwrap();
    let stream = scenario::fraud(150, 10, 40, PARTITIONS);
    let (first, second) = stream.events.split_at(stream.events.len() * 2 / 3);
    produce(&bootstrap, first).await;

    let mut crashed = spawn_weir(&config, &dir.path().join("first.log"));
    // Kill it once it has checkpointed a few times, while it is still busy.
    let deadline = Instant::now() + Duration::from_secs(90);
    while count(&bootstrap, "fraud.state", 1) < 4 {
        assert!(crashed.try_wait().unwrap().is_none(), "weir exited early: {}", std::fs::read_to_string(dir.path().join("first.log")).unwrap());
        assert!(Instant::now() < deadline, "no checkpoints: {}", std::fs::read_to_string(dir.path().join("first.log")).unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    crashed.kill().unwrap(); // SIGKILL: no drain, no final checkpoint
    crashed.wait().unwrap();
    let emitted_before = count(&bootstrap, "fraud-windows", PARTITIONS);
    produce(&bootstrap, second).await;

    let mut restarted = spawn_weir(&config, &dir.path().join("second.log"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !caught_up(&bootstrap) {
        assert!(restarted.try_wait().unwrap().is_none(), "weir exited early: {}", std::fs::read_to_string(dir.path().join("second.log")).unwrap());
        assert!(Instant::now() < deadline, "the restarted process did not catch up: {}", std::fs::read_to_string(dir.path().join("second.log")).unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    restarted.kill().unwrap();
    restarted.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("second.log")).unwrap();
    assert!(log.contains("task restored from its checkpoint"), "the restart restored state: {log}");

    let outputs = read_values(&bootstrap, "fraud-windows").await;
    assert!(emitted_before > 0, "the first process emitted results before it died");
    let inputs: Vec<seeds::Input> = stream.events.iter().map(|e| (e.topic.to_owned(), e.partition, e.value.clone())).collect();
    seeds::check_fraud(&inputs, &stream.fraud_users, &outputs);
    drop(cluster);
}
