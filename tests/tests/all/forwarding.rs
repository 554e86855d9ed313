//! A chain of filters forwards the records it keeps byte for byte (fields
//! outside the schema and the producer's formatting survive), and with
//! `format.decode = "read"` decodes only the fields its filters read: a
//! record whose unread field breaks the schema is then forwarded instead of
//! dead-lettered, while a bad read field or broken JSON still is.

use super::kafka::{MockTopics, Read, produce, random_topic, read_all};
use std::collections::BTreeMap;
use std::time::Duration;
use weir::config::Config;
use weir_tests::guests;

const SCHEMA: &str = r#"{"fields":[
    {"name":"order_id","type":"utf8","nullable":false},
    {"name":"customer_id","type":"utf8"},
    {"name":"total_amount","type":"float64"}]}"#;

/// (key, value) inputs: kept, filtered, and three kinds of bad record.
fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut records = Vec::new();
    for i in 0..60 {
        let id = format!("o-{i:03}");
        let value = match i % 10 {
            // Odd formatting, key order and a nested field outside the schema.
            0 => format!("{{ \"total_amount\" : 250.50,\"order_id\":\"{id}\", \"note\": {{\"gift\": [1, 2], \"text\": \"für dich\"}} }}"),
            1 => format!(r#"{{"order_id":"{id}","customer_id":"c-1","total_amount":99.0}}"#),
            2 => format!(r#"{{"order_id":"{id}","total_amount":"lots"}}"#),
            3 => format!(r#"{{"order_id":"{id}","total_amount":"#),
            4 => format!(r#"{{"order_id":"{id}","customer_id":42,"total_amount":700}}"#),
            _ => format!(r#"{{"order_id":"{id}","customer_id":"c-{i}","total_amount":{}.25}}"#, 100 + i * 10),
        };
        records.push((id, value.into_bytes()));
    }
    records
}

fn config(topics: &MockTopics, dir: &std::path::Path, output: &str, dlq: &str, decode: &str, operator: (&str, &str)) -> weir::config::PipelineConfig {
    std::fs::write(dir.join("orders.schema.json"), SCHEMA).unwrap();
    let toml = format!(
        r#"
        [pipelines.forward.source]
        bootstrap_servers = "{bootstrap}"
        group_id = "{group}"
        topics = ["{input}"]
        properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}
        [pipelines.forward.format]
        type = "json"
        schema = "orders.schema.json"
        decode = "{decode}"
        [pipelines.forward.batch]
        max_records = 16
        max_wait_ms = 50
        [[pipelines.forward.operators]]
        plugin = "{plugin}"
        config = {operator_config}
        [pipelines.forward.output]
        topic = "{output}"
        [pipelines.forward.errors]
        dead_letter_topic = "{dlq}"
        "#,
        bootstrap = topics.bootstrap,
        group = random_topic("group"),
        input = topics.input,
        plugin = operator.0,
        operator_config = operator.1,
    );
    std::fs::write(dir.join("pipeline.toml"), toml).unwrap();
    Config::load(&dir.join("pipeline.toml")).unwrap().pipelines["forward"].clone()
}

/// Runs the pipeline over the inputs; returns outputs and dead letters by key.
async fn run(topics: &MockTopics, decode: &str, operator: (&str, &str), kept: usize, dead: usize) -> (Vec<Read>, BTreeMap<String, Read>) {
    let (output, dlq) = (random_topic("out"), random_topic("dlq"));
    topics.create_topic(&output, 2);
    topics.create_topic(&dlq, 1);
    let dir = tempfile::tempdir().unwrap();
    let handle = weir::pipeline::start("forward", config(topics, dir.path(), &output, &dlq, decode, operator), super::pipeline::engine()).unwrap();
    let outputs = read_all(&topics.bootstrap, &output, kept, Duration::from_millis(500), Duration::from_secs(60)).await;
    let letters = read_all(&topics.bootstrap, &dlq, dead, Duration::from_millis(500), Duration::from_secs(60)).await;
    handle.shutdown();
    handle.join().await.unwrap();
    (outputs, by_key(letters))
}

fn by_key(reads: Vec<Read>) -> BTreeMap<String, Read> {
    reads.into_iter().map(|r| (r.key_str(), r)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_chains_forward_records_byte_for_byte_and_decode_only_what_they_read() {
    let topics = MockTopics::new();
    let records = inputs();
    produce(&topics.bootstrap, &topics.input, &records).await;
    let originals: BTreeMap<&str, &[u8]> = records.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    let kind = |i: usize| i % 10;
    let expect = |read_mode: bool| -> (Vec<String>, Vec<String>) {
        let mut kept = Vec::new();
        let mut dead = Vec::new();
        for (i, (id, _)) in records.iter().enumerate() {
            match kind(i) {
                1 => {}
                2 | 3 => dead.push(id.clone()),
                4 if !read_mode => dead.push(id.clone()),
                _ => kept.push(id.clone()),
            }
        }
        (kept, dead)
    };

    for (decode, read_mode) in [("schema", false), ("read", true)] {
        let (kept, dead) = expect(read_mode);
        let (outputs, letters) = run(&topics, decode, (guests::HIGH_VALUE_ORDERS, "{ threshold = 100.0 }"), kept.len(), dead.len()).await;
        let outputs = by_key(outputs);
        assert_eq!(outputs.keys().cloned().collect::<Vec<_>>(), kept, "decode = {decode}: kept records");
        assert_eq!(letters.keys().cloned().collect::<Vec<_>>(), dead, "decode = {decode}: dead letters");
        for (id, read) in &outputs {
            assert_eq!(read.value.as_deref(), Some(originals[id.as_str()]), "decode = {decode}: {id} forwarded byte for byte");
            assert_eq!(read.header("trace-id"), format!("t-{id}"), "headers carried over");
        }
        for (id, letter) in &letters {
            assert_eq!(letter.header("weir.error.kind"), "decode", "{id}");
        }
    }
}

/// A chain ending in an aggregate needs no whole rows either: with
/// `decode = "read"` only its key and value columns are decoded, so a record
/// whose other fields break the schema is counted instead of dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregate_chain_with_decode_read_folds_records_whose_unread_fields_break_the_schema() {
    let topics = MockTopics::new();
    let records = inputs();
    produce(&topics.bootstrap, &topics.input, &records).await;
    let count_by_key = (guests::COUNT_BY_KEY, r#"{ key = "order_id", value = "total_amount" }"#);
    for (decode, read_mode) in [("schema", false), ("read", true)] {
        let expected: Vec<&str> = records
            .iter()
            .enumerate()
            .filter(|(i, _)| !matches!(i % 10, 2 | 3) && (read_mode || i % 10 != 4))
            .map(|(_, (id, _))| id.as_str())
            .collect();
        let dead = records.len() - expected.len();
        // One output row per key (each order id once).
        let (outputs, letters) = run(&topics, decode, count_by_key, expected.len(), dead).await;
        let mut counted: Vec<String> = outputs
            .iter()
            .map(|r| {
                let row: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
                assert_eq!(row["count"], 1, "{row}");
                row["key"].as_str().unwrap().to_owned()
            })
            .collect();
        counted.sort();
        assert_eq!(counted, expected, "decode = {decode}: folded records");
        assert_eq!(letters.len(), dead, "decode = {decode}: dead letters");
    }
}

/// With `decode = "read"` a map's output is the source record with the
/// map's fields appended (unread fields are never decoded, so they cannot be
/// re-encoded); a map returning a field the schema also has halts the
/// pipeline with a message naming it, and nothing is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_chain_with_decode_read_appends_its_fields_to_the_source_record() {
    let topics = MockTopics::new();
    let records: Vec<(String, Vec<u8>)> = inputs().into_iter().enumerate().filter(|(i, _)| !matches!(i % 10, 2 | 3)).map(|(_, r)| r).collect();
    produce(&topics.bootstrap, &topics.input, &records).await;
    let enrich = (guests::ENRICH_ORDER, "{ tax_rate = 0.5 }");
    let (outputs, letters) = run(&topics, "read", enrich, records.len(), 0).await;
    assert!(letters.is_empty(), "no dead letters: {:?}", letters.keys());
    let outputs = by_key(outputs);
    assert_eq!(outputs.len(), records.len());
    for (id, original) in &records {
        let value = outputs[id].value.as_deref().unwrap();
        let text = std::str::from_utf8(value).unwrap();
        let original = std::str::from_utf8(original).unwrap();
        let close = original.rfind('}').unwrap();
        assert!(text.starts_with(&original[..close]), "{id}: the source bytes come first: {text}");
        let row: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{id}: {e}: {text}"));
        let source: serde_json::Value = serde_json::from_str(original).unwrap();
        let amount = source["total_amount"].as_f64().unwrap();
        assert_eq!(row["amount_bucket"], (amount / 100.0).floor() as i64, "{text}");
        assert_eq!(row["tax_amount"].as_f64().unwrap(), amount * 0.5, "{text}");
        for (field, value) in source.as_object().unwrap() {
            assert_eq!(&row[field], value, "{id}: {field} kept");
        }
    }

    // The schema also has tax_amount: splicing would leave two.
    let (output, dlq) = (random_topic("out"), random_topic("dlq"));
    topics.create_topic(&output, 2);
    topics.create_topic(&dlq, 1);
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&topics, dir.path(), &output, &dlq, "read", enrich);
    std::fs::write(dir.path().join("orders.schema.json"), SCHEMA.replace(r#"{"name":"total_amount","type":"float64"}"#, r#"{"name":"total_amount","type":"float64"},{"name":"tax_amount","type":"float64"}"#)).unwrap();
    if let weir::config::FormatConfig::Json { schema, .. } = &mut config.format {
        *schema = dir.path().join("orders.schema.json");
    }
    let handle = weir::pipeline::start("forward", config, super::pipeline::engine()).unwrap();
    let error = tokio::time::timeout(Duration::from_secs(60), handle.join()).await.expect("the pipeline halts").unwrap_err().to_string();
    assert!(error.contains("`tax_amount`") && error.contains("decode = \"schema\""), "{error}");
    assert!(read_all(&topics.bootstrap, &output, 0, Duration::from_secs(1), Duration::from_secs(1)).await.is_empty(), "nothing produced");
}
