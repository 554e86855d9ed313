//! Helpers for tests that run `weir run` processes against real Kafka
//! (`weir_tests::broker::Kafka`): generated orders with known fates, a
//! pipeline config, guarded `weir` processes, and a `read_committed` collector
//! of outputs and dead letters that records when each record arrived.
#![allow(dead_code)]

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_tests::broker::Kafka;
use weir_tests::guests;
use weir_tests::process::Guarded;

/// A name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Where an input record must end up.
pub type Fates = BTreeMap<String, &'static str>;

/// Order `i`: valid orders (even ones above the filter's threshold, odd ones
/// filtered out), and every `poison_every` records malformed JSON, a schema
/// misfit, a negative amount (rejected by enrich) and a panic in misbehave.
pub fn order(i: usize, poison_every: usize) -> (String, String, &'static str) {
    let id = format!("o-{i:06}");
    let (value, fate) = match i % poison_every {
        7 => (format!(r#"{{"order_id":"{id}","total_amount":"#), "decode"),
        19 => (format!(r#"{{"order_id":"{id}","total_amount":-1.0}}"#), "rejected"),
        31 => (format!(r#"{{"order_id":"{id}","total_amount":900.0,"action":"panic"}}"#), "panic"),
        43 => (format!(r#"{{"order_id":"{id}","total_amount":"a lot"}}"#), "decode"),
        _ if i == 77 => (format!(r#"{{"order_id":"{id}","total_amount":900.0,"action":"loop"}}"#), "deadline"),
        _ if i.is_multiple_of(2) => (format!(r#"{{"order_id":"{id}","total_amount":{}.5}}"#, 100 + i % 1000), "output"),
        _ => (format!(r#"{{"order_id":"{id}","total_amount":{}.5}}"#, i % 50), "filtered"),
    };
    (id, value, fate)
}

/// Orders `range` (see [`order`]) as records and their fates.
pub fn orders(range: std::ops::Range<usize>, poison_every: usize) -> (Vec<(String, String)>, Fates) {
    let mut records = Vec::new();
    let mut fates = BTreeMap::new();
    for i in range {
        let (id, value, fate) = order(i, poison_every);
        records.push((id.clone(), value));
        fates.insert(id, fate);
    }
    (records, fates)
}

/// Records expected in the output and in the dead-letter topic.
pub fn expected_counts(fates: &Fates) -> (usize, usize) {
    (fates.values().filter(|f| **f == "output").count(), fates.values().filter(|f| **f != "output" && **f != "filtered").count())
}

/// An idempotent `acks=all` producer.
pub fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .create()
        .unwrap()
}

/// Produces `(key, value)` records to `topic` and waits for every delivery.
pub async fn produce(bootstrap: &str, topic: &str, records: &[(String, String)]) {
    let producer = producer(bootstrap);
    produce_with(&producer, topic, records).await;
}

/// [`produce`] with an existing producer.
pub async fn produce_with(producer: &FutureProducer, topic: &str, records: &[(String, String)]) {
    let sends = records.iter().map(|(k, v)| producer.send(FutureRecord::to(topic).key(k).payload(v), Duration::from_secs(120)));
    for result in futures::future::join_all(sends).await {
        result.expect("produce");
    }
}

/// Produces `records` in chunks of `chunk` every `every`, in a background task
/// (input arriving while processes are killed, restarted, rebalanced).
pub fn produce_steadily(bootstrap: &str, topic: &str, records: Vec<(String, String)>, chunk: usize, every: Duration) -> tokio::task::JoinHandle<()> {
    let producer = producer(bootstrap);
    let topic = topic.to_owned();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        for part in records.chunks(chunk) {
            tick.tick().await;
            produce_with(&producer, &topic, part).await;
        }
    })
}

/// One record read by a [`Collector`].
#[derive(Debug, Clone)]
pub struct Seen {
    pub topic: String,
    pub key: String,
    pub value: Vec<u8>,
    pub headers: BTreeMap<String, String>,
    /// When the collector received it.
    pub at: Instant,
}

/// A `read_committed` consumer of some topics from their beginning, running in
/// the background; everything it reads is kept, with its arrival time. It
/// assigns itself every partition (no consumer group), so it depends on no
/// group coordinator: a broker crash only moves the leaders it fetches from.
pub struct Collector {
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    pub fn start(bootstrap: &str, topics: &[&str]) -> Collector {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", unique("collector"))
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "50")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        for topic in topics {
            let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(30)).unwrap();
            let partitions = metadata.topics().iter().find(|t| t.name() == *topic).map(|t| t.partitions().len()).unwrap_or(0);
            assert!(partitions > 0, "collector: topic {topic} has no partitions");
            for partition in 0..partitions as i32 {
                assignment.add_partition_offset(topic, partition, Offset::Beginning).unwrap();
            }
        }
        consumer.assign(&assignment).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                match consumer.recv().await {
                    Ok(m) => {
                        let headers = m
                            .headers()
                            .map(|h| h.iter().map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect())
                            .unwrap_or_default();
                        let seen = Seen {
                            topic: m.topic().to_owned(),
                            key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                            value: m.payload().unwrap_or_default().to_vec(),
                            headers,
                            at: Instant::now(),
                        };
                        sink.lock().unwrap().push(seen);
                    }
                    Err(e) => eprintln!("collector: {e}"),
                }
            }
        });
        Collector { seen, task }
    }

    /// Records read so far.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// A copy of everything read so far.
    pub fn snapshot(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until at least `n` records were read and then nothing new for
    /// `settle`; panics after `timeout` with `context()` in the message.
    pub async fn wait_for(&self, n: usize, settle: Duration, timeout: Duration, context: impl Fn() -> String) -> Vec<Seen> {
        let deadline = Instant::now() + timeout;
        let mut last = (usize::MAX, Instant::now());
        loop {
            let len = self.len();
            if len != last.0 {
                last = (len, Instant::now());
            } else if len >= n && last.1.elapsed() >= settle {
                return self.snapshot();
            }
            assert!(Instant::now() < deadline, "only {len} of {n} records read in {timeout:?}; {}", context());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The longest gap between consecutive arrivals in `seen` within `[from, to]`
/// (arrival times sorted), or the gap from `from` to the first arrival.
pub fn longest_gap(seen: &[Seen], from: Instant, to: Instant) -> Duration {
    let mut times: Vec<Instant> = seen.iter().map(|s| s.at).filter(|t| *t >= from && *t <= to).collect();
    times.sort();
    let mut previous = from;
    let mut longest = Duration::ZERO;
    for t in times {
        longest = longest.max(t - previous);
        previous = t;
    }
    longest
}

/// Topics and scratch space of one test.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub input: String,
    pub output: String,
    pub dlq: String,
    pub group: String,
}

/// A scratch directory inside the broker's directory, so `weir run` logs
/// stay beside the broker logs when a test fails (the broker directory is
/// removed at exit otherwise).
pub fn scratch(kafka: &Kafka) -> tempfile::TempDir {
    let mut dir = tempfile::Builder::new().prefix("test-").tempdir_in(kafka.dir()).unwrap();
    dir.disable_cleanup(true);
    dir
}

/// Creates the input and output topics (`partitions` each) and a one-partition
/// dead-letter topic, all with unique names.
pub async fn setup(kafka: &Kafka, partitions: i32) -> Setup {
    let setup = Setup { dir: scratch(kafka), input: unique("orders"), output: unique("enriched"), dlq: unique("dlq"), group: unique("weir") };
    kafka.create_topics(&[(&setup.input, partitions), (&setup.output, partitions), (&setup.dlq, 1)]).await;
    setup
}

/// Classic-protocol group settings for quick failover of killed members.
pub const CLASSIC: &str = r#"{ "session.timeout.ms" = "2000", "heartbeat.interval.ms" = "500" }"#;

/// Writes the orders pipeline (enrich -> high-value filter -> misbehave, with a
/// dead-letter topic). `top` goes into `[pipelines.orders]` (e.g. the
/// guarantee), `properties` is the source's properties table.
pub fn write_config(bootstrap: &str, setup: &Setup, top: &str, properties: &str) -> PathBuf {
    std::fs::write(
        setup.dir.path().join("schema.json"),
        r#"{"fields":[{"name":"order_id","type":"utf8","nullable":false},{"name":"total_amount","type":"float64"},{"name":"action","type":"utf8"}]}"#,
    )
    .unwrap();
    let config = format!(
        r#"
        [engine.limits]
        call_deadline_ms = 500
        [pipelines.orders]
        {top}
        [pipelines.orders.source]
        bootstrap_servers = "{bootstrap}"
        group_id = "{group}"
        topics = ["{input}"]
        properties = {properties}
        [pipelines.orders.format]
        type = "json"
        schema = "schema.json"
        [pipelines.orders.batch]
        max_records = 200
        max_wait_ms = 20
        [[pipelines.orders.operators]]
        plugin = "{enrich}"
        name = "enrich"
        [[pipelines.orders.operators]]
        plugin = "{filter}"
        config = {{ threshold = 100.0 }}
        [[pipelines.orders.operators]]
        plugin = "{misbehave}"
        name = "misbehave"
        [pipelines.orders.output]
        topic = "{output}"
        key_column = "order_id"
        [pipelines.orders.errors]
        dead_letter_topic = "{dlq}"
        "#,
        group = setup.group,
        input = setup.input,
        output = setup.output,
        dlq = setup.dlq,
        enrich = guests::ENRICH_ORDER,
        filter = guests::HIGH_VALUE_ORDERS,
        misbehave = guests::MISBEHAVE,
    );
    let path = setup.dir.path().join("pipeline.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// The `weir` binary under test.
pub fn weir() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command.env_remove("RUST_BACKTRACE");
    command
}

/// `weir run --config <config>` with its log in `log`; killed if the test ends first.
pub fn weir_run(config: &Path, log: &Path) -> Guarded {
    let log = std::fs::File::create(log).unwrap();
    let mut command = weir();
    command
        .args(["run", "--config"])
        .arg(config)
        .env("WEIR_CACHE_DIR", std::env::temp_dir().join("weir-broker-test-cache"))
        .env("WEIR_LOG", std::env::var("WEIR_TEST_LOG").unwrap_or_else(|_| "info".into()))
        .stdout(Stdio::null())
        .stderr(log);
    Guarded::spawn(command).unwrap()
}

/// Waits for `process` to exit; panics after `timeout`.
pub fn wait_exit(process: &mut Guarded, timeout: Duration) -> std::process::ExitStatus {
    process.wait_timeout(timeout).unwrap_or_else(|| panic!("weir (pid {}) did not exit in {timeout:?}", process.id()))
}

/// SIGTERMs `process` and asserts it drains and exits successfully.
pub fn stop(process: &mut Guarded, log: &Path) {
    process.signal(libc::SIGTERM);
    let status = wait_exit(process, Duration::from_secs(60));
    assert!(status.success(), "weir exited with {status}: {}", std::fs::read_to_string(log).unwrap_or_default());
}

/// Checks every record of `fates` is in exactly its expected place (output,
/// or a dead letter of the expected kind; filtered ones nowhere). Returns the
/// number of duplicates; panics on a loss or a misplaced record.
pub fn check(fates: &Fates, seen: &[Seen], output: &str) -> usize {
    let mut places: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut duplicates = 0;
    for record in seen {
        let place = if record.topic == output {
            "output".to_owned()
        } else {
            assert_eq!(record.headers.get("weir.source.topic").map(String::is_empty), Some(false), "{}: {:?}", record.key, record.headers);
            record.headers.get("weir.error.kind").cloned().unwrap_or_default()
        };
        if !places.entry(record.key.clone()).or_default().insert(place) {
            duplicates += 1;
        }
    }
    let mut lost = Vec::new();
    for (key, expected) in fates {
        let found = places.get(key).cloned().unwrap_or_default();
        if *expected == "filtered" {
            assert!(found.is_empty(), "{key} should be filtered, found in {found:?}");
        } else if found.is_empty() {
            lost.push(key.clone());
        } else {
            assert_eq!(found, BTreeSet::from([expected.to_string()]), "{key}");
        }
    }
    assert!(lost.is_empty(), "{} record(s) lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(10)]);
    duplicates
}

/// Sum of the group's committed offsets over `partitions` partitions of `topic`.
pub async fn committed_total(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> i64 {
    let consumer: StreamConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", group).create().unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
    committed.elements().iter().map(|e| if let Offset::Offset(o) = e.offset() { o } else { 0 }).sum()
}

/// Kills `process` with SIGKILL once `collector` has read `more` records beyond `before`.
pub async fn kill_after(process: &mut Guarded, collector: &Collector, before: usize, more: usize, timeout: Duration, log: &Path) {
    let deadline = Instant::now() + timeout;
    while collector.len() < before + more {
        if let Some(status) = process.child().try_wait().unwrap() {
            panic!("weir exited on its own ({status}): {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "no progress in {timeout:?}: {}", std::fs::read_to_string(log).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    process.kill();
}

/// Partitions `log` (a `weir run` log) says its process got, as (assigned, revoked) totals.
pub fn partition_moves(log: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let count = |what: &str| -> usize {
        text.lines()
            .filter(|l| l.contains(what))
            .filter_map(|l| l.split("partitions=").nth(1)?.split_whitespace().next()?.parse::<usize>().ok())
            .sum()
    };
    (count("partitions assigned"), count("partitions revoked"))
}

/// Log lines of `log` assigning at least one partition.
pub fn assignments(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("partitions assigned") && !l.contains("partitions=0"))
        .count()
}

/// The last `n` lines of a `weir run` log, without the guests' own output
/// (a trapping guest's stderr and trap warnings are most of it).
pub fn log_tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains("guest_output") && !l.contains("wasm trap") && !l.contains("isolate")).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The fraud seed pipeline (`weir run`, checkpointed state to `state`) on
/// `input`, writing `output`; `guarantee` is a config line (empty: at-least-once)
/// and `properties` the source's librdkafka properties (a TOML table).
#[allow(clippy::too_many_arguments)]
pub fn fraud_config(dir: &std::path::Path, bootstrap: &str, group: &str, input: &str, output: &str, dlq: &str, state: &str, guarantee: &str, properties: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("schema.json"), weir::scenario::TRANSACTION_SCHEMA).unwrap();
    let toml = format!(
        r#"
        [pipelines.fraud]
        {guarantee}
        event_time = {{ column = "timestamp", allowed_lateness_ms = 1800000, idle_timeout_ms = 600000, late = "dlq" }}
        state = {{ topic = "{state}", checkpoint_records = 700, checkpoint_interval_ms = 1000 }}
        [pipelines.fraud.source]
        bootstrap_servers = "{bootstrap}"
        group_id = "{group}"
        topics = ["{input}"]
        properties = {properties}
        [pipelines.fraud.format]
        type = "json"
        schema = "schema.json"
        [pipelines.fraud.batch]
        max_records = 300
        max_wait_ms = 50
        [[pipelines.fraud.operators]]
        plugin = "{operator}"
        name = "windows"
        config = {{ emit = "all" }}
        [pipelines.fraud.output]
        topic = "{output}"
        key_column = "result_key"
        [pipelines.fraud.errors]
        dead_letter_topic = "{dlq}"
        "#,
        operator = guests::FRAUD_DETECTOR,
    );
    let path = dir.join("fraud.toml");
    std::fs::write(&path, toml).unwrap();
    path
}
