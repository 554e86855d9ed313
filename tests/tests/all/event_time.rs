//! Event time and watermarks in a running pipeline: per-partition progress,
//! the slowest partition holds the watermark, lateness is subtracted.

use super::kafka::{MockTopics, random_topic};
use super::pipeline::engine;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;
use weir_tests::guests;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watermark_follows_the_slowest_partition_minus_the_allowed_lateness() {
    let kafka = MockTopics::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schema.json"),
        r#"{"fields":[{"name":"order_id","type":"utf8","nullable":false},{"name":"event_ms","type":"int64"}]}"#,
    )
    .unwrap();
    let toml = format!(
        r#"
        [pipelines.p]
        event_time = {{ column = "event_ms", allowed_lateness_ms = 1000, idle_timeout_ms = 60000 }}
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
        "#,
        bootstrap = kafka.bootstrap,
        group = random_topic("group"),
        input = kafka.input,
        output = kafka.output,
        identity = guests::IDENTITY,
    );
    std::fs::write(dir.path().join("p.toml"), toml).unwrap();
    let config = weir::config::Config::load(&dir.path().join("p.toml")).unwrap().pipelines["p"].clone();
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &kafka.bootstrap).create().unwrap();
    // Partition 0 reaches 20 s of event time, partition 1 only 15 s (out of order inside).
    let events: Vec<(i32, i64)> = (0..=10).map(|i| (0, 10_000 + i * 1_000)).chain([(1, 15_000), (1, 12_000), (1, 3_000)]).collect();
    for (i, (partition, ms)) in events.iter().enumerate() {
        let value = format!(r#"{{"order_id":"o-{i}","event_ms":{ms}}}"#);
        producer.send(FutureRecord::<(), _>::to(&kafka.input).partition(*partition).payload(&value), Duration::from_secs(10)).await.unwrap();
    }
    let handle = weir::pipeline::start("p", config, engine()).unwrap();
    super::pipeline::wait_for_input(&handle, events.len() as u64, Duration::from_secs(60)).await;
    // The counters move at the start of a batch, the watermark a moment later.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while handle.stats().snapshot().watermark_ms != Some(14_000) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(handle.stats().snapshot().watermark_ms, Some(14_000), "min(20 s, 15 s) - 1 s");
    handle.shutdown();
    handle.join().await.unwrap();
}
