//! The admin API against running pipelines on the mock cluster: hot swap
//! under load, rollback, invalid uploads, auth, restart with a data dir,
//! aggregate state across a swap, and dead-letter redrive after a fix.

use super::kafka::{MockTopics, Read, random_topic, read_all};
use super::pipeline::{SCHEMA, engine};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use weir::client::{AdminClient, ClientError};
use weir::deploy::Deployer;
use weir::pipeline::PipelineHandle;
use weir::registry::Registry;
use weir_tests::guests;

pub(super) const TOKEN: &str = "t0ken";

/// A mock cluster with input/output/DLQ topics and a one-operator pipeline
/// (`stage`) described by `operator` (TOML lines after `plugin`/`name`).
pub(super) struct Bench {
    pub(super) kafka: MockTopics,
    config: weir::config::PipelineConfig,
    _dir: tempfile::TempDir,
}

impl Bench {
    pub(super) fn new(plugin: &str, operator_config: &str) -> Bench {
        let kafka = MockTopics::new();
        let (bootstrap, input, output, dlq) = (&kafka.bootstrap, &kafka.input, &kafka.output, &kafka.dlq);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("schema.json"), SCHEMA).unwrap();
        let toml = format!(
            r#"
            [pipelines.p.source]
            bootstrap_servers = "{bootstrap}"
            group_id = "{group}"
            topics = ["{input}"]
            properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}
            [pipelines.p.format]
            type = "json"
            schema = "schema.json"
            [pipelines.p.batch]
            max_records = 50
            max_wait_ms = 20
            [[pipelines.p.operators]]
            plugin = "{plugin}"
            name = "stage"
            {operator_config}
            [pipelines.p.output]
            topic = "{output}"
            [pipelines.p.errors]
            dead_letter_topic = "{dlq}"
            max_attempts = 3
            retry_initial_ms = 20
            "#,
            group = random_topic("group"),
        );
        let path = dir.path().join("p.toml");
        std::fs::write(&path, toml).unwrap();
        let config = weir::config::Config::load(&path).unwrap().pipelines["p"].clone();
        Bench { kafka, config, _dir: dir }
    }

    pub(super) fn start(&self, registry: &Registry) -> PipelineHandle {
        weir::pipeline::start_with_registry("p", self.config.clone(), engine(), registry).unwrap()
    }

    /// Produces order `id`s to explicit partitions (id % 2), in order.
    pub(super) async fn produce(&self, ids: std::ops::Range<usize>, value: impl Fn(usize) -> String) {
        let producer: FutureProducer =
            ClientConfig::new().set("bootstrap.servers", &self.kafka.bootstrap).set("enable.idempotence", "true").create().unwrap();
        let values: Vec<(usize, String)> = ids.map(|i| (i, value(i))).collect();
        let sends = values.iter().map(|(i, v)| {
            let key = format!("o-{i:05}");
            let producer = &producer;
            let topic = &self.kafka.input;
            async move { producer.send(FutureRecord::to(topic).partition((*i % 2) as i32).key(&key).payload(v), Duration::from_secs(10)).await }
        });
        for result in futures::future::join_all(sends).await {
            result.expect("produce");
        }
    }
}

pub(super) fn order(i: usize) -> String {
    format!(r#"{{"order_id":"o-{i:05}","customer_id":"c","total_amount":{}.0}}"#, 100 + i % 50)
}

/// Serves the admin API for `handles` on an ephemeral port.
pub(super) async fn serve(registry: &Registry, handles: &[&PipelineHandle], max_plugin_bytes: usize) -> AdminClient {
    super::support::logs();
    let deployer = Deployer::new(engine(), registry.clone(), handles.iter().map(|h| h.control()).collect(), max_plugin_bytes);
    let state = weir::admin::AdminState::new(deployer, Some(TOKEN.into()));
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    std::mem::forget(_stop);
    let addr = weir::admin::start("127.0.0.1:0".parse().unwrap(), state, false, stop_rx).await.unwrap();
    AdminClient::new(&format!("http://{addr}"), Some(TOKEN.into()))
}

pub(super) async fn wait_for_input(handle: &PipelineHandle, n: u64) {
    super::pipeline::wait_for_input(handle, n, Duration::from_secs(60)).await;
}

pub(super) fn status(error: ClientError) -> (u16, String) {
    match error {
        ClientError::Api { status, message } => (status, message),
        other => panic!("expected an API error, got {other}"),
    }
}

fn value_of(read: &Read) -> Value {
    serde_json::from_slice(read.value.as_deref().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_under_load_loses_nothing_and_rollback_restores_v1() {
    let bench = Bench::new(guests::IDENTITY, "");
    let registry = Registry::in_memory();
    let handle = bench.start(&registry);
    let client = serve(&registry, &[&handle], 64 << 20).await;
    let v2 = std::fs::read(guests::ENRICH_ORDER).unwrap();

    // A producer pumps 2000 records in small bursts while v2 is pushed.
    let total = 2000;
    let pump = async {
        for chunk in (0..total).step_by(50) {
            bench.produce(chunk..chunk + 50, order).await;
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    };
    let push = async {
        wait_for_input(&handle, 500).await;
        client.put_wasm("/v1/plugins/stage", v2.clone()).await.unwrap()
    };
    let ((), outcome) = tokio::join!(pump, push);
    assert_eq!(outcome["changed"], json!(true), "{outcome}");
    assert_eq!(outcome["version"]["version"], json!(2));
    assert_eq!(outcome["pipelines"][0]["status"], json!("swapped"), "{outcome}");
    let pause_us = outcome["pipelines"][0]["report"]["pause_us"].as_u64().unwrap();
    eprintln!("swap pause: {pause_us} us; upload to live {} ms", outcome["upload_to_live_ms"]);
    wait_for_input(&handle, total as u64).await;

    // Every input exactly once; v1 rows unchanged, v2 rows enriched; per
    // input partition all v1 before all v2.
    let outputs = read_all(&bench.kafka.bootstrap, &bench.kafka.output, total, Duration::from_millis(500), Duration::from_secs(60)).await;
    let mut version_of: BTreeMap<usize, String> = BTreeMap::new();
    for read in &outputs {
        let value = value_of(read);
        let id: usize = value["order_id"].as_str().unwrap()[2..].parse().unwrap();
        let tag = read.header("weir.plugins");
        assert!(tag == "stage@v1" || tag == "stage@v2", "{tag}");
        assert_eq!(value.get("tax_amount").is_some(), tag == "stage@v2", "{value} tagged {tag}");
        assert!(version_of.insert(id, tag).is_none(), "o-{id} delivered twice");
    }
    assert_eq!(version_of.len(), total, "every record delivered");
    for partition in 0..2 {
        let tags: Vec<&String> = version_of.iter().filter(|(id, _)| *id % 2 == partition).map(|(_, t)| t).collect();
        let first_v2 = tags.iter().position(|t| *t == "stage@v2").expect("v2 ran");
        assert!(first_v2 > 0, "v1 ran before the swap");
        assert!(tags[first_v2..].iter().all(|t| *t == "stage@v2"), "partition {partition}: v1 after v2");
    }

    // Status shows the version; the plugin is in use; rollback goes to v1.
    let pipeline = client.get("/v1/pipelines/p").await.unwrap();
    assert_eq!(pipeline["status"]["plugin_versions"]["stage"], json!("v2"), "{pipeline}");
    assert_eq!(pipeline["status"]["plugin_swaps"], json!(1));
    assert!(pipeline["status"]["partitions"].as_array().is_some_and(|p| p.len() == 2), "{pipeline}");
    assert_eq!(status(client.delete("/v1/plugins/stage").await.unwrap_err()).0, 409);
    let rolled = client.post("/v1/plugins/stage/rollback", &Value::Null).await.unwrap();
    assert_eq!(rolled["version"]["version"], json!(1), "{rolled}");
    bench.produce(total..total + 100, order).await;
    wait_for_input(&handle, total as u64 + 100).await;
    let outputs = read_all(&bench.kafka.bootstrap, &bench.kafka.output, total + 100, Duration::from_millis(500), Duration::from_secs(60)).await;
    let after: Vec<String> = outputs
        .iter()
        .filter(|r| value_of(r)["order_id"].as_str().unwrap()[2..].parse::<usize>().unwrap() >= total)
        .map(|r| r.header("weir.plugins"))
        .collect();
    assert_eq!(after.len(), 100);
    assert!(after.iter().all(|t| t == "stage@v1"), "{after:?}");
    let plugin = client.get("/v1/plugins/stage").await.unwrap();
    assert_eq!(plugin["live"], json!(1));
    assert_eq!(plugin["used_by"], json!(["p"]));

    let metrics = get_text(&client, "/metrics").await;
    assert!(metrics.contains("weir_plugin_swaps_total{pipeline=\"p\"} 2"), "{metrics}");
    assert!(metrics.contains("weir_operator_call_seconds_count{pipeline=\"p\",operator=\"stage\",plugin_version=\"v2\"}"), "{metrics}");
    assert!(metrics.contains("weir_consumer_lag{pipeline=\"p\",topic="), "{metrics}");
    handle.shutdown();
    handle.join().await.unwrap();
}

/// The body of a GET as text (for /metrics).
async fn get_text(client: &AdminClient, path: &str) -> String {
    match client.get(path).await.unwrap() {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

/// A copy of a component with a custom section appended: same behaviour,
/// different bytes (a new version).
pub(super) fn with_custom_section(component: &[u8], tag: &str) -> Vec<u8> {
    let mut payload = vec![tag.len() as u8];
    payload.extend_from_slice(tag.as_bytes());
    payload.extend_from_slice(b"rebuilt");
    let mut out = component.to_vec();
    out.push(0); // custom section id
    let mut size = payload.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        out.push(if size > 0 { byte | 0x80 } else { byte });
        if size == 0 {
            break;
        }
    }
    out.extend_from_slice(&payload);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_uploads_are_refused_and_the_running_version_is_untouched() {
    let bench = Bench::new(guests::IDENTITY, "");
    let registry = Registry::in_memory();
    let handle = bench.start(&registry);
    let client = serve(&registry, &[&handle], 2 << 20).await;
    let url = client_url(&client);

    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("stage", b"definitely not wasm".to_vec(), 400, "not a WebAssembly binary"),
        ("stage", b"\0asm\x01\0\0\0".to_vec(), 400, "core WebAssembly module"),
        ("stage", std::fs::read(guests::NOT_AN_OPERATOR).unwrap(), 400, "does not implement a weir operator world"),
        ("stage", std::fs::read(guests::HIGH_VALUE_ORDERS).unwrap(), 422, "as a map operator, but the upload is a filter"),
        ("stage", vec![0u8; 3 << 20], 413, ""),
        ("Bad_Name", std::fs::read(guests::IDENTITY).unwrap(), 400, "invalid plugin name"),
    ];
    for (name, body, expected, reason) in cases {
        let (code, message) = status(client.put_wasm(&format!("/v1/plugins/{name}"), body).await.unwrap_err());
        assert_eq!(code, expected, "{name}: {message}");
        assert!(message.contains(reason), "{message} should contain {reason:?}");
    }
    let plugin = client.get("/v1/plugins/stage").await.unwrap();
    assert_eq!(plugin["live"], json!(1));
    assert_eq!(plugin["versions"].as_array().unwrap().len(), 1, "{plugin}");
    assert_eq!(handle.stats().snapshot().plugin_versions["stage"], "v1");

    // Auth: every route but /healthz and /readyz needs the token.
    let anonymous = AdminClient::new(&url, None);
    let wrong = AdminClient::new(&url, Some("nope".into()));
    for path in ["/v1/plugins", "/v1/pipelines", "/metrics", "/v1/openapi.json"] {
        assert_eq!(status(anonymous.get(path).await.unwrap_err()).0, 401, "{path}");
        assert_eq!(status(wrong.get(path).await.unwrap_err()).0, 401, "{path}");
    }
    assert_eq!(status(anonymous.put_wasm("/v1/plugins/stage", vec![1]).await.unwrap_err()).0, 401);
    anonymous.get("/healthz").await.unwrap();
    let openapi = client.get("/v1/openapi.json").await.unwrap();
    for path in ["/v1/plugins/{name}", "/v1/plugins/{name}/rollback", "/v1/pipelines/{name}/dlq/redrive", "/readyz"] {
        assert!(openapi["paths"].get(path).is_some(), "openapi lacks {path}");
    }
    assert_eq!(status(client.post("/v1/plugins/stage/rollback", &Value::Null).await.unwrap_err()).0, 409, "nothing to roll back to");
    handle.shutdown();
    handle.join().await.unwrap();
}

fn client_url(client: &AdminClient) -> String {
    client.base_url().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_versions_survive_a_restart_with_the_data_dir() {
    let bench = Bench::new(guests::IDENTITY, "");
    let data = tempfile::tempdir().unwrap();
    {
        let registry = Registry::open(data.path()).unwrap();
        let handle = bench.start(&registry);
        let client = serve(&registry, &[&handle], 64 << 20).await;
        bench.produce(0..10, order).await;
        wait_for_input(&handle, 10).await;
        let outcome = client.put_wasm("/v1/plugins/stage", std::fs::read(guests::ENRICH_ORDER).unwrap()).await.unwrap();
        assert_eq!(outcome["version"]["version"], json!(2));
        handle.shutdown();
        handle.join().await.unwrap();
    }
    let registry = Registry::open(data.path()).unwrap();
    let record = registry.get("stage").unwrap();
    assert_eq!((record.live, record.versions.len()), (2, 2));
    let handle = bench.start(&registry);
    assert_eq!(handle.stats().snapshot().plugin_versions["stage"], "v2", "restarted on the version it ran");
    bench.produce(10..20, order).await;
    wait_for_input(&handle, 10).await;
    handle.shutdown();
    handle.join().await.unwrap();
    let outputs = read_all(&bench.kafka.bootstrap, &bench.kafka.output, 20, Duration::from_millis(500), Duration::from_secs(60)).await;
    let late: Vec<String> = outputs.iter().filter(|r| value_of(r)["order_id"].as_str().unwrap() >= "o-00010").map(|r| r.header("weir.plugins")).collect();
    assert_eq!(late, vec!["stage@v2".to_owned(); 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_state_moves_to_the_new_version() {
    let bench = Bench::new(guests::COUNT_BY_KEY, r#"config = { key = "customer_id", value = "total_amount" }"#);
    let registry = Registry::in_memory();
    let handle = bench.start(&registry);
    let client = serve(&registry, &[&handle], 64 << 20).await;
    bench.produce(0..300, order).await;
    wait_for_input(&handle, 300).await;
    let rebuilt = with_custom_section(&std::fs::read(guests::COUNT_BY_KEY).unwrap(), "v2");
    let outcome = client.put_wasm("/v1/plugins/stage", rebuilt).await.unwrap();
    assert!(outcome["pipelines"][0]["report"]["state_bytes"].as_u64().unwrap() > 0, "{outcome}");
    bench.produce(300..400, order).await;
    wait_for_input(&handle, 400).await;
    handle.shutdown();
    handle.join().await.unwrap();
    let outputs = read_all(&bench.kafka.bootstrap, &bench.kafka.output, 1, Duration::from_secs(1), Duration::from_secs(60)).await;
    let last_v2 = outputs.iter().filter(|r| r.header("weir.plugins") == "stage@v2").map(value_of).max_by_key(|v| v["count"].as_i64()).expect("v2 output");
    assert_eq!(last_v2["count"], json!(400), "the count continued across the swap: {last_v2}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_after_a_fix_delivers_the_dead_letters() {
    let bench = Bench::new(guests::MISBEHAVE, "");
    let registry = Registry::in_memory();
    let handle = bench.start(&registry);
    let client = serve(&registry, &[&handle], 64 << 20).await;
    let poisoned = |i: usize| i % 10 == 3;
    let value = |i: usize| {
        let action = if poisoned(i) { "panic" } else { "none" };
        format!(r#"{{"order_id":"o-{i:05}","total_amount":1.0,"action":"{action}"}}"#)
    };
    bench.produce(0..200, value).await;
    wait_for_input(&handle, 200).await;
    let dead_ids: BTreeSet<usize> = (0..200).filter(|i| poisoned(*i)).collect();
    let dead = read_all(&bench.kafka.bootstrap, &bench.kafka.dlq, dead_ids.len(), Duration::from_millis(300), Duration::from_secs(60)).await;
    assert_eq!(dead.len(), dead_ids.len());

    // The DLQ view shows the error headers; export lines replay in `weir exec`.
    let letters = client.get("/v1/pipelines/p/dlq?limit=5&kind=panic").await.unwrap();
    let letters = letters.as_array().unwrap();
    assert_eq!(letters.len(), 5);
    // The newest five of all of them, oldest first (the peek holds only five while reading).
    let all = client.get("/v1/pipelines/p/dlq?limit=1000&kind=panic").await.unwrap();
    let mut all = all.as_array().unwrap().clone();
    assert_eq!(all.len(), dead_ids.len());
    let key = |v: &Value| (v["timestamp_ms"].as_i64(), v["partition"].as_i64(), v["offset"].as_i64());
    all.sort_by_key(key);
    assert_eq!(letters.iter().map(key).collect::<Vec<_>>(), all[all.len() - 5..].iter().map(key).collect::<Vec<_>>());
    assert_eq!(letters[0]["headers"]["weir.error.kind"], json!("panic"));
    assert_eq!(letters[0]["headers"]["weir.error.plugin.version"], json!("v1"));
    assert!(letters[0]["value"].as_str().unwrap().contains("\"panic\""));

    // The fix: a map that does not panic. Redrive delivers every dead letter.
    client.put_wasm("/v1/plugins/stage", std::fs::read(guests::IDENTITY).unwrap()).await.unwrap();
    let report = client.post("/v1/pipelines/p/dlq/redrive", &json!({})).await.unwrap();
    assert_eq!(report["read"], json!(dead_ids.len()), "{report}");
    assert_eq!(report["delivered"], json!(dead_ids.len()), "{report}");
    assert_eq!(report["dead_lettered"], json!(0), "{report}");
    let outputs = read_all(&bench.kafka.bootstrap, &bench.kafka.output, 200, Duration::from_millis(500), Duration::from_secs(60)).await;
    let ids: Vec<usize> = outputs.iter().map(|r| value_of(r)["order_id"].as_str().unwrap()[2..].parse().unwrap()).collect();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 200, "every record reached the output once");
    assert_eq!(ids.len(), 200);
    let redriven: Vec<&Read> = outputs.iter().filter(|r| r.header("weir.plugins") == "stage@v2").collect();
    assert_eq!(redriven.len(), dead_ids.len());
    // A second redrive resumes after the first: nothing left.
    let again = client.post("/v1/pipelines/p/dlq/redrive", &json!({"limit": 1000})).await.unwrap();
    assert_eq!(again["read"], json!(0), "{again}");
    handle.shutdown();
    handle.join().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_of_still_broken_records_increments_attempts() {
    let bench = Bench::new(guests::MISBEHAVE, "");
    let registry = Registry::in_memory();
    let handle = bench.start(&registry);
    let client = serve(&registry, &[&handle], 64 << 20).await;
    bench.produce(0..4, |i| format!(r#"{{"order_id":"o-{i:05}","total_amount":1.0,"action":"panic"}}"#)).await;
    wait_for_input(&handle, 4).await;
    read_all(&bench.kafka.bootstrap, &bench.kafka.dlq, 4, Duration::from_millis(300), Duration::from_secs(60)).await;
    let report = client.post("/v1/pipelines/p/dlq/redrive", &json!({"since": "2020-01-01T00:00:00Z"})).await.unwrap();
    assert_eq!((report["read"].as_u64(), report["dead_lettered"].as_u64()), (Some(4), Some(4)), "{report}");
    let dead = read_all(&bench.kafka.bootstrap, &bench.kafka.dlq, 8, Duration::from_millis(500), Duration::from_secs(60)).await;
    let mut attempts: Vec<u32> = dead.iter().map(|r| r.header("weir.attempts").parse().unwrap()).collect();
    attempts.sort();
    let (first, again) = attempts.split_at(4);
    assert!(first.iter().zip(again).all(|(a, b)| *b == 2 * *a && *a >= 1), "attempts add up across redrives: {attempts:?}");
    let source = dead.iter().map(|r| r.header("weir.source.topic")).collect::<BTreeSet<_>>();
    assert_eq!(source, BTreeSet::from([bench.kafka.input.clone()]), "redriven letters keep their original source");
    handle.shutdown();
    handle.join().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_runs_compare_a_candidate_without_producing_its_output() {
    let bench = Bench::new(guests::IDENTITY, "");
    let registry = Registry::in_memory();
    let handle = bench.start(&registry);
    let client = serve(&registry, &[&handle], 64 << 20).await;
    bench.produce(0..10, order).await;
    wait_for_input(&handle, 10).await;

    // A behaviour-identical rebuild: no differences.
    let same = with_custom_section(&std::fs::read(guests::IDENTITY).unwrap(), "rebuild");
    let started = client.put_wasm("/v1/plugins/stage?mode=shadow&batches=3", same).await.unwrap();
    assert_eq!(started["pipelines"], json!(["p"]), "{started}");
    bench.produce(10..400, order).await;
    wait_for_input(&handle, 400).await;
    let report = client.get("/v1/plugins/stage/shadow").await.unwrap();
    assert_eq!(report[0]["state"], json!("finished"), "{report}");
    assert_eq!(report[0]["batches"], json!(3), "{report}");
    assert_eq!(report[0]["rows_differing"], json!(0), "{report}");
    assert_eq!(report[0]["live_rows_out"], report[0]["candidate_rows_out"]);

    // A candidate that changes the output: every row differs. Discard it.
    let different = std::fs::read(guests::ENRICH_ORDER).unwrap();
    client.put_wasm("/v1/plugins/stage?mode=shadow&batches=2", different).await.unwrap();
    bench.produce(400..600, order).await;
    wait_for_input(&handle, 600).await;
    let report = client.get("/v1/plugins/stage/shadow").await.unwrap();
    assert!(report[0]["rows_differing"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report[0]["rows_differing"], report[0]["rows_in"], "{report}");
    assert!(!report[0]["examples"].as_array().unwrap().is_empty());
    client.post("/v1/plugins/stage/shadow/discard", &Value::Null).await.unwrap();
    assert_eq!(status(client.get("/v1/plugins/stage/shadow").await.unwrap_err()).0, 404);

    // A sink or aggregate cannot shadow; nothing produced by a shadow leaked.
    let (code, message) = status(client.put_wasm("/v1/plugins/stage?mode=shadow", std::fs::read(guests::COUNT_BY_KEY).unwrap()).await.unwrap_err());
    assert_eq!(code, 422, "{message}");
    let outputs = read_all(&bench.kafka.bootstrap, &bench.kafka.output, 600, Duration::from_millis(500), Duration::from_secs(60)).await;
    assert_eq!(outputs.len(), 600);
    assert!(outputs.iter().all(|r| r.header("weir.plugins") == "stage@v1" && value_of(r).get("tax_amount").is_none()));
    assert_eq!(client.get("/v1/plugins/stage").await.unwrap()["live"], json!(1));
    handle.shutdown();
    handle.join().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_init_fails_with_the_pipeline_config_is_refused() {
    // identity ignores its config; enrich-order wants a number for tax_rate.
    let bench = Bench::new(guests::IDENTITY, r#"config = { tax_rate = "high" }"#);
    let registry = Registry::in_memory();
    let handle = bench.start(&registry);
    let client = serve(&registry, &[&handle], 64 << 20).await;
    let (code, message) = status(client.put_wasm("/v1/plugins/stage", std::fs::read(guests::ENRICH_ORDER).unwrap()).await.unwrap_err());
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("failed to initialise with the pipeline's config") && message.contains("invalid config"), "{message}");
    assert_eq!(client.get("/v1/plugins/stage").await.unwrap()["versions"].as_array().unwrap().len(), 1);
    assert_eq!(handle.stats().snapshot().plugin_versions["stage"], "v1");
    handle.shutdown();
    handle.join().await.unwrap();
}
