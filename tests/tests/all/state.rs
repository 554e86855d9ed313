//! Durable state under failure: a guest that traps or errors inside a
//! stateful task (state half-updated) is reset to its checkpoint and replayed,
//! so every other record is counted exactly once and only the poison records
//! are dead-lettered; a snapshot over `state.max_bytes` pauses the pipeline
//! without committing past the last checkpoint.

use super::kafka::{MockTopics, random_topic, read_all};
use super::pipeline::engine;
use super::windows::wait_until_quiet;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::BTreeMap;
use std::time::Duration;
use weir_tests::guests;

const PARTITIONS: i32 = 2;

fn config(kafka: &MockTopics, dir: &std::path::Path, state: &str) -> weir::config::PipelineConfig {
    std::fs::write(dir.join("schema.json"), r#"{"fields":[{"name":"key","type":"utf8"}]}"#).unwrap();
    let toml = format!(
        r#"
        [pipelines.counts]
        state = {{ {state} }}
        [pipelines.counts.source]
        bootstrap_servers = "{bootstrap}"
        group_id = "{group}"
        topics = ["{input}"]
        [pipelines.counts.format]
        type = "json"
        schema = "schema.json"
        [pipelines.counts.batch]
        max_records = 100
        max_wait_ms = 20
        [[pipelines.counts.operators]]
        plugin = "{plugin}"
        name = "counts"
        [pipelines.counts.output]
        topic = "{output}"
        key_column = "key"
        [pipelines.counts.errors]
        dead_letter_topic = "{dlq}"
        "#,
        bootstrap = kafka.bootstrap,
        group = random_topic("g"),
        input = kafka.input,
        output = kafka.output,
        dlq = kafka.dlq,
        plugin = guests::MISBEHAVE_AGGREGATE,
    );
    std::fs::write(dir.join("p.toml"), toml).unwrap();
    weir::config::Config::load(&dir.join("p.toml")).unwrap().pipelines["counts"].clone()
}

/// Produces `keys` in order, each to its key's partition.
async fn produce_keys(bootstrap: &str, topic: &str, keys: &[String]) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let producer = &producer;
    let sends = keys.iter().map(|key| async move {
        let value = format!(r#"{{"key":"{key}"}}"#);
        let partition = weir::scenario::partition_of(key, PARTITIONS);
        producer.send(FutureRecord::to(topic).partition(partition).key(key).payload(&value), Duration::from_secs(10)).await
    });
    for result in futures::future::join_all(sends).await {
        result.expect("produce");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_task_is_reset_to_its_checkpoint_and_replayed_without_double_counting() {
    let kafka = MockTopics::new();
    kafka.create_topic("counts.state", 1);
    let mut keys: Vec<String> = (0..2_000).map(|i| format!("k{}", i % 8)).collect();
    for (at, poison) in [(500, "panic"), (900, "error"), (1_300, "panic")] {
        keys[at] = poison.to_owned();
    }
    produce_keys(&kafka.bootstrap, &kafka.input, &keys).await;
    let dir = tempfile::tempdir().unwrap();
    let handle = weir::pipeline::start("counts", config(&kafka, dir.path(), "checkpoint_records = 300, checkpoint_interval_ms = 500"), engine()).unwrap();
    wait_until_quiet(&[&handle], keys.len() as u64, Duration::from_secs(120)).await;
    let stats = handle.stats().snapshot();
    handle.shutdown();
    handle.join().await.unwrap();

    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for key in keys.iter().filter(|k| k.starts_with('k')) {
        *expected.entry(key.clone()).or_default() += 1;
    }
    let outputs = read_all(&kafka.bootstrap, &kafka.output, 8, Duration::from_secs(2), Duration::from_secs(30)).await;
    let mut highest: BTreeMap<String, i64> = BTreeMap::new();
    for read in &outputs {
        let row: serde_json::Value = serde_json::from_slice(read.value.as_deref().unwrap()).unwrap();
        let entry = highest.entry(row["key"].as_str().unwrap().to_owned()).or_default();
        *entry = (*entry).max(row["count"].as_i64().unwrap());
    }
    // A double-counted record would push a count above the truth, a lost one keep it below.
    assert_eq!(highest, expected, "running counts after resets");
    let dead = read_all(&kafka.bootstrap, &kafka.dlq, 3, Duration::from_secs(1), Duration::from_secs(30)).await;
    let mut poison: Vec<String> = dead.iter().map(|d| String::from_utf8_lossy(d.value.as_deref().unwrap()).into_owned()).collect();
    poison.sort();
    assert_eq!(poison, [r#"{"key":"error"}"#, r#"{"key":"panic"}"#, r#"{"key":"panic"}"#], "only the poison records are dead-lettered, once each");
    assert!(stats.retries >= 3, "each poison record reset its task: {} resets", stats.retries);
    assert!(stats.checkpoints >= 2, "{} checkpoints", stats.checkpoints);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_over_max_bytes_pauses_the_pipeline_without_committing() {
    let kafka = MockTopics::new();
    kafka.create_topic("counts.state", 1);
    // Every key is longer than max_bytes, so no snapshot with a record in it
    // fits, whenever a checkpoint is due (by records or by time).
    let keys: Vec<String> = (0..600).map(|i| format!("key-number-{i:05}-{}", "x".repeat(2100))).collect();
    produce_keys(&kafka.bootstrap, &kafka.input, &keys).await;
    let dir = tempfile::tempdir().unwrap();
    let handle = weir::pipeline::start("counts", config(&kafka, dir.path(), "checkpoint_records = 100, max_bytes = 2048"), engine()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let reason = loop {
        if let weir::telemetry::PipelineState::Paused(reason) = handle.stats().snapshot().state {
            break reason;
        }
        assert!(tokio::time::Instant::now() < deadline, "not paused: {:?}", handle.stats().snapshot());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stats = handle.stats().snapshot();
    handle.shutdown();
    handle.join().await.unwrap();
    assert!(reason.contains("state.max_bytes = 2048"), "{reason}");
    assert_eq!(stats.checkpoints, 0);
    assert!(stats.committed.is_empty(), "nothing committed past the (absent) checkpoint: {:?}", stats.committed);
}
