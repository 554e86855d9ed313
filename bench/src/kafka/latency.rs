//! End-to-end latency at a fixed input rate: each record carries its
//! produce time in its JSON `timestamp`; a read_committed reader of the
//! output topic takes receive time minus that.

use super::{Bench, Contender, Digest, Error, Guarantee, PARTITIONS, Plan, Running, customer_id, now_ms, reference, with_timestamp};
use crate::report::Table;
use crate::workload;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use std::time::{Duration, Instant};

/// Input of a latency run that is not sampled (warm-up at the same rate).
const LATENCY_WARMUP: Duration = Duration::from_secs(2);

/// Latency percentiles (ms) of one run.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Median.
    pub p50: i64,
    /// 99th percentile.
    pub p99: i64,
    /// Largest sample.
    pub max: i64,
}

impl Latency {
    /// Percentiles of the samples (ms).
    pub fn of(mut samples: Vec<i64>) -> Latency {
        samples.sort_unstable();
        let pick = |q: f64| samples.get(((samples.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(-1);
        Latency { p50: pick(0.5), p99: pick(0.99), max: pick(1.0) }
    }
}

/// Reads `topic` (read_committed) on a thread until `expected` records
/// arrived; each sample is receive time - the record's JSON `timestamp`
/// (warm-up records carry a negative one and give no sample).
fn latency_reader(bootstrap: &str, topic: &str, partitions: i32, expected: usize) -> Result<std::thread::JoinHandle<Result<Vec<i64>, String>>, Error> {
    let consumer = super::committed_reader(bootstrap, topic, partitions, &format!("latency-{topic}"), &[("fetch.wait.max.ms", "10")])?;
    Ok(std::thread::spawn(move || {
        let mut samples = Vec::with_capacity(expected);
        let mut received = 0;
        let mut deadline = Instant::now() + Duration::from_secs(60);
        while received < expected {
            if Instant::now() > deadline {
                return Err(format!("{received} of {expected} records arrived"));
            }
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let message = message.map_err(|e| e.to_string())?;
                let value: serde_json::Value = serde_json::from_slice(message.payload().unwrap_or_default()).map_err(|e| e.to_string())?;
                received += 1;
                match value["timestamp"].as_i64() {
                    Some(sent) if sent >= 0 => samples.push(now_ms() - sent),
                    _ => {}
                }
                deadline = Instant::now() + Duration::from_secs(30);
            }
        }
        Ok(samples)
    }))
}

/// One latency run: the contender waits on fresh topics, then `lines` are
/// produced at `rate` per second, each stamped with its produce time. The
/// first [`LATENCY_WARMUP`] (at most a quarter of the lines) warm the
/// pipeline up (JIT, first fetches, class loading) and are not sampled.
async fn latency_run(kafka: &Bench, contender: Contender, guarantee: Guarantee, lines: &[&[u8]], rate_per_s: u64) -> Result<Latency, Error> {
    let input = kafka.topic(&format!("lat-in-{}", contender.short()), PARTITIONS).await?;
    let output = kafka.topic(&format!("lat-out-{}", contender.short()), PARTITIONS).await?;
    let group = kafka.name(&format!("lat-{}-{}", contender.short(), guarantee.name()));
    let expected = match reference(contender.job(), lines)? {
        Digest::Kept(ids) => ids.len(),
        Digest::Mapped(rows) => rows.len(),
        Digest::Totals(totals) => totals.len(),
    };
    let mut running = Running::start(kafka, contender, guarantee, &input, &output, &group)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !running.is_ready() {
        if let Some(failure) = running.failure() {
            return Err(failure.into());
        }
        if Instant::now() > deadline {
            return Err(format!("{}: not ready after 120 s", contender.label()).into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reader = latency_reader(&kafka.bootstrap, &output, PARTITIONS, expected)?;
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &kafka.bootstrap).set("linger.ms", "1").create()?;
    let started = Instant::now();
    let mut pending = Vec::with_capacity(lines.len());
    let warmup = ((LATENCY_WARMUP.as_secs_f64() * rate_per_s as f64) as usize).min(lines.len() / 4);
    for (n, line) in lines.iter().enumerate() {
        let value = with_timestamp(line, if n < warmup { -1 } else { now_ms() });
        pending.push(producer.send_result(FutureRecord::to(&input).key(customer_id(line)).payload(&value)).map_err(|(e, _)| e)?);
        tokio::time::sleep_until((started + Duration::from_secs_f64((n + 1) as f64 / rate_per_s as f64)).into()).await;
    }
    for delivery in pending {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    let samples = tokio::task::spawn_blocking(move || reader.join()).await?.map_err(|_| "latency reader panicked")?;
    let failure = running.failure();
    running.stop().await?;
    let samples = samples.map_err(|e| format!("{} {}: {e}{}", contender.label(), guarantee.name(), failure.map(|f| format!(" ({f})")).unwrap_or_default()))?;
    kafka.delete(&[&input, &output]).await?;
    let latency = Latency::of(samples);
    eprintln!("bench: latency {} {}: {latency:?}", contender.label(), guarantee.name());
    Ok(latency)
}

/// Latency by contender and guarantee.
pub async fn table(kafka: &Bench, plan: &Plan, contenders: &[Contender]) -> Result<Table, Error> {
    let data = workload::order_lines(plan.latency_records, 0);
    let lines = workload::lines(&data);
    let mut table = Table::new(
        &format!(
            "End-to-end latency at {} records/s ({} records after {} s of warm-up at that rate; produce -> visible to a read_committed reader)",
            plan.latency_rate,
            plan.latency_records - ((LATENCY_WARMUP.as_secs_f64() * plan.latency_rate as f64) as usize).min(plan.latency_records / 4),
            LATENCY_WARMUP.as_secs()
        ),
        &["pipeline", "guarantee", "p50", "p99", "max"],
    );
    for contender in plan.latency_contenders.iter().filter(|c| contenders.contains(c)) {
        for guarantee in Guarantee::BOTH {
            let l = latency_run(kafka, *contender, guarantee, &lines, plan.latency_rate).await?;
            table.row(vec![contender.label().into(), guarantee.name().into(), format!("{} ms", l.p50), format!("{} ms", l.p99), format!("{} ms", l.max)]);
        }
    }
    Ok(table)
}

