//! End-to-end pipeline scenarios on librdkafka's in-process mock cluster:
//! produce to a topic, run the pipeline, read the output and dead-letter
//! topics back.

use super::kafka::{Read, produce, random_topic, read_all};
use rdkafka::mocking::MockCluster;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use weir::config::Config;
use weir::engine::{Engine, EngineConfig, SandboxLimits};
use weir_tests::guests;

pub const SCHEMA: &str = r#"{"fields":[
    {"name":"order_id","type":"utf8","nullable":false},
    {"name":"customer_id","type":"utf8"},
    {"name":"total_amount","type":"float64"},
    {"name":"action","type":"utf8"}]}"#;

/// The pipeline's TOML: enrich (rejects negatives) -> filter (> threshold) -> misbehave.
pub fn pipeline_toml(dir: &std::path::Path, bootstrap: &str, input: &str, output: &str, dlq: &str, extra: &str) -> String {
    std::fs::write(dir.join("orders.schema.json"), SCHEMA).unwrap();
    format!(
        r#"
        [pipelines.orders.source]
        bootstrap_servers = "{bootstrap}"
        group_id = "{group}"
        topics = ["{input}"]
        properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}
        [pipelines.orders.format]
        type = "json"
        schema = "orders.schema.json"
        [pipelines.orders.batch]
        max_records = 64
        max_wait_ms = 50
        [[pipelines.orders.operators]]
        plugin = "{enrich}"
        name = "enrich"
        [[pipelines.orders.operators]]
        plugin = "{filter}"
        name = "high-value"
        config = {{ threshold = 100.0 }}
        [[pipelines.orders.operators]]
        plugin = "{misbehave}"
        name = "misbehave"
        [pipelines.orders.output]
        topic = "{output}"
        key_column = "order_id"
        [pipelines.orders.errors]
        dead_letter_topic = "{dlq}"
        connect_headers = true
        max_attempts = 4
        retry_initial_ms = 50
        {extra}
        "#,
        group = random_topic("group"),
        enrich = guests::ENRICH_ORDER,
        filter = guests::HIGH_VALUE_ORDERS,
        misbehave = guests::MISBEHAVE,
    )
}

/// What each input record should become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fate {
    Output,
    Filtered,
    Dead(&'static str),
}

/// Records to produce: key and value.
pub type Records = Vec<(String, Vec<u8>)>;

/// Inputs with their expected fate, keyed by order id.
pub fn inputs(n: usize) -> (Records, BTreeMap<String, Fate>) {
    let mut records = Vec::new();
    let mut fate = BTreeMap::new();
    for i in 0..n {
        let id = format!("o-{i:05}");
        let (value, expected) = match i % 97 {
            13 => (format!(r#"{{"order_id":"{id}","total_amount":"#), Fate::Dead("decode")),
            29 => (format!(r#"{{"order_id":"{id}","total_amount":"lots"}}"#), Fate::Dead("decode")),
            41 => (format!(r#"{{"order_id":"{id}","total_amount":-5.0}}"#), Fate::Dead("rejected")),
            53 => (format!(r#"{{"order_id":"{id}","total_amount":500.0,"action":"panic"}}"#), Fate::Dead("panic")),
            67 => (format!(r#"{{"order_id":"{id}","total_amount":500.0,"action":"loop"}}"#), Fate::Dead("deadline")),
            _ => {
                let amount = (i * 37 % 300) as f64;
                let fate = if amount > 100.0 { Fate::Output } else { Fate::Filtered };
                (format!(r#"{{"order_id":"{id}","customer_id":"c-{}","total_amount":{amount}}}"#, i % 7), fate)
            }
        };
        records.push((id.clone(), value.into_bytes()));
        fate.insert(id, expected);
    }
    (records, fate)
}

pub fn engine() -> Engine {
    let limits = SandboxLimits { call_deadline_ms: 200, ..SandboxLimits::default() };
    Engine::new(EngineConfig { limits, cache_dir: None }).unwrap()
}

/// A mock cluster with input, output and dead-letter topics, and the
/// pipeline config (pipeline_toml) that connects them.
pub struct Scenario {
    pub cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    pub bootstrap: String,
    pub input: String,
    pub output: String,
    pub dlq: String,
    pub config: weir::config::PipelineConfig,
    _dir: tempfile::TempDir,
}

impl Scenario {
    /// `brokers` mock brokers; input and output topics with `partitions` partitions.
    pub fn new(brokers: i32, partitions: i32, extra: &str) -> Scenario {
        let cluster = MockCluster::new(brokers).unwrap();
        let bootstrap = cluster.bootstrap_servers();
        let (input, output, dlq) = (random_topic("orders"), random_topic("enriched"), random_topic("dlq"));
        cluster.create_topic(&input, partitions, 1).unwrap();
        cluster.create_topic(&output, partitions, 1).unwrap();
        cluster.create_topic(&dlq, 1, 1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pipeline.toml");
        std::fs::write(&path, pipeline_toml(dir.path(), &bootstrap, &input, &output, &dlq, extra)).unwrap();
        let config = Config::load(&path).unwrap().pipelines["orders"].clone();
        Scenario { cluster, bootstrap, input, output, dlq, config, _dir: dir }
    }

    /// Starts the pipeline.
    pub fn start(&self) -> weir::pipeline::PipelineHandle {
        weir::pipeline::start("orders", self.config.clone(), engine()).unwrap()
    }

    /// Reads the output and dead-letter topics back, expecting `fate`'s counts.
    pub async fn read_back(&self, fate: &BTreeMap<String, Fate>) -> (Vec<Read>, Vec<Read>) {
        let expected_out = fate.values().filter(|f| **f == Fate::Output).count();
        let expected_dead = fate.values().filter(|f| matches!(f, Fate::Dead(_))).count();
        let outputs = read_all(&self.bootstrap, &self.output, expected_out, Duration::from_millis(500), Duration::from_secs(60)).await;
        let dead = read_all(&self.bootstrap, &self.dlq, expected_dead, Duration::from_millis(500), Duration::from_secs(60)).await;
        (outputs, dead)
    }
}

pub async fn wait_for_input(handle: &weir::pipeline::PipelineHandle, n: u64, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while handle.stats().snapshot().records_in < n {
        assert!(!handle.is_finished(), "pipeline ended early: {:?}", handle.stats().snapshot().state);
        assert!(tokio::time::Instant::now() < deadline, "timed out: {:?}", handle.stats().snapshot());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks outputs and dead letters against the expected fates: every
/// record in exactly one place, DLQ records byte for byte with headers.
pub fn check_fates(
    records: &[(String, Vec<u8>)],
    fate: &BTreeMap<String, Fate>,
    outputs: &[Read],
    dead: &[Read],
    input_topic: &str,
    allow_duplicates: bool,
) {
    let originals: BTreeMap<&str, &Vec<u8>> = records.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut seen: BTreeMap<String, Fate> = BTreeMap::new();
    for record in outputs {
        let id = record.key_str();
        let value: serde_json::Value = serde_json::from_slice(record.value.as_deref().unwrap()).unwrap();
        assert_eq!(value["order_id"], id.as_str());
        assert!(value["amount_bucket"].is_i64(), "enriched: {value}");
        assert_eq!(record.header("trace-id"), format!("t-{id}"), "source headers survive to the output");
        let previous = seen.insert(id.clone(), Fate::Output);
        assert!(previous.is_none() || allow_duplicates, "{id} delivered twice");
    }
    for record in dead {
        let id = record.key_str();
        let kind = record.header("weir.error.kind");
        assert_eq!(record.value.as_deref(), Some(originals[id.as_str()].as_slice()), "{id}: DLQ keeps the value byte for byte");
        assert_eq!(record.header("trace-id"), format!("t-{id}"), "DLQ keeps the original headers");
        assert_eq!(record.header("weir.source.topic"), input_topic);
        assert!(record.header("weir.source.offset").parse::<i64>().is_ok());
        assert!(!record.header("weir.error.message").is_empty());
        assert_eq!(record.header("__connect.errors.topic"), input_topic);
        if kind == "rejected" {
            assert_eq!(record.header("weir.error.operator"), "enrich");
            assert_eq!(record.header("weir.error.plugin.version"), "v1", "registry version of the operator");
        }
        if kind == "panic" || kind == "deadline" {
            assert_eq!(record.header("weir.error.operator"), "misbehave");
        }
        let leaked: &'static str = Box::leak(kind.into_boxed_str());
        let previous = seen.insert(id.clone(), Fate::Dead(leaked));
        assert!(previous.is_none() || allow_duplicates, "{id} dead-lettered twice or also delivered");
    }
    for (id, expected) in fate {
        match expected {
            Fate::Filtered => assert!(!seen.contains_key(id), "{id} should have been filtered, got {:?}", seen.get(id)),
            other => assert_eq!(seen.get(id), Some(other), "fate of {id}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_dead_lettered_and_everything_else_delivered() {
    let scenario = Scenario::new(1, 2, "");
    let (records, fate) = inputs(500);
    produce(&scenario.bootstrap, &scenario.input, &records).await;
    let handle = scenario.start();
    wait_for_input(&handle, records.len() as u64, Duration::from_secs(90)).await;
    let stats = handle.stats().clone();
    handle.shutdown();
    handle.join().await.unwrap();

    let (outputs, dead) = scenario.read_back(&fate).await;
    check_fates(&records, &fate, &outputs, &dead, &scenario.input, false);
    let expected_out = fate.values().filter(|f| **f == Fate::Output).count();
    let expected_dead = fate.values().filter(|f| matches!(f, Fate::Dead(_))).count();

    let s = stats.snapshot();
    assert_eq!(s.records_in, records.len() as u64);
    assert_eq!(s.records_out, expected_out as u64);
    assert_eq!(s.records_dead_lettered, expected_dead as u64);
    assert_eq!(s.records_in, s.records_out + s.records_filtered + s.records_dead_lettered, "{s:?}");
    assert!(s.traps >= 2, "the panic and the loop trapped: {s:?}");
    let kinds: BTreeSet<&str> = s.dead_letters_by_kind.keys().map(String::as_str).collect();
    assert_eq!(kinds, BTreeSet::from(["deadline", "decode", "panic", "rejected"]));
    let committed: i64 = s.committed.values().sum();
    assert_eq!(committed, records.len() as i64, "every offset committed after draining: {:?}", s.committed);
}

/// `batch.overlap = "always"`: each batch is decoded chunk by chunk on a
/// thread of its own while the chain runs on the previous chunk. Nothing is
/// lost or reordered: poison rows are isolated within their chunk, records
/// that do not decode are dead-lettered, each output partition keeps its
/// input order, and every offset is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapped_decoding_delivers_every_record_in_order() {
    let mut scenario = Scenario::new(1, 3, "");
    // Batches of 2,048 records or more are split; the input is produced
    // before the start, so a batch fills up long before its wait ends.
    scenario.config.batch.max_records = 4096;
    scenario.config.batch.max_wait_ms = 3000;
    scenario.config.batch.overlap = weir::config::Overlap::Always;
    let (mut records, mut fate) = inputs(6000);
    // A guest that loops costs a bisection of 200 ms deadlines per record:
    // the quick poisons (panics, rejections, bad JSON) are enough here.
    records.retain(|(id, _)| fate[id] != Fate::Dead("deadline"));
    fate.retain(|_, f| *f != Fate::Dead("deadline"));
    produce(&scenario.bootstrap, &scenario.input, &records).await;
    let handle = scenario.start();
    wait_for_input(&handle, records.len() as u64, Duration::from_secs(120)).await;
    let stats = handle.stats().clone();
    handle.shutdown();
    handle.join().await.unwrap();

    let (outputs, dead) = scenario.read_back(&fate).await;
    check_fates(&records, &fate, &outputs, &dead, &scenario.input, false);
    // Same key, same partitioner: an output partition holds one input
    // partition's records, which were produced in ascending order.
    let mut by_partition: BTreeMap<i32, Vec<&Read>> = BTreeMap::new();
    for record in &outputs {
        by_partition.entry(record.partition).or_default().push(record);
    }
    for (partition, mut list) in by_partition {
        list.sort_by_key(|r| r.offset);
        let ids: Vec<String> = list.iter().map(|r| r.key_str()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "output partition {partition} out of order");
    }
    let s = stats.snapshot();
    assert!(s.batches_overlapped > 0, "no batch was overlapped: {s:?}");
    assert_eq!(s.records_in, s.records_out + s.records_filtered + s.records_dead_lettered, "{s:?}");
    let kinds: BTreeSet<&str> = s.dead_letters_by_kind.keys().map(String::as_str).collect();
    assert_eq!(kinds, BTreeSet::from(["decode", "panic", "rejected"]));
    let committed: i64 = s.committed.values().sum();
    assert_eq!(committed, records.len() as i64, "every offset committed after draining: {:?}", s.committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_and_injected_errors_lose_nothing() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let scenario = Scenario::new(3, 3, "");
    let cluster = &scenario.cluster;
    let (records, fate) = inputs(1500);
    produce(&scenario.bootstrap, &scenario.input, &records).await;
    let handle = scenario.start();
    wait_for_input(&handle, 200, Duration::from_secs(60)).await;

    // Retriable produce errors (librdkafka and weir retry), then a broker
    // outage with slow round trips while records are in flight.
    cluster.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 6]);
    cluster.broker_round_trip_time(2, Duration::from_millis(300)).unwrap();
    cluster.broker_down(1).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.broker_up(1).unwrap();
    cluster.broker_round_trip_time(2, Duration::ZERO).unwrap();

    wait_for_input(&handle, records.len() as u64, Duration::from_secs(120)).await;
    let stats = handle.stats().clone();
    handle.shutdown();
    handle.join().await.unwrap();

    let (outputs, dead) = scenario.read_back(&fate).await;
    // At-least-once: duplicates are allowed after faults, losses are not.
    check_fates(&records, &fate, &outputs, &dead, &scenario.input, true);
    let s = stats.snapshot();
    assert!(s.records_in >= records.len() as u64, "{s:?}");
    let committed: i64 = s.committed.values().sum();
    assert_eq!(committed, records.len() as i64, "{:?}", s.committed);
}


async fn run_until_finished(extra: &str, n: usize) -> (weir::telemetry::StatsSnapshot, Result<(), weir::pipeline::PipelineError>, Vec<(String, Vec<u8>)>) {
    let scenario = Scenario::new(1, 1, extra);
    let (records, _) = inputs(n);
    produce(&scenario.bootstrap, &scenario.input, &records).await;
    let handle = scenario.start();
    let stats = handle.stats().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !handle.is_finished() && !matches!(stats.snapshot().state, weir::telemetry::PipelineState::Paused(_)) {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", stats.snapshot());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.shutdown();
    let result = handle.join().await;
    (stats.snapshot(), result, records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_stop_halts_at_the_first_bad_record_without_committing_past_it() {
    let (stats, result, _) = run_until_finished(r#"policy = "stop""#, 60).await;
    match result {
        Err(weir::pipeline::PipelineError::Stopped { offset, kind, .. }) => {
            // inputs(): record 13 is the first malformed one (single partition: offset = index).
            assert_eq!((offset, kind.as_str()), (13, "decode"));
            let committed: i64 = stats.committed.values().sum();
            assert_eq!(committed, 13, "nothing at or after the failed record is committed");
        }
        other => panic!("expected a stop, got {other:?} with {stats:?}"),
    }
    assert!(matches!(stats.state, weir::telemetry::PipelineState::Failed(_)));
    assert_eq!(stats.records_dead_lettered, 0, "policy stop writes no dead letters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_budget_pauses_a_pipeline_that_dead_letters_too_much() {
    let extra = "error_budget_ratio = 0.01\nerror_budget_min_records = 50";
    let (stats, result, _) = run_until_finished(extra, 400).await;
    result.unwrap();
    // Paused first (then shut down by the test).
    assert!(stats.records_dead_lettered > 0);
    assert!(stats.records_in < 400, "the pipeline stopped consuming: {stats:?}");
}

/// One HTTP/1.1 request to the admin API; returns (status, body).
async fn http(addr: std::net::SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!("{method} {path} HTTP/1.1\r\nhost: weir\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_reports_status_metrics_and_pauses_without_losing_records() {
    let scenario = Scenario::new(1, 2, "");
    let bootstrap = scenario.bootstrap.clone();
    let input = scenario.input.clone();
    let (records, fate) = inputs(400);
    let (first, second) = records.split_at(200);
    produce(&bootstrap, &input, first).await;
    let handle = scenario.start();
    let deployer = weir::deploy::Deployer::new(engine(), weir::registry::Registry::in_memory(), vec![handle.control()], 1 << 20);
    let state = weir::admin::AdminState::new(deployer, Some("s3cret".into()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(weir::admin::serve(listener, state, std::future::pending()));

    assert_eq!(http(addr, "GET", "/healthz", None).await.0, 200);
    assert_eq!(http(addr, "GET", "/v1/pipelines", None).await.0, 401, "no token");
    assert_eq!(http(addr, "GET", "/v1/pipelines", Some("wrong")).await.0, 401, "bad token");
    let (status, body) = http(addr, "GET", "/v1/pipelines/nope", Some("s3cret")).await;
    assert_eq!(status, 404);
    assert!(body.contains("\"error\""), "{body}");

    wait_for_input(&handle, first.len() as u64, Duration::from_secs(60)).await;
    // Ready once partitions are assigned and librdkafka reports a broker up.
    let ready_by = tokio::time::Instant::now() + Duration::from_secs(15);
    while http(addr, "GET", "/readyz", None).await.0 != 200 {
        assert!(tokio::time::Instant::now() < ready_by, "{}", http(addr, "GET", "/readyz", None).await.1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(http(addr, "POST", "/v1/pipelines/orders/pause", Some("s3cret")).await.0, 202);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !matches!(handle.stats().snapshot().state, weir::telemetry::PipelineState::Paused(_)) {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    produce(&bootstrap, &input, second).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(handle.stats().snapshot().records_in, first.len() as u64, "paused: nothing consumed");
    let (status, body) = http(addr, "GET", "/v1/pipelines/orders", Some("s3cret")).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"paused\""), "{body}");

    assert_eq!(http(addr, "POST", "/v1/pipelines/orders/resume", Some("s3cret")).await.0, 202);
    wait_for_input(&handle, records.len() as u64, Duration::from_secs(60)).await;
    assert_eq!(http(addr, "GET", "/metrics", None).await.0, 401, "metrics need the token");
    let (status, metrics) = http(addr, "GET", "/metrics", Some("s3cret")).await;
    assert_eq!(status, 200);
    assert!(metrics.contains(&format!("weir_records_in_total{{pipeline=\"orders\"}} {}", records.len())), "{metrics}");
    assert!(metrics.contains("weir_records_dlq_total{pipeline=\"orders\",reason=\"panic\"} "), "{metrics}");
    assert!(metrics.contains("weir_guest_traps_total{pipeline=\"orders\",kind=\"panic\"} "), "{metrics}");
    handle.shutdown();
    handle.join().await.unwrap();

    let (outputs, dead) = scenario.read_back(&fate).await;
    check_fates(&records, &fate, &outputs, &dead, &input, false);
}
