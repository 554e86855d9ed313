//! Windowed aggregation benchmarks (issue: windowed aggregation), on the
//! fraud seed pipeline (fraud-detector guest, 5-minute windows sliding by
//! 1 minute, 30-minute allowed lateness) against librdkafka's in-process
//! mock cluster:
//! - throughput with checkpointed state vs the same pipeline without state,
//!   with whole snapshots (before contract 0.1.1) and keyed, incremental
//!   checkpoints (issue 20), and the state-topic bytes each writes;
//! - alert latency at a fixed input rate: from producing the payment that
//!   crosses a threshold to weir producing the alert (record timestamps);
//! - checkpoint time vs state size, and vs the fraction of keys touched
//!   between two checkpoints;
//! - recovery after a crash: the pipeline task is aborted (no drain, no
//!   final checkpoint) and a new one restores the checkpoints and catches up.

use crate::kafka::Bench;
use crate::report::{Table, rate};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weir::config::Config;
use weir::engine::{Engine, EngineConfig};
use weir::scenario::{self, Event, FraudStream};
use weir_tests::guests;

type Error = Box<dyn std::error::Error>;

const PARTITIONS: i32 = 3;

/// Runs the suite.
pub fn run(quick: bool) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let users = if quick { 100 } else { 2_000 };
    let mut tables = Vec::new();
    // WEIR_BENCH_TABLES=throughput,latency,checkpoint,touched,recovery picks tables (all by default).
    let wanted = crate::report::wanted;
    if wanted("throughput") {
        tables.push(runtime.block_on(throughput(users, if quick { 1 } else { 5 }))?);
    }
    if wanted("latency") {
        tables.push(runtime.block_on(alert_latency(if quick { 60 } else { 1_000 }, if quick { 10 } else { 100 }, if quick { 2_000 } else { 5_000 }))?);
    }
    if wanted("checkpoint") {
        tables.push(runtime.block_on(checkpoint_cost(if quick { &[50, 200][..] } else { &[200, 1_000, 3_000][..] }))?);
    }
    if wanted("touched") {
        tables.push(crate::keyed::touched(if quick { 200 } else { 2_000 })?);
    }
    if wanted("recovery") {
        tables.push(runtime.block_on(recovery(users))?);
    }
    let heading = format!("Windowed aggregation benchmarks (fraud pipeline{})", if quick { ", quick mode" } else { "" });
    crate::report::publish("windows", &heading, &tables, serde_json::json!({"quick": quick}), "")?;
    Ok(())
}

/// A mock cluster with the fraud topics.
fn cluster() -> Result<MockCluster<'static, rdkafka::producer::DefaultProducerContext>, Error> {
    let cluster = MockCluster::new(1)?;
    cluster.create_topic(scenario::TRANSACTIONS_TOPIC, PARTITIONS, 1)?;
    cluster.create_topic("fraud-alerts", PARTITIONS, 1)?;
    cluster.create_topic("fraud.state", 1, 1)?;
    cluster.create_topic("transactions.dlq", 1, 1)?;
    Ok(cluster)
}

/// One round's topic names on the real broker (the state topic is created
/// by the pipeline).
struct RoundTopics {
    input: String,
    output: String,
    dead_letters: String,
    state: String,
    group: String,
}

impl RoundTopics {
    /// Creates the next round's input, output and dead-letter topics.
    async fn create(broker: &Bench) -> Result<RoundTopics, Error> {
        let topic = async |prefix: &str, partitions: i32| broker.topic(prefix, partitions).await.map_err(|e| e as Error);
        Ok(RoundTopics {
            input: topic("fraud-payments", PARTITIONS).await?,
            output: topic("fraud-alerts", PARTITIONS).await?,
            dead_letters: topic("fraud-dlq", 1).await?,
            state: broker.name("fraud-state"),
            group: broker.name("fraud-group"),
        })
    }

    /// Deletes the round's topics, the state topic too.
    async fn delete(&self, broker: &Bench) -> Result<(), Error> {
        broker.delete(&[&self.input, &self.output, &self.dead_letters, &self.state]).await.map_err(|e| e as Error)
    }

    /// Points `pipeline` at these topics and a group of its own.
    fn apply(&self, pipeline: &mut weir::config::PipelineConfig) {
        pipeline.source.topics = vec![self.input.clone()];
        pipeline.source.group_id = self.group.clone();
        if let Some(output) = pipeline.output.as_mut() {
            output.topic = self.output.clone();
        }
        pipeline.errors.dead_letter_topic = Some(self.dead_letters.clone());
        if let Some(state) = pipeline.state.as_mut() {
            state.topic = Some(self.state.clone());
        }
    }
}

/// How the fraud pipeline keeps its state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No `state`: in memory only.
    Memory,
    /// Checkpointed, the whole state per checkpoint (fraud-detector `keyed = false`).
    Whole,
    /// Checkpointed key by key, changed entries only (contract 0.1.1).
    Keyed,
    /// `Memory` with the guest at `WEIR_BENCH_FRAUD_BASELINE` (a build to
    /// compare against in the same run).
    BaselineMemory,
    /// `Keyed` with that guest.
    BaselineKeyed,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Memory => "state in memory only",
            Mode::Whole => "checkpointed, whole snapshots (before)",
            Mode::Keyed => "checkpointed, keyed changes (after)",
            Mode::BaselineMemory => "baseline guest: state in memory only",
            Mode::BaselineKeyed => "baseline guest: checkpointed, keyed changes",
        }
    }

    fn stateful(self) -> bool {
        !matches!(self, Mode::Memory | Mode::BaselineMemory)
    }

    /// The fraud-detector component this mode runs.
    fn plugin(self) -> String {
        match self {
            Mode::BaselineMemory | Mode::BaselineKeyed => std::env::var(BASELINE).expect("baseline modes run only with WEIR_BENCH_FRAUD_BASELINE set"),
            _ => guests::FRAUD_DETECTOR.to_owned(),
        }
    }
}

/// Names a fraud-detector component (for example one built from an earlier
/// commit) that the throughput table also runs, interleaved with this one.
const BASELINE: &str = "WEIR_BENCH_FRAUD_BASELINE";

/// The fraud pipeline config in `mode`.
fn config(dir: &std::path::Path, bootstrap: &str, group: &str, mode: Mode, emit: &str) -> Result<weir::config::PipelineConfig, Error> {
    std::fs::write(dir.join("schema.json"), scenario::TRANSACTION_SCHEMA)?;
    let state_line = if mode.stateful() { "state = { checkpoint_records = 10000, checkpoint_interval_ms = 1000, max_bytes = 67108864 }" } else { "" };
    let keyed = mode != Mode::Whole;
    let toml = format!(
        r#"
        [pipelines.fraud]
        event_time = {{ column = "timestamp", allowed_lateness_ms = 1800000, idle_timeout_ms = 600000 }}
        {state_line}
        [pipelines.fraud.source]
        bootstrap_servers = "{bootstrap}"
        group_id = "{group}"
        topics = ["transactions"]
        properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500", "fetch.wait.max.ms" = "10" }}
        [pipelines.fraud.format]
        type = "json"
        schema = "schema.json"
        [pipelines.fraud.batch]
        max_records = 5000
        max_wait_ms = 20
        [[pipelines.fraud.operators]]
        plugin = "{plugin}"
        name = "fraud-detector"
        config = {{ emit = "{emit}", keyed = {keyed} }}
        [pipelines.fraud.output]
        topic = "fraud-alerts"
        key_column = "result_key"
        "#,
        plugin = mode.plugin(),
    );
    std::fs::write(dir.join("p.toml"), toml)?;
    Ok(Config::load(&dir.join("p.toml"))?.pipelines["fraud"].clone())
}

/// Produces `events` (optionally at `rate` per second), each with its
/// produce time as the record timestamp; returns those times by `tx_id` index.
async fn produce(bootstrap: &str, topic: &str, events: &[Event], rate: Option<u64>) -> Result<Vec<i64>, Error> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", if rate.is_some() { "0" } else { "5" })
        .set("queue.buffering.max.messages", "2000000")
        .create()?;
    let started = Instant::now();
    let mut times = Vec::with_capacity(events.len());
    let mut pending = Vec::new();
    for (n, event) in events.iter().enumerate() {
        let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
        times.push(at);
        loop {
            match producer.send_result(FutureRecord::to(topic).partition(event.partition).key(&event.key).payload(&event.value).timestamp(at)) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
        if let Some(rate) = rate {
            tokio::time::sleep_until((started + Duration::from_secs_f64((n + 1) as f64 / rate as f64)).into()).await;
        }
    }
    for delivery in pending {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    Ok(times)
}

/// Waits until the pipeline has processed `records` (and, with state,
/// until a checkpoint covers them); returns the times from its first record
/// to the last one processed and to the covering checkpoint.
async fn drain(handle: &weir::pipeline::PipelineHandle, records: u64, stateful: bool) -> Result<(Duration, Duration), Error> {
    let mut started = None;
    let mut processed = None;
    loop {
        let stats = handle.stats().snapshot();
        if stats.records_in > 0 && started.is_none() {
            started = Some(Instant::now());
        }
        let since = || started.map_or(Duration::ZERO, |s: Instant| s.elapsed());
        if processed.is_none() && stats.records_in >= records && stats.batches > 0 {
            processed = Some(since());
        }
        let committed: i64 = stats.committed.values().sum();
        if let Some(processed) = processed
            && (!stateful || committed as u64 >= records)
        {
            return Ok((processed, since()));
        }
        if handle.is_finished() || matches!(stats.state, weir::telemetry::PipelineState::Paused(_)) {
            return Err(format!("pipeline stopped: {:?}", stats.state).into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// One pipeline run of the throughput table.
struct Round {
    elapsed: Duration,
    durable: Duration,
    checkpoints: u64,
    state_bytes: u64,
    written_records: u64,
    written_bytes: u64,
    /// Worker time in checkpoint snapshots and stopped waiting for state writes.
    snapshot: Duration,
    wait: Duration,
}

async fn throughput_round(stream: &FraudStream, mode: Mode, broker: Option<&Bench>) -> Result<Round, Error> {
    let records = stream.events.len() as u64;
    let stateful = mode.stateful();
    // The mock cluster of this round, or fresh topics on the real broker.
    let (_cluster, bootstrap, topics) = match broker {
        None => {
            let cluster = cluster()?;
            let bootstrap = cluster.bootstrap_servers();
            (Some(cluster), bootstrap, None)
        }
        Some(broker) => (None, broker.bootstrap.clone(), Some(RoundTopics::create(broker).await?)),
    };
    let input = topics.as_ref().map_or(scenario::TRANSACTIONS_TOPIC, |t| t.input.as_str());
    produce(&bootstrap, input, &stream.events, None).await?;
    let dir = tempfile::tempdir()?;
    let mut pipeline = config(dir.path(), &bootstrap, "bench", mode, "alerts")?;
    if let Some(topics) = &topics {
        topics.apply(&mut pipeline);
    }
    let handle = weir::pipeline::start("fraud", pipeline, Engine::new(EngineConfig::default())?)?;
    let (elapsed, durable) = drain(&handle, records, stateful).await?;
    let stats = handle.stats().snapshot();
    let live = handle.stats().clone();
    handle.shutdown();
    handle.join().await?;
    // Counted by the producer (weir_state_written_*), final checkpoint included.
    let after = live.snapshot();
    if let (Some(broker), Some(topics)) = (broker, &topics) {
        topics.delete(broker).await?;
    }
    Ok(Round {
        elapsed,
        durable,
        checkpoints: stats.checkpoints,
        state_bytes: stats.state_bytes,
        written_records: after.state_written_records,
        written_bytes: after.state_written_bytes,
        snapshot: Duration::from_micros(stats.checkpoint_snapshot_us),
        wait: Duration::from_micros(stats.checkpoint_wait_us),
    })
}

/// Each mode `rounds` times, the modes interleaved (load that drifts hits
/// them alike); each row is the mode's median round.
async fn throughput(users: u64, rounds: usize) -> Result<Table, Error> {
    let stream = scenario::fraud(users, users / 20 + 1, 60, PARTITIONS);
    let records = stream.events.len() as u64;
    // WEIR_BENCH_WINDOWS_BROKER=kafka: on a real Apache Kafka broker (a single
    // KRaft node started for the table) instead of the in-process mock.
    let real = std::env::var("WEIR_BENCH_WINDOWS_BROKER").is_ok_and(|b| b == "kafka");
    let (_node, broker) = if real {
        let node = weir_tests::broker::Kafka::start(weir_tests::broker::KafkaConfig::default());
        let broker = Bench::new(node.bootstrap(), false).map_err(|e| e as Error)?;
        (Some(node), Some(broker))
    } else {
        (None, None)
    };
    let on = if real { format!(", Apache Kafka {} (single KRaft node)", weir_tests::broker::KAFKA_VERSION) } else { String::new() };
    let mut table = Table::new(
        &format!("Fraud pipeline throughput ({records} payments, {users} users, 60 min of event time, median of {rounds} interleaved rounds{on})"),
        &["pipeline", "records/s", "time", "checkpoints", "snapshots / waiting for writes", "state (last)", "state topic written", "vs no state", "until durable"],
    );
    let mut modes = vec![Mode::Memory, Mode::Whole, Mode::Keyed];
    if std::env::var_os(BASELINE).is_some() {
        modes.extend([Mode::BaselineMemory, Mode::BaselineKeyed]);
    }
    // WEIR_BENCH_FRAUD_MODES=keyed (labels containing any of the words) runs some rows, for profiles.
    if let Ok(words) = std::env::var("WEIR_BENCH_FRAUD_MODES") {
        modes.retain(|mode| words.split(',').any(|word| mode.label().contains(word)));
    }
    let mut runs: Vec<Vec<Round>> = modes.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (mode, runs) in modes.iter().zip(&mut runs) {
            runs.push(throughput_round(&stream, *mode, broker.as_ref()).await?);
        }
    }
    // Each guest's rows against its own in-memory row.
    let mut in_memory = Duration::ZERO;
    for (mode, mut runs) in modes.into_iter().zip(runs) {
        runs.sort_by_key(|r| r.elapsed);
        let run = &runs[runs.len() / 2];
        let stateful = mode.stateful();
        if !stateful {
            in_memory = run.elapsed;
        }
        // "-" when the rows picked leave out the in-memory one.
        let ratio = if in_memory.is_zero() { "-".to_owned() } else { format!("{:.2}x", in_memory.as_secs_f64() / run.elapsed.as_secs_f64()) };
        table.row(vec![
            mode.label().into(),
            rate(records as usize, run.elapsed),
            format!("{:.2} s", run.elapsed.as_secs_f64()),
            run.checkpoints.to_string(),
            if stateful { format!("{:.0} ms / {:.0} ms", run.snapshot.as_secs_f64() * 1e3, run.wait.as_secs_f64() * 1e3) } else { "-".into() },
            format!("{} KiB", run.state_bytes / 1024),
            // The stream holds 60 minutes of event time.
            if stateful { format!("{:.1} MiB in {} records ({:.2} MiB per event-time minute)", run.written_bytes as f64 / (1 << 20) as f64, run.written_records, run.written_bytes as f64 / (1 << 20) as f64 / 60.0) } else { "-".into() },
            ratio,
            if stateful { format!("{:.2} s (next checkpoint, interval 1 s)", run.durable.as_secs_f64()) } else { "never (in memory)".into() },
        ]);
    }
    Ok(table)
}

async fn alert_latency(users: u64, fraud_users: u64, rate_per_s: u64) -> Result<Table, Error> {
    let stream: FraudStream = scenario::fraud(users, fraud_users, 30, PARTITIONS);
    let cluster = cluster()?;
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir()?;
    let handle = weir::pipeline::start("fraud", config(dir.path(), &bootstrap, "bench", Mode::Keyed, "alerts")?, Engine::new(EngineConfig::default())?)?;
    // Wait for the group to assign partitions before the clock starts.
    while handle.stats().snapshot().assigned_partitions.unwrap_or(0) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let produced = produce(&bootstrap, scenario::TRANSACTIONS_TOPIC, &stream.events, Some(rate_per_s)).await?;
    drain(&handle, stream.events.len() as u64, true).await?;
    handle.shutdown();
    handle.join().await?;
    let alerts = first_alerts(&bootstrap).await?;
    drop(cluster);
    let index_of: BTreeMap<String, usize> = stream.events.iter().enumerate().filter_map(|(i, e)| tx_id(&e.value).map(|t| (t, i))).collect();
    let mut latencies: Vec<i64> = stream
        .triggers
        .iter()
        .filter_map(|(user, tx)| Some(alerts.get(user)? - produced[*index_of.get(tx)?]))
        .collect();
    latencies.sort_unstable();
    let pick = |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(-1);
    let mut table = Table::new(
        &format!("Alert latency at {rate_per_s} payments/s ({} planted users, batches of up to 5000 records / 20 ms)", stream.triggers.len()),
        &["alerts", "p50", "p99", "max"],
    );
    table.row(vec![format!("{} of {}", latencies.len(), stream.triggers.len()), format!("{} ms", pick(0.5)), format!("{} ms", pick(0.99)), format!("{} ms", pick(1.0))]);
    Ok(table)
}

fn tx_id(value: &str) -> Option<String> {
    let start = value.find("\"tx_id\":\"")? + 9;
    Some(value[start..start + value[start..].find('"')?].to_owned())
}

/// The first alert's record timestamp per user.
async fn first_alerts(bootstrap: &str) -> Result<BTreeMap<String, i64>, Error> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "alert-reader")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&["fraud-alerts"])?;
    let mut first = BTreeMap::new();
    let mut wait = Duration::from_secs(15);
    while let Ok(message) = tokio::time::timeout(wait, consumer.recv()).await {
        let message = message?;
        wait = Duration::from_secs(2);
        let row: serde_json::Value = serde_json::from_slice(message.payload().unwrap_or_default())?;
        let (Some(user), Some(ms)) = (row["user_id"].as_str(), message.timestamp().to_millis()) else { continue };
        let entry = first.entry(user.to_owned()).or_insert(ms);
        *entry = (*entry).min(ms);
    }
    Ok(first)
}

async fn checkpoint_cost(user_counts: &[u64]) -> Result<Table, Error> {
    let mut table = Table::new(
        "Checkpoint time vs state size (3 tasks; snapshot + produce + ack + commit; last checkpoint of the run)",
        &["users", "checkpoints", "state (3 tasks)", "whole: checkpoint", "whole: written / checkpoint", "keyed: checkpoint", "keyed: written / checkpoint"],
    );
    for &users in user_counts {
        let stream = scenario::fraud(users, 1, 40, PARTITIONS);
        let mut row = vec![users.to_string()];
        for mode in [Mode::Whole, Mode::Keyed] {
            let cluster = cluster()?;
            let bootstrap = cluster.bootstrap_servers();
            produce(&bootstrap, scenario::TRANSACTIONS_TOPIC, &stream.events, None).await?;
            let dir = tempfile::tempdir()?;
            let handle = weir::pipeline::start("fraud", config(dir.path(), &bootstrap, "bench", mode, "alerts")?, Engine::new(EngineConfig::default())?)?;
            drain(&handle, stream.events.len() as u64, true).await?;
            let stats = handle.stats().snapshot();
            let live = handle.stats().clone();
            handle.shutdown();
            handle.join().await?;
            let after = live.snapshot();
            drop(cluster);
            if mode == Mode::Whole {
                row.push(stats.checkpoints.to_string());
                row.push(format!("{:.2} MiB", stats.state_bytes as f64 / (1 << 20) as f64));
            }
            row.push(format!("{:.1} ms", stats.checkpoint_us as f64 / 1000.0));
            // Final checkpoint included on both sides of the division.
            row.push(format!("{:.2} MiB", after.state_written_bytes as f64 / after.checkpoints.max(1) as f64 / (1 << 20) as f64));
        }
        table.row(row);
    }
    Ok(table)
}

async fn recovery(users: u64) -> Result<Table, Error> {
    let mut table = Table::new(
        "Recovery after a crash (pipeline aborted, restarted on the same group)",
        &["checkpoints", "state restored", "records after the checkpoint", "start -> first record folded", "start -> caught up"],
    );
    for mode in [Mode::Whole, Mode::Keyed] {
        table.row(recover(users, mode).await?);
    }
    Ok(table)
}

async fn recover(users: u64, mode: Mode) -> Result<Vec<String>, Error> {
    let stream = scenario::fraud(users, users / 20 + 1, 60, PARTITIONS);
    let (first, second) = stream.events.split_at(stream.events.len() * 2 / 3);
    let cluster = cluster()?;
    let bootstrap = cluster.bootstrap_servers();
    produce(&bootstrap, scenario::TRANSACTIONS_TOPIC, first, None).await?;
    let dir = tempfile::tempdir()?;
    let crashed = weir::pipeline::start("fraud", config(dir.path(), &bootstrap, "bench", mode, "alerts")?, Engine::new(EngineConfig::default())?)?;
    drain(&crashed, first.len() as u64, true).await?;
    let state_bytes = crashed.stats().snapshot().state_bytes;
    crashed.abort(); // no drain, no final checkpoint
    let _ = crashed.join().await;
    produce(&bootstrap, scenario::TRANSACTIONS_TOPIC, second, None).await?;
    let started = Instant::now();
    let restarted = weir::pipeline::start("fraud", config(dir.path(), &bootstrap, "bench", mode, "alerts")?, Engine::new(EngineConfig::default())?)?;
    let mut first_record = None;
    loop {
        let stats = restarted.stats().snapshot();
        if stats.records_in > 0 && first_record.is_none() {
            first_record = Some(started.elapsed());
        }
        let committed: i64 = stats.committed.values().sum();
        if committed as usize >= stream.events.len() {
            break;
        }
        if restarted.is_finished() {
            return Err(format!("pipeline stopped: {:?}", stats.state).into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let caught_up = started.elapsed();
    restarted.shutdown();
    restarted.join().await?;
    drop(cluster);
    Ok(vec![
        if mode == Mode::Whole { "whole snapshots".into() } else { "keyed entries".into() },
        format!("{:.2} MiB", state_bytes as f64 / (1 << 20) as f64),
        second.len().to_string(),
        format!("{:.2} s", first_record.unwrap_or_default().as_secs_f64()),
        format!("{:.2} s", caught_up.as_secs_f64()),
    ])
}

#[cfg(test)]
mod tests {
    /// The suite in quick mode (no timing assertions).
    #[test]
    fn quick_windows_suite_runs() {
        super::run(true).unwrap();
    }
}
