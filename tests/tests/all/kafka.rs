//! Kafka helpers for scenario tests: random topic names, producing inputs,
//! reading a topic back completely.

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use std::collections::BTreeMap;
use std::time::Duration;

/// A topic name unique to this test run.
pub fn random_topic(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A record as read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: BTreeMap<String, Vec<u8>>,
    /// Every header name in order, repeats included.
    pub header_names: Vec<String>,
    pub partition: i32,
    pub offset: i64,
}

impl Read {
    pub fn header(&self, key: &str) -> String {
        String::from_utf8_lossy(self.headers.get(key).map(Vec::as_slice).unwrap_or_default()).into_owned()
    }

    pub fn key_str(&self) -> String {
        String::from_utf8_lossy(self.key.as_deref().unwrap_or_default()).into_owned()
    }
}

/// Produces `(key, value)` records, each with a `trace-id` header, and waits for acks.
pub async fn produce(bootstrap: &str, topic: &str, records: &[(String, Vec<u8>)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .create()
        .unwrap();
    let sends = records.iter().map(|(key, value)| {
        let headers = OwnedHeaders::new().insert(Header { key: "trace-id", value: Some(format!("t-{key}").as_bytes()) });
        producer.send(FutureRecord::to(topic).key(key.as_bytes()).payload(value).headers(headers), Duration::from_secs(10))
    });
    for result in futures::future::join_all(sends).await {
        result.expect("produce");
    }
}

/// Reads `topic` from the beginning until `expected` records arrived and no
/// more came for `settle` (so duplicates would be seen), or `timeout`.
pub async fn read_all(bootstrap: &str, topic: &str, expected: usize, settle: Duration, timeout: Duration) -> Vec<Read> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", random_topic("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let wait = if out.len() >= expected { settle } else { deadline.saturating_duration_since(tokio::time::Instant::now()) };
        match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(Ok(message)) => out.push(Read {
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
                headers: message
                    .headers()
                    .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec())).collect())
                    .unwrap_or_default(),
                header_names: message.headers().map(|h| h.iter().map(|h| h.key.to_owned()).collect()).unwrap_or_default(),
                partition: message.partition(),
                offset: message.offset(),
            }),
            Ok(Err(error)) => panic!("reading {topic}: {error}"),
            Err(_) => return out,
        }
    }
}

/// A one-broker mock cluster with input and output topics (2 partitions)
/// and a dead-letter topic (1). After a failed assertion the cluster is
/// leaked instead of dropped: dropping it under live clients blocks, which
/// would hide the failure behind a hang.
pub struct MockTopics {
    cluster: Option<rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>>,
    /// Bootstrap servers.
    pub bootstrap: String,
    /// Input topic.
    pub input: String,
    /// Output topic.
    pub output: String,
    /// Dead-letter topic.
    pub dlq: String,
}

impl MockTopics {
    pub fn new() -> MockTopics {
        let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
        let bootstrap = cluster.bootstrap_servers();
        let (input, output, dlq) = (random_topic("in"), random_topic("out"), random_topic("dlq"));
        cluster.create_topic(&input, 2, 1).unwrap();
        cluster.create_topic(&output, 2, 1).unwrap();
        cluster.create_topic(&dlq, 1, 1).unwrap();
        MockTopics { cluster: Some(cluster), bootstrap, input, output, dlq }
    }
}

impl MockTopics {
    /// Creates another topic on the cluster.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.cluster.as_ref().expect("cluster").create_topic(name, partitions, 1).unwrap();
    }
}

impl Drop for MockTopics {
    fn drop(&mut self) {
        if std::thread::panicking() {
            std::mem::forget(self.cluster.take());
        }
    }
}
