//! Hot-swap benchmarks (issue: admin API and hot swap), through the real
//! admin HTTP API against a pipeline on the in-process mock cluster:
//! - swap pause p50/p99 while a producer keeps the pipeline busy (the time
//!   the pipeline spends between two batches exchanging the operator), and
//!   the request's upload-to-live time; no record may be lost meanwhile;
//! - upload-to-live for a small Rust component and large Python and JS
//!   components (when `scripts/build-polyglot-guests` built them), cold
//!   (compiled) vs cached (artifact cache hit).

use crate::report::Table;
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use weir::client::AdminClient;
use weir::engine::{Engine, EngineConfig, SandboxLimits};
use weir::registry::Registry;
use weir_tests::guests;

type Error = Box<dyn std::error::Error>;

const SCHEMA: &str = r#"{"fields":[{"name":"order_id","type":"utf8","nullable":false},{"name":"total_amount","type":"float64"}]}"#;

/// Runs the suite; returns the markdown.
pub fn run(quick: bool) -> Result<String, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let swaps = if quick { 20 } else { 200 };
    let tables = runtime.block_on(async { Ok::<_, Error>(vec![swap_pause(swaps).await?, upload_to_live(quick).await?]) })?;
    let heading = format!("Hot-swap benchmarks ({swaps} swaps{})", if quick { ", quick mode" } else { "" });
    Ok(crate::report::publish("deploy", &heading, &tables, serde_json::json!({"swaps": swaps, "quick": quick}), "")?)
}

/// A pipeline (`stage` = Rust identity map) on a mock cluster, served by the admin API.
struct Setup {
    _cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    bootstrap: String,
    input: String,
    handle: weir::pipeline::PipelineHandle,
    client: AdminClient,
    _dir: tempfile::TempDir,
}

impl Setup {
    /// Drains the pipeline before the mock cluster goes (a commit against a
    /// vanished cluster would block forever).
    async fn finish(self) -> Result<(), Error> {
        self.handle.shutdown();
        self.handle.join().await?;
        Ok(())
    }
}

async fn setup(cache_dir: Option<PathBuf>) -> Result<Setup, Error> {
    let cluster = MockCluster::new(1)?;
    let bootstrap = cluster.bootstrap_servers();
    let input = "orders".to_owned();
    cluster.create_topic(&input, 2, 1)?;
    cluster.create_topic("out", 2, 1)?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("schema.json"), SCHEMA)?;
    let toml = format!(
        r#"
        [pipelines.p.source]
        bootstrap_servers = "{bootstrap}"
        group_id = "bench"
        topics = ["{input}"]
        [pipelines.p.format]
        type = "json"
        schema = "schema.json"
        [pipelines.p.batch]
        max_records = 500
        max_wait_ms = 5
        [[pipelines.p.operators]]
        plugin = "{identity}"
        name = "stage"
        [pipelines.p.output]
        topic = "out"
        "#,
        identity = guests::IDENTITY
    );
    let path = dir.path().join("p.toml");
    std::fs::write(&path, toml)?;
    let config = weir::config::Config::load(&path)?.pipelines["p"].clone();
    let engine = Engine::new(EngineConfig { limits: SandboxLimits::default(), cache_dir })?;
    let registry = Registry::in_memory();
    let handle = weir::pipeline::start_with_registry("p", config, engine.clone(), &registry)?;
    let deployer = weir::deploy::Deployer::new(engine, registry, vec![handle.control()], weir::deploy::DEFAULT_MAX_PLUGIN_BYTES);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    std::mem::forget(stop);
    let addr = weir::admin::start("127.0.0.1:0".parse()?, weir::admin::AdminState::new(deployer, None), false, stop_rx).await?;
    let client = AdminClient::new(&format!("http://{addr}"), None);
    Ok(Setup { _cluster: cluster, bootstrap, input, handle, client, _dir: dir })
}

/// Keeps producing orders until `stop` turns true; returns how many.
async fn pump(bootstrap: String, topic: String, stop: tokio::sync::watch::Receiver<bool>) -> Result<u64, rdkafka::error::KafkaError> {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &bootstrap).set("linger.ms", "2").create()?;
    let mut sent = 0u64;
    while !*stop.borrow() {
        let values: Vec<String> = (sent..sent + 200).map(|i| format!(r#"{{"order_id":"o-{i}","total_amount":{}.5}}"#, i % 1000)).collect();
        let sends = values.iter().map(|v| producer.send(FutureRecord::<(), _>::to(&topic).payload(v), Duration::from_secs(10)));
        for result in futures::future::join_all(sends).await {
            result.map_err(|(e, _)| e)?;
        }
        sent += 200;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(sent)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn swap_pause(swaps: usize) -> Result<Table, Error> {
    let setup = setup(None).await?;
    let v1 = std::fs::read(guests::IDENTITY)?;
    let v2 = std::fs::read(guests::ENRICH_ORDER)?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let producer = tokio::spawn(pump(setup.bootstrap.clone(), setup.input.clone(), stop_rx));
    while setup.handle.stats().snapshot().records_in < 5_000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut pauses, mut to_live) = (Vec::new(), Vec::new());
    for i in 0..swaps {
        let bytes = if i % 2 == 0 { v2.clone() } else { v1.clone() };
        let outcome = setup.client.put_wasm("/v1/plugins/stage", bytes).await?;
        pauses.push(outcome["pipelines"][0]["report"]["pause_us"].as_f64().ok_or("no pause in the answer")?);
        to_live.push(outcome["upload_to_live_ms"].as_f64().unwrap_or(0.0));
    }
    let _ = stop.send(true);
    let sent = producer.await??;
    let deadline = Instant::now() + Duration::from_secs(60);
    while setup.handle.stats().snapshot().records_out < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = setup.handle.stats().snapshot();
    setup.finish().await?;
    pauses.sort_by(f64::total_cmp);
    to_live.sort_by(f64::total_cmp);
    let mut table = Table::new(
        "Swap pause under load (identity <-> enrich-order, producer running)",
        &["swaps", "records in / produced / out", "pause p50", "pause p99", "pause max", "upload-to-live p50", "upload-to-live p99"],
    );
    table.row(vec![
        swaps.to_string(),
        format!("{} / {} / {}", stats.records_in, sent, stats.records_out),
        format!("{:.0} µs", percentile(&pauses, 0.5)),
        format!("{:.0} µs", percentile(&pauses, 0.99)),
        format!("{:.0} µs", pauses.last().copied().unwrap_or(0.0)),
        format!("{:.1} ms", percentile(&to_live, 0.5)),
        format!("{:.1} ms", percentile(&to_live, 0.99)),
    ]);
    if stats.records_in != sent || stats.records_out != sent {
        return Err(format!("records lost during swaps: produced {sent}, in {}, out {}", stats.records_in, stats.records_out).into());
    }
    Ok(table)
}

async fn upload_to_live(quick: bool) -> Result<Table, Error> {
    let polyglot = weir_tests::repo_root().join("target/guests/polyglot");
    let candidates = [
        ("Rust enrich-order", PathBuf::from(guests::ENRICH_ORDER)),
        ("Python enrich-order", polyglot.join("python-enrich-order.wasm")),
        ("JS enrich-order", polyglot.join("js-enrich-order.wasm")),
    ];
    let mut table = Table::new("Upload to live (HTTP PUT until every pipeline swapped)", &["component", "size", "cold (compile)", "cached", "cold / cached"]);
    let cache = tempfile::tempdir()?;
    let setup = setup(Some(cache.path().to_owned())).await?;
    for (label, path) in candidates {
        if quick && !label.starts_with("Rust") {
            continue; // compiling 12-18 MiB components takes a while: full runs only
        }
        let Ok(bytes) = std::fs::read(&path) else {
            table.row(vec![label.into(), "not built (run scripts/build-polyglot-guests)".into(), "-".into(), "-".into(), "-".into()]);
            continue;
        };
        let cold = setup.client.put_wasm("/v1/plugins/stage", bytes.clone()).await?;
        setup.client.post("/v1/plugins/stage/rollback", &serde_json::json!({"version": 1})).await?;
        let cached = setup.client.put_wasm("/v1/plugins/stage", bytes.clone()).await?;
        setup.client.post("/v1/plugins/stage/rollback", &serde_json::json!({"version": 1})).await?;
        if cold["loaded_from"] != "compiled" || cached["loaded_from"] != "cache" {
            return Err(format!("{label}: expected compiled then cache, got {} then {}", cold["loaded_from"], cached["loaded_from"]).into());
        }
        let (cold_ms, cached_ms) = (cold["upload_to_live_ms"].as_f64().unwrap_or(0.0), cached["upload_to_live_ms"].as_f64().unwrap_or(0.0));
        table.row(vec![
            label.into(),
            format!("{:.1} MiB", bytes.len() as f64 / (1024.0 * 1024.0)),
            format!("{cold_ms:.0} ms"),
            format!("{cached_ms:.1} ms"),
            format!("{:.0}x", cold_ms / cached_ms.max(0.001)),
        ]);
    }
    setup.finish().await?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    /// The suite in quick mode (no timing assertions; it does fail on lost records).
    #[test]
    fn quick_deploy_suite_runs() {
        super::run(true).unwrap();
    }
}
