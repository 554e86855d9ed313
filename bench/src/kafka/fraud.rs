//! The fraud seed pipeline (fraud-detector guest: 5-minute windows sliding
//! by 1 minute, 30-minute lateness, checkpointed state) on the real broker
//! under both guarantees: records/s (interleaved rounds) and alert latency
//! at a fixed payment rate. Every run's alerts are read back (read_committed):
//! the alerted users must be exactly the planted ones.

use super::latency::Latency;
use super::{Bench, Error, Guarantee, Plan, median, now_ms, offsets_reader, read_topic};
use crate::report::{Table, rate};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use weir::config::Config;
use weir::engine::{Engine, EngineConfig};
use weir::scenario::{self, Event, FraudStream};
use weir_tests::guests;

/// Input partitions (= tasks), as in the seed.
const PARTITIONS: i32 = 3;
/// Checkpoint after this many records, or this often (the other pipelines' commit interval).
const CHECKPOINT_RECORDS: u64 = 10_000;
const CHECKPOINT_INTERVAL_MS: u64 = super::COMMIT_INTERVAL_MS;

/// The fraud figures of the run.
pub struct Results {
    records: usize,
    rounds: usize,
    /// Per guarantee: first record -> every offset committed (per round), alert latency, alerts found.
    rows: Vec<(Guarantee, Vec<Duration>, Latency, String)>,
}

impl Results {
    /// Exactly-once / at-least-once records/s (until committed).
    pub fn eos_ratio(&self) -> Option<f64> {
        let time = |g: Guarantee| self.rows.iter().find(|r| r.0 == g).map(|r| median(&r.1));
        Some(time(Guarantee::AtLeastOnce)?.as_secs_f64() / time(Guarantee::ExactlyOnce)?.as_secs_f64())
    }

    /// The fraud table.
    pub fn table(&self) -> Table {
        let mut table = Table::new(
            &format!(
                "Fraud pipeline on the broker ({} payments, {PARTITIONS} partitions, batches of {} records or {CHECKPOINT_INTERVAL_MS} ms, checkpoints every {CHECKPOINT_RECORDS} records / {CHECKPOINT_INTERVAL_MS} ms, median of {} rounds)",
                self.records,
                super::BATCH_RECORDS,
                self.rounds
            ),
            &["guarantee", "records/s", "alert p50", "alert p99", "alert max", "alerts"],
        );
        for (guarantee, times, latency, alerts) in &self.rows {
            table.row(vec![
                guarantee.name().into(),
                rate(self.records, median(times)),
                format!("{} ms", latency.p50),
                format!("{} ms", latency.p99),
                format!("{} ms", latency.max),
                alerts.clone(),
            ]);
        }
        table
    }
}

/// Topics of one fraud run.
struct Topics {
    input: String,
    output: String,
    group: String,
}

/// The seed's fraud pipeline config with `guarantee`, batched like the
/// other pipelines of the suite (10k records or 100 ms: the transaction
/// under exactly-once; the seed itself cuts at 5000 records or 20 ms).
fn config(dir: &std::path::Path, bootstrap: &str, topics: &Topics, guarantee: Guarantee) -> Result<weir::config::PipelineConfig, Error> {
    std::fs::write(dir.join("schema.json"), scenario::TRANSACTION_SCHEMA)?;
    let toml = format!(
        r#"
        [pipelines.fraud]
        guarantee = "{guarantee}"
        exactly_once = {{ instance_id = "{group}" }}
        event_time = {{ column = "timestamp", allowed_lateness_ms = 1800000, idle_timeout_ms = 600000 }}
        state = {{ topic = "{group}.state", checkpoint_records = {CHECKPOINT_RECORDS}, checkpoint_interval_ms = {CHECKPOINT_INTERVAL_MS}, max_bytes = 67108864 }}
        errors = {{ dead_letter_topic = "{group}.dlq" }}
        [pipelines.fraud.source]
        bootstrap_servers = "{bootstrap}"
        group_id = "{group}"
        topics = ["{input}"]
        [pipelines.fraud.format]
        type = "json"
        schema = "schema.json"
        [pipelines.fraud.batch]
        max_records = {batch_records}
        max_wait_ms = {CHECKPOINT_INTERVAL_MS}
        [[pipelines.fraud.operators]]
        plugin = "{plugin}"
        name = "fraud-detector"
        config = {{ emit = "alerts" }}
        [pipelines.fraud.output]
        topic = "{output}"
        key_column = "result_key"
        "#,
        guarantee = guarantee.name(),
        group = topics.group,
        input = topics.input,
        output = topics.output,
        plugin = guests::FRAUD_DETECTOR,
        batch_records = super::BATCH_RECORDS,
    );
    std::fs::write(dir.join("p.toml"), toml)?;
    Ok(Config::load(&dir.join("p.toml"))?.pipelines["fraud"].clone())
}

/// Produces the events to `topic` (their own partitions), optionally at
/// `rate` per second; returns each event's produce time (Unix ms).
async fn produce(bootstrap: &str, topic: &str, events: &[Event], rate_per_s: Option<u64>) -> Result<Vec<i64>, Error> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", if rate_per_s.is_some() { "1" } else { "5" })
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let started = Instant::now();
    let mut times = Vec::with_capacity(events.len());
    let mut pending = Vec::with_capacity(events.len());
    for (n, event) in events.iter().enumerate() {
        times.push(now_ms());
        pending.push(producer.send_result(FutureRecord::to(topic).partition(event.partition).key(&event.key).payload(&event.value)).map_err(|(e, _)| e)?);
        if let Some(rate) = rate_per_s {
            tokio::time::sleep_until((started + Duration::from_secs_f64((n + 1) as f64 / rate as f64)).into()).await;
        }
    }
    for delivery in pending {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    Ok(times)
}

/// Fresh topics (the dead-letter and state topics are named after the group).
async fn topics(kafka: &Bench, input: Option<&str>) -> Result<Topics, Error> {
    let input = match input {
        Some(input) => input.to_owned(),
        None => kafka.topic("payments", PARTITIONS).await?,
    };
    let output = kafka.topic("alerts", PARTITIONS).await?;
    let group = kafka.name("fraud");
    let dlq = format!("{group}.dlq");
    let results = kafka.admin.create_topics(&[rdkafka::admin::NewTopic::new(&dlq, 1, rdkafka::admin::TopicReplication::Fixed(1))], &rdkafka::admin::AdminOptions::new()).await?;
    for result in results {
        result.map_err(|(topic, code)| format!("creating {topic}: {code}"))?;
    }
    Ok(Topics { input, output, group })
}

/// The alerted users in `topic`; an error unless they are exactly the planted ones.
fn check_alerts(bootstrap: &str, topic: &str, planted: &BTreeSet<String>) -> Result<usize, Error> {
    let values = read_topic(bootstrap, topic, PARTITIONS)?;
    let mut alerted = BTreeSet::new();
    for value in &values {
        let row: serde_json::Value = serde_json::from_slice(value)?;
        if row["alert"].as_bool() == Some(true) {
            alerted.insert(row["user_id"].as_str().unwrap_or_default().to_owned());
        }
    }
    if &alerted != planted {
        return Err(format!("alerted users differ from the planted ones: {} alerted, {} planted", alerted.len(), planted.len()).into());
    }
    Ok(values.len())
}

/// One throughput run over the events already in `input`.
async fn throughput_run(kafka: &Bench, input: &str, stream: &FraudStream, guarantee: Guarantee, check: bool) -> Result<Duration, Error> {
    let topics = topics(kafka, Some(input)).await?;
    let dir = tempfile::tempdir()?;
    let handle = weir::pipeline::start("fraud", config(dir.path(), &kafka.bootstrap, &topics, guarantee)?, Engine::new(EngineConfig::default())?)?;
    let reader = offsets_reader(&kafka.bootstrap, &topics.group)?;
    let records = stream.events.len() as u64;
    let deadline = Instant::now() + super::RUN_TIMEOUT;
    let mut first = None;
    let result = loop {
        let stats = handle.stats();
        if first.is_none() {
            if stats.records_in.load(Ordering::Relaxed) > 0 {
                first = Some(Instant::now());
            } else if !handle.is_finished() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        }
        if super::committed_now(&reader, input, PARTITIONS).await? >= records {
            break Ok(first.map_or(Duration::ZERO, |f: Instant| f.elapsed()));
        }
        if handle.is_finished() {
            break Err(format!("fraud pipeline stopped: {:?}", stats.snapshot().state));
        }
        if Instant::now() > deadline {
            break Err(format!("fraud pipeline: not every offset committed after {:?}", super::RUN_TIMEOUT));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    handle.shutdown();
    handle.join().await?;
    let times = result.map_err(|e| format!("fraud {}: {e}", guarantee.name()))?;
    if check {
        let (bootstrap, output) = (kafka.bootstrap.clone(), topics.output.clone());
        let planted = stream.fraud_users.clone();
        tokio::task::spawn_blocking(move || check_alerts(&bootstrap, &output, &planted)).await?.map_err(|e| format!("fraud {}: {e}", guarantee.name()))?;
    }
    kafka.delete(&[&topics.output, &format!("{}.dlq", topics.group), &format!("{}.state", topics.group)]).await?;
    eprintln!("bench: fraud {}: {times:?}", guarantee.name());
    Ok(times)
}

/// Alert latency: the pipeline waits on fresh topics, payments arrive at
/// `rate_per_s`; per planted user, from producing the payment that crosses
/// a threshold to its first alert becoming visible to a read_committed reader.
async fn latency_run(kafka: &Bench, users: u64, fraud_users: u64, rate_per_s: u64, guarantee: Guarantee) -> Result<(Latency, String), Error> {
    let stream = scenario::fraud(users, fraud_users, 30, PARTITIONS);
    let topics = topics(kafka, None).await?;
    let dir = tempfile::tempdir()?;
    let handle = weir::pipeline::start("fraud", config(dir.path(), &kafka.bootstrap, &topics, guarantee)?, Engine::new(EngineConfig::default())?)?;
    while handle.stats().snapshot().assigned_partitions.unwrap_or(0) == 0 {
        if handle.is_finished() {
            return Err(format!("fraud pipeline stopped: {:?}", handle.stats().snapshot().state).into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .set("group.id", format!("alerts-{}", topics.group))
        .set("fetch.wait.max.ms", "10")
        .set("isolation.level", "read_committed")
        .create()?;
    let mut list = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        list.add_partition_offset(&topics.output, partition, Offset::Beginning)?;
    }
    reader.assign(&list)?;
    let wanted = stream.fraud_users.clone();
    let watcher = std::thread::spawn(move || -> Result<BTreeMap<String, i64>, String> {
        let mut first = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while first.len() < wanted.len() && Instant::now() < deadline {
            if let Some(message) = reader.poll(Duration::from_millis(100)) {
                let message = message.map_err(|e| e.to_string())?;
                let row: serde_json::Value = serde_json::from_slice(message.payload().unwrap_or_default()).map_err(|e| e.to_string())?;
                if let Some(user) = row["user_id"].as_str() {
                    first.entry(user.to_owned()).or_insert_with(now_ms);
                }
            }
        }
        Ok(first)
    });
    let produced = produce(&kafka.bootstrap, &topics.input, &stream.events, Some(rate_per_s)).await?;
    let first_alerts = tokio::task::spawn_blocking(move || watcher.join()).await?.map_err(|_| "alert reader panicked")??;
    handle.shutdown();
    handle.join().await?;
    let index_of: BTreeMap<String, usize> = stream.events.iter().enumerate().filter_map(|(i, e)| tx_id(&e.value).map(|t| (t, i))).collect();
    let samples: Vec<i64> = stream.triggers.iter().filter_map(|(user, tx)| Some(first_alerts.get(user)? - produced[*index_of.get(tx)?])).collect();
    let found = format!("{} of {} planted users", samples.len(), stream.triggers.len());
    kafka.delete(&[&topics.input, &topics.output, &format!("{}.dlq", topics.group), &format!("{}.state", topics.group)]).await?;
    let latency = Latency::of(samples);
    eprintln!("bench: fraud alert latency {}: {latency:?} ({found})", guarantee.name());
    Ok((latency, found))
}

fn tx_id(value: &str) -> Option<String> {
    let start = value.find("\"tx_id\":\"")? + 9;
    Some(value[start..start + value[start..].find('"')?].to_owned())
}

/// Throughput rounds (both guarantees interleaved), then alert latency.
pub async fn run(kafka: &Bench, plan: &Plan) -> Result<Results, Error> {
    let stream = scenario::fraud(plan.fraud_users, plan.fraud_users / 20 + 1, 60, PARTITIONS);
    let input = kafka.topic("payments", PARTITIONS).await?;
    produce(&kafka.bootstrap, &input, &stream.events, None).await?;
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); 2];
    for round in 0..plan.rounds {
        for (guarantee, runs) in Guarantee::BOTH.into_iter().zip(&mut times) {
            runs.push(throughput_run(kafka, &input, &stream, guarantee, round == 0).await?);
        }
    }
    kafka.delete(&[&input]).await?;
    let mut rows = Vec::new();
    for (guarantee, runs) in Guarantee::BOTH.into_iter().zip(times) {
        let (users, fraud_users, rate) = plan.fraud_latency;
        let (latency, found) = latency_run(kafka, users, fraud_users, rate, guarantee).await?;
        rows.push((guarantee, runs, latency, found));
    }
    Ok(Results { records: stream.events.len(), rounds: plan.rounds, rows })
}
