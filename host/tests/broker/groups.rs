//! Consumer groups on real Kafka under both rebalance protocols: the classic
//! one (weir's cooperative-sticky assignor; range for stateful pipelines) and
//! KIP-848 (`group.protocol = "consumer"`, assignment by the broker). Three
//! `weir run` processes join and leave one after another while records flow:
//! nothing is lost, and aggregate state moves with its partitions (the fraud
//! seed pipeline's windows equal the batch computation). The pause each
//! membership change causes (longest gap between results) is printed.

use super::support::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use weir::scenario;
use weir_tests::broker::Kafka;
use weir_tests::seeds;

/// Source properties selecting the KIP-848 protocol (its session and
/// heartbeat are broker settings, so none are given here).
const CONSUMER: &str = r#"{ "group.protocol" = "consumer" }"#;

/// Waits until the assignments logged in `logs` exceed `before`.
async fn wait_assignment(logs: &[&PathBuf], before: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while logs.iter().map(|l| assignments(l)).sum::<usize>() <= before {
        let text: Vec<String> = logs.iter().map(|l| std::fs::read_to_string(l).unwrap_or_default()).collect();
        // weir ends with "error: ..." when it stops on its own.
        assert!(!text.iter().any(|t| t.lines().any(|l| l.starts_with("error: "))), "weir stopped: {text:?}");
        assert!(Instant::now() < deadline, "no new assignment in {timeout:?}: {text:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `collector` read `step` more records than `before`, or input stopped.
async fn wait_flow(collector: &Collector, before: usize, step: usize, input_done: &dyn Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while collector.len() < before + step && !input_done() {
        assert!(Instant::now() < deadline, "results stopped flowing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs process A, then B joins, C joins, A leaves, B leaves (SIGTERM), each
/// change after the previous one settled (a new assignment, results flowing
/// again). Returns C (still running) and each change's pause: the longest gap
/// between results from the change until it settled.
async fn join_and_leave(config: &Path, dir: &Path, collector: &Collector, step: usize, input_done: &dyn Fn() -> bool) -> (weir_tests::process::Guarded, PathBuf, Vec<(&'static str, Duration)>) {
    let logs: Vec<PathBuf> = ["a", "b", "c"].iter().map(|n| dir.join(format!("{n}.log"))).collect();
    let mut a = weir_run(config, &logs[0]);
    wait_assignment(&[&logs[0]], 0, Duration::from_secs(60)).await;
    wait_flow(collector, 0, step, input_done).await;
    let mut pauses = Vec::new();
    let measure = |what: &'static str, from: Instant, pauses: &mut Vec<(&'static str, Duration)>| {
        let pause = longest_gap(&collector.snapshot(), from, Instant::now());
        eprintln!("  {what}: longest gap between results {pause:?}");
        pauses.push((what, pause));
    };

    let (from, before) = (Instant::now(), collector.len());
    let mut b = weir_run(config, &logs[1]);
    wait_assignment(&[&logs[1]], 0, Duration::from_secs(60)).await;
    wait_flow(collector, before, step, input_done).await;
    measure("B joins", from, &mut pauses);

    let (from, before) = (Instant::now(), collector.len());
    let c = weir_run(config, &logs[2]);
    wait_assignment(&[&logs[2]], 0, Duration::from_secs(60)).await;
    wait_flow(collector, before, step, input_done).await;
    measure("C joins", from, &mut pauses);

    let (from, before, assigned) = (Instant::now(), collector.len(), assignments(&logs[1]) + assignments(&logs[2]));
    stop(&mut a, &logs[0]);
    wait_assignment(&[&logs[1], &logs[2]], assigned, Duration::from_secs(60)).await;
    wait_flow(collector, before, step, input_done).await;
    measure("A leaves", from, &mut pauses);

    let (from, before, assigned) = (Instant::now(), collector.len(), assignments(&logs[2]));
    stop(&mut b, &logs[1]);
    wait_assignment(&[&logs[2]], assigned, Duration::from_secs(60)).await;
    wait_flow(collector, before, step, input_done).await;
    measure("B leaves", from, &mut pauses);
    (c, logs[2].clone(), pauses)
}

/// The stateless orders pipeline with 3 processes joining and leaving; every
/// record arrives (duplicates allowed: at-least-once).
async fn orders_join_and_leave(protocol: &str, properties: &str) {
    let kafka = Kafka::shared();
    let setup = setup(kafka, 6).await;
    let config = write_config(kafka.bootstrap(), &setup, "", properties);
    let collector = Collector::start(kafka.bootstrap(), &[&setup.output, &setup.dlq]);
    // Input flows until the membership changes are done: 100 records every 50 ms.
    let stop_input = Arc::new(AtomicBool::new(false));
    let producing = {
        let (producer, topic, stop_input) = (producer(kafka.bootstrap()), setup.input.clone(), stop_input.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            let mut next = 0;
            while !stop_input.load(Ordering::Relaxed) {
                tick.tick().await;
                let (records, _) = orders(next..next + 100, 500);
                produce_with(&producer, &topic, &records).await;
                next += 100;
            }
            next
        })
    };
    eprintln!("orders pipeline, {protocol}:");
    let (mut c, log, pauses) = join_and_leave(&config, setup.dir.path(), &collector, 500, &|| false).await;
    stop_input.store(true, Ordering::Relaxed);
    let produced = producing.await.unwrap();
    let (_, fates) = orders(0..produced, 500);
    let (want_out, want_dead) = expected_counts(&fates);
    let seen = collector.wait_for(want_out + want_dead, Duration::from_secs(1), Duration::from_secs(120), || std::fs::read_to_string(&log).unwrap()).await;
    stop(&mut c, &log);
    let duplicates = check(&fates, &seen, &setup.output);
    let summary: Vec<String> = pauses.iter().map(|(what, pause)| format!("{what} {:.2}s", pause.as_secs_f64())).collect();
    eprintln!("rebalance pauses ({protocol}, 6 partitions, ~2000 records/s): {}; {produced} records, 0 lost, {duplicates} duplicate(s)", summary.join(", "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_protocol_three_processes_join_and_leave_and_nothing_is_lost() {
    orders_join_and_leave("classic, cooperative-sticky", CLASSIC).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip_848_consumer_protocol_three_processes_join_and_leave_and_nothing_is_lost() {
    orders_join_and_leave("consumer (KIP-848)", CONSUMER).await;
}

/// The fraud seed pipeline (checkpointed state, at-least-once) with 3
/// processes joining and leaving: the final windows equal the batch computation.
async fn fraud_join_and_leave(protocol: &str, properties: &str) {
    const PARTITIONS: i32 = 6;
    let kafka = Kafka::shared();
    let dir = scratch(kafka);
    let (input, output, dlq, state, group) = (unique("transactions"), unique("alerts"), unique("fraud-dlq"), unique("fraud-state"), unique("fraud"));
    kafka.create_topics(&[(&input, PARTITIONS), (&output, PARTITIONS), (&dlq, 1)]).await;
    let config = fraud_config(dir.path(), kafka.bootstrap(), &group, &input, &output, &dlq, &state, "", properties);
    let collector = Collector::start(kafka.bootstrap(), &[&output]);
    let stream = scenario::fraud(150, 10, 120, PARTITIONS);
    let producing = {
        let (producer, topic, events) = (producer(kafka.bootstrap()), input.clone(), stream.events.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            for chunk in events.chunks(60) {
                tick.tick().await;
                let sends = chunk.iter().map(|e| producer.send(rdkafka::producer::FutureRecord::to(&topic).partition(e.partition).key(&e.key).payload(&e.value), Duration::from_secs(60)));
                for result in futures::future::join_all(sends).await {
                    result.expect("produce");
                }
            }
        })
    };
    eprintln!("fraud pipeline, {protocol}:");
    let input_done = || producing.is_finished();
    let (mut c, log, _) = join_and_leave(&config, dir.path(), &collector, 20, &input_done).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    while !producing.is_finished() || committed_total(kafka.bootstrap(), &group, &input, PARTITIONS).await < stream.events.len() as i64 {
        assert!(Instant::now() < deadline, "input not fully committed: {}", std::fs::read_to_string(&log).unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = collector.wait_for(1, Duration::from_secs(2), Duration::from_secs(30), String::new).await;
    stop(&mut c, &log);
    let outputs: Vec<Vec<u8>> = seen.into_iter().map(|s| s.value).collect();
    let inputs: Vec<seeds::Input> = stream.events.iter().map(|e| (e.topic.to_owned(), e.partition, e.value.clone())).collect();
    seeds::check_fraud(&inputs, &stream.fraud_users, &outputs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_protocol_fraud_state_moves_with_its_partitions() {
    fraud_join_and_leave("classic, range", CLASSIC).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip_848_consumer_protocol_fraud_state_moves_with_its_partitions() {
    fraud_join_and_leave("consumer (KIP-848), broker range assignor", CONSUMER).await;
}

/// Process A owns both input partitions and waits for input; a second member
/// of its group (a plain consumer that never commits) joins, takes one
/// partition, receives records there and leaves again, so the partition is
/// revoked from A and given back while A collects its next batch. A reads
/// those records again from the group's committed offset and must process
/// them: none may be dropped as records of a revoked partition (the
/// revocation came before them). The same happens, in the group's eyes, when
/// a broker crash expires A's membership.
async fn partition_given_back_while_collecting(guarantee: &str) {
    let kafka = Kafka::shared();
    let setup = setup(kafka, 2).await;
    let config = write_config(kafka.bootstrap(), &setup, guarantee, CLASSIC);
    let collector = Collector::start(kafka.bootstrap(), &[&setup.output, &setup.dlq]);
    let log = setup.dir.path().join("a.log");
    let mut a = weir_run(&config, &log);
    wait_assignment(&[&log], 0, Duration::from_secs(60)).await;
    let expect = |end: usize| {
        let (out, dead) = expected_counts(&orders(0..end, 500).1);
        out + dead
    };
    let (records, _) = orders(0..200, 500);
    produce(kafka.bootstrap(), &setup.input, &records).await;
    collector.wait_for(expect(200), Duration::ZERO, Duration::from_secs(60), || log_tail(&log, 40)).await;

    // B joins with the same assignor and takes one partition from A.
    let b: rdkafka::consumer::StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap())
        .set("group.id", &setup.group)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    rdkafka::consumer::Consumer::subscribe(&b, &[&setup.input]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let taken = loop {
        let _ = tokio::time::timeout(Duration::from_millis(100), b.recv()).await;
        let assignment = rdkafka::consumer::Consumer::assignment(&b).unwrap();
        if let Some(element) = assignment.elements().first() {
            break element.partition();
        }
        assert!(Instant::now() < deadline, "the second member got no partition: {}", log_tail(&log, 40));
    };
    // Records for B's partition only (A gets nothing meanwhile), which B
    // reads but never commits; then B leaves and A gets the partition back.
    let (records, _) = orders(200..400, 500);
    let producer = producer(kafka.bootstrap());
    let sends = records.iter().map(|(k, v)| producer.send(rdkafka::producer::FutureRecord::to(&setup.input).partition(taken).key(k).payload(v), Duration::from_secs(30)));
    for result in futures::future::join_all(sends).await {
        result.expect("produce");
    }
    let assigned = assignments(&log);
    drop(b);
    wait_assignment(&[&log], assigned, Duration::from_secs(60)).await;

    let (records, _) = orders(400..600, 500);
    produce_with(&producer, &setup.input, &records).await;
    let (_, fates) = orders(0..600, 500);
    let seen = collector.wait_for(expect(600), Duration::from_secs(1), Duration::from_secs(60), || log_tail(&log, 40)).await;
    stop(&mut a, &log);
    let duplicates = check(&fates, &seen, &setup.output);
    if guarantee.contains("exactly-once") {
        assert_eq!(duplicates, 0, "duplicates under exactly-once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_given_back_while_collecting_loses_nothing() {
    partition_given_back_while_collecting("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_given_back_while_collecting_under_exactly_once_loses_and_duplicates_nothing() {
    partition_given_back_while_collecting(r#"guarantee = "exactly-once"
        exactly_once = { instance_id = "given-back", transaction_timeout_ms = 10000 }"#).await;
}

/// Two exactly-once processes (instance ids `a` and `b`) in one group while
/// input arrives: B joins and takes a partition from A, then leaves (SIGTERM)
/// and A takes it back. Offsets move only inside transactions, so each owner
/// starts where the previous one's last transaction ended: every result is
/// visible exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_exactly_once_processes_rebalancing_keep_every_result_exactly_once() {
    let kafka = Kafka::shared();
    let setup = setup(kafka, 2).await;
    let config_a = write_config(kafka.bootstrap(), &setup, r#"guarantee = "exactly-once"
        exactly_once = { instance_id = "a", transaction_timeout_ms = 10000 }"#, CLASSIC);
    let config_b = setup.dir.path().join("pipeline-b.toml");
    std::fs::write(&config_b, std::fs::read_to_string(&config_a).unwrap().replace(r#"instance_id = "a""#, r#"instance_id = "b""#)).unwrap();
    let collector = Collector::start(kafka.bootstrap(), &[&setup.output, &setup.dlq]);
    let total = 6000;
    let (records, fates) = orders(0..total, 500);
    let producing = produce_steadily(kafka.bootstrap(), &setup.input, records, 100, Duration::from_millis(50));
    let input_done = || producing.is_finished();
    let logs: Vec<PathBuf> = ["a", "b"].iter().map(|n| setup.dir.path().join(format!("{n}.log"))).collect();
    let mut a = weir_run(&config_a, &logs[0]);
    wait_assignment(&[&logs[0]], 0, Duration::from_secs(60)).await;
    wait_flow(&collector, 0, 300, &input_done).await;
    let before = collector.len();
    let mut b = weir_run(&config_b, &logs[1]);
    wait_assignment(&[&logs[1]], 0, Duration::from_secs(60)).await;
    wait_flow(&collector, before, 300, &input_done).await;
    let (before, assigned) = (collector.len(), assignments(&logs[0]));
    stop(&mut b, &logs[1]);
    wait_assignment(&[&logs[0]], assigned, Duration::from_secs(60)).await;
    wait_flow(&collector, before, 300, &input_done).await;
    producing.await.unwrap();
    let (want_out, want_dead) = expected_counts(&fates);
    let seen = collector.wait_for(want_out + want_dead, Duration::from_secs(2), Duration::from_secs(120), || log_tail(&logs[0], 40)).await;
    stop(&mut a, &logs[0]);
    let duplicates = check(&fates, &seen, &setup.output);
    assert_eq!(duplicates, 0, "results visible twice after a rebalance between two exactly-once processes");
    assert!(partition_moves(&logs[1]).0 > 0, "B never owned a partition");
}
