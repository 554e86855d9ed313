//! `weir demo --scenario orders|fraud`: the seed pipelines with everything
//! embedded. The mock cluster runs in-process, a generator
//! ([`crate::scenario`]) produces orders or payments with out-of-order and
//! late events (and planted fraud), and a stateful pipeline runs the
//! order-revenue or fraud-detector guest with checkpoints to its state topic.
//! Fraud alerts go to a topic and, through the webhook-alert sink, to a small
//! HTTP receiver started by the demo. Ends with the window results.

use super::{DemoError, DemoOptions, tempfile_dir};
use crate::config::Config;
use crate::engine::{Engine, EngineConfig, SandboxLimits};
use crate::pipeline;
use crate::scenario::{self, Event};
use crate::telemetry::StatsSnapshot;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::StreamConsumer;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Partitions of the scenario topics.
const PARTITIONS: i32 = 3;

/// A seed pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Hourly revenue, order count, average and unique customers per processing center.
    Orders,
    /// Per-user 5-minute windows sliding by 1 minute, alerts on suspicious activity.
    Fraud,
}

impl Scenario {
    /// The pipeline (and state topic prefix) name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Orders => "orders",
            Scenario::Fraud => "fraud",
        }
    }

    /// The output topic.
    pub fn output_topic(self) -> &'static str {
        match self {
            Scenario::Orders => "order-revenue",
            Scenario::Fraud => "fraud-alerts",
        }
    }
}

/// What a scenario run produced.
#[derive(Debug, Clone)]
pub struct ScenarioSummary {
    /// The scenario.
    pub scenario: Scenario,
    /// Records generated.
    pub generated: u64,
    /// Late records the generator planted.
    pub planted_late: u64,
    /// Pipeline counters at the end.
    pub stats: StatsSnapshot,
    /// Final window rows (last emission per `result_key`), in key order.
    pub final_rows: Vec<Value>,
    /// Fraud: alerted users and their reasons (early and final alerts).
    pub alerts: BTreeMap<String, BTreeSet<String>>,
    /// Fraud: users with a planted pattern.
    pub planted_fraud: BTreeSet<String>,
    /// Fraud: alert rows the webhook receiver got.
    pub webhook_rows: u64,
    /// Fraud: per planted user, milliseconds from producing the payment that
    /// crossed a threshold to weir producing the alert (record timestamps).
    pub alert_latencies_ms: Vec<i64>,
    /// Wall time.
    pub elapsed: Duration,
}

impl ScenarioSummary {
    /// Whether the run is consistent: every record accounted for (folded
    /// or dead-lettered, late ones included), every planted late record
    /// counted late, and,
    /// for fraud, exactly the planted users alerted.
    pub fn consistent(&self) -> bool {
        let s = &self.stats;
        // Late records are dead-lettered (late = "dlq"), so counted in both.
        let accounted = s.records_in == s.records_aggregated + s.records_dead_lettered + s.records_filtered;
        let fraud_ok = self.scenario != Scenario::Fraud || self.alerts.keys().cloned().collect::<BTreeSet<_>>() == self.planted_fraud;
        accounted && s.records_late == self.planted_late && fraud_ok
    }
}

/// Runs a scenario; progress goes to `progress`.
pub async fn run(scenario: Scenario, options: DemoOptions, progress: &mut (dyn Write + Send)) -> Result<ScenarioSummary, DemoError> {
    let started = Instant::now();
    let plugins_dir = std::fs::canonicalize(&options.plugins_dir).unwrap_or_else(|_| options.plugins_dir.clone());
    let (guest, webhook_guest) = (
        plugins_dir.join(match scenario {
            Scenario::Orders => "order_revenue.wasm",
            Scenario::Fraud => "fraud_detector.wasm",
        }),
        plugins_dir.join("webhook_alert.wasm"),
    );
    if !guest.is_file() || (scenario == Scenario::Fraud && !webhook_guest.is_file()) {
        return Err(DemoError::MissingPlugins(plugins_dir));
    }
    let records = options.records.unwrap_or(20_000);
    let (events, fraud) = match scenario {
        Scenario::Orders => (scenario::orders(records, PARTITIONS), None),
        Scenario::Fraud => {
            let stream = scenario::fraud((records / 30).max(20), 10, 60, PARTITIONS);
            let events = stream.events.clone();
            (events, Some(stream))
        }
    };
    let name = scenario.name();
    let cluster = MockCluster::new(1)?;
    let bootstrap = cluster.bootstrap_servers();
    let inputs: Vec<&str> = match scenario {
        Scenario::Orders => scenario::ORDER_TOPICS.to_vec(),
        Scenario::Fraud => vec![scenario::TRANSACTIONS_TOPIC],
    };
    for topic in &inputs {
        cluster.create_topic(topic, PARTITIONS, 1)?;
    }
    cluster.create_topic(scenario.output_topic(), PARTITIONS, 1)?;
    cluster.create_topic(&format!("{name}.state"), 1, 1)?;
    cluster.create_topic(&format!("{name}.dlq"), 1, 1)?;

    // Fraud alerts also go to a webhook: a receiver in this process.
    let webhook_rows = Arc::new(Mutex::new(0u64));
    let receiver = match scenario {
        Scenario::Fraud => Some(webhook_receiver(webhook_rows.clone()).await?),
        Scenario::Orders => None,
    };

    let dir = tempfile_dir()?;
    let setup = |e: std::io::Error| DemoError::Setup(e.to_string());
    let (schema, operator) = match scenario {
        Scenario::Orders => (scenario::ORDER_SCHEMA, format!("plugin = {guest:?}\nname = \"order-revenue\"\nconfig = {{ early_updates = false }}")),
        Scenario::Fraud => (scenario::TRANSACTION_SCHEMA, format!("plugin = {guest:?}\nname = \"fraud-detector\"\nconfig = {{ emit = \"alerts\" }}")),
    };
    std::fs::write(dir.join(format!("{name}.schema.json")), schema).map_err(setup)?;
    let lateness_ms = match scenario {
        Scenario::Orders => 600_000,
        Scenario::Fraud => 1_800_000,
    };
    let sink = match &receiver {
        Some(addr) => format!(
            "[[pipelines.{name}.operators]]\nplugin = {webhook_guest:?}\nname = \"webhook-alert\"\nconfig = {{ url = \"http://{addr}/alerts\" }}\nallow_hosts = [\"{addr}\"]\n"
        ),
        None => String::new(),
    };
    let toml = format!(
        r#"
        [pipelines.{name}]
        event_time = {{ column = "timestamp", allowed_lateness_ms = {lateness_ms}, late = "dlq" }}
        state = {{ checkpoint_records = 5000, checkpoint_interval_ms = 1000 }}
        [pipelines.{name}.source]
        bootstrap_servers = "{bootstrap}"
        group_id = "weir-demo-{name}"
        topics = {inputs:?}
        properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}
        [pipelines.{name}.format]
        type = "json"
        schema = "{name}.schema.json"
        [pipelines.{name}.batch]
        max_records = 2000
        max_wait_ms = 50
        [[pipelines.{name}.operators]]
        {operator}
        {sink}
        [pipelines.{name}.output]
        topic = "{output}"
        key_column = "result_key"
        [pipelines.{name}.errors]
        dead_letter_topic = "{name}.dlq"
        "#,
        output = scenario.output_topic(),
    );
    let config_path = dir.join(format!("{name}.toml"));
    std::fs::write(&config_path, toml).map_err(setup)?;
    let config = Config::load(&config_path).map_err(|e| DemoError::Setup(e.to_string()))?;
    let engine = Engine::new(EngineConfig { limits: SandboxLimits::default(), cache_dir: options.cache_dir.clone() })
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    let registry = crate::registry::Registry::in_memory();
    let handle = pipeline::start_with_registry(name, config.pipelines[name].clone(), engine.clone(), &registry)?;
    let (stop_admin, stop_admin_rx) = tokio::sync::watch::channel(false);
    if let Some(addr) = options.admin_listen {
        let deployer = crate::deploy::Deployer::new(engine, registry, vec![handle.control()], crate::deploy::DEFAULT_MAX_PLUGIN_BYTES);
        let state = crate::admin::AdminState::new(deployer, options.admin_token.clone()).with_allowed_hosts(&options.admin_allowed_hosts);
        crate::admin::start(addr, state, options.insecure_admin, stop_admin_rx).await.map_err(|e| DemoError::Setup(e.to_string()))?;
    }

    let generated = events.len() as u64;
    let planted_late = events.iter().filter(|e| e.late).count() as u64;
    let generator = tokio::spawn(produce(bootstrap.clone(), events, options.rate_per_s, handle.stats().clone()));
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let s = handle.stats().snapshot();
        let line = format!(
            "consumed {:>8}/{generated}  folded {:>8}  late {:>5}  results {:>6}  checkpoints {:>4}  state {:>7} B  watermark {}",
            s.records_in,
            s.records_aggregated,
            s.records_late,
            s.records_out,
            s.checkpoints,
            s.state_bytes,
            s.watermark_ms.map(format_ms).unwrap_or_else(|| "-".into())
        );
        if options.terminal {
            let _ = write!(progress, "\r{line}");
        } else {
            let _ = writeln!(progress, "{line}");
        }
        let _ = progress.flush();
        if s.records_in >= generated || handle.is_finished() {
            break;
        }
    }
    if options.terminal {
        let _ = writeln!(progress);
    }
    let _ = generator.await;
    handle.shutdown();
    let stats_handle = handle.stats().clone();
    handle.join().await?;
    let stats = stats_handle.snapshot();
    let outputs = read_topic(&bootstrap, scenario.output_topic()).await?;
    let _ = stop_admin.send(true);
    drop(cluster);

    let mut finals: BTreeMap<String, Value> = BTreeMap::new();
    let mut alerts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut first_alert_ms: BTreeMap<String, i64> = BTreeMap::new();
    for (value, timestamp_ms) in &outputs {
        let Ok(row) = serde_json::from_slice::<Value>(value) else { continue };
        if row["alert"].as_bool() == Some(true) {
            let user = row["user_id"].as_str().unwrap_or_default().to_owned();
            let entry = first_alert_ms.entry(user.clone()).or_insert(*timestamp_ms);
            *entry = (*entry).min(*timestamp_ms);
            alerts.entry(user).or_default().extend(row["reasons"].as_str().unwrap_or_default().split(',').map(str::to_owned));
        }
        if row["is_final"].as_bool() == Some(true) {
            finals.insert(row["result_key"].as_str().unwrap_or_default().to_owned(), row);
        }
    }
    let alert_latencies_ms = match &fraud {
        Some(stream) => stream
            .triggers
            .iter()
            .filter_map(|(user, tx)| {
                let produced = stream.events.iter().position(|e| e.value.contains(&format!("\"tx_id\":\"{tx}\"")))?;
                let produced_ms = PRODUCED_AT.lock().unwrap_or_else(|e| e.into_inner()).get(produced).copied()?;
                first_alert_ms.get(user).map(|alerted| alerted - produced_ms)
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(ScenarioSummary {
        scenario,
        generated,
        planted_late,
        stats,
        final_rows: finals.into_values().collect(),
        alerts,
        planted_fraud: fraud.map(|f| f.fraud_users).unwrap_or_default(),
        webhook_rows: *webhook_rows.lock().unwrap_or_else(|e| e.into_inner()),
        alert_latencies_ms,
        elapsed: started.elapsed(),
    })
}

/// Wall-clock produce time (Unix ms) of each generated event, by index.
static PRODUCED_AT: Mutex<Vec<i64>> = Mutex::new(Vec::new());

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// Produces the events in order at `rate` per second (none: as fast as
/// possible, at most 20,000 ahead of the pipeline).
async fn produce(bootstrap: String, events: Vec<Event>, rate: Option<u64>, consumed: Arc<crate::telemetry::PipelineStats>) {
    let producer: FutureProducer = match ClientConfig::new().set("bootstrap.servers", &bootstrap).set("linger.ms", "2").create() {
        Ok(p) => p,
        Err(error) => {
            tracing::error!(%error, "demo producer");
            return;
        }
    };
    PRODUCED_AT.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let started = Instant::now();
    for (n, event) in events.iter().enumerate() {
        while (n as u64).saturating_sub(consumed.records_in.load(std::sync::atomic::Ordering::Relaxed)) > 20_000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let at = now_ms();
        PRODUCED_AT.lock().unwrap_or_else(|e| e.into_inner()).push(at);
        loop {
            let record = FutureRecord::to(event.topic).partition(event.partition).key(&event.key).payload(&event.value).timestamp(at);
            match producer.send_result(record) {
                Ok(delivery) => {
                    drop(delivery);
                    break;
                }
                // Queue full: let librdkafka drain it.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        if let Some(rate) = rate {
            tokio::time::sleep_until((started + Duration::from_secs_f64((n + 1) as f64 / rate as f64)).into()).await;
        } else if n % 1000 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let _ = producer.flush(Duration::from_secs(30));
}

/// Reads a topic from the beginning until it is quiet for 2 s: (value, record timestamp ms).
async fn read_topic(bootstrap: &str, topic: &str) -> Result<Vec<(Vec<u8>, i64)>, DemoError> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("weir-demo-read-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()?;
    super::assign_from_beginning(&consumer, topic)?;
    let mut out = Vec::new();
    while let Ok(message) = tokio::time::timeout(Duration::from_secs(2), consumer.recv()).await {
        let message = message?;
        out.push((message.payload().unwrap_or_default().to_vec(), message.timestamp().to_millis().unwrap_or_default()));
    }
    Ok(out)
}

/// An HTTP receiver for the webhook sink: counts the rows POSTed to /alerts.
async fn webhook_receiver(rows: Arc<Mutex<u64>>) -> Result<std::net::SocketAddr, DemoError> {
    let app = axum::Router::new().route(
        "/alerts",
        axum::routing::post(move |axum::Json(body): axum::Json<Vec<Value>>| {
            let rows = rows.clone();
            async move {
                *rows.lock().unwrap_or_else(|e| e.into_inner()) += body.len() as u64;
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| DemoError::Setup(e.to_string()))?;
    let addr = listener.local_addr().map_err(|e| DemoError::Setup(e.to_string()))?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// `2024-11-19 07:00:00` (UTC) for Unix ms.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60)
}
