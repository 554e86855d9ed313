//! Event time and watermarks in a running pipeline: per-partition progress,
//! the slowest partition holds the watermark, lateness is subtracted.

use super::kafka::{MockTopics, random_topic, read_all};
use super::pipeline::engine;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;
use weir_tests::guests;

/// A pipeline config with `event_time` (`late` policy line included) over `kafka`.
fn config(kafka: &MockTopics, dir: &std::path::Path, late: &str) -> weir::config::PipelineConfig {
    std::fs::write(
        dir.join("schema.json"),
        r#"{"fields":[{"name":"order_id","type":"utf8","nullable":false},{"name":"event_ms","type":"int64"}]}"#,
    )
    .unwrap();
    let toml = format!(
        r#"
        [pipelines.p]
        event_time = {{ column = "event_ms", allowed_lateness_ms = 1000, idle_timeout_ms = 60000{late} }}
        [pipelines.p.source]
        bootstrap_servers = "{bootstrap}"
        group_id = "{group}"
        topics = ["{input}"]
        [pipelines.p.format]
        type = "json"
        schema = "schema.json"
        [[pipelines.p.operators]]
        plugin = "{identity}"
        name = "stage"
        [pipelines.p.output]
        topic = "{output}"
        [pipelines.p.errors]
        dead_letter_topic = "{dlq}"
        "#,
        bootstrap = kafka.bootstrap,
        group = random_topic("group"),
        input = kafka.input,
        output = kafka.output,
        dlq = kafka.dlq,
        identity = guests::IDENTITY,
    );
    std::fs::write(dir.join("p.toml"), toml).unwrap();
    weir::config::Config::load(&dir.join("p.toml")).unwrap().pipelines["p"].clone()
}

async fn send(kafka: &MockTopics, events: &[(i32, i64)], first_id: usize) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &kafka.bootstrap).create().unwrap();
    for (i, (partition, ms)) in events.iter().enumerate() {
        let value = format!(r#"{{"order_id":"o-{}","event_ms":{ms}}}"#, first_id + i);
        producer.send(FutureRecord::<(), _>::to(&kafka.input).partition(*partition).payload(&value), Duration::from_secs(10)).await.unwrap();
    }
}

async fn wait_for_watermark(handle: &weir::pipeline::PipelineHandle, expected: i64) {
    // The counters move at the start of a batch, the watermark a moment later.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while handle.stats().snapshot().watermark_ms != Some(expected) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(handle.stats().snapshot().watermark_ms, Some(expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_behind_the_watermark_follow_the_late_policy() {
    let kafka = MockTopics::new();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&kafka, dir.path(), r#", late = "dlq""#);
    send(&kafka, &[(0, 20_000), (1, 20_000)], 0).await;
    let handle = weir::pipeline::start("p", config, engine()).unwrap();
    super::pipeline::wait_for_input(&handle, 2, Duration::from_secs(60)).await;
    wait_for_watermark(&handle, 19_000).await;
    // 18.5 s is behind the watermark (19 s): late. 19.5 s is not.
    send(&kafka, &[(0, 18_500), (1, 19_500)], 2).await;
    super::pipeline::wait_for_input(&handle, 4, Duration::from_secs(60)).await;
    let dead = read_all(&kafka.bootstrap, &kafka.dlq, 1, Duration::from_millis(500), Duration::from_secs(30)).await;
    let outputs = read_all(&kafka.bootstrap, &kafka.output, 3, Duration::from_millis(500), Duration::from_secs(30)).await;
    handle.shutdown();
    handle.join().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].header("weir.error.kind"), "late");
    assert!(String::from_utf8_lossy(dead[0].value.as_deref().unwrap()).contains("18500"));
    assert_eq!(outputs.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watermark_follows_the_slowest_partition_minus_the_allowed_lateness() {
    let kafka = MockTopics::new();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&kafka, dir.path(), "");
    // Partition 0 reaches 20 s of event time, partition 1 only 15 s (out of order inside).
    let events: Vec<(i32, i64)> = (0..=10).map(|i| (0, 10_000 + i * 1_000)).chain([(1, 15_000), (1, 12_000), (1, 3_000)]).collect();
    send(&kafka, &events, 0).await;
    let handle = weir::pipeline::start("p", config, engine()).unwrap();
    super::pipeline::wait_for_input(&handle, events.len() as u64, Duration::from_secs(60)).await;
    wait_for_watermark(&handle, 14_000).await; // min(20 s, 15 s) - 1 s
    handle.shutdown();
    handle.join().await.unwrap();
}
