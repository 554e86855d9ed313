//! The seed pipelines (issue: windowed aggregation) end to end on Kafka:
//! generated orders and transactions, the order-revenue and fraud-detector
//! guests with checkpointed state, results compared with an independent
//! batch computation (weir_tests::seeds); late events dead-lettered; a
//! rebalance between two processes keeps the results equal.

use super::kafka::{MockTopics, random_topic, read_all};
use super::pipeline::engine;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use weir::scenario::{self, Event};
use weir_tests::guests;
use weir_tests::seeds::{self, Input};

const PARTITIONS: i32 = 3;

/// Produces `events` to their topics and partitions, in order.
pub async fn produce_events(bootstrap: &str, events: &[Event]) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("linger.ms", "5").create().unwrap();
    for chunk in events.chunks(2000) {
        let sends = chunk.iter().map(|e| producer.send(FutureRecord::to(e.topic).partition(e.partition).key(&e.key).payload(&e.value), Duration::from_secs(10)));
        for result in futures::future::join_all(sends).await {
            result.expect("produce");
        }
    }
}

fn inputs(events: &[Event]) -> Vec<Input> {
    events.iter().map(|e| (e.topic.to_owned(), e.partition, e.value.clone())).collect()
}

/// A stateful pipeline config: `operator` with `config` over `topics`.
#[allow(clippy::too_many_arguments)]
fn pipeline_config(dir: &Path, bootstrap: &str, group: &str, topics: &[&str], schema: &str, operator: &str, config: &str, lateness_ms: u64, output: &str, dlq: &str) -> weir::config::PipelineConfig {
    std::fs::write(dir.join("schema.json"), schema).unwrap();
    let toml = format!(
        r#"
        [pipelines.seed]
        event_time = {{ column = "timestamp", allowed_lateness_ms = {lateness_ms}, idle_timeout_ms = 600000, late = "dlq" }}
        state = {{ checkpoint_records = 700, checkpoint_interval_ms = 1000 }}
        [pipelines.seed.source]
        bootstrap_servers = "{bootstrap}"
        group_id = "{group}"
        topics = {topics:?}
        properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}
        [pipelines.seed.format]
        type = "json"
        schema = "schema.json"
        [pipelines.seed.batch]
        max_records = 500
        max_wait_ms = 50
        [[pipelines.seed.operators]]
        plugin = "{operator}"
        name = "windows"
        config = {config}
        [pipelines.seed.output]
        topic = "{output}"
        key_column = "result_key"
        [pipelines.seed.errors]
        dead_letter_topic = "{dlq}"
        "#
    );
    std::fs::write(dir.join("p.toml"), toml).unwrap();
    weir::config::Config::load(&dir.join("p.toml")).unwrap().pipelines["seed"].clone()
}

/// Waits until the pipelines have taken `at_least` records and then
/// nothing new for 3 s (replays after a rebalance count again).
async fn wait_until_quiet(handles: &[&weir::pipeline::PipelineHandle], at_least: u64, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = (u64::MAX, tokio::time::Instant::now());
    loop {
        for handle in handles {
            assert!(!handle.is_finished(), "pipeline ended early: {:?}", handle.stats().snapshot().state);
        }
        let seen: u64 = handles.iter().map(|h| h.stats().snapshot().records_in).sum();
        if seen != last.0 {
            last = (seen, tokio::time::Instant::now());
        } else if seen >= at_least && last.1.elapsed() > Duration::from_secs(3) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out at {seen} of {at_least} records");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_close(what: &str, got: f64, want: f64) {
    assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "{what}: got {got}, want {want}");
}

/// Compares the order-revenue final rows with the batch computation.
fn check_orders(events: &[Event], outputs: &[Vec<u8>]) {
    let expected = seeds::windows(&inputs(events), 600_000, "processing_center", "total_amount", &["customer_id"], 3_600_000, 3_600_000);
    let rows = seeds::final_rows(outputs.iter().cloned());
    assert!(expected.len() >= 10, "the generator should close at least 10 windows, closed {}", expected.len());
    assert_eq!(rows.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "final windows differ");
    for (key, want) in &expected {
        let row = &rows[key];
        assert_eq!(row["order_count"].as_u64(), Some(want.count), "{key:?} order_count");
        assert_close(&format!("{key:?} revenue"), row["revenue"].as_f64().unwrap(), want.total);
        assert_close(&format!("{key:?} average"), row["average_order_value"].as_f64().unwrap(), want.total / want.count as f64);
        let (unique, exact) = (row["unique_customers"].as_u64().unwrap() as f64, want.distinct[0] as f64);
        assert!((unique - exact).abs() <= 0.02 * exact, "{key:?} unique_customers {unique} vs exact {exact}");
    }
}

/// Compares the fraud-detector final rows with the batch computation and
/// the alerted users with the planted ones.
fn check_fraud(events: &[Event], fraud_users: &BTreeSet<String>, outputs: &[Vec<u8>]) {
    let expected = seeds::windows(&inputs(events), 1_800_000, "user_id", "amount", &["merchant_id", "location", "device_id"], 300_000, 60_000);
    let rows = seeds::final_rows(outputs.iter().cloned());
    assert!(expected.len() > 1000, "expected many closed windows, got {}", expected.len());
    let extra: Vec<_> = rows.keys().filter(|k| !expected.contains_key(k)).take(5).collect();
    let missing: Vec<_> = expected.keys().filter(|k| !rows.contains_key(k)).take(5).collect();
    assert!(extra.is_empty() && missing.is_empty(), "final windows differ: {} rows vs {} expected; extra {extra:?}, missing {missing:?}", rows.len(), expected.len());
    assert_eq!(rows.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "final windows differ");
    for (key, want) in &expected {
        let row = &rows[key];
        assert_eq!(row["tx_count"].as_u64(), Some(want.count), "{key:?} tx_count");
        assert_close(&format!("{key:?} total_amount"), row["total_amount"].as_f64().unwrap(), want.total);
        let distinct: Vec<u64> = ["distinct_merchants", "distinct_locations", "distinct_devices"].iter().map(|c| row[*c].as_u64().unwrap()).collect();
        assert_eq!(distinct, want.distinct, "{key:?} distinct merchants/locations/devices");
        let alert = want.count > 10 || want.total > 5000.0 || want.distinct[0] > 5 || want.distinct[1] > 3 || want.distinct[2] > 2;
        assert_eq!(row["alert"].as_bool(), Some(alert), "{key:?} alert");
    }
    let alerted: BTreeSet<String> = outputs
        .iter()
        .map(|b| serde_json::from_slice::<Value>(b).unwrap())
        .filter(|v| v["alert"].as_bool() == Some(true))
        .map(|v| v["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(&alerted, fraud_users, "alerted users must be exactly the planted ones");
    // Early alerts come before the windows close (is_final = false).
    let early = outputs.iter().map(|b| serde_json::from_slice::<Value>(b).unwrap()).filter(|v| v["is_final"].as_bool() == Some(false)).count();
    assert!(early >= fraud_users.len(), "every planted user gets an early alert ({early} early rows)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_order_revenue_equals_the_batch_computation_and_late_orders_are_dead_lettered() {
    let kafka = MockTopics::new();
    for topic in scenario::ORDER_TOPICS {
        kafka.create_topic(topic, PARTITIONS);
    }
    // The mock broker does not implement CreateTopics; a real one gets the
    // compacted topic created by weir.
    kafka.create_topic("orders.state", 1);
    let events = scenario::orders(20_000, PARTITIONS);
    produce_events(&kafka.bootstrap, &events).await;
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline_config(dir.path(), &kafka.bootstrap, &random_topic("g"), &scenario::ORDER_TOPICS, scenario::ORDER_SCHEMA, guests::ORDER_REVENUE, "{}", 600_000, &kafka.output, &kafka.dlq);
    let handle = weir::pipeline::start("orders", config, engine()).unwrap();
    wait_until_quiet(&[&handle], events.len() as u64, Duration::from_secs(120)).await;
    let stats = handle.stats().snapshot();
    handle.shutdown();
    handle.join().await.unwrap();
    let outputs: Vec<Vec<u8>> = read_all(&kafka.bootstrap, &kafka.output, 1, Duration::from_secs(2), Duration::from_secs(30)).await.into_iter().filter_map(|r| r.value).collect();
    check_orders(&events, &outputs);
    let late: Vec<&Event> = events.iter().filter(|e| e.late).collect();
    let dead = read_all(&kafka.bootstrap, &kafka.dlq, late.len(), Duration::from_secs(1), Duration::from_secs(30)).await;
    assert_eq!(dead.len(), late.len(), "every late order, and only those, is dead-lettered");
    assert!(dead.iter().all(|d| d.header("weir.error.kind") == "late"));
    assert_eq!(stats.records_late, late.len() as u64);
    assert!(stats.checkpoints >= 2, "checkpoints written: {}", stats.checkpoints);
    assert!(stats.state_bytes > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fraud_windows_equal_the_batch_computation_and_only_planted_users_are_alerted() {
    let kafka = MockTopics::new();
    kafka.create_topic(scenario::TRANSACTIONS_TOPIC, PARTITIONS);
    kafka.create_topic("fraud.state", 1);
    let stream = scenario::fraud(150, 10, 40, PARTITIONS);
    produce_events(&kafka.bootstrap, &stream.events).await;
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline_config(dir.path(), &kafka.bootstrap, &random_topic("g"), &[scenario::TRANSACTIONS_TOPIC], scenario::TRANSACTION_SCHEMA, guests::FRAUD_DETECTOR, r#"{ emit = "all" }"#, 1_800_000, &kafka.output, &kafka.dlq);
    let handle = weir::pipeline::start("fraud", config, engine()).unwrap();
    wait_until_quiet(&[&handle], stream.events.len() as u64, Duration::from_secs(120)).await;
    handle.shutdown();
    handle.join().await.unwrap();
    let outputs: Vec<Vec<u8>> = read_all(&kafka.bootstrap, &kafka.output, 1, Duration::from_secs(2), Duration::from_secs(30)).await.into_iter().filter_map(|r| r.value).collect();
    check_fraud(&stream.events, &stream.fraud_users, &outputs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_between_two_processes_keeps_the_fraud_results_equal() {
    let kafka = MockTopics::new();
    kafka.create_topic(scenario::TRANSACTIONS_TOPIC, PARTITIONS);
    kafka.create_topic("fraud.state", 1);
    let stream = scenario::fraud(150, 10, 40, PARTITIONS);
    let (first, second) = stream.events.split_at(stream.events.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let group = random_topic("g");
    let config = pipeline_config(dir.path(), &kafka.bootstrap, &group, &[scenario::TRANSACTIONS_TOPIC], scenario::TRANSACTION_SCHEMA, guests::FRAUD_DETECTOR, r#"{ emit = "all" }"#, 1_800_000, &kafka.output, &kafka.dlq);
    let a = weir::pipeline::start("fraud", config.clone(), engine()).unwrap();
    produce_events(&kafka.bootstrap, first).await;
    super::pipeline::wait_for_input(&a, first.len() as u64 / 2, Duration::from_secs(60)).await;
    // A second process joins mid-stream: partitions (and their state) move.
    let b = weir::pipeline::start("fraud", config, engine()).unwrap();
    produce_events(&kafka.bootstrap, second).await;
    wait_until_quiet(&[&a, &b], stream.events.len() as u64, Duration::from_secs(180)).await;
    let (sa, sb) = (a.stats().snapshot(), b.stats().snapshot());
    for handle in [a, b] {
        handle.shutdown();
        handle.join().await.unwrap();
    }
    assert!(sb.records_in > 0, "the second process took partitions over");
    assert!(sa.checkpoints > 0 && sb.checkpoints > 0, "both processes checkpointed: {} / {}", sa.checkpoints, sb.checkpoints);
    let outputs: Vec<Vec<u8>> = read_all(&kafka.bootstrap, &kafka.output, 1, Duration::from_secs(2), Duration::from_secs(30)).await.into_iter().filter_map(|r| r.value).collect();
    check_fraud(&stream.events, &stream.fraud_users, &outputs);
}
