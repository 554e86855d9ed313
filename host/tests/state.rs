//! Durable aggregate state across a crash: `weir run` as a child process
//! runs a seed pipeline (fraud, orders) (checkpoints to the state topic), is killed with
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
        .env("WEIR_LOG", std::env::var("WEIR_CHILD_LOG").unwrap_or_else(|_| "info".into()))
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
fn caught_up(bootstrap: &str, topics: &[&str]) -> bool {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", GROUP).create().unwrap();
    let mut list = TopicPartitionList::new();
    for topic in topics {
        for p in 0..PARTITIONS {
            list.add_partition(topic, p);
        }
    }
    let Ok(committed) = consumer.committed_offsets(list, Duration::from_secs(5)) else { return false };
    topics.iter().all(|topic| {
        (0..PARTITIONS).all(|p| {
            let end = consumer.fetch_watermarks(topic, p, Duration::from_secs(5)).map(|(_, high)| high).unwrap_or(-1);
            end == 0 || matches!(committed.find_partition(topic, p).map(|e| e.offset()), Some(rdkafka::Offset::Offset(o)) if o == end)
        })
    })
}

/// Checks a seed's output values against its inputs.
type Check = Box<dyn Fn(&[seeds::Input], &[Vec<u8>])>;

/// One seed pipeline for the crash test.
struct Seed {
    name: &'static str,
    topics: Vec<&'static str>,
    schema: &'static str,
    plugin: &'static str,
    config: &'static str,
    lateness_ms: u64,
    output: &'static str,
    events: Vec<scenario::Event>,
    check: Check,
}

fn fraud_seed() -> Seed {
    let stream = scenario::fraud(150, 10, 40, PARTITIONS);
    let planted = stream.fraud_users.clone();
    Seed {
        name: "fraud",
        topics: vec![scenario::TRANSACTIONS_TOPIC],
        schema: scenario::TRANSACTION_SCHEMA,
        plugin: guests::FRAUD_DETECTOR,
        config: r#"{ emit = "all" }"#,
        lateness_ms: 1_800_000,
        output: "fraud-windows",
        events: stream.events,
        check: Box::new(move |inputs, outputs| seeds::check_fraud(inputs, &planted, outputs)),
    }
}

fn orders_seed() -> Seed {
    Seed {
        name: "orders",
        topics: scenario::ORDER_TOPICS.to_vec(),
        schema: scenario::ORDER_SCHEMA,
        plugin: guests::ORDER_REVENUE,
        config: "{ early_updates = true }",
        lateness_ms: 600_000,
        output: "order-revenue",
        events: scenario::orders(20_000, PARTITIONS),
        check: Box::new(seeds::check_orders),
    }
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
    crash_and_restart(fraud_seed()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_keeps_the_hourly_order_revenue_equal_to_the_batch_computation() {
    crash_and_restart(orders_seed()).await;
}

async fn crash_and_restart(seed: Seed) {
    let cluster = MockCluster::new(1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    for topic in &seed.topics {
        cluster.create_topic(topic, PARTITIONS, 1).unwrap();
    }
    let state_topic = format!("{}.state", seed.name);
    cluster.create_topic(&state_topic, 1, 1).unwrap();
    cluster.create_topic(seed.output, PARTITIONS, 1).unwrap();
    cluster.create_topic("seed.dlq", 1, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.json"), seed.schema).unwrap();
    let config = dir.path().join("seed.toml");
    std::fs::write(
        &config,
        format!(
            r#"
            [engine]
            cache_dir = {cache:?}
            [pipelines.{name}]
            event_time = {{ column = "timestamp", allowed_lateness_ms = {lateness}, idle_timeout_ms = 600000 }}
            state = {{ checkpoint_records = 400, checkpoint_interval_ms = 500 }}
            [pipelines.{name}.source]
            bootstrap_servers = "{bootstrap}"
            group_id = "{GROUP}"
            topics = {topics:?}
            properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}
            [pipelines.{name}.format]
            type = "json"
            schema = "schema.json"
            [pipelines.{name}.batch]
            max_records = 200
            max_wait_ms = 50
            [[pipelines.{name}.operators]]
            plugin = "{plugin}"
            name = "windows"
            config = {config}
            [pipelines.{name}.output]
            topic = "{output}"
            key_column = "result_key"
            [pipelines.{name}.errors]
            dead_letter_topic = "seed.dlq"
            "#,
            cache = dir.path().join("cache"),
            name = seed.name,
            lateness = seed.lateness_ms,
            topics = seed.topics,
            plugin = seed.plugin,
            config = seed.config,
            output = seed.output,
        ),
    )
    .unwrap();
    let (first, second) = seed.events.split_at(seed.events.len() * 2 / 3);
    produce(&bootstrap, first).await;

    let mut crashed = spawn_weir(&config, &dir.path().join("first.log"));
    // Kill it once it has checkpointed (a keyed checkpoint is many records)
    // and emitted results, while it is still busy.
    let deadline = Instant::now() + Duration::from_secs(90);
    while count(&bootstrap, &state_topic, 1) < 4 || count(&bootstrap, seed.output, PARTITIONS) == 0 {
        assert!(crashed.try_wait().unwrap().is_none(), "weir exited early: {}", std::fs::read_to_string(dir.path().join("first.log")).unwrap());
        assert!(Instant::now() < deadline, "no checkpoints: {}", std::fs::read_to_string(dir.path().join("first.log")).unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    crashed.kill().unwrap(); // SIGKILL: no drain, no final checkpoint
    crashed.wait().unwrap();
    let emitted_before = count(&bootstrap, seed.output, PARTITIONS);
    produce(&bootstrap, second).await;

    let mut restarted = spawn_weir(&config, &dir.path().join("second.log"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !caught_up(&bootstrap, &seed.topics) {
        assert!(restarted.try_wait().unwrap().is_none(), "weir exited early: {}", std::fs::read_to_string(dir.path().join("second.log")).unwrap());
        assert!(Instant::now() < deadline, "the restarted process did not catch up: {}", std::fs::read_to_string(dir.path().join("second.log")).unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    restarted.kill().unwrap();
    restarted.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("second.log")).unwrap();
    assert!(log.contains("task restored from its checkpoint"), "the restart restored state: {log}");

    if let Some(keep) = std::env::var_os("WEIR_KEEP_LOGS") {
        for log in ["first.log", "second.log"] {
            std::fs::copy(dir.path().join(log), Path::new(&keep).join(format!("{}-{log}", seed.name))).unwrap();
        }
    }
    let outputs = read_values(&bootstrap, seed.output).await;
    assert!(emitted_before > 0, "the first process emitted results before it died");
    let inputs: Vec<seeds::Input> = seed.events.iter().map(|e| (e.topic.to_owned(), e.partition, e.value.clone())).collect();
    (seed.check)(&inputs, &outputs);
    drop(cluster);
}
