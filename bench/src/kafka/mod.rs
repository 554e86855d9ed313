//! Benchmarks on a real Apache Kafka broker (issue 16): one single-node
//! KRaft broker, the same input topic for every contender, in one run:
//! - weir with the identity map, the high-value-orders filter and the
//!   enrich-order map, a raw rdkafka passthrough and Kafka Streams (the same
//!   JSON filter and map, `bench/peers/kafka-streams`), each at-least-once and
//!   exactly-once: records/s from the first record consumed until the
//!   contender's group has committed every input offset (read from the
//!   broker), in interleaved rounds so a busy spell of the shared machine hits
//!   every contender alike; every output is read back (read_committed) and
//!   checked against the native result in the first round;
//! - end-to-end latency at a fixed input rate (records carry their produce
//!   time);
//! - the fraud seed pipeline (checkpointed windows) under both guarantees:
//!   records/s and alert latency.

mod fraud;
mod latency;
mod raw;
mod streams;

use crate::contenders::NativeSerde;
use crate::report::{Table, rate};
use crate::workload::{self, Digest, Workload};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weir::config::Config;
use weir::engine::{Engine, EngineConfig};
use weir::pipeline::PipelineHandle;
use weir_tests::broker::{Kafka, KafkaConfig};
use weir_tests::guests;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Partitions of every topic (input and outputs).
const PARTITIONS: i32 = 4;
/// weir's batch cut (= transaction under exactly-once) and the passthrough's.
const BATCH_RECORDS: usize = 10_000;
/// The batch wait, and Kafka Streams' `commit.interval.ms` (its exactly-once default).
const COMMIT_INTERVAL_MS: u64 = 100;
/// Longest a single run may take before the suite gives up on it.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Delivery guarantee of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    /// Offsets committed after the outputs are acknowledged.
    AtLeastOnce,
    /// Outputs and offsets in one transaction per batch / commit interval.
    ExactlyOnce,
}

impl Guarantee {
    const BOTH: [Guarantee; 2] = [Guarantee::AtLeastOnce, Guarantee::ExactlyOnce];

    /// weir's name (and the tables').
    fn name(self) -> &'static str {
        match self {
            Guarantee::AtLeastOnce => "at-least-once",
            Guarantee::ExactlyOnce => "exactly-once",
        }
    }

    /// Kafka Streams' `processing.guarantee`.
    fn streams(self) -> &'static str {
        match self {
            Guarantee::AtLeastOnce => "at_least_once",
            Guarantee::ExactlyOnce => "exactly_once_v2",
        }
    }
}

/// What is computed over the orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Every record out (weir: decoded, through the identity Wasm map, encoded).
    Identity,
    /// `total_amount > 1000`.
    Filter,
    /// `amount_bucket`, `tax_amount` appended.
    Map,
}

impl Job {
    /// The reference digest's workload (identity: every order id kept).
    fn workload(self) -> Workload {
        match self {
            Job::Identity | Job::Filter => Workload::Filter,
            Job::Map => Workload::Map,
        }
    }
}

/// A pipeline of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    /// Raw rdkafka consume -> produce.
    Raw,
    /// weir with a Rust Wasm guest.
    Weir(Job),
    /// The Kafka Streams peer.
    Streams(Job),
}

impl Contender {
    fn label(self) -> &'static str {
        match self {
            Contender::Raw => "raw rdkafka consume -> produce (no decoding)",
            Contender::Weir(Job::Identity) => "weir, identity Wasm map",
            Contender::Weir(Job::Filter) => "weir, high-value-orders Wasm filter (> 1000)",
            Contender::Weir(Job::Map) => "weir, enrich-order Wasm map (+2 fields)",
            Contender::Streams(Job::Filter) => "Kafka Streams, filter (> 1000), Jackson",
            Contender::Streams(Job::Map) => "Kafka Streams, map (+2 fields), Jackson",
            Contender::Streams(Job::Identity) => "Kafka Streams, identity",
        }
    }

    fn job(self) -> Job {
        match self {
            Contender::Raw => Job::Identity,
            Contender::Weir(job) | Contender::Streams(job) => job,
        }
    }

    fn short(self) -> &'static str {
        match self {
            Contender::Raw => "raw",
            Contender::Weir(Job::Identity) => "weir-identity",
            Contender::Weir(Job::Filter) => "weir-filter",
            Contender::Weir(Job::Map) => "weir-map",
            Contender::Streams(Job::Filter) => "streams-filter",
            Contender::Streams(Job::Map) => "streams-map",
            Contender::Streams(Job::Identity) => "streams-identity",
        }
    }
}

const CONTENDERS: [Contender; 6] = [
    Contender::Raw,
    Contender::Weir(Job::Identity),
    Contender::Weir(Job::Filter),
    Contender::Weir(Job::Map),
    Contender::Streams(Job::Filter),
    Contender::Streams(Job::Map),
];

/// Sizes of the run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Orders in the throughput input topic.
    pub records: usize,
    /// Interleaved rounds (median reported).
    pub rounds: usize,
    /// Orders per latency run and their rate.
    pub latency_records: usize,
    /// Input rate of the latency runs (records/s).
    pub latency_rate: u64,
    /// Contenders of the latency table.
    pub latency_contenders: Vec<Contender>,
    /// Users of the fraud throughput run.
    pub fraud_users: u64,
    /// Users, planted users and payments/s of the fraud alert-latency run.
    pub fraud_latency: (u64, u64, u64),
}

impl Plan {
    /// The published run, or the CI smoke run (`quick`: small, one round).
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                records: 5_000,
                rounds: 1,
                latency_records: 1_000,
                latency_rate: 1_000,
                latency_contenders: vec![Contender::Weir(Job::Identity)],
                fraud_users: 100,
                fraud_latency: (60, 10, 2_000),
            }
        } else {
            Plan {
                records: 300_000,
                rounds: 3,
                latency_records: 40_000,
                latency_rate: 5_000,
                latency_contenders: CONTENDERS.to_vec(),
                fraud_users: 2_000,
                fraud_latency: (1_000, 100, 5_000),
            }
        }
    }
}

/// The broker of the run and an admin client on it.
pub struct Bench {
    pub(crate) bootstrap: String,
    admin: AdminClient<DefaultClientContext>,
    names: AtomicU32,
    /// The smoke run: JVMs tuned to start fast rather than to run fast.
    quick: bool,
}

impl Bench {
    pub(crate) fn new(bootstrap: &str, quick: bool) -> Result<Bench, Error> {
        let admin = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
        Ok(Bench { bootstrap: bootstrap.to_owned(), admin, names: AtomicU32::new(0), quick })
    }

    /// A name not used before in this run.
    pub(crate) fn name(&self, prefix: &str) -> String {
        format!("{prefix}-{}-{}", std::process::id(), self.names.fetch_add(1, Ordering::Relaxed))
    }

    /// Creates a fresh topic and returns its name.
    pub(crate) async fn topic(&self, prefix: &str, partitions: i32) -> Result<String, Error> {
        let name = self.name(prefix);
        let results = self.admin.create_topics(&[NewTopic::new(&name, partitions, TopicReplication::Fixed(1))], &AdminOptions::new()).await?;
        for result in results {
            result.map_err(|(topic, code)| format!("creating {topic}: {code}"))?;
        }
        Ok(name)
    }

    /// Deletes topics (their data is no longer needed).
    pub(crate) async fn delete(&self, topics: &[&str]) -> Result<(), Error> {
        self.admin.delete_topics(topics, &AdminOptions::new()).await?;
        Ok(())
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64
}

/// Produces `values` (key: `customer_id`) and waits for every acknowledgement.
async fn produce(bootstrap: &str, topic: &str, values: &[&[u8]]) -> Result<(), Error> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    for chunk in values.chunks(50_000) {
        let mut pending = Vec::with_capacity(chunk.len());
        for value in chunk {
            let key = customer_id(value);
            pending.push(producer.send_result(FutureRecord::to(topic).key(key).payload(*value)).map_err(|(e, _)| e)?);
        }
        for delivery in pending {
            delivery.await?.map_err(|(e, _)| e)?;
        }
    }
    Ok(())
}

/// The `customer_id` of an order line (its record key).
fn customer_id(line: &[u8]) -> &[u8] {
    const FIELD: &[u8] = br#""customer_id":""#;
    let Some(start) = line.windows(FIELD.len()).position(|w| w == FIELD).map(|p| p + FIELD.len()) else { return b"" };
    let end = line[start..].iter().position(|b| *b == b'"').map_or(line.len(), |e| start + e);
    &line[start..end]
}

/// The line with its `timestamp` value replaced by `ms` (latency runs).
fn with_timestamp(line: &[u8], ms: i64) -> Vec<u8> {
    const FIELD: &[u8] = br#""timestamp":"#;
    let Some(start) = line.windows(FIELD.len()).position(|w| w == FIELD).map(|p| p + FIELD.len()) else { return line.to_vec() };
    let end = line[start..].iter().position(|b| !b.is_ascii_digit() && *b != b'-').map_or(line.len(), |e| start + e);
    let mut out = Vec::with_capacity(line.len() + 4);
    out.extend_from_slice(&line[..start]);
    out.extend_from_slice(ms.to_string().as_bytes());
    out.extend_from_slice(&line[end..]);
    out
}

/// The sum of `group`'s committed offsets on `topic` (from the broker).
fn committed(reader: &BaseConsumer, topic: &str, partitions: i32) -> Result<i64, Error> {
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let list = reader.committed_offsets(list, Duration::from_secs(10))?;
    Ok(list.elements().iter().map(|e| if let Offset::Offset(o) = e.offset() { o } else { 0 }).sum())
}

/// [`committed`] off the async threads; a coordinator still loading
/// (`NotCoordinator` and the like right after a group's first commit)
/// counts as nothing committed yet.
async fn committed_now(reader: &Arc<BaseConsumer>, topic: &str, partitions: i32) -> Result<u64, Error> {
    let (reader, topic) = (reader.clone(), topic.to_owned());
    match tokio::task::spawn_blocking(move || committed(&reader, &topic, partitions)).await? {
        Ok(done) => Ok(done as u64),
        Err(e) if e.to_string().contains("oordinator") => Ok(0),
        Err(e) => Err(e),
    }
}

/// A consumer that only reads `group`'s committed offsets (it never joins).
fn offsets_reader(bootstrap: &str, group: &str) -> Result<Arc<BaseConsumer>, Error> {
    Ok(Arc::new(ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", group).set("enable.auto.commit", "false").create()?))
}

/// A `read_committed` consumer in group `group` (nothing committed) assigned
/// every partition of `topic` from the beginning, with `extra` properties.
pub(super) fn committed_reader(bootstrap: &str, topic: &str, partitions: i32, group: &str, extra: &[(&str, &str)]) -> Result<BaseConsumer, Error> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap).set("group.id", group).set("enable.auto.commit", "false").set("isolation.level", "read_committed");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config.create()?;
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&list)?;
    Ok(consumer)
}

/// Reads a topic from the beginning to its end (read_committed) as JSON lines.
fn read_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<Vec<Vec<u8>>, Error> {
    let consumer = committed_reader(bootstrap, topic, partitions, &format!("check-{topic}"), &[("enable.partition.eof", "true")])?;
    let mut at_end = std::collections::BTreeSet::new();
    let mut values = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while at_end.len() < partitions as usize {
        if Instant::now() > deadline {
            return Err(format!("reading {topic}: no end after 120 s").into());
        }
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) => values.push(message.payload().unwrap_or_default().to_vec()),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Ok(values)
}

/// The digest of an output topic's values.
fn output_digest(job: Job, values: &[Vec<u8>]) -> Result<Digest, Error> {
    let mut lines = Vec::with_capacity(values.iter().map(|v| v.len() + 1).sum());
    for value in values {
        lines.extend_from_slice(value);
        lines.push(b'\n');
    }
    Ok(workload::digest(job.workload(), &lines)?)
}

/// The native result of `job` over `lines`.
fn reference(job: Job, lines: &[&[u8]]) -> Result<Digest, Error> {
    let mut out = Vec::new();
    let workload = match job {
        Job::Identity => {
            for line in lines {
                out.extend_from_slice(line);
                out.push(b'\n');
            }
            return Ok(workload::digest(Workload::Filter, &out)?);
        }
        Job::Filter => Workload::Filter,
        Job::Map => Workload::Map,
    };
    crate::contenders::Contender::batch(&mut NativeSerde::new(workload), lines, &mut out)?;
    Ok(workload::digest(workload, &out)?)
}

/// The weir pipeline config for `job` (orders schema, JSON).
fn weir_config(dir: &std::path::Path, bootstrap: &str, input: &str, output: &str, group: &str, job: Job, guarantee: Guarantee) -> Result<weir::config::PipelineConfig, Error> {
    std::fs::write(dir.join("schema.json"), workload::schema_json(0))?;
    let (plugin, config) = match job {
        Job::Identity => (guests::IDENTITY, "{}"),
        Job::Filter => (guests::HIGH_VALUE_ORDERS, "{ threshold = 1000.0 }"),
        Job::Map => (guests::ENRICH_ORDER, "{ tax_rate = 0.2 }"),
    };
    let toml = format!(
        r#"
        [pipelines.bench]
        guarantee = "{guarantee}"
        exactly_once = {{ instance_id = "{group}" }}
        [pipelines.bench.source]
        bootstrap_servers = "{bootstrap}"
        group_id = "{group}"
        topics = ["{input}"]
        [pipelines.bench.format]
        type = "json"
        schema = "schema.json"
        [pipelines.bench.batch]
        max_records = {BATCH_RECORDS}
        max_wait_ms = {COMMIT_INTERVAL_MS}
        [[pipelines.bench.operators]]
        plugin = "{plugin}"
        config = {config}
        [pipelines.bench.output]
        topic = "{output}"
        "#,
        guarantee = guarantee.name(),
    );
    std::fs::write(dir.join("p.toml"), toml)?;
    Ok(Config::load(&dir.join("p.toml"))?.pipelines["bench"].clone())
}

/// A contender started on the broker.
enum Running {
    Weir(PipelineHandle, tempfile::TempDir),
    Raw(raw::Passthrough),
    Streams(streams::StreamsApp),
}

impl Running {
    fn start(kafka: &Bench, contender: Contender, guarantee: Guarantee, input: &str, output: &str, group: &str) -> Result<Running, Error> {
        Ok(match contender {
            Contender::Raw => Running::Raw(raw::Passthrough::start(&kafka.bootstrap, input, output, group, guarantee, BATCH_RECORDS, Duration::from_millis(COMMIT_INTERVAL_MS))),
            Contender::Weir(job) => {
                let dir = tempfile::tempdir()?;
                let config = weir_config(dir.path(), &kafka.bootstrap, input, output, group, job, guarantee)?;
                Running::Weir(weir::pipeline::start("bench", config, Engine::new(EngineConfig::default())?)?, dir)
            }
            Contender::Streams(job) => Running::Streams(streams::StreamsApp::start(&streams::Args {
                bootstrap: &kafka.bootstrap,
                input,
                output,
                job,
                guarantee,
                application_id: group,
                commit_interval_ms: COMMIT_INTERVAL_MS,
                threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
                jvm_options: if kafka.quick { &["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"] } else { &[] },
            })?),
        })
    }

    /// When the first record was consumed (as seen by the contender).
    fn first_record(&self) -> Option<Instant> {
        match self {
            Running::Weir(handle, _) => (handle.stats().records_in.load(Ordering::Relaxed) > 0).then(Instant::now),
            Running::Raw(raw) => raw.first_record(),
            Running::Streams(app) => app.first_record(),
        }
    }

    /// Whether it has its partitions and would process a record now.
    fn is_ready(&self) -> bool {
        match self {
            Running::Weir(handle, _) => handle.stats().snapshot().assigned_partitions.unwrap_or(0) > 0,
            Running::Raw(raw) => raw.is_ready(),
            Running::Streams(app) => app.is_running(),
        }
    }

    /// Why it stopped on its own, if it did.
    fn failure(&mut self) -> Option<String> {
        match self {
            Running::Weir(handle, _) => handle.is_finished().then(|| format!("weir pipeline stopped: {:?}", handle.stats().snapshot().state)),
            Running::Raw(raw) => raw.failure(),
            Running::Streams(app) => app.failure(),
        }
    }

    async fn stop(self) -> Result<(), Error> {
        match self {
            Running::Weir(handle, _dir) => {
                handle.shutdown();
                handle.join().await?;
            }
            Running::Raw(raw) => tokio::task::spawn_blocking(move || raw.stop()).await??,
            Running::Streams(app) => app.stop().await?,
        }
        Ok(())
    }
}

/// Waits until `group` has committed `records` offsets of `input`; returns
/// the time from the contender's first record to that point.
async fn until_committed(running: &mut Running, bootstrap: &str, group: &str, input: &str, partitions: i32, records: u64) -> Result<Duration, Error> {
    let reader = offsets_reader(bootstrap, group)?;
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut first = None;
    loop {
        if let Some(failure) = running.failure() {
            return Err(failure.into());
        }
        if first.is_none() {
            // Nothing is committed before the first record: watch for it
            // closely, then poll the broker's committed offsets.
            first = running.first_record();
            if first.is_none() {
                if Instant::now() > deadline {
                    return Err(format!("no record consumed after {RUN_TIMEOUT:?}").into());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        }
        let done = committed_now(&reader, input, partitions).await?;
        if done >= records {
            return Ok(first.map_or(Duration::ZERO, |f| f.elapsed()));
        }
        if Instant::now() > deadline {
            return Err(format!("{done} of {records} offsets committed after {RUN_TIMEOUT:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One throughput run: a fresh output topic and group; the output is
/// checked against `expected` when given.
async fn throughput_run(kafka: &Bench, contender: Contender, guarantee: Guarantee, input: &str, records: u64, expected: Option<&Digest>) -> Result<Duration, Error> {
    let wall = Instant::now();
    let output = kafka.topic(&format!("out-{}", contender.short()), PARTITIONS).await?;
    let group = kafka.name(&format!("{}-{}", contender.short(), guarantee.name()));
    let mut running = Running::start(kafka, contender, guarantee, input, &output, &group)?;
    let time = until_committed(&mut running, &kafka.bootstrap, &group, input, PARTITIONS, records).await;
    running.stop().await?;
    let time = time.map_err(|e| format!("{} {}: {e}", contender.label(), guarantee.name()))?;
    if let Some(expected) = expected {
        let (bootstrap, topic) = (kafka.bootstrap.clone(), output.clone());
        let values = tokio::task::spawn_blocking(move || read_topic(&bootstrap, &topic, PARTITIONS)).await??;
        workload::check(expected, &output_digest(contender.job(), &values)?).map_err(|e| format!("{} {}: {e}", contender.label(), guarantee.name()))?;
    }
    kafka.delete(&[&output]).await?;
    eprintln!("bench: {} {}: {time:?} (run with start, stop and checks: {:?})", contender.label(), guarantee.name(), wall.elapsed());
    Ok(time)
}

/// Median of durations.
fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// Where the broker comes from: `WEIR_BENCH_BOOTSTRAP` (a running cluster),
/// else a single KRaft node started for the run. For published figures the
/// node runs as Kafka ships it (`kafka-server-start.sh`: 1 GiB heap, G1, full
/// JIT; default thread pools and segment size) rather than with the test
/// set-up's small-footprint flags; the quick run keeps those (it starts faster).
fn broker(quick: bool) -> Result<(String, String, Option<Kafka>), Error> {
    if let Ok(bootstrap) = std::env::var("WEIR_BENCH_BOOTSTRAP") {
        return Ok((bootstrap, "external (WEIR_BENCH_BOOTSTRAP)".into(), None));
    }
    let config = if quick {
        KafkaConfig::default()
    } else {
        let shipped = ["-Xms1024m", "-XX:TieredStopAtLevel=4", "-XX:-UseSerialGC", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35"];
        let defaults = [("num.network.threads", "3"), ("num.io.threads", "8"), ("background.threads", "10"), ("log.segment.bytes", "1073741824")];
        KafkaConfig {
            heap_mib: 1024,
            jvm_options: shipped.map(String::from).to_vec(),
            properties: defaults.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            ..KafkaConfig::default()
        }
    };
    let broker = Kafka::start(config);
    Ok((broker.bootstrap().to_owned(), format!("Apache Kafka {} (single KRaft node)", weir_tests::broker::KAFKA_VERSION), Some(broker)))
}

/// Runs the suite; `quick` is the CI smoke run (small, outputs checked, no timing claims).
pub fn run(quick: bool) -> Result<String, Error> {
    let plan = Plan::new(quick);
    let streams_built = streams::build();
    if let Err(error) = &streams_built {
        eprintln!("bench: the Kafka Streams peer did not build, its rows are skipped:\n{error}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (bootstrap, broker_name, _broker) = broker(quick)?;
    let kafka = Bench::new(&bootstrap, quick)?;
    let contenders: Vec<Contender> = CONTENDERS.into_iter().filter(|c| streams_built.is_ok() || !matches!(c, Contender::Streams(_))).collect();
    let tables = runtime.block_on(async {
        let throughput = throughput(&kafka, &plan, &contenders).await?;
        let latency = latency::table(&kafka, &plan, &contenders).await?;
        let fraud = fraud::run(&kafka, &plan).await?;
        Ok::<_, Error>(summary(&throughput, &fraud).into_iter().chain([throughput.table(), latency, fraud.table()]).collect::<Vec<_>>())
    })?;
    let streams_version = streams::version().unwrap_or_else(|| "not built".into());
    let heading = format!("Real broker: {broker_name}, Kafka Streams {streams_version}{}", if quick { ", quick mode" } else { "" });
    let meta = serde_json::json!({"records": plan.records, "rounds": plan.rounds, "quick": quick, "broker": broker_name, "kafka_streams": streams_version});
    Ok(crate::report::publish("kafka", &heading, &tables, meta, "")?)
}

/// Every throughput time by contender and guarantee.
struct Throughput {
    records: usize,
    rounds: usize,
    times: Vec<(Contender, Guarantee, Vec<Duration>)>,
}

impl Throughput {
    fn median(&self, contender: Contender, guarantee: Guarantee) -> Option<Duration> {
        self.times.iter().find(|(c, g, _)| *c == contender && *g == guarantee).map(|(_, _, t)| median(t))
    }

    fn table(&self) -> Table {
        let mut table = Table::new(
            &format!(
                "End to end on the broker: {} JSON orders, {PARTITIONS} partitions, batches / commits of 10k records or {COMMIT_INTERVAL_MS} ms, median of {} interleaved rounds",
                self.records, self.rounds
            ),
            &["pipeline", "at-least-once records/s", "exactly-once records/s", "exactly-once / at-least-once", "vs raw passthrough (ALOS / EOS)"],
        );
        for contender in CONTENDERS {
            let (Some(alos), Some(eos)) = (self.median(contender, Guarantee::AtLeastOnce), self.median(contender, Guarantee::ExactlyOnce)) else { continue };
            let vs_raw = |g: Guarantee, t: Duration| self.median(Contender::Raw, g).map_or("-".into(), |raw| format!("{:.2}x", raw.as_secs_f64() / t.as_secs_f64()));
            table.row(vec![
                contender.label().into(),
                rate(self.records, alos),
                rate(self.records, eos),
                format!("{:.2}x", alos.as_secs_f64() / eos.as_secs_f64()),
                format!("{} / {}", vs_raw(Guarantee::AtLeastOnce, alos), vs_raw(Guarantee::ExactlyOnce, eos)),
            ]);
        }
        table
    }
}

/// Interleaved rounds over one input topic; outputs checked in round one.
async fn throughput(kafka: &Bench, plan: &Plan, contenders: &[Contender]) -> Result<Throughput, Error> {
    let data = workload::order_lines(plan.records, 0);
    let lines = workload::lines(&data);
    let input = kafka.topic("orders", PARTITIONS).await?;
    produce(&kafka.bootstrap, &input, &lines).await?;
    eprintln!("bench: {} orders produced to {input}", lines.len());
    // Untimed: the broker creates its offsets and transaction-state topics
    // on first use and its JIT warms up; no timed run should pay for that.
    let warmup = kafka.topic("warmup", PARTITIONS).await?;
    let few = &lines[..lines.len().min(2_000)];
    produce(&kafka.bootstrap, &warmup, few).await?;
    for guarantee in Guarantee::BOTH {
        throughput_run(kafka, Contender::Raw, guarantee, &warmup, few.len() as u64, None).await?;
    }
    kafka.delete(&[&warmup]).await?;
    let references = [Job::Identity, Job::Filter, Job::Map].map(|job| reference(job, &lines).map(|d| (job, d)));
    let mut references_by_job = Vec::new();
    for r in references {
        references_by_job.push(r?);
    }
    let mut times: Vec<(Contender, Guarantee, Vec<Duration>)> = contenders.iter().flat_map(|c| Guarantee::BOTH.map(|g| (*c, g, Vec::new()))).collect();
    for round in 0..plan.rounds {
        for (contender, guarantee, runs) in &mut times {
            let expected = (round == 0).then(|| references_by_job.iter().find(|(j, _)| *j == contender.job()).map(|(_, d)| d)).flatten();
            runs.push(throughput_run(kafka, *contender, *guarantee, &input, plan.records as u64, expected).await?);
        }
    }
    kafka.delete(&[&input]).await?;
    Ok(Throughput { records: plan.records, rounds: plan.rounds, times })
}

/// The issue's targets, read from this run.
fn summary(throughput: &Throughput, fraud: &fraud::Results) -> Option<Table> {
    let mut table = Table::new("Targets (same broker, same data, same run)", &["claim", "target", "measured"]);
    let speed = |a: Duration, b: Duration| format!("{:.2}x", b.as_secs_f64() / a.as_secs_f64());
    for job in [Job::Filter, Job::Map] {
        for guarantee in Guarantee::BOTH {
            if let (Some(weir), Some(peer)) = (throughput.median(Contender::Weir(job), guarantee), throughput.median(Contender::Streams(job), guarantee)) {
                let name = if job == Job::Filter { "filter" } else { "map (enrich-order)" };
                table.row(vec![format!("weir {name} records/s vs Kafka Streams, {}", guarantee.name()), ">= 1.5x".into(), speed(weir, peer)]);
            }
        }
    }
    for job in [Job::Identity, Job::Filter, Job::Map] {
        let contender = Contender::Weir(job);
        if let (Some(alos), Some(eos)) = (throughput.median(contender, Guarantee::AtLeastOnce), throughput.median(contender, Guarantee::ExactlyOnce)) {
            table.row(vec![format!("{}: exactly-once / at-least-once records/s (10k-record transactions)", contender.label()), ">= 0.8x".into(), speed(eos, alos)]);
        }
    }
    if let Some(ratio) = fraud.eos_ratio() {
        table.row(vec!["weir fraud pipeline: exactly-once / at-least-once records/s".into(), ">= 0.8x".into(), format!("{ratio:.2}x")]);
    }
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_and_key_are_found_in_an_order_line() {
        let line = br#"{"order_id":"o-1","customer_id":"c-00042","timestamp":1732000000000,"items":[]}"#;
        assert_eq!(customer_id(line), b"c-00042");
        assert_eq!(with_timestamp(line, 7), br#"{"order_id":"o-1","customer_id":"c-00042","timestamp":7,"items":[]}"#.to_vec());
    }

    /// The suite in quick mode on a real broker: every output is read back
    /// and checked (count and content); no timing assertions.
    #[test]
    fn quick_kafka_suite_checks_every_output() {
        run(true).unwrap();
    }
}
