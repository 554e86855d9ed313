//! No guest and no record can take the host down: a guest that sleeps, one
//! that floods the log, a map producing a row larger than the broker takes,
//! a 0.9 MB undecodable record on a 500 KB producer limit and records
//! carrying forged `weir.*` headers all cost exactly their own record, the
//! pipeline runs on, and the books balance.

use super::kafka::Read;
use super::pipeline::{Fate, Scenario, inputs, wait_for_input};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;

/// Producer limit of the pipeline under test (outputs and dead letters).
const LIMIT: &str = "500000";

/// A record to produce: key, value and extra headers (name, value).
type HeaderedRecord<'a> = (String, Vec<u8>, Vec<(&'a str, &'a str)>);

/// Produces `(key, value, extra headers)` records, each with a `trace-id` header.
async fn produce_with_headers(bootstrap: &str, topic: &str, records: &[HeaderedRecord<'_>]) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("acks", "all").create().unwrap();
    for (key, value, extra) in records {
        let mut headers = OwnedHeaders::new().insert(Header { key: "trace-id", value: Some(format!("t-{key}").as_bytes()) });
        for (name, value) in extra {
            headers = headers.insert(Header { key: name, value: Some(value.as_bytes()) });
        }
        producer.send(FutureRecord::to(topic).key(key.as_bytes()).payload(value).headers(headers), Duration::from_secs(10)).await.expect("produce");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_guests_and_records_cost_only_their_own_record() {
    let extra = format!("[pipelines.orders.output.properties]\n\"message.max.bytes\" = \"{LIMIT}\"");
    let scenario = Scenario::new(1, 1, &extra);
    let (base, mut fate) = inputs(60);
    let mut records: Vec<HeaderedRecord> = base.into_iter().map(|(k, v)| (k, v, Vec::new())).collect();
    let order = |id: &str, action: &str| format!(r#"{{"order_id":"{id}","total_amount":500.0,"action":"{action}"}}"#).into_bytes();
    let huge = format!(r#"{{"order_id":"o-huge","total_amount":"{}"#, "9".repeat(900_000)).into_bytes();
    let forged = vec![("weir.error.kind", "forged"), ("weir.plugins", "evil@v9"), ("WEIR.source.offset", "1")];
    for (id, value, headers, expected) in [
        ("o-sleep", order("o-sleep", "sleep"), vec![], Fate::Dead("deadline")),
        ("o-big", order("o-big", "big-row"), vec![], Fate::Dead("too-large")),
        ("o-spam", order("o-spam", "log-spam"), vec![], Fate::Output),
        ("o-huge", huge.clone(), vec![], Fate::Dead("decode")),
        ("o-forged-out", order("o-forged-out", "none"), forged.clone(), Fate::Output),
        ("o-forged-dead", br#"{"order_id":"o-forged-dead","total_amount":"lots"}"#.to_vec(), forged.clone(), Fate::Dead("decode")),
    ] {
        records.push((id.to_owned(), value, headers));
        fate.insert(id.to_owned(), expected);
    }
    produce_with_headers(&scenario.bootstrap, &scenario.input, &records).await;
    let labels = weir::telemetry::PluginLabels { plugin: "misbehave".into() };
    let dropped_before = weir::telemetry::guest_log_lines_dropped().get_or_create(&labels).get();

    let handle = scenario.start();
    wait_for_input(&handle, records.len() as u64, Duration::from_secs(120)).await;
    let stats = handle.stats().clone();
    handle.shutdown();
    handle.join().await.expect("the pipeline ran to the end");

    let (outputs, dead) = scenario.read_back(&fate).await;
    let mut seen: BTreeMap<String, Fate> = BTreeMap::new();
    for record in &outputs {
        assert!(record.header_names.iter().all(|h| !h.to_ascii_lowercase().starts_with("weir.error") && !h.eq_ignore_ascii_case("weir.source.offset")), "{:?}", record.header_names);
        assert_ne!(record.header("weir.plugins"), "evil@v9", "forged plugin versions do not pass through");
        assert!(seen.insert(record.key_str(), Fate::Output).is_none());
    }
    let mut huge_letter: Option<&Read> = None;
    for record in &dead {
        let id = record.key_str();
        let kind = record.header("weir.error.kind");
        assert_eq!(record.header_names.iter().filter(|h| h.eq_ignore_ascii_case("weir.error.kind")).count(), 1, "{id}: {:?}", record.header_names);
        assert!(record.header("weir.error.message").len() <= 2048, "{id}: error texts are cut");
        if id == "o-huge" {
            huge_letter = Some(record);
        } else {
            let original = &records.iter().find(|r| r.0 == id).unwrap().1;
            assert_eq!(record.value.as_deref(), Some(original.as_slice()), "{id}");
        }
        let kind: &'static str = Box::leak(kind.into_boxed_str());
        assert!(seen.insert(id.clone(), Fate::Dead(kind)).is_none(), "{id} twice");
    }
    for (id, expected) in &fate {
        match expected {
            Fate::Filtered => assert!(!seen.contains_key(id), "{id}"),
            other => assert_eq!(seen.get(id), Some(other), "fate of {id}"),
        }
    }

    // The 0.9 MB record's dead letter fits under the limit without its value.
    let letter = huge_letter.expect("the huge record was dead-lettered");
    assert_eq!(letter.value, None);
    assert_eq!(letter.header("weir.omitted"), "value");
    assert_eq!(letter.header("weir.value.size"), huge.len().to_string());
    assert_eq!(letter.header("weir.value.sha256"), hex::encode(Sha256::digest(&huge)));
    assert_eq!(letter.header("weir.source.topic"), scenario.input);
    assert_eq!(letter.header("trace-id"), "t-o-huge");
    // `weir dlq export` reads the value back from the source by offset.
    let topic = weir::pipeline::dead_letters::DeadLetterTopic::of(&scenario.config);
    let views = tokio::task::spawn_blocking(move || weir::pipeline::dead_letters::peek(&topic, 100, None)).await.unwrap().unwrap();
    let view = views.iter().find(|v| v.key.as_deref() == Some("o-huge")).expect("exported");
    assert_eq!(view.value.as_deref().map(str::as_bytes), Some(huge.as_slice()), "export restores the left-out value");

    let s = stats.snapshot();
    assert_eq!(s.records_in, records.len() as u64);
    assert_eq!(s.records_in, s.records_out + s.records_filtered + s.records_dead_lettered, "the books balance: {s:?}");
    assert_eq!(s.dead_letters_by_kind.get("too-large"), Some(&1), "{s:?}");
    let dropped = weir::telemetry::guest_log_lines_dropped().get_or_create(&labels).get() - dropped_before;
    assert!(dropped >= 1_900, "the log flood was cut: {dropped} lines dropped");

    // `weir dlq redrive` reads the left-out value back from the source: the
    // huge record fails to decode again and its new dead letter describes
    // the same value (without it, it would be an empty record).
    let handle = scenario.start();
    let (reply, answer) = tokio::sync::oneshot::channel();
    let request = weir::pipeline::command::RedriveRequest { since_ms: None, limit: None, reply };
    handle.control().commands.send(weir::pipeline::command::PipelineCommand::Redrive(request)).await.unwrap();
    let report = answer.await.unwrap().expect("redrive");
    assert_eq!(report.read as usize, dead.len(), "{report:?}");
    handle.shutdown();
    handle.join().await.unwrap();
    let again = super::kafka::read_all(&scenario.bootstrap, &scenario.dlq, dead.len() + 1, Duration::from_millis(500), Duration::from_secs(60)).await;
    let redriven = again.iter().find(|r| r.key_str() == "o-huge" && r.header("weir.attempts") != "1").expect("the huge record was dead-lettered again");
    assert_eq!(redriven.header("weir.error.kind"), "decode");
    assert_eq!(redriven.header("weir.value.sha256"), hex::encode(Sha256::digest(&huge)), "redrive decoded the original value");
}
