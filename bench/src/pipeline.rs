//! End-to-end benchmarks (issue: Kafka pipeline runtime): weir with an
//! identity Wasm map and with the high-value filter vs a raw rdkafka
//! consume -> produce passthrough with the same batching, against the same
//! in-process broker, in one run; JSON decode rate alone; end-to-end latency
//! at a fixed input rate; peak RSS.

use crate::report::{Table, rate, wanted};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::time::{Duration, Instant};
use weir::config::Config;
use weir::engine::{Engine, EngineConfig};
use weir_tests::guests;

type Error = Box<dyn std::error::Error>;

const SCHEMA: &str = r#"{"fields":[
  {"name":"order_id","type":"utf8","nullable":false},
  {"name":"customer_id","type":"utf8","nullable":false},
  {"name":"processing_center","type":"utf8"},
  {"name":"total_amount","type":"float64"},
  {"name":"quantity","type":"int32"},
  {"name":"timestamp","type":"int64","nullable":false},
  {"name":"items","type":"list<utf8>"}
]}"#;

/// One seed-style order as JSON; `sent_ms` goes into `timestamp` for latency.
pub fn order_json(n: u64, sent_ms: i64) -> String {
    format!(
        r#"{{"order_id":"o-{n:09}","customer_id":"c-{:05}","processing_center":"{}","total_amount":{:.2},"quantity":{},"timestamp":{sent_ms},"items":["book","lamp"]}}"#,
        n * 7919 % 20_000,
        ["berlin", "chicago", "singapore", "lagos"][(n % 4) as usize],
        (n * 104_729 % 200_000) as f64 / 100.0,
        n % 9 + 1
    )
}

/// Runs the suite.
pub fn run(quick: bool) -> Result<(), Error> {
    let records: u64 = if quick { 20_000 } else { 200_000 };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    // WEIR_BENCH_TABLES=throughput,decode,guarantee,latency,overlap picks tables (all by default).
    let mut tables = Vec::new();
    if wanted("throughput") {
        tables.push(runtime.block_on(throughput(records))?.0);
    }
    if wanted("decode") {
        tables.push(decode_rate(records as usize)?);
    }
    if wanted("guarantee") {
        tables.push(runtime.block_on(guarantee_cost(if quick { 5_000 } else { 100_000 }))?);
    }
    if wanted("latency") {
        tables.push(runtime.block_on(latency(if quick { 2_000 } else { 20_000 }, if quick { 2_000 } else { 10_000 }, if quick { &[50][..] } else { &[10, 50, 200][..] }))?);
    }
    if wanted("overlap") {
        tables.push(crate::overlap::table(quick)?);
    }
    let heading = format!("Pipeline benchmarks ({records} records{})", if quick { ", quick mode" } else { "" });
    let footer = format!("Peak RSS of the benchmark process (mock broker included): {} MiB\n", peak_rss_mib());
    crate::report::publish("pipeline", &heading, &tables, serde_json::json!({"records": records, "quick": quick}), &footer)?;
    Ok(())
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .unwrap_or(0)
        / 1024
}

async fn fill(bootstrap: &str, topic: &str, records: u64) -> Result<(), Error> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "2000000")
        .create()?;
    let mut pending = Vec::new();
    for n in 0..records {
        let value = order_json(n, 0);
        let key = format!("c-{}", n % 1000);
        loop {
            match producer.send_result(FutureRecord::to(topic).key(&key).payload(&value)) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }
    for delivery in pending {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

fn pipeline_toml(dir: &std::path::Path, bootstrap: &str, input: &str, output: &str, group: &str, plugin: &str, config: &str) -> String {
    std::fs::write(dir.join("schema.json"), SCHEMA).unwrap();
    format!(
        r#"
        [pipelines.bench.source]
        bootstrap_servers = "{bootstrap}"
        group_id = "{group}"
        topics = ["{input}"]
        properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500", "fetch.wait.max.ms" = "10" }}
        [pipelines.bench.format]
        type = "json"
        schema = "schema.json"
        [pipelines.bench.batch]
        max_records = 10000
        max_wait_ms = 50
        [[pipelines.bench.operators]]
        plugin = "{plugin}"
        config = {config}
        [pipelines.bench.output]
        topic = "{output}"
        "#
    )
}

/// Runs a weir pipeline until it consumed `records`; returns the time from
/// the first consumed record to the last commit.
async fn run_weir(bootstrap: &str, input: &str, output: &str, plugin: &str, config: &str, records: u64) -> Result<Duration, Error> {
    run_weir_group(bootstrap, input, output, plugin, config, records, 10_000, "at-least-once", 1).await
}

/// `instances` pipelines in one consumer group (as separate `weir run`
/// processes would be) until they committed `records` together; the time
/// from the first consumed record to the last commit.
#[allow(clippy::too_many_arguments)]
async fn run_weir_group(
    bootstrap: &str,
    input: &str,
    output: &str,
    plugin: &str,
    config: &str,
    records: u64,
    max_records: usize,
    guarantee: &str,
    instances: usize,
) -> Result<Duration, Error> {
    let dir = tempfile::tempdir()?;
    let group = format!("weir-{output}");
    let mut handles = Vec::new();
    for instance in 0..instances {
        let toml = pipeline_toml(dir.path(), bootstrap, input, output, &group, plugin, config)
            .replace("max_records = 10000", &format!("max_records = {max_records}"))
            .replacen(
                "[pipelines.bench.source]",
                &format!("[pipelines.bench]\n        guarantee = \"{guarantee}\"\n        exactly_once = {{ instance_id = \"{output}-{instance}\" }}\n        [pipelines.bench.source]"),
                1,
            );
        std::fs::write(dir.path().join("p.toml"), toml)?;
        let config = Config::load(&dir.path().join("p.toml"))?;
        handles.push(weir::pipeline::start("bench", config.pipelines["bench"].clone(), Engine::new(EngineConfig::default())?)?);
    }
    let mut started = None;
    loop {
        // A partition that moved between instances counts once, at its furthest commit.
        let mut committed = std::collections::BTreeMap::new();
        for handle in &handles {
            let stats = handle.stats().snapshot();
            if stats.records_in > 0 && started.is_none() {
                started = Some(Instant::now());
            }
            for (partition, offset) in stats.committed {
                let entry = committed.entry(partition).or_insert(0i64);
                *entry = (*entry).max(offset);
            }
            if handle.is_finished() {
                return Err(format!("pipeline stopped: {:?}", stats.state).into());
            }
        }
        if committed.values().sum::<i64>() as u64 >= records {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.map_or(Duration::ZERO, |s| s.elapsed());
    for handle in &handles {
        handle.shutdown();
    }
    for handle in handles {
        handle.join().await?;
    }
    Ok(elapsed)
}

/// Kafka's scale-out on this 2-core machine: one weir instance vs two in one
/// consumer group sharing the partitions, identity map, same broker.
pub(crate) async fn scale_out(records: u64) -> Result<Table, Error> {
    let cluster = MockCluster::new(1)?;
    let bootstrap = cluster.bootstrap_servers();
    let partitions = (records / 15_000).max(2) as i32;
    for topic in ["in", "out-1", "out-2"] {
        cluster.create_topic(topic, partitions, 1)?;
    }
    fill(&bootstrap, "in", records).await?;
    let mut table = Table::new(
        &format!("Scale-out: weir instances in one consumer group, identity Wasm map, {partitions} partitions, 10k-record batches"),
        &["instances", "records/s", "speed-up"],
    );
    let mut one = None;
    for instances in [1, 2] {
        let time = run_weir_group(&bootstrap, "in", &format!("out-{instances}"), guests::IDENTITY, "{}", records, 10_000, "at-least-once", instances).await?;
        eprintln!("bench: {instances} instance(s) {time:?}");
        let base = *one.get_or_insert(time);
        table.row(vec![instances.to_string(), rate(records as usize, time), format!("{:.2}x", base.as_secs_f64() / time.as_secs_f64())]);
    }
    Ok(table)
}

/// Raw rdkafka: consume, batch the same way, produce each value, await acks, commit.
async fn run_passthrough(bootstrap: &str, input: &str, output: &str, records: u64) -> Result<Duration, Error> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "raw-passthrough")
        .set("fetch.wait.max.ms", "10")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()?;
    consumer.subscribe(&[input])?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()?;
    let mut done = 0u64;
    let mut started = None;
    while done < records {
        let mut batch: Vec<OwnedMessage> = Vec::new();
        let first = consumer.recv().await?.detach();
        batch.push(first);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
        while batch.len() < 10_000 {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(message) => batch.push(message?.detach()),
                Err(_) => break,
            }
        }
        // Like weir's counter, the clock starts once the first batch is collected.
        started.get_or_insert_with(Instant::now);
        let sends = batch.iter().map(|m| {
            let mut record = FutureRecord::<[u8], [u8]>::to(output).payload(m.payload().unwrap_or_default());
            if let Some(key) = m.key() {
                record = record.key(key);
            }
            producer.send(record, Duration::from_secs(30))
        });
        for result in futures::future::join_all(sends).await {
            result.map_err(|(e, _)| e)?;
        }
        let mut list = TopicPartitionList::new();
        for m in &batch {
            list.add_partition_offset(m.topic(), m.partition(), Offset::Offset(m.offset() + 1))?;
        }
        consumer.commit(&list, CommitMode::Async)?;
        done += batch.len() as u64;
        if std::env::var_os("WEIR_BENCH_TRACE").is_some() {
            eprintln!("raw: {done}");
        }
    }
    Ok(started.map_or(Duration::ZERO, |s| s.elapsed()))
}

/// weir (identity map, high-value filter) vs the raw passthrough on one
/// broker; also returns identity records/s / passthrough records/s.
pub(crate) async fn throughput(records: u64) -> Result<(Table, f64), Error> {
    let cluster = MockCluster::new(1)?;
    let bootstrap = cluster.bootstrap_servers();
    // librdkafka's mock broker keeps about 5 MB per partition: spread the
    // input so nothing is dropped before it is consumed.
    let partitions = (records / 15_000).max(2) as i32;
    for topic in ["in", "out-raw", "out-identity", "out-filter"] {
        cluster.create_topic(topic, partitions, 1)?;
    }
    fill(&bootstrap, "in", records).await?;
    eprintln!("bench: {records} input records produced");
    let raw = run_passthrough(&bootstrap, "in", "out-raw", records).await?;
    eprintln!("bench: raw passthrough {raw:?}");
    let identity = run_weir(&bootstrap, "in", "out-identity", guests::IDENTITY, "{}", records).await?;
    eprintln!("bench: weir identity {identity:?}");
    let filter = run_weir(&bootstrap, "in", "out-filter", guests::HIGH_VALUE_ORDERS, "{ threshold = 1000.0 }", records).await?;
    eprintln!("bench: weir filter {filter:?}");
    let mut table = Table::new(
        "End to end, JSON in -> JSON out, same in-process broker (librdkafka mock cluster), 10k-record batches",
        &["pipeline", "records/s", "vs raw passthrough"],
    );
    table.row(vec!["raw rdkafka consume -> produce (no decoding)".into(), rate(records as usize, raw), "1.00x".into()]);
    let vs = |d: Duration| format!("{:.2}x", raw.as_secs_f64() / d.as_secs_f64());
    table.row(vec!["weir, identity Wasm map (decode, Wasm, encode)".into(), rate(records as usize, identity), vs(identity)]);
    table.row(vec!["weir, high-value-orders Wasm filter (> 1000)".into(), rate(records as usize, filter), vs(filter)]);
    Ok((table, raw.as_secs_f64() / identity.as_secs_f64()))
}

/// Exactly-once vs at-least-once on the same identity pipeline, by
/// transaction (= batch) size.
async fn guarantee_cost(records: u64) -> Result<Table, Error> {
    let cluster = MockCluster::new(1)?;
    let bootstrap = cluster.bootstrap_servers();
    let partitions = (records / 15_000).max(2) as i32;
    cluster.create_topic("g-in", partitions, 1)?;
    fill(&bootstrap, "g-in", records).await?;
    let mut table = Table::new(
        "Exactly-once vs at-least-once, identity map, same in-process broker (mock cluster: transactions are cheap there)",
        &["batch = transaction size", "at-least-once records/s", "exactly-once records/s", "exactly-once / at-least-once"],
    );
    for size in [100usize, 1_000, 10_000] {
        let mut times = Vec::new();
        for guarantee in ["at-least-once", "exactly-once"] {
            let output = format!("g-out-{size}-{guarantee}");
            cluster.create_topic(&output, partitions, 1)?;
            times.push(run_weir_group(&bootstrap, "g-in", &output, guests::IDENTITY, "{}", records, size, guarantee, 1).await?);
        }
        table.row(vec![
            size.to_string(),
            rate(records as usize, times[0]),
            rate(records as usize, times[1]),
            format!("{:.2}x", times[0].as_secs_f64() / times[1].as_secs_f64()),
        ]);
    }
    Ok(table)
}

fn decode_rate(records: usize) -> Result<Table, Error> {
    let schema = weir::batch::SchemaSpec::from_json(SCHEMA)?.to_arrow()?;
    let decoder = weir::batch::JsonDecoder::new(schema);
    let lines: Vec<String> = (0..records as u64).map(|n| order_json(n, 0)).collect();
    let slices: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let one_thread = crate::report::median(3, || {
        slices.chunks(10_000).map(|c| decoder.decode_lines(c).unwrap().batch.num_rows()).sum::<usize>()
    });
    let messages: Vec<OwnedMessage> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| OwnedMessage::new(Some(l.clone().into_bytes()), None, "t".into(), rdkafka::Timestamp::NotAvailable, 0, i as i64, None))
        .collect();
    let format = weir::config::FormatConfig::Json { schema: write_schema()?, decode: Default::default() };
    let record_decoder = weir::pipeline::decode::RecordDecoder::new(&format)?;
    let parallel = crate::report::median(3, || {
        messages.chunks(10_000).map(|c| record_decoder.decode(c).unwrap().batch.num_rows()).sum::<usize>()
    });
    // JSON in -> Wasm filter -> JSON out, no broker: the figure comparable to
    // engine-level numbers such as Fluvio's SmartModule filter.
    let engine = weir::engine::Engine::new(weir::engine::EngineConfig::default())?;
    let plugin = engine.load_file(std::path::Path::new(guests::HIGH_VALUE_ORDERS))?;
    let mut filter = weir::operator::Operator::new(plugin, r#"{"threshold": 1000}"#, Default::default())?;
    let json_filter = crate::report::median(3, || {
        let mut out = Vec::with_capacity(8 << 20);
        let mut rows = 0;
        for chunk in messages.chunks(10_000) {
            let decoded = record_decoder.decode(chunk).unwrap();
            let kept = filter.filter(&decoded.batch).unwrap().batch;
            out.clear();
            weir::batch::write_json_lines(&kept, &mut out).unwrap();
            rows += kept.num_rows();
        }
        rows
    });
    let mut table = Table::new("JSON decode alone (weir's decoder: scanner, arrow-json fallback; order schema, 10k-record batches)", &["decoder", "records/s"]);
    table.row(vec!["one thread".into(), rate(records, one_thread)]);
    table.row(vec![
        format!("pipeline decoder ({} threads)", std::thread::available_parallelism().map_or(1, |n| n.get())),
        rate(records, parallel),
    ]);
    table.row(vec!["JSON in -> high-value-orders Wasm filter -> JSON out (no broker)".into(), rate(records, json_filter)]);
    Ok(table)
}

fn write_schema() -> Result<std::path::PathBuf, Error> {
    let path = std::env::temp_dir().join(format!("weir-bench-schema-{}.json", std::process::id()));
    std::fs::write(&path, SCHEMA)?;
    Ok(path)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// End-to-end latency at a fixed input rate, by guarantee and batch cut
/// (under exactly-once the batch is the transaction: a record becomes
/// visible to read_committed readers when its batch commits).
async fn latency(records: u64, rate_per_s: u64, waits_ms: &[u64]) -> Result<Table, Error> {
    let mut table = Table::new(
        &format!("End-to-end latency, identity Wasm map, {rate_per_s} records/s input, read_committed reader"),
        &["guarantee", "batch (= transaction) cut", "p50", "p99", "max"],
    );
    for &wait_ms in waits_ms {
        for guarantee in ["at-least-once", "exactly-once"] {
            let (p50, p99, max) = latency_run(records, rate_per_s, guarantee, wait_ms).await?;
            table.row(vec![guarantee.into(), format!("{wait_ms} ms or 10k records"), format!("{p50} ms"), format!("{p99} ms"), format!("{max} ms")]);
        }
    }
    Ok(table)
}

async fn latency_run(records: u64, rate_per_s: u64, guarantee: &str, wait_ms: u64) -> Result<(i64, i64, i64), Error> {
    let cluster = MockCluster::new(1)?;
    let bootstrap = cluster.bootstrap_servers();
    cluster.create_topic("lat-in", 2, 1)?;
    cluster.create_topic("lat-out", 2, 1)?;
    let dir = tempfile::tempdir()?;
    let toml = pipeline_toml(dir.path(), &bootstrap, "lat-in", "lat-out", "lat", guests::IDENTITY, "{}")
        .replace("max_wait_ms = 50", &format!("max_wait_ms = {wait_ms}"))
        .replacen(
            "[pipelines.bench.source]",
            &format!("[pipelines.bench]\n        guarantee = \"{guarantee}\"\n        exactly_once = {{ instance_id = \"lat\" }}\n        [pipelines.bench.source]"),
            1,
        );
    std::fs::write(dir.path().join("p.toml"), toml)?;
    let config = Config::load(&dir.path().join("p.toml"))?;
    let handle = weir::pipeline::start("bench", config.pipelines["bench"].clone(), Engine::new(EngineConfig::default())?)?;
    let reader: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "lat-reader")
        .set("fetch.wait.max.ms", "10")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "6000")
        .create()?;
    reader.subscribe(&["lat-out"])?;
    // Let both groups settle before timing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &bootstrap).set("linger.ms", "1").create()?;
    let generator = tokio::spawn(async move {
        let started = Instant::now();
        for n in 0..records {
            let value = order_json(n, now_ms());
            let _ = producer.send_result(FutureRecord::<[u8], _>::to("lat-in").payload(&value));
            let due = started + Duration::from_secs_f64((n + 1) as f64 / rate_per_s as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        producer
    });
    let mut latencies = Vec::with_capacity(records as usize);
    while (latencies.len() as u64) < records {
        let message = tokio::time::timeout(Duration::from_secs(30), reader.recv()).await??;
        let value: serde_json::Value = serde_json::from_slice(message.payload().unwrap_or_default())?;
        latencies.push(now_ms() - value["timestamp"].as_i64().unwrap_or(0));
    }
    let _producer = generator.await?;
    handle.shutdown();
    handle.join().await?;
    drop(reader);
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok((pick(0.5), pick(0.99), *latencies.last().unwrap_or(&0)))
}

#[cfg(test)]
mod tests {
    /// The suite in quick mode (no timing assertions).
    #[test]
    fn quick_pipeline_suite_runs() {
        super::run(true).unwrap();
    }
}
