//! Real Apache Kafka for integration tests and benchmarks: KRaft brokers run as
//! child JVMs on free loopback ports.
//!
//! - [`Kafka::shared`]: one combined broker + controller node per test binary,
//!   started by the first test that asks and shared by all (about 4 s to start).
//! - [`Kafka::cluster`]: three combined nodes (replication factor 3,
//!   `min.insync.replicas=2`), owned by the test, for fault tests: kill a node
//!   with [`Kafka::kill`] and bring it back with [`Kafka::restart`].
//! - [`Kafka::start`] with a [`KafkaConfig`] for anything else (heap, JVM
//!   options, broker properties).
//!
//! The broker jars come from Maven Central: `scripts/setup` puts Apache Kafka
//! [`KAFKA_VERSION`] and its runtime dependencies into `target/tools/kafka/lib`
//! (override with `WEIR_KAFKA_LIB`); `java` is found through `JAVA_HOME` or `PATH`.
//!
//! Cleanup: every JVM is forked with a death signal ([`crate::process`]), so it
//! dies with the test process, also on panic, timeout or `kill -9` of the test
//! binary. Broker directories (data and `broker.log`) live under
//! `target/test-kafka/`; they are removed when the process exits (or an owned
//! [`Kafka`] is dropped) without a panic, and kept (their path printed) otherwise.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The Apache Kafka version `scripts/setup` installs (tools/kafka/pom.xml).
pub const KAFKA_VERSION: &str = "4.4.0";

/// Environment variable naming a directory of Kafka jars to use instead of
/// `target/tools/kafka/lib`.
pub const KAFKA_LIB_ENV: &str = "WEIR_KAFKA_LIB";

/// How long a start waits for every node to serve metadata.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Attempts at starting: free ports are found by binding port 0 and releasing
/// it, so another process may take one before the broker binds it.
const START_ATTEMPTS: u32 = 3;

/// What to start.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Number of combined broker + controller nodes (1 or 3 in practice).
    pub nodes: usize,
    /// Maximum JVM heap per node, in MiB (`-Xmx`).
    pub heap_mib: u32,
    /// Extra JVM options, after the defaults (e.g. `-XX:-TieredCompilation`).
    pub jvm_options: Vec<String>,
    /// Broker properties, overriding the defaults of [`Kafka::start`].
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig { nodes: 1, heap_mib: 384, jvm_options: Vec::new(), properties: BTreeMap::new() }
    }
}

/// One node: ports, directory and (while running) its JVM.
struct Node {
    id: i32,
    port: u16,
    dir: PathBuf,
    properties: PathBuf,
    child: Option<Child>,
}

/// A running Kafka (one node or a cluster). Dropping it kills its JVMs.
pub struct Kafka {
    bootstrap: String,
    dir: PathBuf,
    config: KafkaConfig,
    nodes: Mutex<Vec<Node>>,
    /// Keep the directory when dropped (the start failed).
    keep: AtomicBool,
}

impl Kafka {
    /// The single-node broker shared by every test of this test binary,
    /// started on first use. Never dropped: its JVM dies with the process.
    pub fn shared() -> &'static Kafka {
        static SHARED: OnceLock<Kafka> = OnceLock::new();
        SHARED.get_or_init(|| Kafka::start(KafkaConfig::default()))
    }

    /// A single-node broker owned by the caller.
    pub fn single() -> Kafka {
        Kafka::start(KafkaConfig::default())
    }

    /// A 3-node cluster: every topic (including the offsets and transaction
    /// state topics) replicated 3 times, `min.insync.replicas=2`, and a killed
    /// node fenced after about 3 s.
    pub fn cluster() -> Kafka {
        Kafka::start(KafkaConfig { nodes: 3, ..KafkaConfig::default() })
    }

    /// Formats and starts the nodes and waits until each serves metadata
    /// listing all of them. Panics with the tail of the broker log if that
    /// fails (or if java or the Kafka jars are missing: run `scripts/setup`).
    pub fn start(config: KafkaConfig) -> Kafka {
        assert!(config.nodes >= 1, "a Kafka needs at least one node");
        install_exit_cleanup();
        let java = java();
        let lib = lib_dir();
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            match Kafka::try_start(&config, &java, &lib) {
                Ok(kafka) => return kafka,
                Err(e) => last_error = e,
            }
        }
        panic!("{last_error}");
    }

    fn try_start(config: &KafkaConfig, java: &Path, lib: &Path) -> Result<Kafka, String> {
        let started = Instant::now();
        let dir = scratch_dir();
        let ports: Vec<(u16, u16)> = (0..config.nodes).map(|_| (free_port(), free_port())).collect();
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, (_, controller))| format!("{}@127.0.0.1:{controller}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let log4j = dir.join("log4j2.yaml");
        fs::write(&log4j, LOG4J).map_err(|e| format!("writing {}: {e}", log4j.display()))?;
        let cluster_id = cluster_id();
        let mut nodes = Vec::new();
        for (i, &(port, controller)) in ports.iter().enumerate() {
            let id = i as i32 + 1;
            let node_dir = dir.join(format!("node-{id}"));
            fs::create_dir_all(&node_dir).map_err(|e| format!("creating {}: {e}", node_dir.display()))?;
            let properties = node_dir.join("server.properties");
            let text = server_properties(config, id, port, controller, &voters, &node_dir.join("data"));
            fs::write(&properties, text).map_err(|e| format!("writing {}: {e}", properties.display()))?;
            nodes.push(Node { id, port, dir: node_dir, properties, child: None });
        }
        // Format every node's storage (mandatory in KRaft), in parallel.
        let mut formats = Vec::new();
        for node in &nodes {
            let mut command = Command::new(java);
            command
                .args(["-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"])
                .args(class_data_archive(lib))
                .arg("-cp")
                .arg(lib.join("*"))
                .args(["kafka.tools.StorageTool", "format", "-t", &cluster_id, "-c"])
                .arg(&node.properties)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let child = command.spawn().map_err(|e| format!("running {} (StorageTool): {e}", java.display()))?;
            formats.push((node.id, child));
        }
        for (id, child) in formats {
            let output = child.wait_with_output().map_err(|e| format!("formatting node {id}: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "formatting node {id} failed ({}):\n{}{}",
                    output.status,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
        }
        let bootstrap = ports.iter().map(|(port, _)| format!("127.0.0.1:{port}")).collect::<Vec<_>>().join(",");
        let kafka = Kafka { bootstrap, dir, config: config.clone(), nodes: Mutex::new(nodes), keep: AtomicBool::new(false) };
        register_dir(&kafka.dir);
        {
            let mut nodes = kafka.nodes();
            for node in nodes.iter_mut() {
                if let Err(e) = kafka.spawn(node, java, lib) {
                    kafka.keep.store(true, Ordering::Relaxed);
                    drop(nodes);
                    return Err(e);
                }
            }
        }
        for id in 1..=config.nodes as i32 {
            if let Err(e) = kafka.wait_ready(id) {
                kafka.keep.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        eprintln!(
            "kafka {KAFKA_VERSION}: {} node(s) ready at {} in {:.1?} (dir {})",
            config.nodes,
            kafka.bootstrap,
            started.elapsed(),
            kafka.dir.display()
        );
        Ok(kafka)
    }

    fn spawn(&self, node: &mut Node, java: &Path, lib: &Path) -> Result<(), String> {
        let log = node.dir.join("broker.log");
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("opening {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("cloning a file handle: {e}"))?;
        let mut command = Command::new(java);
        command
            .arg(format!("-Xmx{}m", self.config.heap_mib))
            .args(["-Xms64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"])
            .args(class_data_archive(lib))
            .arg(format!("-Dlog4j2.configurationFile={}", self.dir.join("log4j2.yaml").display()))
            .args(&self.config.jvm_options)
            .arg("-cp")
            .arg(lib.join("*"))
            .arg("kafka.Kafka")
            .arg(&node.properties)
            .current_dir(&node.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = crate::process::spawn_guarded(command).map_err(|e| format!("starting {}: {e}", java.display()))?;
        JVMS.lock().unwrap_or_else(|p| p.into_inner()).push(child.id());
        node.child = Some(child);
        Ok(())
    }

    /// Waits until node `id`'s client port is open and a metadata request to it
    /// lists every running node.
    fn wait_ready(&self, id: i32) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let port = self.node_port(id);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        loop {
            {
                let mut nodes = self.nodes();
                let node = &mut nodes[id as usize - 1];
                if let Some(Ok(Some(status))) = node.child.as_mut().map(|c| c.try_wait()) {
                    forget_jvm(node.child.take().map(|c| c.id()));
                    return Err(format!(
                        "kafka node {id} exited early ({status}); log {}:\n{}",
                        node.dir.join("broker.log").display(),
                        log_tail(&node.dir.join("broker.log"))
                    ));
                }
            }
            // The client port opens only once the broker is unfenced.
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                let running = self.nodes().iter().filter(|n| n.child.is_some()).count();
                if metadata_brokers(&format!("127.0.0.1:{port}")) >= running {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                let log = self.node_dir(id).join("broker.log");
                return Err(format!(
                    "kafka node {id} not ready on 127.0.0.1:{port} after {READY_TIMEOUT:?}; log {}:\n{}",
                    log.display(),
                    log_tail(&log)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn nodes(&self) -> MutexGuard<'_, Vec<Node>> {
        self.nodes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn node_port(&self, id: i32) -> u16 {
        self.nodes()[id as usize - 1].port
    }

    fn node_dir(&self, id: i32) -> PathBuf {
        self.nodes()[id as usize - 1].dir.clone()
    }

    /// The `bootstrap.servers` value for clients: every node's address.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Node ids (`node.id` = broker id), 1-based.
    pub fn node_ids(&self) -> Vec<i32> {
        (1..=self.config.nodes as i32).collect()
    }

    /// `127.0.0.1:<port>` of node `id`.
    pub fn node_address(&self, id: i32) -> String {
        format!("127.0.0.1:{}", self.node_port(id))
    }

    /// Directory holding every node's data and `broker.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The replication factor new topics get: 3 on a cluster, else 1.
    pub fn replication_factor(&self) -> i32 {
        self.config.nodes.min(3) as i32
    }

    /// A client configuration with `bootstrap.servers` set.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        config
    }

    /// Creates topics `(name, partitions)` with [`Kafka::replication_factor`]
    /// and waits until every partition has a leader. Panics on failure.
    pub async fn create_topics(&self, topics: &[(&str, i32)]) {
        let admin: AdminClient<DefaultClientContext> = self.client_config().create().expect("creating an admin client");
        let replicas = self.replication_factor();
        let new: Vec<NewTopic> =
            topics.iter().map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(replicas))).collect();
        for result in admin.create_topics(&new, &AdminOptions::new()).await.expect("CreateTopics request") {
            result.unwrap_or_else(|(name, code)| panic!("creating topic {name}: {code}"));
        }
        for (name, partitions) in topics {
            let deadline = Instant::now() + Duration::from_secs(30);
            while self.leaders(name).values().filter(|l| **l >= 0).count() < *partitions as usize {
                assert!(Instant::now() < deadline, "topic {name} has no leader for every partition after 30 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Creates topics `(name, partitions)` whose every partition has node
    /// `leader` as its preferred (hence first) leader, replicated on
    /// [`Kafka::replication_factor`] nodes, and waits until each has a leader.
    pub async fn create_topics_led_by(&self, topics: &[(&str, i32)], leader: i32) {
        let admin: AdminClient<DefaultClientContext> = self.client_config().create().expect("creating an admin client");
        let mut replicas = vec![leader];
        replicas.extend(self.node_ids().into_iter().filter(|id| *id != leader).take(self.replication_factor() as usize - 1));
        let assignments: Vec<Vec<&[i32]>> = topics.iter().map(|(_, partitions)| vec![replicas.as_slice(); *partitions as usize]).collect();
        let new: Vec<NewTopic> = topics
            .iter()
            .zip(&assignments)
            .map(|((name, partitions), assignment)| NewTopic::new(name, *partitions, TopicReplication::Variable(assignment.as_slice())))
            .collect();
        for result in admin.create_topics(&new, &AdminOptions::new()).await.expect("CreateTopics request") {
            result.unwrap_or_else(|(name, code)| panic!("creating topic {name}: {code}"));
        }
        for (name, partitions) in topics {
            let deadline = Instant::now() + Duration::from_secs(30);
            while self.leaders(name).values().filter(|l| **l == leader).count() < *partitions as usize {
                assert!(Instant::now() < deadline, "topic {name} is not led by node {leader} after 30 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// The leader node of each partition of `topic` (-1 while there is none).
    pub fn leaders(&self, topic: &str) -> BTreeMap<i32, i32> {
        let consumer: BaseConsumer = self.client_config().create().expect("creating a metadata client");
        let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) else {
            return BTreeMap::new();
        };
        metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| (p.id(), p.leader())))
            .collect()
    }

    /// Kills node `id` with SIGKILL (a crash: nothing is flushed) and waits
    /// for it to exit. No-op if it is not running.
    pub fn kill(&self, id: i32) {
        let mut nodes = self.nodes();
        if let Some(mut child) = nodes[id as usize - 1].child.take() {
            let _ = child.kill();
            let _ = child.wait();
            forget_jvm(Some(child.id()));
        }
    }

    /// Whether node `id`'s JVM is running (not killed, not exited).
    pub fn is_running(&self, id: i32) -> bool {
        let mut nodes = self.nodes();
        let node = &mut nodes[id as usize - 1];
        match node.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                forget_jvm(node.child.take().map(|c| c.id()));
                false
            }
            None => false,
        }
    }

    /// Starts node `id` again on the same ports and data (after [`Kafka::kill`])
    /// and waits until it is ready. Panics if it does not come up.
    pub fn restart(&self, id: i32) {
        {
            let mut nodes = self.nodes();
            let node = &mut nodes[id as usize - 1];
            assert!(node.child.is_none(), "kafka node {id} is still running");
            self.spawn(node, &java(), &lib_dir()).unwrap_or_else(|e| panic!("{e}"));
        }
        self.wait_ready(id).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Process ids of the running nodes' JVMs.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes().iter().filter_map(|n| n.child.as_ref().map(Child::id)).collect()
    }

    /// The last 8 KiB of node `id`'s log, for failure messages.
    pub fn log_tail(&self, id: i32) -> String {
        log_tail(&self.node_dir(id).join("broker.log"))
    }

    fn kill_all(&self) {
        for id in self.node_ids() {
            self.kill(id);
        }
    }
}

impl Drop for Kafka {
    /// Kills every node; removes the directory unless the thread is panicking
    /// or the start failed (then its path is printed).
    fn drop(&mut self) {
        self.kill_all();
        unregister_dir(&self.dir);
        if std::thread::panicking() || self.keep.load(Ordering::Relaxed) {
            eprintln!("kafka broker logs kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The properties of node `id`; [`KafkaConfig::properties`] override them.
fn server_properties(config: &KafkaConfig, id: i32, port: u16, controller: u16, voters: &str, data: &Path) -> String {
    let replicas = config.nodes.min(3).to_string();
    let min_isr = if config.nodes >= 3 { "2" } else { "1" };
    let mut properties: BTreeMap<String, String> = [
        ("process.roles", "broker,controller".to_string()),
        ("node.id", id.to_string()),
        ("controller.quorum.voters", voters.to_string()),
        ("listeners", format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}")),
        ("advertised.listeners", format!("PLAINTEXT://127.0.0.1:{port}")),
        ("controller.listener.names", "CONTROLLER".into()),
        ("inter.broker.listener.name", "PLAINTEXT".into()),
        ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into()),
        ("log.dirs", data.display().to_string()),
        // Replication: everything on every node of a cluster, min ISR 2.
        ("default.replication.factor", replicas.clone()),
        ("min.insync.replicas", min_isr.into()),
        ("offsets.topic.replication.factor", replicas.clone()),
        ("transaction.state.log.replication.factor", replicas.clone()),
        ("transaction.state.log.min.isr", min_isr.into()),
        ("share.coordinator.state.topic.replication.factor", replicas.clone()),
        ("share.coordinator.state.topic.min.isr", min_isr.into()),
        // Fast tests: few internal partitions (each is created on first use),
        // no join delay, short group sessions allowed, quick fencing of a dead node.
        ("offsets.topic.num.partitions", replicas.clone()),
        ("transaction.state.log.num.partitions", replicas.clone()),
        ("group.initial.rebalance.delay.ms", "0".into()),
        ("group.min.session.timeout.ms", "1000".into()),
        ("group.consumer.min.session.timeout.ms", "1000".into()),
        ("group.consumer.session.timeout.ms", "6000".into()),
        ("group.consumer.min.heartbeat.interval.ms", "100".into()),
        ("group.consumer.heartbeat.interval.ms", "500".into()),
        ("broker.session.timeout.ms", "3000".into()),
        ("broker.heartbeat.interval.ms", "500".into()),
        // Small footprint: the cleaner's dedupe buffer is allocated on the heap.
        ("log.cleaner.dedupe.buffer.size", "33554432".into()),
        ("log.segment.bytes", "16777216".into()),
        ("num.network.threads", "2".into()),
        ("num.io.threads", "2".into()),
        ("background.threads", "2".into()),
        ("num.partitions", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    properties.extend(config.properties.clone());
    properties.into_iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

/// Broker logging: INFO for the server, WARN for the chattiest internals.
const LOG4J: &str = r#"Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: org.apache.kafka.storage
        level: WARN
      - name: kafka.log
        level: WARN
      - name: state.change.logger
        level: WARN
      - name: org.apache.kafka.clients
        level: WARN
"#;

/// Brokers listed in a metadata response from `bootstrap` (0 on failure).
fn metadata_brokers(bootstrap: &str) -> usize {
    let Ok(consumer) = ClientConfig::new().set("bootstrap.servers", bootstrap).create::<BaseConsumer>() else {
        return 0;
    };
    consumer.fetch_metadata(None, Duration::from_secs(2)).map(|m| m.brokers().len()).unwrap_or(0)
}

/// `java` from `$JAVA_HOME/bin`, else from `PATH`. Panics with a clear message if absent.
fn java() -> PathBuf {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let java = PathBuf::from(home).join("bin/java");
        if java.is_file() {
            return java;
        }
    }
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("java"))
        .find(|java| java.is_file());
    found.unwrap_or_else(|| {
        panic!("java not found (JAVA_HOME or PATH): the Kafka test broker needs Java 17+; install it (e.g. apt-get install openjdk-17-jre-headless)")
    })
}

/// The Kafka jars: `$WEIR_KAFKA_LIB`, else `<repo>/target/tools/kafka/lib`.
fn lib_dir() -> PathBuf {
    let lib = match std::env::var_os(KAFKA_LIB_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => crate::repo_root().join("target/tools/kafka/lib"),
    };
    let has_kafka = fs::read_dir(&lib)
        .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("kafka_2.13-")))
        .unwrap_or(false);
    if !has_kafka {
        panic!(
            "Apache Kafka jars not found in {} (or ${KAFKA_LIB_ENV}): run scripts/setup to fetch Kafka {KAFKA_VERSION} from Maven Central",
            lib.display()
        );
    }
    lib
}

/// `-XX:SharedArchiveFile=<lib>/../kafka.jsa` if `scripts/setup` recorded that
/// class-data archive (about 40% off a broker's start; a JVM that cannot use
/// it, e.g. another JDK, logs a warning and starts without).
fn class_data_archive(lib: &Path) -> Option<String> {
    let archive = lib.parent()?.join("kafka.jsa");
    archive.is_file().then(|| format!("-XX:SharedArchiveFile={}", archive.display()))
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local address of a bound listener").port()
}

/// A random cluster id: 16 bytes, base64url without padding (Kafka's Uuid text form).
fn cluster_id() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut state = nanos ^ ((std::process::id() as u128) << 64) ^ 0x9e37_79b9_7f4a_7c15;
    let mut bytes = [0u8; 16];
    for byte in &mut bytes {
        // xorshift over the seed: any 16 bytes but all-zero are a valid id.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = (state >> 56) as u8;
    }
    bytes[0] |= 0x40;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut count = 0;
    let mut text = String::new();
    for byte in bytes {
        bits = (bits << 8) | byte as u32;
        count += 8;
        while count >= 6 {
            count -= 6;
            text.push(ALPHABET[((bits >> count) & 63) as usize] as char);
        }
    }
    if count > 0 {
        text.push(ALPHABET[((bits << (6 - count)) & 63) as usize] as char);
    }
    text
}

/// A fresh directory under `target/test-kafka/` for one Kafka's nodes.
fn scratch_dir() -> PathBuf {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let root = crate::repo_root().join("target/test-kafka");
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "test".into());
    let name = format!("{exe}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
    let dir = root.join(name);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// The last 8 KiB of a log file.
fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let mut start = text.len().saturating_sub(8192);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// Directories to remove at exit (if nothing panicked).
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Set by the panic hook: keep broker directories for the post-mortem.
static PANICKED: AtomicBool = AtomicBool::new(false);

fn register_dir(dir: &Path) {
    DIRS.lock().unwrap_or_else(|p| p.into_inner()).push(dir.to_path_buf());
}

fn unregister_dir(dir: &Path) {
    DIRS.lock().unwrap_or_else(|p| p.into_inner()).retain(|d| d != dir);
}

/// Once per process: a panic hook noting that a test failed, and an exit
/// handler removing the broker directories of a run without failures (the
/// JVMs themselves die by their death signal).
fn install_exit_cleanup() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::Relaxed);
            previous(info);
        }));
        // SAFETY: registering a plain extern "C" function.
        unsafe {
            libc::atexit(at_exit);
        }
    });
}

extern "C" fn at_exit() {
    let Ok(dirs) = DIRS.try_lock() else { return };
    if dirs.is_empty() {
        return;
    }
    if PANICKED.load(Ordering::Relaxed) {
        for dir in dirs.iter() {
            eprintln!("kafka broker logs kept in {}", dir.display());
        }
        return;
    }
    // A JVM would go on writing until its death signal lands: kill them first.
    kill_jvms();
    for dir in dirs.iter() {
        let _ = fs::remove_dir_all(dir);
    }
}

/// Process ids of the running broker JVMs of this process, for the exit handler.
static JVMS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Drops a reaped JVM from [`JVMS`] (its pid may be reused from now on).
fn forget_jvm(pid: Option<u32>) {
    if let Some(pid) = pid {
        JVMS.lock().unwrap_or_else(|p| p.into_inner()).retain(|p| *p != pid);
    }
}

/// SIGKILLs and reaps every broker JVM still running, so their directories
/// can be removed (their death signal only fires after the exit handlers).
fn kill_jvms() {
    let Ok(pids) = JVMS.try_lock() else { return };
    for &pid in pids.iter() {
        // SAFETY: our own child, not yet reaped (so its pid is not reused).
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
            libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
        }
    }
}
