//! Event time on topics that already hold hours of data when the pipeline
//! starts (a deployment, a downtime, a reprocessing request), on a real
//! Apache Kafka broker: the order revenue job over two co-partitioned topics
//! of 4 partitions, with and without `state`, and with one partition whose
//! data arrives only after the others were consumed. Results equal the batch
//! computation and only the records beyond the allowed lateness are
//! dead-lettered.

use super::kafka::{random_topic, read_all};
use super::pipeline::engine;
use super::windows::{inputs, produce_events, seed_config, wait_until_quiet};
use std::time::Duration;
use weir::scenario::{self, Event};
use weir_tests::broker::Kafka;
use weir_tests::guests;
use weir_tests::seeds::{self, Watermark};

const PARTITIONS: i32 = 4;

/// 3 hours of orders (one a second) over the two order topics.
const ORDERS: u64 = 10_800;

/// The five processing centers over the 4 partitions of both topics, so
/// that every partition has data and partition 0 twice as much as the others
/// (an empty partition holds the watermark for the idle timeout: see
/// docs/event-time.md; the replay harness covers it).
fn spread(mut events: Vec<Event>) -> Vec<Event> {
    for event in &mut events {
        event.partition = scenario::CENTERS.iter().position(|c| *c == event.key).expect("a center") as i32 % PARTITIONS;
    }
    events
}

/// Runs the order-revenue job over `events`, produced before the start
/// except those of partition `delayed`, which arrive once the pipeline has
/// consumed the others; checks the results.
async fn orders_on_a_backlog(state: bool, delayed: Option<i32>) {
    let kafka = Kafka::shared();
    // Topics of this test only (the broker is shared by the test binary).
    let names: Vec<&'static str> = scenario::ORDER_TOPICS.iter().map(|t| &*Box::leak(random_topic(t).into_boxed_str())).collect();
    let (output, dlq) = (random_topic("revenue"), random_topic("dlq"));
    kafka.create_topics(&[(names[0], PARTITIONS), (names[1], PARTITIONS), (&output, 1), (&dlq, 1)]).await;
    let mut events = spread(scenario::orders(ORDERS, PARTITIONS));
    for event in &mut events {
        event.topic = names[scenario::ORDER_TOPICS.iter().position(|t| *t == event.topic).expect("an order topic")];
    }
    let (later, now): (Vec<Event>, Vec<Event>) = events.iter().cloned().partition(|e| Some(e.partition) == delayed);
    produce_events(kafka.bootstrap(), &now).await;
    let dir = tempfile::tempdir().unwrap();
    let config = seed_config(dir.path(), kafka.bootstrap(), &random_topic("g"), &names, scenario::ORDER_SCHEMA, guests::ORDER_REVENUE, "{}", 600_000, &output, &dlq, state);
    // The state topic (`<pipeline>.state`, created by weir) is this test's too.
    let handle = weir::pipeline::start(&random_topic("orders"), config, engine()).unwrap();
    if delayed.is_some() {
        assert!(!later.is_empty(), "the delayed partition has data");
        wait_until_quiet(&[&handle], now.len() as u64, Duration::from_secs(120)).await;
        produce_events(kafka.bootstrap(), &later).await;
    }
    wait_until_quiet(&[&handle], events.len() as u64, Duration::from_secs(180)).await;
    let stats = handle.stats().snapshot();
    handle.shutdown();
    handle.join().await.unwrap();
    let outputs: Vec<Vec<u8>> = read_all(kafka.bootstrap(), &output, 1, Duration::from_secs(2), Duration::from_secs(30)).await.into_iter().filter_map(|r| r.value).collect();
    // The order the records were produced in is each partition's order.
    let produced: Vec<Event> = now.into_iter().chain(later).collect();
    seeds::check_orders_closed_by(&inputs(&produced), &outputs, if state { Watermark::PerTask } else { Watermark::Shared });
    let late = seeds::late_inputs(&inputs(&produced), 600_000);
    let dead = read_all(kafka.bootstrap(), &dlq, late.len(), Duration::from_secs(1), Duration::from_secs(30)).await;
    assert_eq!(stats.records_late, late.len() as u64, "records taken as late: {} of {} (no valid record may be late)", stats.records_late, events.len());
    assert_eq!(dead.len(), late.len(), "every late order, and only those, is dead-lettered");
    assert!(dead.iter().all(|d| d.header("weir.error.kind") == "late"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_of_orders_in_four_partitions_are_exact_without_state() {
    orders_on_a_backlog(false, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_of_orders_in_four_partitions_are_exact_with_state() {
    orders_on_a_backlog(true, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_whose_data_arrives_later_holds_the_watermark_without_state() {
    orders_on_a_backlog(false, Some(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_whose_data_arrives_later_holds_the_watermark_with_state() {
    orders_on_a_backlog(true, Some(1)).await;
}
