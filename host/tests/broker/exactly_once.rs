//! Exactly-once `weir run` processes on real Kafka: kill -9 / restart cycles
//! while input arrives leave every record exactly once in the output or the
//! dead letters (as a `read_committed` consumer sees them); the fraud seed
//! pipeline's windows survive kill -9 cycles unchanged and no window is
//! emitted twice; a second process with the same instance id fences the first.

use super::support::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weir::scenario;
use weir_tests::broker::Kafka;
use weir_tests::seeds;

/// `[pipelines.<name>]` keys for exactly-once with a fixed instance id.
fn exactly_once(instance: &str) -> String {
    format!(r#"guarantee = "exactly-once"
        exactly_once = {{ instance_id = "{instance}", transaction_timeout_ms = 10000 }}"#)
}

/// Pauses after the kill condition, so kills land at different points of a
/// batch (between transactions, inside one, during the commit).
const KILL_DELAYS_MS: [u64; 10] = [0, 37, 120, 250, 5, 400, 80, 190, 310, 60];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_kill_9_restarts_while_input_arrives_leave_every_record_exactly_once() {
    let kafka = Kafka::shared();
    let setup = setup(kafka, 2).await;
    let total = 20_000;
    let (records, fates) = orders(0..total, 500);
    let (want_out, want_dead) = expected_counts(&fates);
    let config = write_config(kafka.bootstrap(), &setup, &exactly_once("eos"), CLASSIC);
    let collector = Collector::start(kafka.bootstrap(), &[&setup.output, &setup.dlq]);
    let producing = produce_steadily(kafka.bootstrap(), &setup.input, records, 200, Duration::from_millis(200));
    let started = Instant::now();
    for (cycle, delay) in KILL_DELAYS_MS.iter().enumerate() {
        let log = setup.dir.path().join(format!("run-{cycle}.log"));
        let before = collector.len();
        let mut process = weir_run(&config, &log);
        // Kill once this process committed something (or everything is done).
        let more = 300.min((want_out + want_dead).saturating_sub(before));
        let deadline = Instant::now() + Duration::from_secs(90);
        while collector.len() < before + more {
            if let Some(status) = process.child().try_wait().unwrap() {
                panic!("weir exited on its own ({status}): {}", std::fs::read_to_string(&log).unwrap());
            }
            assert!(Instant::now() < deadline, "cycle {cycle}: no progress: {}", std::fs::read_to_string(&log).unwrap());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(*delay)).await;
        process.kill();
        eprintln!("cycle {cycle}: killed after {:?}, {} of {} records visible", started.elapsed(), collector.len(), want_out + want_dead);
    }
    producing.await.unwrap();
    let log = setup.dir.path().join("final.log");
    let mut last = weir_run(&config, &log);
    let seen = collector.wait_for(want_out + want_dead, Duration::from_secs(2), Duration::from_secs(180), || std::fs::read_to_string(&log).unwrap()).await;
    stop(&mut last, &log);
    let duplicates = check(&fates, &seen, &setup.output);
    assert_eq!(duplicates, 0, "records visible twice to a read_committed consumer after 10 kill -9 restarts");
    assert_eq!(seen.len(), want_out + want_dead);
    eprintln!("exactly-once: {total} records, 10 kill -9 restarts, {want_out} outputs and {want_dead} dead letters exactly once in {:?}", started.elapsed());
}


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fraud_windows_survive_kill_9_cycles_under_exactly_once() {
    const PARTITIONS: i32 = 3;
    let kafka = Kafka::shared();
    let dir = scratch(kafka);
    let (input, output, dlq, state, group) = (unique("transactions"), unique("alerts"), unique("fraud-dlq"), unique("fraud-state"), unique("fraud"));
    kafka.create_topics(&[(&input, PARTITIONS), (&output, PARTITIONS), (&dlq, 1)]).await;
    let stream = scenario::fraud(100, 10, 60, PARTITIONS);
    let config = fraud_config(dir.path(), kafka.bootstrap(), &group, &input, &output, &dlq, &state, &exactly_once("fraud"), CLASSIC);
    let collector = Collector::start(kafka.bootstrap(), &[&output]);

    // Input arrives in chunks (each event to its generated partition) while processes are killed.
    let producer = producer(kafka.bootstrap());
    let events = stream.events.clone();
    let topic = input.clone();
    let producing = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        for chunk in events.chunks(150) {
            tick.tick().await;
            let sends = chunk.iter().map(|e| producer.send(rdkafka::producer::FutureRecord::to(&topic).partition(e.partition).key(&e.key).payload(&e.value), Duration::from_secs(60)));
            for result in futures::future::join_all(sends).await {
                result.expect("produce");
            }
        }
    });
    let cycles = 5;
    for cycle in 0..cycles {
        let log = dir.path().join(format!("run-{cycle}.log"));
        let before = collector.len();
        let mut process = weir_run(&config, &log);
        kill_after(&mut process, &collector, before, 50, Duration::from_secs(90), &log).await;
        eprintln!("fraud cycle {cycle}: killed, {} rows visible", collector.len());
    }
    producing.await.unwrap();
    let log = dir.path().join("final.log");
    let mut last = weir_run(&config, &log);
    // Done when every input offset is committed (in the transactions) and the output is quiet.
    let deadline = Instant::now() + Duration::from_secs(180);
    while committed_total(kafka.bootstrap(), &group, &input, PARTITIONS).await < stream.events.len() as i64 {
        assert!(Instant::now() < deadline, "input not fully committed: {}", std::fs::read_to_string(&log).unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = collector.wait_for(1, Duration::from_secs(2), Duration::from_secs(30), String::new).await;
    stop(&mut last, &log);
    let outputs: Vec<Vec<u8>> = seen.into_iter().map(|s| s.value).collect();
    let inputs: Vec<seeds::Input> = stream.events.iter().map(|e| (e.topic.to_owned(), e.partition, e.value.clone())).collect();
    seeds::check_fraud(&inputs, &stream.fraud_users, &outputs);
    let mut finals: BTreeMap<String, usize> = BTreeMap::new();
    for value in &outputs {
        let row: serde_json::Value = serde_json::from_slice(value).unwrap();
        if row["is_final"].as_bool() == Some(true) {
            *finals.entry(row["result_key"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    let twice: Vec<_> = finals.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "final windows emitted more than once after {cycles} kill -9 restarts: {twice:?}");
    eprintln!("fraud under exactly-once: {} events, {cycles} kill -9 restarts, {} final windows once each", stream.events.len(), finals.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_with_the_same_instance_id_fences_the_first() {
    let kafka = Kafka::shared();
    let setup = setup(kafka, 2).await;
    let clean = |range: std::ops::Range<usize>| -> Vec<(String, String)> {
        range.map(|i| (format!("o-{i:06}"), format!(r#"{{"order_id":"o-{i:06}","total_amount":{}.5}}"#, 100 + i))).collect()
    };
    produce(kafka.bootstrap(), &setup.input, &clean(0..300)).await;
    let config = write_config(kafka.bootstrap(), &setup, &exactly_once("same"), CLASSIC);
    let collector = Collector::start(kafka.bootstrap(), &[&setup.output, &setup.dlq]);
    let (log_a, log_b) = (setup.dir.path().join("a.log"), setup.dir.path().join("b.log"));
    let mut first = weir_run(&config, &log_a);
    collector.wait_for(300, Duration::ZERO, Duration::from_secs(90), || std::fs::read_to_string(&log_a).unwrap()).await;
    assert_eq!(committed_total(kafka.bootstrap(), &setup.group, &setup.input, 2).await, 300, "offsets committed in the transactions");

    // A second process with the same instance id: its init_transactions fences
    // the first, which halts at its next transaction (records keep coming, so
    // it has one).
    let mut second = weir_run(&config, &log_b);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut next = 300;
    while first.child().try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the fenced process kept running: {}", std::fs::read_to_string(&log_a).unwrap());
        produce(kafka.bootstrap(), &setup.input, &clean(next..next + 20)).await;
        next += 20;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = wait_exit(&mut first, Duration::ZERO);
    let log = std::fs::read_to_string(&log_a).unwrap();
    assert!(!status.success(), "{log}");
    assert!(log.to_lowercase().contains("fenced"), "the fenced process says why it halted: {log}");
    // The second process takes every partition over and finishes the input.
    let seen = collector.wait_for(next, Duration::from_secs(2), Duration::from_secs(90), || std::fs::read_to_string(&log_b).unwrap()).await;
    stop(&mut second, &log_b);
    let mut copies: BTreeMap<&str, usize> = BTreeMap::new();
    for record in &seen {
        *copies.entry(record.key.as_str()).or_default() += 1;
    }
    assert_eq!(copies.len(), next, "every record delivered");
    let twice: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "written twice: {twice:?}");
    eprintln!("fencing: first halted with: {}", log.lines().rfind(|l| l.to_lowercase().contains("fenced")).unwrap_or_default());
}
