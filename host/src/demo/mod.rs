//! `weir demo`: everything embedded. librdkafka's mock cluster runs
//! in-process, a generator produces seed-style orders (a few percent
//! malformed, mistyped or with a negative amount), and a pipeline of the
//! Rust example operators (enrich-order -> high-value-orders) writes to an
//! output topic and a dead-letter topic. Ends with a summary that is checked
//! against the topics themselves.

pub mod seeds;

/// The demo's example components, embedded at build time (host/build.rs).
pub mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_guests.rs"));
}

use crate::config::Config;
use crate::engine::{Engine, EngineConfig, SandboxLimits};
use crate::pipeline::{self, PipelineError};
use crate::scenario::{CENTERS, ORDER_SCHEMA as SCHEMA};
use crate::telemetry::StatsSnapshot;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use rdkafka::ClientConfig;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Stop after this many input records (none: run until interrupted).
    pub records: Option<u64>,
    /// Input records per second (none: as fast as possible).
    pub rate_per_s: Option<u64>,
    /// Directory holding the example components.
    pub plugins_dir: PathBuf,
    /// Directory for the compiled-artifact cache.
    pub cache_dir: Option<PathBuf>,
    /// Whether progress redraws one terminal line (else plain lines).
    pub terminal: bool,
    /// Serve the admin API on this address while the demo runs.
    pub admin_listen: Option<std::net::SocketAddr>,
    /// Bearer token for the admin API (every route but /healthz and /readyz).
    pub admin_token: Option<String>,
    /// Allow a non-loopback admin address without a token.
    pub insecure_admin: bool,
    /// Host names the admin API answers without a token, besides IP addresses and `localhost`.
    pub admin_allowed_hosts: Vec<String>,
}

/// The demo's outcome.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    /// Records the generator produced.
    pub generated: u64,
    /// Pipeline counters at the end.
    pub stats: StatsSnapshot,
    /// Records found in the output topic.
    pub output_topic_records: u64,
    /// Records found in the dead-letter topic.
    pub dead_letter_topic_records: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Whether the demo was interrupted (Ctrl-C) before its record limit.
    pub interrupted: bool,
}

impl DemoSummary {
    /// Whether inputs = outputs + filtered + dead-lettered, and the topics agree.
    pub fn balanced(&self) -> bool {
        let s = &self.stats;
        (self.interrupted || s.records_in == self.generated)
            && s.records_in == s.records_out + s.records_filtered + s.records_dead_lettered
            && self.output_topic_records == s.records_out
            && self.dead_letter_topic_records == s.records_dead_lettered
    }
}

/// Demo failures.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The example components were not found.
    #[error("example operators not found in {0}: build them with `scripts/demo` (or `cargo build --release --target wasm32-wasip2` in guest-examples/rust), or pass --plugins-dir")]
    MissingPlugins(PathBuf),
    /// Kafka (mock cluster, producer, consumer).
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Setting up files or config failed.
    #[error("setup: {0}")]
    Setup(String),
}

/// Most records the generator runs ahead of the pipeline.
const MAX_DEMO_LAG: u64 = 20_000;

const ITEMS: [&str; 6] = ["book", "lamp", "phone", "desk", "chair", "cable"];

/// The `n`th generated order: about 2% malformed JSON, 1% with a mistyped
/// amount, 1% with a negative amount (rejected by enrich-order).
pub fn order(n: u64) -> (String, String) {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = || {
        x ^= x >> 33;
        x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        x ^= x >> 33;
        x
    };
    let id = format!("o-{n:09}");
    let customer = format!("c-{:05}", next() % 5000);
    let kind = next() % 100;
    let amount = (next() % 200_000) as f64 / 100.0;
    let value = match kind {
        0 | 1 => format!(r#"{{"order_id":"{id}","customer_id":"{customer}","total_amount":"#),
        2 => format!(r#"{{"order_id":"{id}","customer_id":"{customer}","total_amount":"n/a","timestamp":1732000000000}}"#),
        3 => format!(r#"{{"order_id":"{id}","customer_id":"{customer}","total_amount":-{amount},"timestamp":1732000000000}}"#),
        _ => {
            let items: Vec<String> = (0..next() % 4).map(|_| format!("\"{}\"", ITEMS[(next() % 6) as usize])).collect();
            format!(
                r#"{{"order_id":"{id}","customer_id":"{customer}","processing_center":"{}","total_amount":{amount},"quantity":{},"timestamp":{},"items":[{}]}}"#,
                CENTERS[(next() % 5) as usize],
                next() % 9 + 1,
                1_732_000_000_000u64 + n * 250,
                items.join(",")
            )
        }
    };
    (customer, value)
}

/// Runs the demo; progress goes to `progress`.
pub async fn run(options: DemoOptions, progress: &mut (dyn Write + Send)) -> Result<DemoSummary, DemoError> {
    let started = Instant::now();
    // Absolute paths: the generated config lives in a temporary directory.
    let plugins_dir = std::fs::canonicalize(&options.plugins_dir).unwrap_or_else(|_| options.plugins_dir.clone());
    let enrich = plugins_dir.join("enrich_order.wasm");
    let filter = plugins_dir.join("high_value_orders.wasm");
    if !enrich.is_file() || !filter.is_file() {
        return Err(DemoError::MissingPlugins(plugins_dir));
    }
    let cluster = MockCluster::new(1)?;
    let bootstrap = cluster.bootstrap_servers();
    cluster.create_topic("orders", 3, 1)?;
    cluster.create_topic("orders.enriched", 3, 1)?;
    cluster.create_topic("orders.dlq", 1, 1)?;

    // Downstream readers count the output and dead-letter topics while the
    // demo runs (the mock broker keeps only a few MB per partition).
    let output_count = Arc::new(AtomicU64::new(0));
    let dead_count = Arc::new(AtomicU64::new(0));
    let readers = vec![
        tokio::spawn(count_topic(bootstrap.clone(), "orders.enriched", output_count.clone())),
        tokio::spawn(count_topic(bootstrap.clone(), "orders.dlq", dead_count.clone())),
    ];

    let dir = tempfile_dir()?;
    std::fs::write(dir.join("orders.schema.json"), SCHEMA).map_err(|e| DemoError::Setup(e.to_string()))?;
    let toml = format!(
        r#"
        [pipelines.orders.source]
        bootstrap_servers = "{bootstrap}"
        group_id = "weir-demo"
        topics = ["orders"]
        properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}
        [pipelines.orders.format]
        type = "json"
        schema = "orders.schema.json"
        [pipelines.orders.batch]
        max_records = 5000
        max_wait_ms = 100
        [[pipelines.orders.operators]]
        plugin = {enrich:?}
        name = "enrich-order"
        config = {{ tax_rate = 0.2 }}
        [[pipelines.orders.operators]]
        plugin = {filter:?}
        name = "high-value-orders"
        config = {{ threshold = 500.0 }}
        [pipelines.orders.output]
        topic = "orders.enriched"
        key_column = "customer_id"
        [pipelines.orders.errors]
        dead_letter_topic = "orders.dlq"
        "#
    );
    let config_path = dir.join("demo.toml");
    std::fs::write(&config_path, toml).map_err(|e| DemoError::Setup(e.to_string()))?;
    let config = Config::load(&config_path).map_err(|e| DemoError::Setup(e.to_string()))?;
    let engine = Engine::new(EngineConfig { limits: SandboxLimits::default(), cache_dir: options.cache_dir.clone() })
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    let registry = crate::registry::Registry::in_memory();
    let handle = pipeline::start_with_registry("orders", config.pipelines["orders"].clone(), engine.clone(), &registry)?;
    let (stop_admin, stop_admin_rx) = tokio::sync::watch::channel(false);
    if let Some(addr) = options.admin_listen {
        let deployer = crate::deploy::Deployer::new(engine, registry, vec![handle.control()], crate::deploy::DEFAULT_MAX_PLUGIN_BYTES);
        let state = crate::admin::AdminState::new(deployer, options.admin_token.clone()).with_allowed_hosts(&options.admin_allowed_hosts);
        crate::admin::start(addr, state, options.insecure_admin, stop_admin_rx).await.map_err(|e| DemoError::Setup(e.to_string()))?;
    }

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let limit = options.records;
    let rate = options.rate_per_s;
    let generated = Arc::new(AtomicU64::new(0));
    let counter = generated.clone();
    let consumed = handle.stats().clone();
    let generator = tokio::spawn(async move {
        let mut n = 0u64;
        let started = Instant::now();
        while limit.is_none_or(|l| n < l) {
            // Backpressure: keep the lag bounded (the mock broker keeps only
            // a few MB per partition, like a short retention).
            while n.saturating_sub(consumed.records_in.load(Ordering::Relaxed)) > MAX_DEMO_LAG {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let (key, value) = order(n);
            let record = FutureRecord::to("orders").key(key.as_bytes()).payload(value.as_bytes());
            match producer.send_result(record) {
                Ok(delivery) => {
                    drop(delivery);
                    n += 1;
                    counter.store(n, Ordering::Relaxed);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
            if let Some(rate) = rate {
                let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
            } else if n.is_multiple_of(1000) {
                tokio::task::yield_now().await;
            }
        }
        let _ = producer.flush(Duration::from_secs(30));
    });

    let mut last = (Instant::now(), 0u64);
    let mut interrupted = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => { interrupted = true; }
        }
        let stats = handle.stats().snapshot();
        let now = Instant::now();
        let rate_now = (stats.records_in - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, stats.records_in);
        let committed: i64 = stats.committed.values().sum();
        let line = format!(
            "consumed {:>9}  produced {:>9}  filtered {:>9}  dead-lettered {:>7}  {:>9.0} rec/s  committed {:>9}",
            stats.records_in, stats.records_out, stats.records_filtered, stats.records_dead_lettered, rate_now, committed
        );
        if options.terminal {
            let _ = write!(progress, "\r{line}");
        } else {
            let _ = writeln!(progress, "{line}");
        }
        let _ = progress.flush();
        let done = limit.is_some_and(|l| stats.records_in >= l);
        if done || interrupted || handle.is_finished() {
            break;
        }
    }
    if options.terminal {
        let _ = writeln!(progress);
    }
    generator.abort();
    let _ = generator.await;
    let generated = generated.load(Ordering::Relaxed);
    handle.shutdown();
    let stats_handle = handle.stats().clone();
    handle.join().await?;
    let stats = stats_handle.snapshot();
    // Let the readers catch up (up to 10 s without progress).
    let mut last = (0, Instant::now());
    loop {
        let seen = (output_count.load(Ordering::Relaxed), dead_count.load(Ordering::Relaxed));
        if seen.0 >= stats.records_out && seen.1 >= stats.records_dead_lettered {
            tokio::time::sleep(Duration::from_millis(300)).await;
            break;
        }
        if seen.0 + seen.1 != last.0 {
            last = (seen.0 + seen.1, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(10) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Drop every client before the mock cluster goes away.
    for reader in readers {
        reader.abort();
        let _ = reader.await;
    }
    let output_topic_records = output_count.load(Ordering::Relaxed);
    let dead_letter_topic_records = dead_count.load(Ordering::Relaxed);
    let _ = stop_admin.send(true);
    Ok(DemoSummary { generated, stats, output_topic_records, dead_letter_topic_records, elapsed: started.elapsed(), interrupted })
}

pub(crate) fn tempfile_dir() -> Result<PathBuf, DemoError> {
    let dir = std::env::temp_dir().join(format!("weir-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| DemoError::Setup(e.to_string()))?;
    Ok(dir)
}

/// Counts the records of a topic as they arrive, from the beginning.
pub(crate) async fn count_topic(bootstrap: String, topic: &'static str, count: Arc<AtomicU64>) -> Result<(), DemoError> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("weir-demo-check-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()?;
    assign_from_beginning(&consumer, topic)?;
    loop {
        consumer.recv().await?;
        count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Assigns every partition of `topic` from its beginning (no group join to wait for).
pub(crate) fn assign_from_beginning(consumer: &StreamConsumer, topic: &str) -> Result<(), DemoError> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let mut partitions = rdkafka::TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            partitions.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)?;
        }
    }
    consumer.assign(&partitions)?;
    Ok(())
}

/// The embedded example components written to a private directory for one
/// run of the demo; removed when dropped.
pub struct ExtractedPlugins {
    dir: PathBuf,
}

impl ExtractedPlugins {
    /// Writes the embedded components to a new private directory (mode
    /// 0700, created fresh: never a directory someone else made). None when
    /// this binary was built without them.
    pub fn write() -> std::io::Result<Option<ExtractedPlugins>> {
        if embedded::EMBEDDED.is_empty() {
            return Ok(None);
        }
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("weir-demo-{}-{nanos}", std::process::id()));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir)?;
        let extracted = ExtractedPlugins { dir };
        for (file, bytes) in embedded::EMBEDDED {
            std::fs::write(extracted.dir.join(file), bytes)?;
        }
        Ok(Some(extracted))
    }

    /// The directory holding the components.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ExtractedPlugins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `dir` holds every example component the demo scenarios run.
pub fn has_plugins(dir: &Path) -> bool {
    ["enrich_order.wasm", "high_value_orders.wasm", "order_revenue.wasm", "fraud_detector.wasm", "webhook_alert.wasm"].iter().all(|f| dir.join(f).is_file())
}

/// Where the example components are, by default: next to the binary's
/// target directory, else relative to the working directory.
pub fn default_plugins_dir() -> PathBuf {
    let relative = Path::new("target/guests/wasm32-wasip2/release");
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/weir -> target/guests/...
        if let Some(target) = exe.parent().and_then(Path::parent) {
            let candidate = target.join("guests/wasm32-wasip2/release");
            if candidate.is_dir() {
                return candidate;
            }
        }
    }
    relative.to_path_buf()
}
