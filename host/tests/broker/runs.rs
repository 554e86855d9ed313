//! At-least-once `weir run` processes on the shared broker: poison records,
//! SIGTERM drain, kill -9 and restart, two processes in one consumer group,
//! offsets reset, and the dead-letter workflow through the admin CLI. Every
//! input record must end in exactly one of output, filtered or dead letters
//! (duplicates allowed after a crash, never losses).

use super::support::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use weir_tests::broker::Kafka;
use weir_tests::guests;
use weir_tests::process::Guarded;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_on_a_real_broker_and_sigterm_drains_and_commits() {
    let kafka = Kafka::shared();
    let setup = setup(kafka, 2).await;
    let (records, fates) = orders(0..600, 50);
    produce(kafka.bootstrap(), &setup.input, &records).await;
    let config = write_config(kafka.bootstrap(), &setup, "", CLASSIC);
    let log = setup.dir.path().join("weir.log");
    let collector = Collector::start(kafka.bootstrap(), &[&setup.output, &setup.dlq]);
    let mut weir = weir_run(&config, &log);

    let (want_out, want_dead) = expected_counts(&fates);
    let seen = collector.wait_for(want_out + want_dead, Duration::from_secs(1), Duration::from_secs(90), || std::fs::read_to_string(&log).unwrap()).await;
    stop(&mut weir, &log);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("drained and committed"), "{log_text}");
    assert_eq!(check(&fates, &seen, &setup.output), 0, "a clean run has no duplicates");
    assert_eq!(committed_total(kafka.bootstrap(), &setup.group, &setup.input, 2).await, records.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_then_restart_loses_nothing() {
    let kafka = Kafka::shared();
    let setup = setup(kafka, 2).await;
    let (records, fates) = orders(0..1500, 50);
    produce(kafka.bootstrap(), &setup.input, &records).await;
    let config = write_config(kafka.bootstrap(), &setup, "", CLASSIC);
    let collector = Collector::start(kafka.bootstrap(), &[&setup.output, &setup.dlq]);
    let first_log = setup.dir.path().join("first.log");
    let mut first = weir_run(&config, &first_log);
    // Kill it once it has produced part of the output.
    let (want_out, want_dead) = expected_counts(&fates);
    kill_after(&mut first, &collector, 0, want_out / 4, Duration::from_secs(60), &first_log).await;

    let log = setup.dir.path().join("second.log");
    let mut second = weir_run(&config, &log);
    let seen = collector.wait_for(want_out + want_dead, Duration::from_secs(1), Duration::from_secs(120), || std::fs::read_to_string(&log).unwrap()).await;
    stop(&mut second, &log);
    let duplicates = check(&fates, &seen, &setup.output);
    eprintln!("kill -9: {duplicates} duplicate record(s) after restart (at-least-once)");
}

/// Waits until `log` says the process got partitions.
fn wait_assigned(log: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if assignments(log) > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "no partitions assigned in {timeout:?}: {}", std::fs::read_to_string(log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_in_one_group_share_the_partitions() {
    let kafka = Kafka::shared();
    let setup = setup(kafka, 2).await;
    let config = write_config(kafka.bootstrap(), &setup, "", CLASSIC);
    let (logs_a, logs_b) = (setup.dir.path().join("a.log"), setup.dir.path().join("b.log"));
    let mut a = weir_run(&config, &logs_a);
    wait_assigned(&logs_a, Duration::from_secs(60));
    let mut b = weir_run(&config, &logs_b);
    wait_assigned(&logs_b, Duration::from_secs(60));
    let collector = Collector::start(kafka.bootstrap(), &[&setup.output, &setup.dlq]);
    let (records, fates) = orders(0..1000, 50);
    produce(kafka.bootstrap(), &setup.input, &records).await;
    let (want_out, want_dead) = expected_counts(&fates);
    let seen = collector.wait_for(want_out + want_dead, Duration::from_secs(1), Duration::from_secs(120), String::new).await;
    // Cooperative-sticky: A had both, gave one up; B got that one.
    let owned = |log: &Path| {
        let (assigned, revoked) = partition_moves(log);
        assigned - revoked
    };
    let (owned_a, owned_b) = (owned(&logs_a), owned(&logs_b));
    stop(&mut a, &logs_a);
    stop(&mut b, &logs_b);
    let duplicates = check(&fates, &seen, &setup.output);
    let (log_a, log_b) = (std::fs::read_to_string(&logs_a).unwrap(), std::fs::read_to_string(&logs_b).unwrap());
    assert_eq!((owned_a, owned_b), (1, 1), "each process owns one of the two partitions:\n{log_a}\n{log_b}");
    eprintln!("two processes: {duplicates} duplicate record(s)");
}

fn reset(bootstrap: &str, group: &str, topic: &str, target: &[&str]) -> std::process::Output {
    weir()
        .args(["offsets", "reset", "--bootstrap-servers", bootstrap, "--group", group, "--topic", topic])
        .args(target)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_reset_rewinds_a_stopped_group_for_reprocessing() {
    let kafka = Kafka::shared();
    let setup = setup(kafka, 2).await;
    let (records, fates) = orders(0..200, 50);
    produce(kafka.bootstrap(), &setup.input, &records).await;
    let config = write_config(kafka.bootstrap(), &setup, "", CLASSIC);
    let collector = Collector::start(kafka.bootstrap(), &[&setup.output, &setup.dlq]);
    let log = setup.dir.path().join("weir.log");
    let mut weir_process = weir_run(&config, &log);
    let (want_out, want_dead) = expected_counts(&fates);
    collector.wait_for(want_out + want_dead, Duration::from_millis(500), Duration::from_secs(60), || std::fs::read_to_string(&log).unwrap()).await;
    stop(&mut weir_process, &log);
    let bootstrap = kafka.bootstrap().to_owned();
    assert_eq!(committed_total(&bootstrap, &setup.group, &setup.input, 2).await, records.len() as i64);

    // The member left on SIGTERM; should the group still list it, retry until it is gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = reset(&bootstrap, &setup.group, &setup.input, &["--to-earliest"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() || !stderr.contains("active members") || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2, "one line per partition");
    assert_eq!(committed_total(&bootstrap, &setup.group, &setup.input, 2).await, 0, "everything will be reprocessed");

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
fn weir_run_admin(config: &Path, log: &Path, port: u16, data_dir: &Path) -> Guarded {
    let log = std::fs::File::create(log).unwrap();
    let mut command = weir();
    command
        .args(["run", "--config"])
        .arg(config)
        .args(["--admin-listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .env("WEIR_ADMIN_TOKEN", "cli-secret")
        .env("WEIR_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log);
    Guarded::spawn(command).unwrap()
}

/// A client command against the admin API on `port`; returns stdout, panics on failure.
fn client(port: u16, args: &[&str]) -> String {
    let output = weir().args(args).env("WEIR_ADMIN_URL", format!("http://127.0.0.1:{port}")).env("WEIR_ADMIN_TOKEN", "cli-secret").output().unwrap();
    assert!(output.status.success(), "weir {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn wait_for_admin(port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "admin API did not come up: {}", std::fs::read_to_string(log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_export_reproduce_push_fix_redrive_and_restart_on_the_pushed_version() {
    let kafka = Kafka::shared();
    let setup = setup(kafka, 2).await;
    let (records, fates) = orders(0..200, 50);
    produce(kafka.bootstrap(), &setup.input, &records).await;
    let config = write_config(kafka.bootstrap(), &setup, "", CLASSIC);
    let data_dir = setup.dir.path().join("data");
    let log = setup.dir.path().join("weir.log");
    let port = free_port();
    let collector = Collector::start(kafka.bootstrap(), &[&setup.output, &setup.dlq]);
    let mut process = weir_run_admin(&config, &log, port, &data_dir);
    wait_for_admin(port, &log);
    let (want_out, want_dead) = expected_counts(&fates);
    collector.wait_for(want_out + want_dead, Duration::from_millis(500), Duration::from_secs(90), || std::fs::read_to_string(&log).unwrap()).await;

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
    let fixed = fates.values().filter(|f| matches!(**f, "panic" | "deadline")).count();
    let redrive = client(port, &["dlq", "redrive", "orders"]);
    assert!(redrive.contains(&format!("read {want_dead}, delivered {fixed}")), "{redrive}");
    let seen = collector.wait_for(want_out + want_dead + fixed, Duration::from_millis(500), Duration::from_secs(60), String::new).await;
    let outputs: BTreeSet<&str> = seen.iter().filter(|s| s.topic == setup.output).map(|s| s.key.as_str()).collect();
    assert_eq!(outputs.len(), want_out + fixed);
    let list = client(port, &["plugin", "list"]);
    assert!(list.lines().any(|l| l.starts_with("misbehave") && l.contains("v2")), "{list}");
    let status = client(port, &["pipeline", "status", "orders"]);
    assert!(status.contains(r#""misbehave": "v2""#), "{status}");
    stop(&mut process, &log);

    // Restart with the data dir: the pipeline runs v2 again.
    let mut process = weir_run_admin(&config, &log, port, &data_dir);
    wait_for_admin(port, &log);
    let pipelines = client(port, &["pipeline", "list"]);
    assert!(pipelines.contains("misbehave@v2"), "{pipelines}");
    stop(&mut process, &log);
}
