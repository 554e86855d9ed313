//! Through a Kafka pipeline (librdkafka's mock cluster).

use super::*;

/// The operators of the filter/map chain: `enrich-order` -> `high-value-orders`.
fn enrich_then_filter(enrich: &std::path::Path, filter: &std::path::Path) -> String {
    format!(
        r#"
        [[pipelines.p.operators]]
        plugin = {enrich:?}
        name = "enrich"
        config = {{ tax_rate = 0.2 }}
        [[pipelines.p.operators]]
        plugin = {filter:?}
        name = "high-value"
        config = {{ threshold = 500.0 }}
        "#
    )
}

/// Every record of `topic` from the start: the first record waits for the
/// group join, then 1 s of quiet ends the read.
pub(super) async fn read_topic(bootstrap: String, topic: String) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("reader-{topic}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut records = Vec::new();
    let mut wait = Duration::from_secs(15);
    while let Ok(Ok(message)) = tokio::time::timeout(wait, consumer.recv()).await {
        records.push(message.detach());
        wait = Duration::from_secs(1);
    }
    records
}

/// Runs `operators` (TOML) over `inputs` orders in a pipeline; returns the
/// output records (key, JSON value) in topic order and the dead letters
/// (order id -> error kind).
async fn run_chain(
    cluster: &rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    input: &str,
    label: &str,
    operators: &str,
    key_column: &str,
    inputs: usize,
) -> (Vec<(String, serde_json::Value)>, std::collections::BTreeMap<String, String>) {
    use rdkafka::Message;
    let bootstrap = cluster.bootstrap_servers();
    let (output, dlq) = (format!("out-{label}"), format!("dlq-{label}"));
    cluster.create_topic(&output, 1, 1).unwrap();
    cluster.create_topic(&dlq, 1, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schema.json"),
        r#"{"fields":[{"name":"order_id","type":"utf8","nullable":false},{"name":"customer_id","type":"utf8"},{"name":"total_amount","type":"float64"},{"name":"quantity","type":"int32"}]}"#,
    )
    .unwrap();
    // No key column: the chain ends in a sink, no output topic.
    let output_section = if key_column.is_empty() {
        String::new()
    } else {
        format!("[pipelines.p.output]\n        topic = \"{output}\"\n        key_column = \"{key_column}\"")
    };
    let toml = format!(
        r#"
        [pipelines.p.source]
        bootstrap_servers = "{bootstrap}"
        group_id = "group-{label}"
        topics = ["{input}"]
        [pipelines.p.format]
        type = "json"
        schema = "schema.json"
        [pipelines.p.batch]
        max_records = 64
        max_wait_ms = 20
        {operators}
        {output_section}
        [pipelines.p.errors]
        dead_letter_topic = "{dlq}"
        "#
    );
    std::fs::write(dir.path().join("p.toml"), toml).unwrap();
    let config = weir::config::Config::load(&dir.path().join("p.toml")).unwrap().pipelines["p"].clone();
    let handle = weir::pipeline::start("p", config, engine().clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while handle.stats().snapshot().committed.values().sum::<i64>() < inputs as i64 {
        assert!(Instant::now() < deadline && !handle.is_finished(), "{label}: {:?}", handle.stats().snapshot().state);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let counts = handle.stats().snapshot();
    handle.shutdown();
    handle.join().await.unwrap();

    let read = |topic: String| read_topic(bootstrap.clone(), topic);
    // Topics known to be empty are not read (a read waits 15 s for a first record).
    let outputs = if key_column.is_empty() || counts.records_out == 0 { Vec::new() } else { read(output).await }
        .iter()
        .map(|m| (String::from_utf8_lossy(m.key().unwrap()).into_owned(), serde_json::from_slice(m.payload().unwrap()).unwrap()))
        .collect();
    let dead = if counts.records_dead_lettered == 0 { Vec::new() } else { read(dlq).await }
        .iter()
        .map(|m| {
            use rdkafka::message::Headers;
            let kind = m.headers().and_then(|h| h.iter().find(|h| h.key == "weir.error.kind")).and_then(|h| h.value).unwrap_or_default();
            (String::from_utf8_lossy(m.key().unwrap()).into_owned(), String::from_utf8_lossy(kind).into_owned())
        })
        .collect();
    (outputs, dead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polyglot_chains_in_a_kafka_pipeline_deliver_what_the_rust_chain_delivers() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let input = "orders";
    cluster.create_topic(input, 2, 1).unwrap();
    let n = 300;
    let producer: FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", cluster.bootstrap_servers()).create().unwrap();
    let values: Vec<(String, String)> = (0..n)
        .map(|i| {
            let amount = match i % 10 {
                3 => "null".to_owned(),
                7 => format!("-{i}.5"),
                _ => format!("{}.25", i * 37 % 1500),
            };
            (format!("o-{i:04}"), format!(r#"{{"order_id":"o-{i:04}","customer_id":"c-{}","total_amount":{amount},"quantity":{}}}"#, i % 7, i % 9))
        })
        .collect();
    for result in futures::future::join_all(values.iter().map(|(k, v)| producer.send(FutureRecord::to(input).key(k).payload(v), Duration::from_secs(10)))).await {
        result.unwrap();
    }
    let chain = |enrich: &std::path::Path, filter: &std::path::Path| enrich_then_filter(enrich, filter);
    let keyed = |(outputs, dead): (Vec<(String, serde_json::Value)>, std::collections::BTreeMap<String, String>)| {
        (outputs.into_iter().collect::<std::collections::BTreeMap<_, _>>(), dead)
    };
    let rust = keyed(run_chain(&cluster, input, "rust", &chain(std::path::Path::new(guests::ENRICH_ORDER), std::path::Path::new(guests::HIGH_VALUE_ORDERS)), "order_id", n).await);
    assert!(!rust.0.is_empty() && rust.1.values().all(|k| k == "rejected") && !rust.1.is_empty(), "{:?}", rust.1);
    let chains = [
        ("python", polyglot("python-enrich-order"), polyglot("python-high-value-orders")),
        ("js", polyglot("js-enrich-order"), polyglot("js-high-value-orders")),
        ("c", c_component("enrich-order"), c_component("high-value-orders")),
        ("go", go_component("enrich-order"), go_component("high-value-orders")),
    ];
    for (label, enrich, filter) in chains {
        let got = keyed(run_chain(&cluster, input, label, &chain(&enrich, &filter), "order_id", n).await);
        assert_eq!(got.0, rust.0, "{label}: output records");
        assert_eq!(got.1, rust.1, "{label}: dead letters");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polyglot_aggregates_in_a_kafka_pipeline_reach_the_rust_totals() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let input = "orders";
    cluster.create_topic(input, 2, 1).unwrap();
    let n = 200;
    let producer: FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", cluster.bootstrap_servers()).create().unwrap();
    let values: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"order_id":"o-{i:04}","customer_id":"c-{}","total_amount":{}.5,"quantity":1}}"#, i % 7, i % 40))
        .collect();
    for result in futures::future::join_all(values.iter().map(|v| producer.send(FutureRecord::<(), _>::to(input).payload(v), Duration::from_secs(10)))).await {
        result.unwrap();
    }
    let operators = |path: &std::path::Path| {
        format!("[[pipelines.p.operators]]\n        plugin = {path:?}\n        name = \"count\"\n        config = {{ key = \"customer_id\", value = \"total_amount\" }}")
    };
    // Running totals are emitted per batch, and batches differ between runs:
    // compare the final total of each key (its largest count).
    let finals = |outputs: Vec<(String, serde_json::Value)>| {
        let mut last: std::collections::BTreeMap<String, (i64, f64)> = std::collections::BTreeMap::new();
        for (_, row) in outputs {
            let key = row["key"].as_str().unwrap().to_owned();
            let (count, sum) = (row["count"].as_i64().unwrap(), row["sum"].as_f64().unwrap());
            let entry = last.entry(key).or_insert((0, 0.0));
            if count > entry.0 {
                *entry = (count, sum);
            }
        }
        last
    };
    let rust = finals(run_chain(&cluster, input, "agg-rust", &operators(std::path::Path::new(guests::COUNT_BY_KEY)), "key", n).await.0);
    assert_eq!(rust.values().map(|(c, _)| c).sum::<i64>(), n as i64);
    for lang in LANGS.into_iter().chain(["go", "c"]) {
        let got = finals(run_chain(&cluster, input, &format!("agg-{lang}"), &operators(&polyglot(&format!("{lang}-count-by-key"))), "key", n).await.0);
        assert_eq!(got, rust, "{lang}: final totals per key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polyglot_webhook_sinks_in_a_kafka_pipeline_post_the_rust_rows() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let input = "orders";
    cluster.create_topic(input, 2, 1).unwrap();
    let n = 120;
    let producer: FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", cluster.bootstrap_servers()).create().unwrap();
    let values: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"order_id":"o-{i:04}","customer_id":"c-{}","total_amount":{}.5,"quantity":{}}}"#, i % 7, i % 40, i % 5))
        .collect();
    for result in futures::future::join_all(values.iter().map(|v| producer.send(FutureRecord::<(), _>::to(input).payload(v), Duration::from_secs(10)))).await {
        result.unwrap();
    }
    // The rows each sink posted, sorted (batching differs between runs).
    let posted = |label: &'static str, path: PathBuf| {
        let cluster = &cluster;
        async move {
            let (addr, requests) = http_server(200);
            let operators = format!(
                "[[pipelines.p.operators]]\n        plugin = {path:?}\n        name = \"alert\"\n        config = {{ url = \"http://{addr}/alerts\" }}\n        allow_hosts = [\"{addr}\"]"
            );
            let (_, dead) = run_chain(cluster, input, label, &operators, "", n).await;
            assert!(dead.is_empty(), "{label}: {dead:?}");
            let mut rows: Vec<String> = Vec::new();
            while let Ok((_, body)) = requests.try_recv() {
                let batch: serde_json::Value = serde_json::from_slice(&body).unwrap();
                rows.extend(batch.as_array().unwrap().iter().map(|r| r.to_string()));
            }
            rows.sort();
            rows
        }
    };
    let rust = posted("sink-rust", PathBuf::from(guests::WEBHOOK_ALERT)).await;
    assert_eq!(rust.len(), n);
    for (label, path) in [
        ("sink-python", polyglot("python-webhook-alert")),
        ("sink-js", polyglot("js-webhook-alert")),
        ("sink-c", c_component("webhook-alert")),
        ("sink-go", go_component("webhook-alert")),
    ] {
        assert_eq!(posted(label, path).await, rust, "{label}: posted rows");
    }
}
