//! Broker crashes on a 3-node Kafka cluster (replication factor 3,
//! `min.insync.replicas=2`; `weir_tests::broker::Kafka::cluster`): the node
//! leading every input and output partition is killed with -9 mid-run and
//! restarted later, while records keep arriving. `weir run` keeps running on
//! its own; nothing is lost under at-least-once; nothing is lost or
//! duplicated under exactly-once. How long results stopped is printed
//! (docs/kafka.md records the figures).
//!
//! One cluster for this binary; its tests take turns (each kills a node).

#[path = "broker/support.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use support::*;
use weir_tests::broker::Kafka;

/// The node whose crash the tests cause: leader of the test topics.
const VICTIM: i32 = 1;

fn cluster() -> &'static Kafka {
    static CLUSTER: OnceLock<Kafka> = OnceLock::new();
    CLUSTER.get_or_init(Kafka::cluster)
}

/// Tests take turns on the cluster.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn leader_crash(guarantee: &str, top: &str) {
    let _turn = TURN.lock().await;
    let kafka = cluster();
    for id in kafka.node_ids() {
        if !kafka.is_running(id) {
            kafka.restart(id);
        }
    }
    let setup = Setup { dir: scratch(kafka), input: unique("orders"), output: unique("enriched"), dlq: unique("dlq"), group: unique("weir") };
    kafka.create_topics_led_by(&[(&setup.input, 2), (&setup.output, 2), (&setup.dlq, 1)], VICTIM).await;
    let config = write_config(kafka.bootstrap(), &setup, top, CLASSIC);
    let collector = Collector::start(kafka.bootstrap(), &[&setup.output, &setup.dlq]);
    let stop_input = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(AtomicUsize::new(0));
    let producing = {
        let (producer, topic, stop_input, produced) = (producer(kafka.bootstrap()), setup.input.clone(), stop_input.clone(), produced.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            let mut next = 0;
            while !stop_input.load(Ordering::Relaxed) {
                tick.tick().await;
                let (records, _) = orders(next..next + 50, 500);
                produce_with(&producer, &topic, &records).await;
                next += 50;
                produced.store(next, Ordering::Relaxed);
            }
            next
        })
    };
    let log = setup.dir.path().join("weir.log");
    let mut weir = weir_run(&config, &log);
    let flowing = |before: usize, more: usize| {
        let (collector, log, produced) = (&collector, &log, &produced);
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            while collector.len() < before + more {
                assert!(!log_tail(log, 5).contains("pipeline halted"), "weir halted: {}", log_tail(log, 40));
                assert!(
                    Instant::now() < deadline,
                    "results stopped at {} ({} records produced); weir log:\n{}",
                    collector.len(),
                    produced.load(Ordering::Relaxed),
                    log_tail(log, 60)
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    flowing(0, 1000).await;

    let killed = Instant::now();
    let before = collector.len();
    tokio::task::block_in_place(|| kafka.kill(VICTIM));
    let mut moved = None;
    while moved.is_none() {
        let leaders = tokio::task::block_in_place(|| kafka.leaders(&setup.input));
        if !leaders.is_empty() && leaders.values().all(|l| *l >= 0 && *l != VICTIM) {
            moved = Some(killed.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    flowing(before, 1000).await;
    let stall = longest_gap(&collector.snapshot(), killed, Instant::now());
    assert!(weir.child().try_wait().unwrap().is_none(), "weir stopped: {}", std::fs::read_to_string(&log).unwrap());

    let restarted = Instant::now();
    let before = collector.len();
    tokio::task::block_in_place(|| kafka.restart(VICTIM));
    let back = restarted.elapsed();
    flowing(before, 1000).await;
    let restart_stall = longest_gap(&collector.snapshot(), restarted, Instant::now());

    stop_input.store(true, Ordering::Relaxed);
    let produced = producing.await.unwrap();
    let (_, fates) = orders(0..produced, 500);
    let (want_out, want_dead) = expected_counts(&fates);
    let seen = collector.wait_for(want_out + want_dead, Duration::from_secs(2), Duration::from_secs(120), || std::fs::read_to_string(&log).unwrap()).await;
    assert!(weir.child().try_wait().unwrap().is_none(), "weir stopped: {}", std::fs::read_to_string(&log).unwrap());
    stop(&mut weir, &log);
    let duplicates = check(&fates, &seen, &setup.output);
    eprintln!(
        "leader crash ({guarantee}): partitions moved {moved:.2?} after kill -9 of node {VICTIM}; longest gap between results {stall:.2?}; \
         node back in {back:.2?}, gap after its restart {restart_stall:.2?}; {produced} records, 0 lost, {duplicates} duplicate(s)",
        moved = moved.unwrap()
    );
    if !guarantee.starts_with("at-least") {
        assert_eq!(duplicates, 0, "duplicates under exactly-once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_crash_under_at_least_once_loses_nothing() {
    leader_crash("at-least-once", "").await;
}

/// The crash can lapse the group session (the group coordinator died with
/// the node): `send_offsets_to_transaction` then fails with UNKNOWN_MEMBER_ID
/// or, when librdkafka still holds the dead node as coordinator, never
/// returns (the producer is replaced); the partitions are revoked and given
/// back, and their records are read again from the committed offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_crash_under_exactly_once_loses_and_duplicates_nothing() {
    leader_crash("exactly-once", r#"guarantee = "exactly-once"
        exactly_once = { instance_id = "cluster", transaction_timeout_ms = 60000 }"#).await;
}
