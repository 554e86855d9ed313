//! `weir run` as a process against a real broker process (tansu, installed by
//! `scripts/setup`): poison records, SIGTERM drain, kill -9 and restart, two
//! processes in one consumer group. Every input record must end in exactly
//! one of output, filtered or dead letters (duplicates allowed after a crash,
//! never losses).

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use weir_tests::broker::Tansu;
use weir_tests::guests;

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

async fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let new: Vec<NewTopic> = topics.iter().map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1))).collect();
    for result in admin.create_topics(&new, &AdminOptions::new()).await.unwrap() {
        result.unwrap();
    }
}

/// Inputs: valid orders (half above the threshold), malformed JSON, a schema
/// misfit, a negative amount (rejected by enrich), a panic and one record
/// that makes the misbehaving map loop forever.
fn inputs(n: usize) -> (Vec<(String, String)>, BTreeMap<String, &'static str>) {
    let mut records = Vec::new();
    let mut fate = BTreeMap::new();
    for i in 0..n {
        let id = format!("o-{i:05}");
        let (value, expected) = match i % 50 {
            7 => (format!(r#"{{"order_id":"{id}","total_amount":"#), "decode"),
            19 => (format!(r#"{{"order_id":"{id}","total_amount":-1.0}}"#), "rejected"),
            31 => (format!(r#"{{"order_id":"{id}","total_amount":900.0,"action":"panic"}}"#), "panic"),
            43 => (format!(r#"{{"order_id":"{id}","total_amount":"a lot"}}"#), "decode"),
            _ if i == 77 => (format!(r#"{{"order_id":"{id}","total_amount":900.0,"action":"loop"}}"#), "deadline"),
            _ if i % 2 == 0 => (format!(r#"{{"order_id":"{id}","total_amount":{}.5}}"#, 100 + i), "output"),
            _ => (format!(r#"{{"order_id":"{id}","total_amount":{}.5}}"#, i % 50), "filtered"),
        };
        records.push((id.clone(), value));
        fate.insert(id, expected);
    }
    (records, fate)
}

async fn produce(bootstrap: &str, topic: &str, records: &[(String, String)]) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("acks", "all").create().unwrap();
    let sends = records.iter().map(|(k, v)| producer.send(FutureRecord::to(topic).key(k).payload(v), Duration::from_secs(10)));
    for result in futures::future::join_all(sends).await {
        result.expect("produce");
    }
}

/// Keys read from a topic from the beginning, until `expected` distinct keys
/// were seen and nothing new came for `settle`, or `timeout`.
async fn read_keys(bootstrap: &str, topic: &str, expected: usize, timeout: Duration) -> Vec<(String, BTreeMap<String, String>)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "2000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let mut distinct = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let wait = if distinct.len() >= expected { Duration::from_secs(1) } else { deadline.saturating_duration_since(tokio::time::Instant::now()) };
        match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(Ok(m)) => {
                let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                let headers = m
                    .headers()
                    .map(|h| {
                        use rdkafka::message::Headers;
                        h.iter().map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect()
                    })
                    .unwrap_or_default();
                distinct.insert(key.clone());
                out.push((key, headers));
            }
            Ok(Err(e)) => panic!("reading {topic}: {e}"),
            Err(_) => return out,
        }
    }
}

struct Setup {
    dir: tempfile::TempDir,
    input: String,
    output: String,
    dlq: String,
    group: String,
}

fn write_config(broker: &Tansu, setup: &Setup) -> std::path::PathBuf {
    std::fs::write(
        setup.dir.path().join("schema.json"),
        r#"{"fields":[{"name":"order_id","type":"utf8","nullable":false},{"name":"total_amount","type":"float64"},{"name":"action","type":"utf8"}]}"#,
    )
    .unwrap();
    let config = format!(
        r#"
        [engine.limits]
        call_deadline_ms = 500
        [pipelines.orders.source]
        bootstrap_servers = "{bootstrap}"
        group_id = "{group}"
        topics = ["{input}"]
        properties = {{ "session.timeout.ms" = "2000", "heartbeat.interval.ms" = "500" }}
        [pipelines.orders.format]
        type = "json"
        schema = "schema.json"
        [pipelines.orders.batch]
        max_records = 50
        max_wait_ms = 20
        [[pipelines.orders.operators]]
        plugin = "{enrich}"
        name = "enrich"
        [[pipelines.orders.operators]]
        plugin = "{filter}"
        config = {{ threshold = 100.0 }}
        [[pipelines.orders.operators]]
        plugin = "{misbehave}"
        name = "misbehave"
        [pipelines.orders.output]
        topic = "{output}"
        key_column = "order_id"
        [pipelines.orders.errors]
        dead_letter_topic = "{dlq}"
        "#,
        bootstrap = broker.bootstrap(),
        group = setup.group,
        input = setup.input,
        output = setup.output,
        dlq = setup.dlq,
        enrich = guests::ENRICH_ORDER,
        filter = guests::HIGH_VALUE_ORDERS,
        misbehave = guests::MISBEHAVE,
    );
    let path = setup.dir.path().join("pipeline.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn weir_run(config: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    weir()
        .args(["run", "--config"])
        .arg(config)
        .env("WEIR_CACHE_DIR", std::env::temp_dir().join("weir-broker-test-cache"))
        .env("WEIR_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "weir did not exit in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn setup(broker: &Tansu) -> Setup {
    let setup = Setup {
        dir: tempfile::tempdir().unwrap(),
        input: unique("orders"),
        output: unique("enriched"),
        dlq: unique("dlq"),
        group: unique("weir"),
    };
    create_topics(broker.bootstrap(), &[(&setup.input, 2), (&setup.output, 2), (&setup.dlq, 1)]).await;
    setup
}

/// Checks every record is in exactly its expected place; returns duplicates.
fn check(fate: &BTreeMap<String, &'static str>, outputs: &[(String, BTreeMap<String, String>)], dead: &[(String, BTreeMap<String, String>)]) -> usize {
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut duplicates = 0;
    for (key, _) in outputs {
        if !seen.entry(key.clone()).or_default().insert("output".into()) {
            duplicates += 1;
        }
    }
    for (key, headers) in dead {
        assert_eq!(headers.get("weir.source.topic").map(String::is_empty), Some(false), "{key}: {headers:?}");
        let kind = headers.get("weir.error.kind").cloned().unwrap_or_default();
        if !seen.entry(key.clone()).or_default().insert(kind) {
            duplicates += 1;
        }
    }
    for (key, expected) in fate {
        let places = seen.get(key).cloned().unwrap_or_default();
        if *expected == "filtered" {
            assert!(places.is_empty(), "{key} should be filtered, found in {places:?}");
        } else {
            assert_eq!(places, BTreeSet::from([expected.to_string()]), "{key}");
        }
    }
    duplicates
}

async fn committed_total(bootstrap: &str, group: &str, topic: &str) -> i64 {
    let consumer: StreamConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", group).create().unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..2 {
        list.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
    let total = committed.elements().iter().map(|e| if let Offset::Offset(o) = e.offset() { o } else { 0 }).sum();
    // The list must go before the consumer (a librdkafka teardown hang seen with tansu).
    drop(committed);
    total
}

fn expected_counts(fate: &BTreeMap<String, &'static str>) -> (usize, usize) {
    (fate.values().filter(|f| **f == "output").count(), fate.values().filter(|f| **f != "output" && **f != "filtered").count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_on_a_real_broker_and_sigterm_drains_and_commits() {
    let broker = Tansu::start();
    let setup = setup(&broker).await;
    let (records, fate) = inputs(600);
    produce(broker.bootstrap(), &setup.input, &records).await;
    let config = write_config(&broker, &setup);
    let log = setup.dir.path().join("weir.log");
    let mut weir = weir_run(&config, &log);

    let (want_out, want_dead) = expected_counts(&fate);
    let outputs = read_keys(broker.bootstrap(), &setup.output, want_out, Duration::from_secs(90)).await;
    let dead = read_keys(broker.bootstrap(), &setup.dlq, want_dead, Duration::from_secs(60)).await;
    signal(&weir, libc::SIGTERM);
    let status = wait_exit(&mut weir, Duration::from_secs(30));
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "weir exited with {status}: {log_text}");
    assert!(log_text.contains("drained and committed"), "{log_text}");
    assert_eq!(check(&fate, &outputs, &dead), 0, "a clean run has no duplicates");
    assert_eq!(committed_total(broker.bootstrap(), &setup.group, &setup.input).await, records.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_then_restart_loses_nothing() {
    let broker = Tansu::start();
    let setup = setup(&broker).await;
    let (records, fate) = inputs(1500);
    produce(broker.bootstrap(), &setup.input, &records).await;
    let config = write_config(&broker, &setup);
    let mut first = weir_run(&config, &setup.dir.path().join("first.log"));
    // Kill it once it has produced part of the output.
    let (want_out, want_dead) = expected_counts(&fate);
    let partial = read_keys(broker.bootstrap(), &setup.output, want_out / 4, Duration::from_secs(60)).await;
    assert!(!partial.is_empty());
    signal(&first, libc::SIGKILL);
    wait_exit(&mut first, Duration::from_secs(10));

    let mut second = weir_run(&config, &setup.dir.path().join("second.log"));
    let outputs = read_keys(broker.bootstrap(), &setup.output, want_out, Duration::from_secs(120)).await;
    let dead = read_keys(broker.bootstrap(), &setup.dlq, want_dead, Duration::from_secs(60)).await;
    signal(&second, libc::SIGTERM);
    assert!(wait_exit(&mut second, Duration::from_secs(30)).success());
    let duplicates = check(&fate, &outputs, &dead);
    eprintln!("kill -9: {duplicates} duplicate record(s) after restart (at-least-once)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_in_one_group_share_the_partitions() {
    let broker = Tansu::start();
    let setup = setup(&broker).await;
    let config = write_config(&broker, &setup);
    let (logs_a, logs_b) = (setup.dir.path().join("a.log"), setup.dir.path().join("b.log"));
    let mut a = weir_run(&config, &logs_a);
    let mut b = weir_run(&config, &logs_b);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (records, fate) = inputs(1000);
    produce(broker.bootstrap(), &setup.input, &records).await;
    let (want_out, want_dead) = expected_counts(&fate);
    let outputs = read_keys(broker.bootstrap(), &setup.output, want_out, Duration::from_secs(120)).await;
    let dead = read_keys(broker.bootstrap(), &setup.dlq, want_dead, Duration::from_secs(60)).await;
    signal(&a, libc::SIGTERM);
    signal(&b, libc::SIGTERM);
    assert!(wait_exit(&mut a, Duration::from_secs(30)).success());
    assert!(wait_exit(&mut b, Duration::from_secs(30)).success());
    let duplicates = check(&fate, &outputs, &dead);
    let (log_a, log_b) = (std::fs::read_to_string(&logs_a).unwrap(), std::fs::read_to_string(&logs_b).unwrap());
    let got_one = |log: &str| log.lines().any(|l| l.contains("partitions assigned") && l.contains("partitions=1"));
    assert!(got_one(&log_a) && got_one(&log_b), "each process got one of the two partitions:\n{log_a}\n{log_b}");
    eprintln!("two processes: {duplicates} duplicate record(s)");
}

fn reset(bootstrap: &str, group: &str, topic: &str, target: &[&str]) -> std::process::Output {
    weir()
        .args(["offsets", "reset", "--bootstrap-servers", bootstrap, "--group", group, "--topic", topic])
        .args(target)
        .output()
        .unwrap()
}

fn weir() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command.env_remove("RUST_BACKTRACE");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_reset_rewinds_a_stopped_group_for_reprocessing() {
    let broker = Tansu::start();
    let setup = setup(&broker).await;
    let (records, fate) = inputs(200);
    produce(broker.bootstrap(), &setup.input, &records).await;
    let config = write_config(&broker, &setup);
    let mut weir_process = weir_run(&config, &setup.dir.path().join("weir.log"));
    let (want_out, _) = expected_counts(&fate);
    read_keys(broker.bootstrap(), &setup.output, want_out, Duration::from_secs(60)).await;
    signal(&weir_process, libc::SIGTERM);
    assert!(wait_exit(&mut weir_process, Duration::from_secs(30)).success());
    let bootstrap = broker.bootstrap().to_owned();
    assert_eq!(committed_total(&bootstrap, &setup.group, &setup.input).await, records.len() as i64);

    // The member left; the group may need its session to expire before a reset is allowed.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = reset(&bootstrap, &setup.group, &setup.input, &["--to-earliest"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() || !stderr.contains("active members") || std::time::Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2, "one line per partition");
    assert_eq!(committed_total(&bootstrap, &setup.group, &setup.input).await, 0, "everything will be reprocessed");

    let out = reset(&bootstrap, &setup.group, &setup.input, &["--to-datetime", "2999-01-01T00:00:00Z"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = reset(&bootstrap, &setup.group, &setup.input, &["--to-datetime", "yesterday"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
    let out = reset(&bootstrap, &setup.group, "no-such-topic", &["--to-latest"]);
    assert!(!out.status.success());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `weir run` with the admin API and a data dir.
fn weir_run_admin(config: &Path, log: &Path, port: u16, data_dir: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    weir()
        .args(["run", "--config"])
        .arg(config)
        .args(["--admin-listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .env("WEIR_ADMIN_TOKEN", "cli-secret")
        .env("WEIR_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// A client command against the admin API on `port`; returns stdout, panics on failure.
fn client(port: u16, args: &[&str]) -> String {
    let output = weir().args(args).env("WEIR_ADMIN_URL", format!("http://127.0.0.1:{port}")).env("WEIR_ADMIN_TOKEN", "cli-secret").output().unwrap();
    assert!(output.status.success(), "weir {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn wait_for_admin(port: u16, log: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "admin API did not come up: {}", std::fs::read_to_string(log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_export_reproduce_push_fix_redrive_and_restart_on_the_pushed_version() {
    let broker = Tansu::start();
    let setup = setup(&broker).await;
    let (records, fate) = inputs(200);
    produce(broker.bootstrap(), &setup.input, &records).await;
    let config = write_config(&broker, &setup);
    let data_dir = setup.dir.path().join("data");
    let log = setup.dir.path().join("weir.log");
    let port = free_port();
    let mut process = weir_run_admin(&config, &log, port, &data_dir);
    wait_for_admin(port, &log);
    let (want_out, want_dead) = expected_counts(&fate);
    read_keys(broker.bootstrap(), &setup.output, want_out, Duration::from_secs(90)).await;
    read_keys(broker.bootstrap(), &setup.dlq, want_dead, Duration::from_secs(60)).await;

    // Export the dead letters and reproduce the panic locally with `weir exec`.
    let export = client(port, &["dlq", "export", "orders"]);
    assert_eq!(export.lines().count(), want_dead, "{export}");
    let exported = setup.dir.path().join("dead.jsonl");
    let panics: String = export.lines().filter(|l| l.contains(r#""weir.error.kind":"panic""#)).map(|l| format!("{l}\n")).collect();
    assert!(!panics.is_empty());
    std::fs::write(&exported, panics).unwrap();
    let reproduced = weir()
        .args(["exec", "--plugin", guests::MISBEHAVE, "--schema"])
        .arg(setup.dir.path().join("schema.json"))
        .arg("--input")
        .arg(&exported)
        .output()
        .unwrap();
    assert!(!reproduced.status.success());
    assert!(String::from_utf8_lossy(&reproduced.stderr).contains("poison record"), "{}", String::from_utf8_lossy(&reproduced.stderr));

    // Push the fix (a map that does not misbehave) and redrive.
    let pushed = client(port, &["plugin", "push", "misbehave", guests::IDENTITY]);
    assert!(pushed.contains("misbehave: v2 live"), "{pushed}");
    let fixed = fate.values().filter(|f| matches!(**f, "panic" | "deadline")).count();
    let redrive = client(port, &["dlq", "redrive", "orders"]);
    assert!(redrive.contains(&format!("read {want_dead}, delivered {fixed}")), "{redrive}");
    let outputs = read_keys(broker.bootstrap(), &setup.output, want_out + fixed, Duration::from_secs(60)).await;
    assert_eq!(outputs.iter().map(|(k, _)| k).collect::<BTreeSet<_>>().len(), want_out + fixed);
    let list = client(port, &["plugin", "list"]);
    assert!(list.lines().any(|l| l.starts_with("misbehave") && l.contains("v2")), "{list}");
    let status = client(port, &["pipeline", "status", "orders"]);
    assert!(status.contains(r#""misbehave": "v2""#), "{status}");
    signal(&process, libc::SIGTERM);
    assert!(wait_exit(&mut process, Duration::from_secs(30)).success());

    // Restart with the data dir: the pipeline runs v2 again.
    let mut process = weir_run_admin(&config, &log, port, &data_dir);
    wait_for_admin(port, &log);
    let pipelines = client(port, &["pipeline", "list"]);
    assert!(pipelines.contains("misbehave@v2"), "{pipelines}");
    signal(&process, libc::SIGTERM);
    assert!(wait_exit(&mut process, Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_on_tansu_commits_and_a_second_instance_with_the_same_id_fences_the_first() {
    let broker = Tansu::start();
    let setup = setup(&broker).await;
    let clean: Vec<(String, String)> =
        (0..300).map(|i| (format!("o-{i:05}"), format!(r#"{{"order_id":"o-{i:05}","total_amount":{}.5}}"#, 100 + i))).collect();
    produce(broker.bootstrap(), &setup.input, &clean).await;
    let config = write_config(&broker, &setup);
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[pipelines.orders.source]",
        "[pipelines.orders]\n        guarantee = \"exactly-once\"\n        exactly_once = { instance_id = \"same\" }\n        [pipelines.orders.source]",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let (log_a, log_b) = (setup.dir.path().join("a.log"), setup.dir.path().join("b.log"));
    let mut first = weir_run(&config, &log_a);
    let outputs = read_keys(broker.bootstrap(), &setup.output, 300, Duration::from_secs(90)).await;
    assert_eq!(outputs.iter().map(|(k, _)| k).collect::<BTreeSet<_>>().len(), 300, "{}", std::fs::read_to_string(&log_a).unwrap());
    assert_eq!(committed_total(broker.bootstrap(), &setup.group, &setup.input).await, 300, "offsets committed in the transactions");

    // A second process with the same instance id: its init_transactions fences the first.
    let mut second = weir_run(&config, &log_b);
    // tansu sometimes answers the fenced producer by dropping the coordinator
    // connection: weir then halts after its transaction resumes time out (3 x 30 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    let mut next = 300;
    while first.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "the fenced process kept running: {}", std::fs::read_to_string(&log_a).unwrap());
        let more: Vec<(String, String)> = (next..next + 20).map(|i| (format!("o-{i:05}"), format!(r#"{{"order_id":"o-{i:05}","total_amount":500.5}}"#))).collect();
        produce(broker.bootstrap(), &setup.input, &more).await;
        next += 20;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = first.wait().unwrap();
    let log = std::fs::read_to_string(&log_a).unwrap();
    assert!(!status.success(), "{log}");
    assert!(log.to_lowercase().contains("fenced"), "{log}");
    signal(&second, libc::SIGTERM);
    wait_exit(&mut second, Duration::from_secs(30));
}
