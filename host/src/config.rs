//! Pipeline configuration (TOML): serde structs with `deny_unknown_fields`,
//! defaults in one place, units in names, and validation at start whose
//! messages name the offending key (`pipelines.orders.batch.max_wait_ms`).

use crate::engine::SandboxLimits;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A configuration error, naming the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Dotted key path (or the file) the error is about.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { path: path.into(), message: message.into() }
    }
}

/// The whole file: engine settings and one or more pipelines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Sandbox limits and artifact cache shared by all pipelines.
    #[serde(default)]
    pub engine: EngineSettings,
    /// The admin API and plugin registry (command-line flags override).
    #[serde(default)]
    pub admin: AdminSettings,
    /// Pipelines by name.
    pub pipelines: BTreeMap<String, PipelineConfig>,
}

/// Engine settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    /// Sandbox limits for every operator instance.
    #[serde(default)]
    pub limits: SandboxLimits,
    /// Directory for compiled artifacts (default: the user cache directory).
    pub cache_dir: Option<PathBuf>,
}

/// Admin API settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Address of the admin API (none: no API unless `--admin-listen`).
    pub listen: Option<std::net::SocketAddr>,
    /// Bearer token (prefer `token_file` or `WEIR_ADMIN_TOKEN_FILE` over writing it here).
    pub token: Option<String>,
    /// File holding the bearer token (e.g. a mounted Kubernetes Secret); surrounding whitespace is ignored.
    pub token_file: Option<PathBuf>,
    /// Host names the API answers without a token, besides IP addresses and `localhost` (DNS rebinding guard).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Versions per plugin an in-memory registry (no `data_dir`) keeps, at least 2 (default 10).
    pub memory_history_versions: Option<usize>,
    /// Plugin registry and compiled artifacts (none: in memory, lost at exit).
    pub data_dir: Option<PathBuf>,
    /// Upload size limit in bytes (default 64 MiB).
    pub max_plugin_bytes: Option<usize>,
}

/// One pipeline: source -> format -> batches -> operators -> outputs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Where records come from.
    pub source: SourceConfig,
    /// How record values are decoded.
    pub format: FormatConfig,
    /// Batching limits.
    #[serde(default)]
    pub batch: BatchConfig,
    /// The operator chain, applied in order.
    #[serde(default)]
    pub operators: Vec<OperatorConfig>,
    /// Kafka output of the chain's results (optional when the chain ends in a sink).
    pub output: Option<OutputConfig>,
    /// Error handling and dead letters.
    #[serde(default)]
    pub errors: ErrorConfig,
    /// Event time and watermarks for aggregate operators (none: no watermark).
    pub event_time: Option<EventTimeConfig>,
    /// Delivery guarantee of Kafka outputs.
    #[serde(default)]
    pub guarantee: Guarantee,
    /// Exactly-once settings (used with `guarantee = "exactly-once"`).
    #[serde(default)]
    pub exactly_once: ExactlyOnceConfig,
    /// Durable aggregate state (checkpoints in a compacted topic); none:
    /// aggregate state lives only in memory and a crash loses it.
    pub state: Option<StateConfig>,
}

/// Checkpoints of aggregate state: per input partition, the operators'
/// snapshots and the offsets they cover, written to a compacted topic before
/// those offsets are committed (see docs/state.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// The compacted state topic (default `<pipeline>.state`; created when missing).
    pub topic: Option<String>,
    /// Checkpoint after this many input records since the last one.
    pub checkpoint_records: u64,
    /// Checkpoint at least this often while records arrive (milliseconds).
    pub checkpoint_interval_ms: u64,
    /// Largest snapshot of one partition's state, in bytes; a larger one
    /// pauses the pipeline (nothing is committed past the last checkpoint).
    pub max_bytes: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig { topic: None, checkpoint_records: 10_000, checkpoint_interval_ms: 5_000, max_bytes: 8 << 20 }
    }
}

/// Where event time comes from and how late records may be.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTimeConfig {
    /// Column holding each record's event time: int64 (Unix ms) or timestamp.
    pub column: String,
    /// How far behind the largest event time seen a partition's watermark trails.
    #[serde(default)]
    pub allowed_lateness_ms: u64,
    /// A partition consumed up to its end and silent this long stops holding
    /// the watermark back (never while it still has a backlog).
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// What happens to a record whose event time is behind the watermark
    /// when it arrives (its windows already closed).
    #[serde(default)]
    pub late: LatePolicy,
    /// Topic for late records with `late = "topic"`.
    pub late_topic: Option<String>,
}

/// Late-record policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatePolicy {
    /// Count it (`weir_records_late_total`) and drop it.
    #[default]
    Drop,
    /// Dead-letter it with kind `late`.
    Dlq,
    /// Produce the original record to `late_topic`.
    Topic,
}

fn default_idle_timeout_ms() -> u64 {
    30_000
}

/// Delivery guarantee.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guarantee {
    /// Offsets committed after outputs are acknowledged; a crash can repeat records.
    #[default]
    AtLeastOnce,
    /// Outputs, dead letters and offsets of each batch in one Kafka transaction.
    ExactlyOnce,
}

/// Exactly-once settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExactlyOnceConfig {
    /// Stable id of this process among the group's processes; part of the
    /// transactional id `weir.<group_id>.<pipeline>.<instance_id>`. Default:
    /// `WEIR_INSTANCE_ID`, else the host name.
    pub instance_id: Option<String>,
    /// librdkafka `transaction.timeout.ms`: how long the broker keeps an
    /// abandoned transaction open before aborting it.
    #[serde(default = "default_transaction_timeout_ms")]
    pub transaction_timeout_ms: u64,
}

impl Default for ExactlyOnceConfig {
    fn default() -> Self {
        ExactlyOnceConfig { instance_id: None, transaction_timeout_ms: default_transaction_timeout_ms() }
    }
}

fn default_transaction_timeout_ms() -> u64 {
    60_000
}

impl ExactlyOnceConfig {
    /// The instance id: configured, `WEIR_INSTANCE_ID`, or the host name.
    pub fn instance(&self) -> String {
        self.instance_id
            .clone()
            .or_else(|| std::env::var("WEIR_INSTANCE_ID").ok())
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned()))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "weir".to_owned())
    }
}

/// Kafka source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `host:port,...` of the brokers.
    pub bootstrap_servers: String,
    /// Consumer group; processes with the same group share the partitions.
    pub group_id: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Any librdkafka consumer property, passed through verbatim.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// Record value format.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum FormatConfig {
    /// JSON objects decoded with a schema file (see `batch::SchemaSpec`).
    Json {
        /// Schema file, relative to the config file.
        schema: PathBuf,
        /// Which fields are decoded (and so checked against the schema).
        #[serde(default)]
        decode: DecodeScope,
    },
    /// Raw records: columns key, value, topic, partition, offset, timestamp, headers.
    Raw,
    /// Avro datums written with the schema file's record schema.
    Avro {
        /// Avro schema file (`.avsc`), relative to the config file.
        schema: PathBuf,
        /// Values carry Confluent's 5-byte header (magic byte + schema id).
        #[serde(default)]
        confluent_framing: bool,
        /// With `confluent_framing`: the schema registry id of `schema`; a
        /// value framed with another id is a decode error (none: any id).
        schema_id: Option<u32>,
    },
}

/// Which fields of a JSON record are decoded (`format.decode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecodeScope {
    /// Every schema field: a record that does not fit the whole schema is
    /// dead-lettered. When nothing needs the source rows whole (as for
    /// `read`), the fields no operator reads are checked but not built.
    #[default]
    Schema,
    /// Only the fields the operators read, when nothing needs the source rows
    /// whole: a chain of filters and maps with no sink (outputs are the
    /// source records, with the maps' fields appended), or a chain ending in
    /// an aggregate, each operator declaring `reads`. The other fields are
    /// neither decoded nor checked (a record is still rejected when it is not
    /// a JSON object). Any other chain decodes the whole schema.
    Read,
}

/// Batching limits: a batch is cut when any is reached.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Records per batch.
    pub max_records: usize,
    /// Sum of value sizes per batch, in bytes.
    pub max_bytes: usize,
    /// Time from the first record of a batch to its cut, in milliseconds.
    pub max_wait_ms: u64,
    /// Whether to decode the next chunk of a batch while the operators run
    /// on the previous one (stateless chains of filters and maps without
    /// event time; outputs keep their order either way).
    pub overlap: Overlap,
}

/// `batch.overlap`: when decoding and the operator chain overlap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// When the chain costs at least half as much per record as decoding
    /// (measured as the pipeline runs).
    #[default]
    Auto,
    /// Whenever a batch is large enough to split (two chunks of 1024 records).
    Always,
    /// Never: each batch is decoded whole (on every core), then run.
    Never,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig { max_records: 10_000, max_bytes: 16 * 1024 * 1024, max_wait_ms: 200, overlap: Overlap::Auto }
    }
}

/// One operator of the chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// Component file, relative to the config file.
    pub plugin: PathBuf,
    /// Name used in logs and dead-letter headers (default: the file stem).
    pub name: Option<String>,
    /// The operator's own configuration, passed to `init` as JSON.
    #[serde(default)]
    pub config: Option<toml::Value>,
    /// Hosts a sink may call over HTTP (`host` or `host:port`).
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// Time a sink's HTTP request may take to connect, in milliseconds
    /// (default 5000; never more than the call deadline, whatever the guest asks).
    pub http_connect_timeout_ms: Option<u64>,
    /// Time a sink's HTTP request may wait for the response headers and then
    /// for each body frame, in milliseconds (default 30000; never more than
    /// the call deadline, whatever the guest asks).
    pub http_response_timeout_ms: Option<u64>,
}

/// Kafka output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Topic the results are written to.
    pub topic: String,
    /// Column whose value becomes the record key (none: the source record's key).
    pub key_column: Option<String>,
    /// Value encoding.
    #[serde(default)]
    pub encoding: Encoding,
    /// Brokers of the output (default: the source's).
    pub bootstrap_servers: Option<String>,
    /// Any librdkafka producer property, passed through verbatim.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Add the `weir.plugins` header (`name@version,...` of the operators
    /// that produced the record), so hot swaps are auditable.
    #[serde(default = "default_true")]
    pub plugin_version_header: bool,
}

fn default_true() -> bool {
    true
}

/// How output records are encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// One JSON object per record.
    #[default]
    Json,
    /// One Arrow IPC stream per output batch (one record per batch).
    ArrowIpc,
}

/// What happens to records that cannot be processed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorPolicy {
    /// Send them to the dead-letter topic and go on.
    #[default]
    Dlq,
    /// Halt the pipeline without committing past the failed record.
    Stop,
}

/// Error handling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorConfig {
    /// `dlq` or `stop`.
    pub policy: ErrorPolicy,
    /// Dead-letter topic (default `<first source topic>.dlq`).
    pub dead_letter_topic: Option<String>,
    /// Also write Kafka Connect's `__connect.errors.*` headers.
    pub connect_headers: bool,
    /// Attempts for a transient failure (produce, retryable sink error), the first included.
    pub max_attempts: u32,
    /// First retry delay, in milliseconds (doubled each time, with jitter).
    pub retry_initial_ms: u64,
    /// Largest retry delay, in milliseconds.
    pub retry_max_ms: u64,
    /// Pause the pipeline when more than this fraction of records is dead-lettered…
    pub error_budget_ratio: f64,
    /// …over this window, in seconds…
    pub error_budget_window_s: u64,
    /// …once at least this many records were seen in the window.
    pub error_budget_min_records: u64,
}

impl Default for ErrorConfig {
    fn default() -> Self {
        ErrorConfig {
            policy: ErrorPolicy::Dlq,
            dead_letter_topic: None,
            connect_headers: false,
            max_attempts: 8,
            retry_initial_ms: 100,
            retry_max_ms: 10_000,
            error_budget_ratio: 0.5,
            error_budget_window_s: 60,
            error_budget_min_records: 1000,
        }
    }
}

impl Config {
    /// Reads, parses and validates a config file; relative paths in it are
    /// resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path.display().to_string(), format!("cannot read: {e}")))?;
        let mut config = Config::parse(&text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text; errors name the key path.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|e| ConfigError::new("config", e.to_string().trim().to_owned()))?;
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().message().to_owned();
            ConfigError::new(if path == "." { "config".into() } else { path }, message)
        })
    }

    fn resolve_paths(&mut self, base: &Path) {
        for pipeline in self.pipelines.values_mut() {
            match &mut pipeline.format {
                FormatConfig::Json { schema, .. } | FormatConfig::Avro { schema, .. } => *schema = base.join(&*schema),
                FormatConfig::Raw => {}
            }
            for operator in &mut pipeline.operators {
                operator.plugin = base.join(&operator.plugin);
            }
        }
        if let Some(dir) = &mut self.engine.cache_dir {
            *dir = base.join(&*dir);
        }
        if let Some(dir) = &mut self.admin.data_dir {
            *dir = base.join(&*dir);
        }
        if let Some(file) = &mut self.admin.token_file {
            *file = base.join(&*file);
        }
    }

    /// Checks what serde cannot: non-empty names, existing files, limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.pipelines.is_empty() {
            return Err(ConfigError::new("pipelines", "at least one pipeline is required"));
        }
        let limits = &self.engine.limits;
        if limits.memory_limit_bytes < 1024 * 1024 {
            return Err(ConfigError::new("engine.limits.memory_limit_bytes", "must be at least 1 MiB"));
        }
        for (key, value) in [
            ("max_instances", limits.max_instances as u64),
            ("max_memories", limits.max_memories as u64),
            ("max_tables", limits.max_tables as u64),
            ("max_output_rows_per_call", limits.max_output_rows_per_call),
            ("max_output_bytes_per_call", limits.max_output_bytes_per_call),
        ] {
            if value == 0 {
                return Err(ConfigError::new(format!("engine.limits.{key}"), "must be positive"));
            }
        }
        if limits.packed_batch_max_bytes > crate::engine::MAX_PACKED_BATCH_MAX_BYTES {
            return Err(ConfigError::new(
                "engine.limits.packed_batch_max_bytes",
                format!("must be at most {} (packing is for small batches)", crate::engine::MAX_PACKED_BATCH_MAX_BYTES),
            ));
        }
        if self.admin.max_plugin_bytes == Some(0) {
            return Err(ConfigError::new("admin.max_plugin_bytes", "must be positive"));
        }
        if self.admin.memory_history_versions.is_some_and(|n| n < 2) {
            return Err(ConfigError::new("admin.memory_history_versions", "must be at least 2 (the live version and the one being deployed)"));
        }
        if self.admin.token.is_some() && self.admin.token_file.is_some() {
            return Err(ConfigError::new("admin.token_file", "set either admin.token or admin.token_file, not both"));
        }
        for (name, pipeline) in &self.pipelines {
            pipeline.validate(&format!("pipelines.{name}"))?;
        }
        Ok(())
    }
}

impl PipelineConfig {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let source = &self.source;
        if source.bootstrap_servers.trim().is_empty() {
            return Err(ConfigError::new(format!("{at}.source.bootstrap_servers"), "must not be empty"));
        }
        if source.group_id.trim().is_empty() {
            return Err(ConfigError::new(format!("{at}.source.group_id"), "must not be empty"));
        }
        if source.topics.is_empty() || source.topics.iter().any(|t| t.trim().is_empty()) {
            return Err(ConfigError::new(format!("{at}.source.topics"), "list at least one non-empty topic"));
        }
        for key in ["group.id", "bootstrap.servers", "enable.auto.commit", "enable.auto.offset.store"] {
            if source.properties.contains_key(key) {
                return Err(ConfigError::new(
                    format!("{at}.source.properties.\"{key}\""),
                    "is managed by weir (set it through the dedicated key, or not at all)",
                ));
            }
        }
        if let Some(event_time) = &self.event_time
            && event_time.column.trim().is_empty()
        {
            return Err(ConfigError::new(format!("{at}.event_time.column"), "must name a column"));
        }
        if let Some(event_time) = &self.event_time
            && event_time.late == LatePolicy::Topic
            && event_time.late_topic.as_deref().is_none_or(|t| t.trim().is_empty())
        {
            return Err(ConfigError::new(format!("{at}.event_time.late_topic"), "is required with late = \"topic\""));
        }
        if let Some(state) = &self.state {
            if state.checkpoint_records == 0 {
                return Err(ConfigError::new(format!("{at}.state.checkpoint_records"), "must be at least 1"));
            }
            if state.checkpoint_interval_ms == 0 {
                return Err(ConfigError::new(format!("{at}.state.checkpoint_interval_ms"), "must be at least 1"));
            }
            if !(1024..=64 << 20).contains(&state.max_bytes) {
                return Err(ConfigError::new(format!("{at}.state.max_bytes"), "must be between 1024 and 67108864 (64 MiB)"));
            }
            if self.output.as_ref().is_some_and(|o| o.bootstrap_servers.is_some()) {
                return Err(ConfigError::new(
                    format!("{at}.output.bootstrap_servers"),
                    "cannot be set with `state`: checkpoints go to the source cluster with the outputs' producer",
                ));
            }
            if state.topic.as_deref().is_some_and(|t| t.trim().is_empty()) {
                return Err(ConfigError::new(format!("{at}.state.topic"), "must not be empty"));
            }
        }
        if self.guarantee == Guarantee::ExactlyOnce {
            if let Some(servers) = self.output.as_ref().and_then(|o| o.bootstrap_servers.as_ref())
                && servers != &source.bootstrap_servers
            {
                return Err(ConfigError::new(
                    format!("{at}.output.bootstrap_servers"),
                    "exactly-once needs the output on the source's cluster (one transaction covers outputs and consumer offsets)",
                ));
            }
            if self.exactly_once.transaction_timeout_ms < 1000 {
                return Err(ConfigError::new(format!("{at}.exactly_once.transaction_timeout_ms"), "must be at least 1000"));
            }
            if let Some(output) = &self.output
                && output.properties.contains_key("transactional.id")
            {
                return Err(ConfigError::new(format!("{at}.output.properties.\"transactional.id\""), "is managed by weir (see exactly_once.instance_id)"));
            }
        }
        if let FormatConfig::Avro { schema, confluent_framing, schema_id } = &self.format {
            if schema_id.is_some() && !confluent_framing {
                return Err(ConfigError::new(format!("{at}.format.schema_id"), "needs confluent_framing = true"));
            }
            let text = std::fs::read_to_string(schema).map_err(|e| {
                ConfigError::new(format!("{at}.format.schema"), format!("cannot read {}: {e}", schema.display()))
            })?;
            crate::batch::AvroDecoder::new(&text, *confluent_framing)
                .map_err(|e| ConfigError::new(format!("{at}.format.schema"), e.to_string()))?;
        }
        if let FormatConfig::Json { schema, .. } = &self.format {
            let text = std::fs::read_to_string(schema).map_err(|e| {
                ConfigError::new(format!("{at}.format.schema"), format!("cannot read {}: {e}", schema.display()))
            })?;
            crate::batch::SchemaSpec::from_json(&text)
                .and_then(|spec| spec.to_arrow())
                .map_err(|e| ConfigError::new(format!("{at}.format.schema"), e.to_string()))?;
        }
        let batch = &self.batch;
        if batch.max_records == 0 {
            return Err(ConfigError::new(format!("{at}.batch.max_records"), "must be at least 1"));
        }
        if batch.max_bytes == 0 {
            return Err(ConfigError::new(format!("{at}.batch.max_bytes"), "must be at least 1"));
        }
        for (index, operator) in self.operators.iter().enumerate() {
            if !operator.plugin.is_file() {
                return Err(ConfigError::new(
                    format!("{at}.operators[{index}].plugin"),
                    format!("no such file: {}", operator.plugin.display()),
                ));
            }
            for (key, value) in [
                ("http_connect_timeout_ms", operator.http_connect_timeout_ms),
                ("http_response_timeout_ms", operator.http_response_timeout_ms),
            ] {
                if value == Some(0) {
                    return Err(ConfigError::new(format!("{at}.operators[{index}].{key}"), "must be at least 1"));
                }
            }
        }
        if self.output.is_none() && self.operators.is_empty() {
            return Err(ConfigError::new(format!("{at}.output"), "a pipeline needs an output or a sink operator"));
        }
        if let Some(output) = &self.output
            && output.topic.trim().is_empty() {
                return Err(ConfigError::new(format!("{at}.output.topic"), "must not be empty"));
            }
        let errors = &self.errors;
        if errors.max_attempts == 0 {
            return Err(ConfigError::new(format!("{at}.errors.max_attempts"), "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&errors.error_budget_ratio) {
            return Err(ConfigError::new(format!("{at}.errors.error_budget_ratio"), "must be between 0 and 1"));
        }
        Ok(())
    }

    /// The dead-letter topic (configured, or `<first topic>.dlq`).
    pub fn dead_letter_topic(&self) -> String {
        self.errors.dead_letter_topic.clone().unwrap_or_else(|| format!("{}.dlq", self.source.topics[0]))
    }

    /// The state topic of pipeline `name`, when state is configured.
    pub fn state_topic(&self, name: &str) -> Option<String> {
        self.state.as_ref().map(|s| s.topic.clone().unwrap_or_else(|| format!("{name}.state")))
    }
}

impl OperatorConfig {
    /// The sink's outbound HTTP policy: allowed hosts and request timeouts.
    pub fn http_allowlist(&self) -> crate::engine::HttpAllowlist {
        use crate::engine::{DEFAULT_HTTP_CONNECT_TIMEOUT, DEFAULT_HTTP_RESPONSE_TIMEOUT};
        let ms = |value: Option<u64>, default: std::time::Duration| value.map_or(default, std::time::Duration::from_millis);
        crate::engine::HttpAllowlist::new(self.allow_hosts.clone()).with_timeouts(
            ms(self.http_connect_timeout_ms, DEFAULT_HTTP_CONNECT_TIMEOUT),
            ms(self.http_response_timeout_ms, DEFAULT_HTTP_RESPONSE_TIMEOUT),
        )
    }

    /// The operator's name: configured, or the plugin file stem.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.plugin.file_stem().and_then(|s| s.to_str()).unwrap_or("operator").to_owned()
        })
    }

    /// The operator config as JSON text for `init`.
    pub fn config_json(&self) -> String {
        match &self.config {
            Some(value) => serde_json::to_string(value).unwrap_or_else(|_| "{}".into()),
            None => "{}".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [pipelines.orders.source]
        bootstrap_servers = "localhost:9092"
        group_id = "g"
        topics = ["orders"]
        [pipelines.orders.format]
        type = "raw"
        [pipelines.orders.output]
        topic = "out"
    "#;

    #[test]
    fn minimal_config_parses_with_defaults() {
        let config = Config::parse(MINIMAL).unwrap();
        config.validate().unwrap();
        let pipeline = &config.pipelines["orders"];
        assert_eq!(pipeline.batch.max_records, 10_000);
        assert_eq!(pipeline.dead_letter_topic(), "orders.dlq");
        assert_eq!(pipeline.errors.policy, ErrorPolicy::Dlq);
    }

    #[test]
    fn unknown_and_mistyped_keys_are_named() {
        let typo = MINIMAL.replace("[pipelines.orders.output]", "[pipelines.orders.batch]\nmax_wiat_ms = 5\n[pipelines.orders.output]");
        let error = Config::parse(&typo).unwrap_err();
        assert_eq!(error.path, "pipelines.orders.batch.max_wiat_ms", "{error}");

        let wrong_type = MINIMAL.replace("topics = [\"orders\"]", "topics = \"orders\"");
        let error = Config::parse(&wrong_type).unwrap_err();
        assert_eq!(error.path, "pipelines.orders.source.topics", "{error}");

        let managed = MINIMAL.replace("topics = [\"orders\"]", "topics = [\"orders\"]\nproperties = { \"enable.auto.commit\" = \"true\" }");
        let error = Config::parse(&managed).unwrap().validate().unwrap_err();
        assert!(error.path.ends_with("\"enable.auto.commit\""), "{error}");

        let no_output = MINIMAL.replace("[pipelines.orders.output]\n        topic = \"out\"", "");
        let error = Config::parse(&no_output).unwrap().validate().unwrap_err();
        assert_eq!(error.path, "pipelines.orders.output", "{error}");
    }
    #[test]
    fn packed_batch_size_is_bounded_by_key() {
        let with = |bytes: u64| Config::parse(&format!("[engine.limits]\npacked_batch_max_bytes = {bytes}\n{MINIMAL}")).unwrap();
        with(0).validate().unwrap();
        with(crate::engine::MAX_PACKED_BATCH_MAX_BYTES).validate().unwrap();
        let error = with(crate::engine::MAX_PACKED_BATCH_MAX_BYTES + 1).validate().unwrap_err();
        assert_eq!(error.path, "engine.limits.packed_batch_max_bytes", "{error}");
        assert_eq!(with(0).engine.limits.packed_batch_max_bytes, 0);
        assert_eq!(Config::parse(MINIMAL).unwrap().engine.limits.packed_batch_max_bytes, crate::engine::DEFAULT_PACKED_BATCH_MAX_BYTES);
    }

    #[test]
    fn admin_settings_are_checked() {
        let with = |admin: &str| Config::parse(&format!("[admin]\n{admin}\n{MINIMAL}")).unwrap();
        let config = with(r#"token_file = "secret/token"
            allowed_hosts = ["weir.internal"]
            memory_history_versions = 5"#);
        config.validate().unwrap();
        assert_eq!(config.admin.allowed_hosts, ["weir.internal"]);
        assert_eq!(with("memory_history_versions = 1").validate().unwrap_err().path, "admin.memory_history_versions");
        assert_eq!(with("token = \"t\"\ntoken_file = \"f\"").validate().unwrap_err().path, "admin.token_file");
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_documented_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/orders.toml");
        let config = Config::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let orders = &config.pipelines["orders"];
        assert_eq!(orders.operators.len(), 2);
        assert_eq!(orders.output.as_ref().unwrap().key_column.as_deref(), Some("customer_id"));
        assert_eq!(config.engine.limits.call_deadline_ms, 1000);
    }

    #[test]
    fn the_seed_pipeline_configs_parse_with_state() {
        for (file, name, operators) in [("order-analytics.toml", "order-analytics", 1), ("fraud-detection.toml", "fraud", 2)] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(file);
            let config = Config::parse(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{file}: {e}"));
            let pipeline = &config.pipelines[name];
            assert_eq!(pipeline.operators.len(), operators, "{file}");
            assert!(pipeline.state.is_some() && pipeline.event_time.is_some(), "{file}");
            assert_eq!(pipeline.state_topic(name).as_deref(), Some(format!("{name}.state").as_str()));
        }
    }

    #[test]
    fn state_settings_are_validated_by_key() {
        let base = |state: &str| {
            format!(
                "[pipelines.p]\nstate = {{ {state} }}\n[pipelines.p.source]\nbootstrap_servers = \"b\"\ngroup_id = \"g\"\ntopics = [\"t\"]\n[pipelines.p.format]\ntype = \"raw\"\n[pipelines.p.output]\ntopic = \"o\"\n"
            )
        };
        let error = |state: &str| Config::parse(&base(state)).unwrap().validate().unwrap_err().to_string();
        assert!(error("checkpoint_records = 0").contains("pipelines.p.state.checkpoint_records"));
        assert!(error("max_bytes = 10").contains("pipelines.p.state.max_bytes"));
        assert!(error("topic = \" \"").contains("pipelines.p.state.topic"));
        assert!(Config::parse(&base("")).unwrap().validate().is_ok());
    }
}
