//! Keyed state (contract 0.1.1): the C and Go count-by-key keep their totals
//! in the SDKs' keyed stores, one state entry per key.

use super::*;

#[test]
fn c_count_by_key_matches_rust_including_snapshots() {
    c_component("count-by-key");
    count_by_key_matches_rust(&["c"]);
    count_by_key_refuses_a_garbage_snapshot(&["c"]);
}

#[test]
fn c_count_by_key_checkpoints_only_the_keys_a_batch_touched() {
    count_by_key_checkpoints_by_key(&c_component("count-by-key"));
}

#[test]
fn go_count_by_key_checkpoints_only_the_keys_a_batch_touched() {
    count_by_key_checkpoints_by_key(&go_component("count-by-key"));
}

/// The entries a Rust count-by-key snapshot holds: key bytes -> `i64 count`,
/// `f64 sum` (the 16 bytes after each key), parsed from its documented layout.
fn entries_of_rust_snapshot(snapshot: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let n = u64::from_le_bytes(snapshot[..8].try_into().unwrap());
    let mut at = 8;
    let mut entries = Vec::new();
    for _ in 0..n {
        let len = u32::from_le_bytes(snapshot[at..at + 4].try_into().unwrap()) as usize;
        at += 4;
        entries.push((snapshot[at..at + len].to_vec(), snapshot[at + len..at + len + 16].to_vec()));
        at += len + 16;
    }
    assert_eq!(at, snapshot.len(), "the whole Rust snapshot parsed");
    entries
}

/// Guest entries as (key, value) pairs; every value present.
fn present(entries: Vec<weir::engine::StateChange>) -> Vec<(Vec<u8>, Vec<u8>)> {
    entries.into_iter().map(|e| (e.key, e.value.expect("a present value"))).collect()
}

/// Orders of the customers `ids` (in that order), amount = 10 x position + 0.5.
fn orders_of(ids: &[&str]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("customer_id", Arc::new(StringArray::from_iter_values(ids.iter().copied())) as ArrayRef),
        ("total_amount", Arc::new(Float64Array::from_iter_values((0..ids.len()).map(|i| i as f64 * 10.0 + 0.5))))
    ])
    .unwrap()
}

/// A count-by-key built for the keyed-aggregate world against the Rust
/// original: one entry per key holding that key's totals of the Rust
/// snapshot; `snapshot-changes` names exactly the keys touched since the
/// previous call; a fresh instance restored from `snapshot-entries` (or the
/// whole Rust snapshot) continues with the Rust totals.
fn count_by_key_checkpoints_by_key(component: &std::path::Path) {
    let mut op = open(component, "{}");
    assert!(op.keyed_state(), "{} exports weir:operator/keyed-state", component.display());
    let mut want = rust(guests::COUNT_BY_KEY, "{}");
    let data = orders(600);
    for chunk in [data.slice(0, 300), data.slice(300, 300)] {
        assert_eq!(count_batches(&mut op, &chunk), count_batches(&mut want, &chunk));
    }
    let rust_entries = entries_of_rust_snapshot(&want.snapshot().unwrap());
    assert_eq!(rust_entries.len(), 5, "customers c-0 .. c-4");
    let changes = present(op.snapshot_changes().unwrap());
    assert_eq!(changes, rust_entries, "since init, every key changed: one entry each with the Rust totals");
    assert!(op.snapshot_changes().unwrap().is_empty(), "nothing touched since the last call");

    // A batch that touches two existing keys and adds one.
    let touch = orders_of(&["c-3", "c-1", "new", "c-3"]);
    assert_eq!(count_batches(&mut op, &touch), count_batches(&mut want, &touch));
    let rust_entries = entries_of_rust_snapshot(&want.snapshot().unwrap());
    let touched: Vec<_> = rust_entries.iter().filter(|(k, _)| [&b"c-1"[..], b"c-3", b"new"].contains(&k.as_slice())).cloned().collect();
    assert_eq!(present(op.snapshot_changes().unwrap()), touched, "only the touched keys, in key order");
    assert!(op.snapshot_changes().unwrap().is_empty());
    let entries = present(op.snapshot_entries().unwrap());
    assert_eq!(entries, rust_entries, "snapshot-entries: every key");
    assert!(op.snapshot_changes().unwrap().is_empty(), "snapshot-entries starts tracking afresh");

    // A fresh instance restored from the entries continues like Rust.
    let borrowed: Vec<(&[u8], &[u8])> = entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    let mut fresh = open(component, "{}");
    fresh.restore_entries(&borrowed).unwrap();
    assert!(fresh.snapshot_changes().unwrap().is_empty(), "restore-entries starts tracking afresh");
    let rest = orders(900).slice(600, 300);
    let expected = count_batches(&mut want, &rest);
    assert_eq!(count_batches(&mut fresh, &rest), expected, "after restore-entries");
    assert_eq!(fresh.snapshot().unwrap(), want.snapshot().unwrap(), "whole snapshot after restore-entries");

    // Whole snapshots still restore (hot swaps): the Rust one into an
    // instance that never had a keyed-state call continues the same. Its
    // first changes are every present key (nothing was tracked yet; after a
    // whole restore the host diffs `snapshot-entries` against what it holds).
    let mut whole = open(component, "{}");
    count_batches(&mut whole, &orders_of(&["gone"]));
    whole.restore(&want.snapshot().unwrap()).unwrap();
    let changes = whole.snapshot_changes().unwrap();
    assert_eq!(present(changes), entries_of_rust_snapshot(&want.snapshot().unwrap()), "untracked: every present key, `gone` not among them");
    let more = orders(1200).slice(900, 300);
    let expected = count_batches(&mut want, &more);
    assert_eq!(count_batches(&mut whole, &more), expected, "after a whole restore");
    assert_eq!(present(whole.snapshot_entries().unwrap()), entries_of_rust_snapshot(&want.snapshot().unwrap()));
    assert_eq!(whole.stats().traps, 0);
}

/// Stops a pipeline abruptly (no drain, no final checkpoint) once it wrote
/// `checkpoints` checkpoints.
async fn abort_after_checkpoints(handle: weir::pipeline::PipelineHandle, checkpoints: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while handle.stats().snapshot().checkpoints < checkpoints {
        assert!(Instant::now() < deadline && !handle.is_finished(), "no checkpoints: {:?}", handle.stats().snapshot().state);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.abort();
    let _ = handle.join().await;
}

/// The C and Go count-by-key in a stateful pipeline: their state topic holds
/// one entry record per customer, and after an abrupt stop a restarted
/// pipeline restores them key by key and reaches the totals of the whole
/// stream (computed here from the produced values). Both languages run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_c_and_go_count_by_key_restore_their_entries_after_an_abrupt_stop() {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    for lang in ["go", "c"] {
        cluster.create_topic(&format!("keyed-in-{lang}"), 2, 1).unwrap();
        cluster.create_topic(&format!("keyed-out-{lang}"), 1, 1).unwrap();
        cluster.create_topic(&format!("keyed-state-{lang}"), 1, 1).unwrap();
    }
    let bootstrap = cluster.bootstrap_servers();
    futures::future::join_all(["go", "c"].map(|lang| keyed_count_by_key_survives_an_abrupt_stop(&bootstrap, lang))).await;
}

/// One order of the keyed pipeline test: (key, JSON value).
fn keyed_order(i: usize) -> (String, String) {
    (format!("c-{}", i % 7), format!(r#"{{"order_id":"o-{i:04}","customer_id":"c-{}","total_amount":{}.5,"quantity":1}}"#, i % 7, i % 40))
}

async fn keyed_count_by_key_survives_an_abrupt_stop(bootstrap: &str, lang: &str) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let n = 400;
    let mut want: std::collections::BTreeMap<String, (i64, f64)> = Default::default();
    for i in 0..n {
        let total = want.entry(keyed_order(i).0).or_default();
        *total = (total.0 + 1, total.1 + (i % 40) as f64 + 0.5);
    }
    let (input, output, state) = (format!("keyed-in-{lang}"), format!("keyed-out-{lang}"), format!("keyed-state-{lang}"));
    let produce = |range: std::ops::Range<usize>| {
        let (producer, input) = (&producer, &input);
        futures::future::join_all(range.map(move |i| async move {
            let (key, value) = keyed_order(i);
            producer.send(FutureRecord::to(input).key(&key).payload(&value), Duration::from_secs(10)).await.unwrap();
        }))
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schema.json"),
        r#"{"fields":[{"name":"order_id","type":"utf8","nullable":false},{"name":"customer_id","type":"utf8"},{"name":"total_amount","type":"float64"},{"name":"quantity","type":"int32"}]}"#,
    )
    .unwrap();
    let plugin = polyglot(&format!("{lang}-count-by-key"));
    std::fs::write(
        dir.path().join("p.toml"),
        format!(
            r#"
            [pipelines.p]
            state = {{ topic = "{state}", checkpoint_records = 40, checkpoint_interval_ms = 200 }}
            [pipelines.p.source]
            bootstrap_servers = "{bootstrap}"
            group_id = "keyed-{lang}"
            topics = ["{input}"]
            properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}
            [pipelines.p.format]
            type = "json"
            schema = "schema.json"
            [pipelines.p.batch]
            max_records = 32
            max_wait_ms = 20
            [[pipelines.p.operators]]
            plugin = {plugin:?}
            name = "count"
            [pipelines.p.output]
            topic = "{output}"
            key_column = "key"
            "#
        ),
    )
    .unwrap();
    let config = weir::config::Config::load(&dir.path().join("p.toml")).unwrap().pipelines["p"].clone();
    produce(0..n / 2).await;
    let crashed = weir::pipeline::start("p", config.clone(), engine().clone()).unwrap();
    abort_after_checkpoints(crashed, 2).await;
    produce(n / 2..n).await;
    let restarted = weir::pipeline::start("p", config, engine().clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while restarted.stats().snapshot().committed.values().sum::<i64>() < n as i64 {
        assert!(Instant::now() < deadline && !restarted.is_finished(), "{lang}: {:?}", restarted.stats().snapshot().state);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    restarted.shutdown();
    restarted.join().await.unwrap();

    let read = |topic: &str| read_topic(bootstrap.to_owned(), topic.to_owned());
    use rdkafka::Message;
    let entry_keys: std::collections::BTreeSet<Vec<u8>> = read(&state)
        .await
        .iter()
        .filter_map(|m| m.key().and_then(weir::pipeline::changelog::parse_entry_key).map(|e| e.key.to_vec()))
        .collect();
    let customers: std::collections::BTreeSet<Vec<u8>> = want.keys().map(|k| k.as_bytes().to_vec()).collect();
    assert_eq!(entry_keys, customers, "{lang}: one entry record per customer on the state topic");
    // Records after the last checkpoint are replayed, so a key's running
    // total may appear twice; its largest count is the final one.
    let mut got: std::collections::BTreeMap<String, (i64, f64)> = Default::default();
    for m in read(&output).await {
        let row: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        let (count, sum) = (row["count"].as_i64().unwrap(), row["sum"].as_f64().unwrap());
        let total = got.entry(row["key"].as_str().unwrap().to_owned()).or_default();
        if count > total.0 {
            *total = (count, sum);
        }
    }
    assert_eq!(got, want, "{lang}: the totals of the whole stream after the restore");
}
