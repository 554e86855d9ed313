//! Incremental (keyed) checkpoints end to end (issue 20): the seed guests
//! hand their state over key by key (contract 0.1.1), the state topic holds
//! one record per changed key, and a restore after an abrupt stop (the
//! pipeline task aborted: no drain, no final checkpoint), from a compacted
//! copy of the state topic, or in a chain that also holds a 0.1.0
//! whole-snapshot aggregate, gives the results of an uninterrupted run.

use super::kafka::{MockTopics, Read, random_topic, read_all};
use super::pipeline::{engine, wait_for_input};
use super::windows::{inputs, produce_events, seed_config, wait_until_quiet};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::BTreeMap;
use std::time::Duration;
use weir::pipeline::changelog::parse_entry_key;
use weir::pipeline::state::Checkpoint;
use weir::scenario;
use weir_tests::guests;
use weir_tests::seeds;

const PARTITIONS: i32 = 3;

/// Every record of a state topic, in order.
pub async fn state_records(bootstrap: &str, topic: &str) -> Vec<Read> {
    read_all(bootstrap, topic, 1, Duration::from_secs(2), Duration::from_secs(30)).await
}

/// Entry records of `operator` and the newest checkpoint of each task.
pub fn split(records: &[Read], operator: &str) -> (usize, BTreeMap<i32, Checkpoint>) {
    let entries = records.iter().filter(|r| r.key.as_deref().and_then(parse_entry_key).is_some_and(|e| e.operator == operator)).count();
    let mut checkpoints = BTreeMap::new();
    for record in records {
        if let (Some(value), Some(key)) = (&record.value, &record.key)
            && parse_entry_key(key).is_none()
        {
            let checkpoint = Checkpoint::decode(value).unwrap();
            checkpoints.insert(checkpoint.task, checkpoint);
        }
    }
    (entries, checkpoints)
}

/// What compaction leaves: the newest record per key, tombstones gone
/// (once `delete.retention.ms` passed).
/// Stops `pipeline` abruptly (no drain, no final checkpoint) once it has
/// written `checkpoints` checkpoints.
async fn abort_after_checkpoints(pipeline: weir::pipeline::PipelineHandle, checkpoints: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while pipeline.stats().snapshot().checkpoints < checkpoints {
        assert!(tokio::time::Instant::now() < deadline, "no checkpoints");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pipeline.abort();
    let _ = pipeline.join().await;
}

/// Feeds `rest` of the stream to `pipeline`, drains it, and checks the
/// alerts of the whole stream against the batch computation.
async fn feed_drain_and_check(kafka: &MockTopics, pipeline: weir::pipeline::PipelineHandle, rest: &[scenario::Event], stream: &scenario::FraudStream) {
    produce_events(&kafka.bootstrap, rest).await;
    wait_until_quiet(&[&pipeline], rest.len() as u64, Duration::from_secs(120)).await;
    pipeline.shutdown();
    pipeline.join().await.unwrap();
    let outputs: Vec<Vec<u8>> = read_all(&kafka.bootstrap, &kafka.output, 1, Duration::from_secs(2), Duration::from_secs(30)).await.into_iter().filter_map(|r| r.value).collect();
    seeds::check_fraud(&inputs(&stream.events), &stream.fraud_users, &outputs);
}

fn compact(records: &[Read]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut newest: BTreeMap<Vec<u8>, (usize, Option<Vec<u8>>)> = BTreeMap::new();
    for (i, record) in records.iter().enumerate() {
        newest.insert(record.key.clone().unwrap(), (i, record.value.clone()));
    }
    let mut kept: Vec<(usize, Vec<u8>, Vec<u8>)> = newest.into_iter().filter_map(|(k, (i, v))| v.map(|v| (i, k, v))).collect();
    kept.sort_by_key(|(i, _, _)| *i);
    kept.into_iter().map(|(_, k, v)| (k, v)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_fraud_state_survives_an_abrupt_stop_and_compaction_of_the_state_topic() {
    survives_an_abrupt_stop_and_compaction(guests::FRAUD_DETECTOR, engine()).await;
}

/// The Python port of the fraud detector (sdk/python keyed `Windows`, built
/// by `scripts/build-polyglot-guests`) checkpoints and restores key by key
/// like the Rust one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_python_fraud_detector_survives_an_abrupt_stop_and_compaction_of_the_state_topic() {
    let (path, engine) = python_fraud_detector();
    survives_an_abrupt_stop_and_compaction(path.to_str().unwrap(), engine).await;
}

/// The Python fraud detector's component, and an engine sharing the polyglot
/// tests' artifact cache (the interpreter component compiles once).
fn python_fraud_detector() -> (std::path::PathBuf, weir::engine::Engine) {
    let path = weir_tests::repo_root().join("target/guests/polyglot/python-fraud-detector.wasm");
    assert!(path.exists(), "{} is missing: run `scripts/build-polyglot-guests python`", path.display());
    let cache = weir_tests::repo_root().join("target/tmp/polyglot-artifact-cache");
    let engine = weir::engine::Engine::new(weir::engine::EngineConfig { cache_dir: Some(cache), ..Default::default() }).unwrap();
    (path, engine)
}

/// Runs the fraud stream through `plugin` (keyed), stops the pipeline
/// abruptly after two checkpoints, restores it from a compacted copy of its
/// state topic and checks the alerts of the whole stream.
async fn survives_an_abrupt_stop_and_compaction(plugin: &str, engine: weir::engine::Engine) {
    let kafka = MockTopics::new();
    kafka.create_topic(scenario::TRANSACTIONS_TOPIC, PARTITIONS);
    let (state, compacted) = (random_topic("state"), random_topic("compacted"));
    kafka.create_topic(&state, 1);
    kafka.create_topic(&compacted, 1);
    let stream = scenario::fraud(150, 10, 40, PARTITIONS);
    let (first, second) = stream.events.split_at(stream.events.len() * 2 / 3);
    let dir = tempfile::tempdir().unwrap();
    let mut config = seed_config(dir.path(), &kafka.bootstrap, &random_topic("g"), &[scenario::TRANSACTIONS_TOPIC], scenario::TRANSACTION_SCHEMA, plugin, r#"{ emit = "all" }"#, 1_800_000, &kafka.output, &kafka.dlq, true);
    config.state.as_mut().unwrap().topic = Some(state.clone());
    let crashed = weir::pipeline::start("fraud", config.clone(), engine.clone()).unwrap();
    produce_events(&kafka.bootstrap, first).await;
    wait_for_input(&crashed, first.len() as u64 * 3 / 4, Duration::from_secs(60)).await;
    abort_after_checkpoints(crashed, 2).await;

    let records = state_records(&kafka.bootstrap, &state).await;
    let (entries, checkpoints) = split(&records, "windows");
    assert!(entries > 0, "the fraud windows are stored key by key");
    assert!(!checkpoints.is_empty() && checkpoints.values().all(|c| c.is_keyed("windows") && c.state_bytes() == 0), "checkpoint records hold offsets, not the state");
    // Restore from a compacted copy of the state topic.
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &kafka.bootstrap).set("enable.idempotence", "true").create().unwrap();
    for (key, value) in compact(&records) {
        producer.send(FutureRecord::to(&compacted).key(&key).payload(&value), Duration::from_secs(10)).await.unwrap();
    }
    config.state.as_mut().unwrap().topic = Some(compacted);
    let restarted = weir::pipeline::start("fraud", config, engine).unwrap();
    feed_drain_and_check(&kafka, restarted, second, &stream).await;
}

/// A restart over a state topic, with partitions that deliver one after
/// another: the first batch reads the state topic once for every assigned
/// task, and the partitions that deliver later are restored from that read
/// (each used to read the whole topic again, inside its first batch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_that_deliver_one_after_another_are_restored_from_one_read_of_the_state_topic() {
    let kafka = MockTopics::new();
    kafka.create_topic(scenario::TRANSACTIONS_TOPIC, PARTITIONS);
    let state = random_topic("state");
    kafka.create_topic(&state, 1);
    let stream = scenario::fraud(150, 10, 40, PARTITIONS);
    let of = |partition: i32| stream.events.iter().filter(|e| e.partition == partition).cloned().collect::<Vec<_>>();
    let (zero, one, two) = (of(0), of(1), of(2));
    let (zero_first, zero_rest) = zero.split_at(zero.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let mut config = seed_config(dir.path(), &kafka.bootstrap, &random_topic("g"), &[scenario::TRANSACTIONS_TOPIC], scenario::TRANSACTION_SCHEMA, guests::FRAUD_DETECTOR, r#"{ emit = "all" }"#, 1_800_000, &kafka.output, &kafka.dlq, true);
    config.state.as_mut().unwrap().topic = Some(state.clone());
    // A first run checkpoints partition 0 and stops (final checkpoint).
    let first = weir::pipeline::start("fraud", config.clone(), engine()).unwrap();
    produce_events(&kafka.bootstrap, zero_first).await;
    wait_until_quiet(&[&first], zero_first.len() as u64, Duration::from_secs(120)).await;
    first.shutdown();
    first.join().await.unwrap();
    assert!(!split(&state_records(&kafka.bootstrap, &state).await, "windows").1.is_empty(), "partition 0 is checkpointed");
    // The restart: partition 0 delivers, then 1, then 2.
    let restarted = weir::pipeline::start("fraud", config, engine()).unwrap();
    let stats = restarted.stats().clone();
    produce_events(&kafka.bootstrap, zero_rest).await;
    wait_until_quiet(&[&restarted], zero_rest.len() as u64, Duration::from_secs(120)).await;
    produce_events(&kafka.bootstrap, &one).await;
    wait_until_quiet(&[&restarted], (zero_rest.len() + one.len()) as u64, Duration::from_secs(120)).await;
    feed_drain_and_check(&kafka, restarted, &two, &stream).await;
    assert_eq!(stats.snapshot().state_topic_reads, 1, "one read of the state topic for the three tasks");
}

/// The fraud detector (keyed) followed by the 0.1.0 `legacy-aggregate`
/// (whole snapshots), counting the detector's result rows per user.
fn mixed_config(dir: &std::path::Path, kafka: &MockTopics, output: &str, state: &str) -> weir::config::PipelineConfig {
    seed_config(dir, &kafka.bootstrap, &random_topic("g"), &[scenario::TRANSACTIONS_TOPIC], scenario::TRANSACTION_SCHEMA, guests::FRAUD_DETECTOR, r#"{ emit = "all" }"#, 1_800_000, output, &kafka.dlq, true);
    let toml = std::fs::read_to_string(dir.join("p.toml")).unwrap().replace(
        "[pipelines.seed.output]",
        &format!("[[pipelines.seed.operators]]\n        plugin = {:?}\n        name = \"legacy\"\n        config = {{ key = \"user_id\" }}\n        [pipelines.seed.output]", guests::LEGACY_AGGREGATE),
    );
    std::fs::write(dir.join("p.toml"), toml).unwrap();
    let mut config = weir::config::Config::load(&dir.join("p.toml")).unwrap().pipelines["seed"].clone();
    config.state.as_mut().unwrap().topic = Some(state.to_owned());
    config
}

/// The last count per user the legacy aggregate emitted.
async fn counts(bootstrap: &str, topic: &str) -> BTreeMap<String, i64> {
    let mut last = BTreeMap::new();
    for record in read_all(bootstrap, topic, 1, Duration::from_secs(2), Duration::from_secs(30)).await {
        let row: serde_json::Value = serde_json::from_slice(&record.value.unwrap()).unwrap();
        last.insert(row["user_id"].as_str().unwrap().to_owned(), row["count"].as_i64().unwrap());
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_a_keyed_and_a_0_1_0_aggregate_restores_both_after_an_abrupt_stop() {
    let kafka = MockTopics::new();
    kafka.create_topic(scenario::TRANSACTIONS_TOPIC, PARTITIONS);
    let (out_a, out_b, state_a, state_b) = (random_topic("out"), random_topic("out"), random_topic("state"), random_topic("state"));
    for (topic, partitions) in [(&out_a, 2), (&out_b, 2), (&state_a, 1), (&state_b, 1)] {
        kafka.create_topic(topic, partitions);
    }
    let stream = scenario::fraud(100, 10, 40, PARTITIONS);
    produce_events(&kafka.bootstrap, &stream.events).await;
    // Uninterrupted.
    let dir_a = tempfile::tempdir().unwrap();
    let a = weir::pipeline::start("mixed", mixed_config(dir_a.path(), &kafka, &out_a, &state_a), engine()).unwrap();
    wait_until_quiet(&[&a], stream.events.len() as u64, Duration::from_secs(120)).await;
    a.shutdown();
    a.join().await.unwrap();
    // Stopped abruptly after checkpoints, then restarted.
    let dir_b = tempfile::tempdir().unwrap();
    let config_b = mixed_config(dir_b.path(), &kafka, &out_b, &state_b);
    let crashed = weir::pipeline::start("mixed", config_b.clone(), engine()).unwrap();
    abort_after_checkpoints(crashed, 2).await;
    let (entries, checkpoints) = split(&state_records(&kafka.bootstrap, &state_b).await, "windows");
    assert!(entries > 0, "the keyed aggregate's entries are records of their own");
    assert!(checkpoints.values().any(|c| c.is_keyed("windows") && c.state_of("legacy").is_some_and(|s| !s.is_empty())), "the 0.1.0 aggregate's whole snapshot rides in the checkpoint record");
    let restarted = weir::pipeline::start("mixed", config_b, engine()).unwrap();
    wait_until_quiet(&[&restarted], 1, Duration::from_secs(120)).await;
    restarted.shutdown();
    restarted.join().await.unwrap();

    let (expected, got) = (counts(&kafka.bootstrap, &out_a).await, counts(&kafka.bootstrap, &out_b).await);
    assert!(expected.len() > 50, "users counted: {}", expected.len());
    assert_eq!(got, expected, "the restored chain counts like the uninterrupted one");
}

/// A keyed aggregate swapped for a new version over the admin API while it
/// runs carries its state over, and the keyed checkpoints written after the
/// swap restore it after a crash: the alerts still equal the batch computation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_swapped_keyed_aggregate_keeps_its_state_through_a_crash() {
    let kafka = MockTopics::new();
    kafka.create_topic(scenario::TRANSACTIONS_TOPIC, PARTITIONS);
    let state = random_topic("state");
    kafka.create_topic(&state, 1);
    let stream = scenario::fraud(150, 10, 40, PARTITIONS);
    let third = stream.events.len() / 3;
    let (first, rest) = stream.events.split_at(third);
    let (second, last) = rest.split_at(third);
    let dir = tempfile::tempdir().unwrap();
    let mut config = seed_config(dir.path(), &kafka.bootstrap, &random_topic("g"), &[scenario::TRANSACTIONS_TOPIC], scenario::TRANSACTION_SCHEMA, guests::FRAUD_DETECTOR, r#"{ emit = "all" }"#, 1_800_000, &kafka.output, &kafka.dlq, true);
    config.state.as_mut().unwrap().topic = Some(state.clone());
    let registry = weir::registry::Registry::in_memory();
    let running = weir::pipeline::start_with_registry("fraud", config.clone(), engine(), &registry).unwrap();
    let client = super::admin::serve(&registry, &[&running], 64 << 20).await;
    produce_events(&kafka.bootstrap, first).await;
    wait_for_input(&running, first.len() as u64 * 3 / 4, Duration::from_secs(60)).await;
    let rebuilt = super::admin::with_custom_section(&std::fs::read(guests::FRAUD_DETECTOR).unwrap(), "v2");
    let outcome = client.put_wasm("/v1/plugins/windows", rebuilt).await.unwrap();
    assert!(outcome["pipelines"][0]["report"]["state_bytes"].as_u64().unwrap() > 0, "the state moved to the new version: {outcome}");
    let swapped_at = running.stats().snapshot().checkpoints;
    produce_events(&kafka.bootstrap, second).await;
    abort_after_checkpoints(running, swapped_at + 2).await;
    let (entries, _) = split(&state_records(&kafka.bootstrap, &state).await, "windows");
    assert!(entries > 0, "keyed entries in the state topic");

    let restarted = weir::pipeline::start("fraud", config, engine()).unwrap();
    feed_drain_and_check(&kafka, restarted, last, &stream).await;
}

/// A keyed Rust aggregate hot-swapped for its Python port, whose SDK cannot
/// read the Rust entries (postcard), is checkpointed by the new version
/// before the swap is reported done: a crash right after the swap restores
/// into the Python version, and the alerts equal the batch computation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_to_another_sdk_is_checkpointed_before_it_is_reported_done() {
    swap_to_another_sdk_then_crash(weir::config::Guarantee::AtLeastOnce).await;
}

/// The same under exactly-once: the new version's checkpoint is a
/// transaction of its own, committed before the swap is reported done (it
/// used to ride in the next batch's transaction, and a crash before that
/// batch restored the Rust entries into the Python version, which refuses
/// them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_to_another_sdk_under_exactly_once_is_checkpointed_in_its_own_transaction() {
    swap_to_another_sdk_then_crash(weir::config::Guarantee::ExactlyOnce).await;
}

async fn swap_to_another_sdk_then_crash(guarantee: weir::config::Guarantee) {
    let (python, engine) = python_fraud_detector();
    let instance = random_topic("instance");
    let kafka = MockTopics::new();
    kafka.create_topic(scenario::TRANSACTIONS_TOPIC, PARTITIONS);
    let state = random_topic("state");
    kafka.create_topic(&state, 1);
    let stream = scenario::fraud(150, 10, 40, PARTITIONS);
    let (first, rest) = stream.events.split_at(stream.events.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let group = random_topic("g");
    let config_for = |plugin: &str| {
        let mut config = seed_config(dir.path(), &kafka.bootstrap, &group, &[scenario::TRANSACTIONS_TOPIC], scenario::TRANSACTION_SCHEMA, plugin, r#"{ emit = "all" }"#, 1_800_000, &kafka.output, &kafka.dlq, true);
        config.state.as_mut().unwrap().topic = Some(state.clone());
        config.guarantee = guarantee;
        config.exactly_once.instance_id = Some(instance.clone());
        config
    };
    let registry = weir::registry::Registry::in_memory();
    let running = weir::pipeline::start_with_registry("fraud", config_for(guests::FRAUD_DETECTOR), engine.clone(), &registry).unwrap();
    let client = super::admin::serve(&registry, &[&running], 64 << 20).await;
    produce_events(&kafka.bootstrap, first).await;
    // Everything folded and checkpointed (the idle checkpoint): nothing is due.
    wait_until_quiet(&[&running], first.len() as u64, Duration::from_secs(120)).await;
    let before = running.stats().snapshot().checkpoints;
    let outcome = client.put_wasm("/v1/plugins/windows", std::fs::read(&python).unwrap()).await.unwrap();
    assert!(outcome["pipelines"][0]["report"]["state_bytes"].as_u64().unwrap() > 0, "the state moved to the Python version: {outcome}");
    assert!(running.stats().snapshot().checkpoints > before, "the swap wrote a checkpoint of the new version");
    running.abort();
    let _ = running.join().await;

    let restarted = weir::pipeline::start("fraud", config_for(python.to_str().unwrap()), engine).unwrap();
    feed_drain_and_check(&kafka, restarted, rest, &stream).await;
}
