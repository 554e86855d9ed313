//! The Kafka Streams peer (`bench/peers/kafka-streams`): built with Maven by
//! its `build` script into `target/peers/kafka-streams`, run here as a child
//! JVM per benchmark run. The process reports `running` and `first <epoch
//! ms>` on stdout and stops when its stdin closes; a dropped [`StreamsApp`]
//! kills it, so no JVM outlives the benchmark.

use super::{Error, Guarantee, Job};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the peer's build script puts the jar and its `lib/` classpath.
pub fn dir() -> PathBuf {
    weir_tests::repo_root().join("target/peers/kafka-streams")
}

/// Builds the peer (its `build` script; skips Maven when up to date).
pub fn build() -> Result<(), String> {
    let script = weir_tests::repo_root().join("bench/peers/kafka-streams/build");
    eprintln!("bench: building the Kafka Streams peer ({})", script.display());
    let out = Command::new("bash")
        .arg(&script)
        .env("CARGO_TARGET_DIR", weir_tests::repo_root().join("target/peers"))
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        Err(tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
    }
}

/// The Kafka Streams version the peer was built against (its kafka-streams jar).
pub fn version() -> Option<String> {
    std::fs::read_dir(dir().join("lib")).ok()?.filter_map(|e| e.ok()).find_map(|entry| {
        let name = entry.file_name().into_string().ok()?;
        Some(name.strip_prefix("kafka-streams-")?.strip_suffix(".jar")?.to_owned())
    })
}

/// What a run of the peer needs.
pub struct Args<'a> {
    /// `bootstrap.servers`.
    pub bootstrap: &'a str,
    /// Input and output topics.
    pub input: &'a str,
    /// Output topic.
    pub output: &'a str,
    /// Filter or map (the peer has no identity job).
    pub job: Job,
    /// `processing.guarantee`.
    pub guarantee: Guarantee,
    /// `application.id` (also the consumer group).
    pub application_id: &'a str,
    /// `commit.interval.ms`.
    pub commit_interval_ms: u64,
    /// `num.stream.threads`.
    pub threads: usize,
    /// Extra JVM options (the quick run starts faster with C1 only).
    pub jvm_options: &'a [&'a str],
}

/// A running peer process.
pub struct StreamsApp {
    child: Child,
    stdin: Option<ChildStdin>,
    first: Arc<OnceLock<Instant>>,
    running: Arc<AtomicBool>,
    log: PathBuf,
    _state: tempfile::TempDir,
}

impl StreamsApp {
    /// Starts the JVM (it then joins its group on its own).
    pub fn start(args: &Args) -> Result<StreamsApp, Error> {
        let workload = match args.job {
            Job::Filter => "filter",
            Job::Map => "map",
            Job::Identity => return Err("the Kafka Streams peer has no identity job".into()),
        };
        let dir = dir();
        let state = tempfile::tempdir()?;
        let logs = weir_tests::repo_root().join("target/bench-results/logs");
        std::fs::create_dir_all(&logs)?;
        let log = logs.join(format!("{}.log", args.application_id));
        let classpath = format!("{}:{}/*", dir.join("streams-peer.jar").display(), dir.join("lib").display());
        let mut child = Command::new("java")
            .args(args.jvm_options)
            .args(["-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", &classpath, "dev.weir.bench.StreamsPeer"])
            .args(["--bootstrap", args.bootstrap, "--input", args.input, "--output", args.output, "--workload", workload])
            .args(["--guarantee", args.guarantee.streams(), "--application-id", args.application_id])
            .args(["--commit-interval-ms", &args.commit_interval_ms.to_string(), "--threads", &args.threads.to_string()])
            .args(["--state-dir".as_ref(), state.path().as_os_str()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .map_err(|e| format!("starting java (Java 17+ needed for the Kafka Streams peer): {e}"))?;
        let first = Arc::new(OnceLock::new());
        let running = Arc::new(AtomicBool::new(false));
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (first_seen, running_seen) = (first.clone(), running.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "running" {
                    running_seen.store(true, Ordering::Release);
                } else if let Some(ms) = line.strip_prefix("first ").and_then(|ms| ms.parse::<u64>().ok()) {
                    // The JVM's wall clock, mapped onto this process's monotonic one.
                    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
                    let _ = first_seen.set(Instant::now() - Duration::from_millis(now_ms.saturating_sub(ms)));
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(StreamsApp { child, stdin, first, running, log, _state: state })
    }

    /// When the first input record reached the topology.
    pub fn first_record(&self) -> Option<Instant> {
        self.first.get().copied()
    }

    /// Whether the instance reached RUNNING (partitions assigned).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Why the process is gone, if it is.
    pub fn failure(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok()??;
        Some(format!("Kafka Streams peer exited ({status}); log {}:\n{}", self.log.display(), tail(&self.log)))
    }

    /// Closes its stdin (a clean `KafkaStreams.close`) and waits for the exit.
    pub async fn stop(mut self) -> Result<(), Error> {
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!("Kafka Streams peer did not stop within 40 s; log {}", self.log.display()).into())
    }
}

impl Drop for StreamsApp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last lines of a log file.
fn tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(20).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}
