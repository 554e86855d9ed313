//! The `weir` command line: argument parsing and wiring (with the binary, the
//! one place for `anyhow`). It lives in the library so that the binary is a
//! thin shim: its code is compiled in parallel with the rest of the library
//! rather than in a serial last step of a cold build.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use crate::batch::{JsonDecoder, SchemaSpec, write_json_lines};
use crate::engine::{Engine, EngineConfig, HttpAllowlist, SandboxLimits, SinkResult};
use crate::operator::{Chain, Operator};

/// weir: WebAssembly stream operators on Arrow batches.
#[derive(Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Checks a component: which operator world it implements, or why it is not one.
    Validate {
        /// Component file(s).
        #[arg(required = true)]
        plugins: Vec<PathBuf>,
        /// Also instantiate and `init` it with this JSON config.
        #[arg(long)]
        config: Option<String>,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Runs the pipelines of a config file until SIGTERM/SIGINT, then drains and commits.
    Run {
        /// Pipeline config (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Seconds to finish in-flight batches after a stop signal before exiting anyway.
        #[arg(long, default_value_t = 30)]
        grace_period_s: u64,
        #[command(flatten)]
        admin: AdminArgs,
        /// Plugin registry and compiled artifacts; hot-pushed versions survive restarts.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Everything embedded: mock Kafka cluster, generated orders, example operators.
    Demo {
        /// Stop after this many input records and print a summary.
        #[arg(long)]
        records: Option<u64>,
        /// Input records per second (default: as fast as possible).
        #[arg(long)]
        rate: Option<u64>,
        /// Directory with the example components (default: target/guests/wasm32-wasip2/release).
        #[arg(long)]
        plugins_dir: Option<PathBuf>,
        /// A seed pipeline instead of the default one: `orders` (hourly revenue
        /// per processing center) or `fraud` (per-user sliding windows, alerts).
        #[arg(long, value_enum)]
        scenario: Option<ScenarioArg>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Creates a ready operator project: source, build script, README, sample input.
    New {
        /// Guest language.
        #[arg(long, value_enum)]
        lang: Lang,
        /// Operator kind.
        #[arg(long, value_enum)]
        kind: Kind,
        /// Directory to create (its name is the operator's name).
        name: PathBuf,
    },
    /// Consumer-group offsets.
    Offsets {
        #[command(subcommand)]
        command: OffsetsCommand,
    },
    /// Plugins of a running weir (admin API client).
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Pipelines of a running weir (admin API client).
    Pipeline {
        #[command(subcommand)]
        command: PipelineCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Dead letters of a running weir's pipelines (admin API client).
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Runs JSON lines through a chain of operators and prints JSON lines.
    Exec {
        /// Operator components, applied in the given order.
        #[arg(long = "plugin", required = true)]
        plugins: Vec<PathBuf>,
        /// Operator config as NAME=JSON, NAME being the plugin's file stem.
        #[arg(long = "config", value_name = "NAME=JSON")]
        configs: Vec<String>,
        /// Schema file of the input records.
        #[arg(long)]
        schema: PathBuf,
        /// JSON lines input (`-` for stdin); lines of `weir dlq export` are unwrapped to their original value.
        #[arg(long, default_value = "-")]
        input: PathBuf,
        /// Rows per batch.
        #[arg(long, default_value_t = 8192)]
        batch_size: usize,
        /// Hosts sinks may call over HTTP (`host` or `host:port`; repeatable).
        #[arg(long = "allow-host")]
        allow_hosts: Vec<String>,
        #[command(flatten)]
        engine: EngineArgs,
    },
}

/// Where the admin API is.
#[derive(clap::Args)]
struct ClientArgs {
    /// Admin API base URL.
    #[arg(long = "admin", env = "WEIR_ADMIN_URL", default_value = "http://127.0.0.1:7070", global = true)]
    admin_url: String,
    /// Bearer token.
    #[arg(long, env = "WEIR_ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// File holding the bearer token (used when --token is not given).
    #[arg(long, env = "WEIR_ADMIN_TOKEN_FILE", value_name = "FILE", global = true)]
    token_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Uploads a component as the next version of NAME; live at the next batch of every pipeline using it.
    Push {
        /// Plugin name (the operator `name` in pipeline configs).
        name: String,
        /// Component file.
        file: PathBuf,
    },
    /// Lists plugins with their live version and users.
    List,
    /// Shows a plugin's versions and users.
    Show {
        /// Plugin name.
        name: String,
    },
    /// Makes the previous (or the given) version live again.
    Rollback {
        /// Plugin name.
        name: String,
        /// Version number to make live.
        #[arg(long)]
        version: Option<u32>,
    },
    /// Removes a plugin no pipeline uses, or one version that is not live (deleted from the data dir).
    Rm {
        /// Plugin name.
        name: String,
        /// Only this version.
        #[arg(long)]
        version: Option<u32>,
    },
}

#[derive(Subcommand)]
enum PipelineCommand {
    /// Lists pipelines with state and counts.
    List,
    /// State, counters, plugin versions, per-partition offsets and lag.
    Status {
        /// Pipeline name.
        name: String,
    },
    /// Pauses consumption at the next batch boundary.
    Pause {
        /// Pipeline name.
        name: String,
    },
    /// Resumes from the last committed offsets.
    Resume {
        /// Pipeline name.
        name: String,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Replays dead letters through the current chain (after a fix).
    Redrive {
        /// Pipeline name.
        pipeline: String,
        /// Only dead letters written at or after this time (RFC 3339 or Unix ms).
        #[arg(long)]
        since: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Writes dead letters with their headers as JSON lines (replay with `weir exec --input`).
    Export {
        /// Pipeline name.
        pipeline: String,
        /// At most this many (newest; the API returns at most 1000 per request).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Only this error kind.
        #[arg(long)]
        kind: Option<String>,
    },
    /// Shows the newest dead letters as a table.
    List {
        /// Pipeline name.
        pipeline: String,
        /// At most this many (newest).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only this error kind.
        #[arg(long)]
        kind: Option<String>,
    },
}

/// The admin HTTP API.
#[derive(clap::Args, Clone)]
struct AdminArgs {
    /// Serve the admin API (plugins, hot swap, pipelines, DLQ, health, metrics) on this address.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<std::net::SocketAddr>,
    /// Bearer token required on every admin route but /healthz and /readyz.
    #[arg(long, env = "WEIR_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// File holding the bearer token (e.g. a mounted Kubernetes Secret), used when --admin-token is not given.
    #[arg(long, env = "WEIR_ADMIN_TOKEN_FILE", value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// A host name the API answers without a token besides IP addresses and localhost (repeatable).
    #[arg(long = "admin-allowed-host", value_name = "NAME")]
    admin_allowed_hosts: Vec<String>,
    /// Allow a non-loopback --admin-listen without a token.
    #[arg(long)]
    insecure_admin: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Lang {
    Rust,
    Python,
    Js,
    C,
    Go,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Filter,
    Map,
    Aggregate,
    Sink,
}

#[derive(Subcommand)]
enum OffsetsCommand {
    /// Moves a stopped group's committed offsets (reprocessing or skipping).
    Reset {
        /// Brokers (`host:port,...`).
        #[arg(long)]
        bootstrap_servers: String,
        /// Consumer group (a pipeline's `source.group_id`).
        #[arg(long)]
        group: String,
        /// Topic whose partitions are reset.
        #[arg(long)]
        topic: String,
        /// To the first retained offset.
        #[arg(long, group = "target")]
        to_earliest: bool,
        /// To the end of each partition.
        #[arg(long, group = "target")]
        to_latest: bool,
        /// To the first record at or after this time (RFC 3339, e.g. 2026-11-23T10:00:00Z).
        #[arg(long, group = "target")]
        to_datetime: Option<String>,
    },
}

/// Sandbox and cache settings shared by the commands.
#[derive(clap::Args)]
struct EngineArgs {
    /// Linear memory limit per instance, in MiB.
    #[arg(long, default_value_t = 64)]
    memory_limit_mib: u64,
    /// Deadline of one guest call, in milliseconds.
    #[arg(long, default_value_t = crate::engine::DEFAULT_CALL_DEADLINE_MS)]
    call_deadline_ms: u64,
    /// Fuel (instruction budget) per call; unmetered when absent.
    #[arg(long)]
    fuel_per_call: Option<u64>,
    /// Directory of compiled artifacts.
    #[arg(long, env = "WEIR_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every time instead of using the artifact cache.
    #[arg(long)]
    no_cache: bool,
}

impl EngineArgs {
    fn engine(&self) -> anyhow::Result<Engine> {
        let limits = SandboxLimits {
            memory_limit_bytes: self.memory_limit_mib * 1024 * 1024,
            call_deadline_ms: self.call_deadline_ms,
            fuel_per_call: self.fuel_per_call,
            ..SandboxLimits::default()
        };
        let cache_dir = if self.no_cache { None } else { Some(self.cache_dir.clone().unwrap_or_else(default_cache_dir)) };
        Ok(Engine::new(EngineConfig { limits, cache_dir })?)
    }
}

fn default_cache_dir() -> PathBuf {
    crate::engine::default_cache_dir()
}

/// Parses the command line, runs the command and reports an error on stderr.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `WEIR_LOG` (`info,weir::pipeline=debug`:
/// a level, then per-target levels; tracing-subscriber's `Targets`, which
/// needs no regex engine in the binary).
fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    const DEFAULT: &str = "info,wasmtime=warn,cranelift=warn";
    let default = || DEFAULT.parse::<Targets>().expect("the default filter parses");
    let targets = match std::env::var("WEIR_LOG") {
        Ok(spec) => spec.parse::<Targets>().unwrap_or_else(|error| {
            eprintln!("warning: WEIR_LOG={spec:?} is not a log filter ({error}); using {DEFAULT:?}");
            default()
        }),
        Err(_) => default(),
    };
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => tracing_subscriber::registry().with(layer).with(targets).init(),
        LogFormat::Json => tracing_subscriber::registry().with(layer.json()).with(targets).init(),
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Validate { plugins, config, engine } => validate(&plugins, config.as_deref(), &engine),
        Command::Run { config, grace_period_s, admin, data_dir } => run_pipelines(&config, grace_period_s, &admin, data_dir),
        Command::Demo { records, rate, plugins_dir, scenario: Some(scenario), admin } => demo_scenario(scenario, records, rate, plugins_dir, admin),
        Command::Demo { records, rate, plugins_dir, scenario: None, admin } => demo(records, rate, plugins_dir, admin),
        Command::New { lang, kind, name } => {
            use crate::engine::OperatorKind;
            use crate::scaffold::Language;
            let language = match lang { Lang::Rust => Language::Rust, Lang::Python => Language::Python, Lang::Js => Language::Js, Lang::C => Language::C, Lang::Go => Language::Go };
            let kind = match kind { Kind::Filter => OperatorKind::Filter, Kind::Map => OperatorKind::Map, Kind::Aggregate => OperatorKind::Aggregate, Kind::Sink => OperatorKind::Sink };
            let home = crate::scaffold::default_weir_home();
            for file in crate::scaffold::new_project(language, kind, &name, &home)? {
                println!("created {}", file.display());
            }
            println!("next: cd {} && ./build.sh && weir exec --plugin {}.wasm --schema sample.schema.json --input sample.jsonl", name.display(), name.file_name().unwrap_or_default().to_string_lossy());
            Ok(())
        }
        Command::Offsets { command: OffsetsCommand::Reset { bootstrap_servers, group, topic, to_earliest, to_latest, to_datetime } } => {
            let to = match (to_earliest, to_latest, to_datetime) {
                (true, _, _) => crate::offsets::ResetTo::Earliest,
                (_, true, _) => crate::offsets::ResetTo::Latest,
                (_, _, Some(text)) => crate::offsets::ResetTo::Timestamp(parse_datetime_ms(&text)?),
                _ => bail!("choose one of --to-earliest, --to-latest, --to-datetime"),
            };
            for (partition, offset) in crate::offsets::reset(&bootstrap_servers, &group, &topic, to)? {
                println!("{topic}/{partition}: {offset}");
            }
            Ok(())
        }
        Command::Plugin { command, client } => admin_client(client, |c| plugin_command(c, command)),
        Command::Pipeline { command, client } => admin_client(client, |c| pipeline_command(c, command)),
        Command::Dlq { command, client } => admin_client(client, |c| dlq_command(c, command)),
        Command::Exec { plugins, configs, schema, input, batch_size, allow_hosts, engine } => {
            exec(&plugins, &configs, &schema, &input, batch_size, allow_hosts, &engine)
        }
    }
}

/// Runs an admin API client command on a small runtime.
fn admin_client<F, Fut>(args: ClientArgs, command: F) -> anyhow::Result<()>
where
    F: FnOnce(crate::client::AdminClient) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let token = read_token(args.token, args.token_file.as_deref(), "--token-file")?;
    let client = crate::client::AdminClient::new(&args.admin_url, token);
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(command(client))
}

/// The token given directly, else read from `file` (surrounding whitespace
/// removed); `what` names the flag in errors.
fn read_token(value: Option<String>, file: Option<&std::path::Path>, what: &str) -> anyhow::Result<Option<String>> {
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        return Ok(Some(value));
    }
    let Some(path) = file else { return Ok(None) };
    let text = std::fs::read_to_string(path).with_context(|| format!("{what} {}", path.display()))?;
    match text.trim() {
        "" => bail!("{what} {}: the file is empty", path.display()),
        token => Ok(Some(token.to_owned())),
    }
}

fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

async fn plugin_command(client: crate::client::AdminClient, command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Push { name, file } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let outcome = client.put_wasm(&format!("/v1/plugins/{name}"), bytes).await?;
            let version = &outcome["version"];
            if outcome["changed"].as_bool() == Some(false) {
                println!("{name}: unchanged (v{} is already live)", version["version"]);
                return Ok(());
            }
            println!("{name}: v{} live ({}, sha256 {}, {} bytes, {} in {:.0} ms)", version["version"], version["kind"].as_str().unwrap_or(""),
                &version["sha256"].as_str().unwrap_or("")[..12.min(version["sha256"].as_str().unwrap_or("").len())], version["size_bytes"],
                outcome["loaded_from"].as_str().unwrap_or(""), outcome["upload_to_live_ms"].as_f64().unwrap_or(0.0));
            for swap in outcome["pipelines"].as_array().into_iter().flatten() {
                println!("  {}: {} (pause {} us)", swap["pipeline"].as_str().unwrap_or(""), swap["status"].as_str().unwrap_or(""), swap["report"]["pause_us"]);
            }
        }
        PluginCommand::List => {
            let plugins = client.get("/v1/plugins").await?;
            println!("{:<32} {:>5} {:>9} {:<14} USED BY", "NAME", "LIVE", "VERSIONS", "KIND");
            for plugin in plugins.as_array().into_iter().flatten() {
                let versions = plugin["versions"].as_array().map_or(0, Vec::len);
                let live = plugin["versions"].as_array().into_iter().flatten().find(|v| v["version"] == plugin["live"]);
                let used_by: Vec<&str> = plugin["used_by"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
                println!("{:<32} {:>5} {:>9} {:<14} {}", plugin["name"].as_str().unwrap_or(""), format!("v{}", plugin["live"]), versions,
                    live.and_then(|v| v["kind"].as_str()).unwrap_or(""), used_by.join(","));
            }
        }
        PluginCommand::Show { name } => print_json(&client.get(&format!("/v1/plugins/{name}")).await?),
        PluginCommand::Rollback { name, version } => {
            let outcome = client.post(&format!("/v1/plugins/{name}/rollback"), &serde_json::json!({ "version": version })).await?;
            println!("{name}: v{} live", outcome["version"]["version"]);
        }
        PluginCommand::Rm { name, version: None } => {
            client.delete(&format!("/v1/plugins/{name}")).await?;
            println!("{name}: removed");
        }
        PluginCommand::Rm { name, version: Some(version) } => {
            let record = client.delete(&format!("/v1/plugins/{name}?version={version}")).await?;
            let left: Vec<String> = record["versions"].as_array().into_iter().flatten().map(|v| format!("v{}", v["version"])).collect();
            println!("{name}: v{version} removed (kept {}; live v{})", left.join(","), record["live"]);
        }
    }
    Ok(())
}

async fn pipeline_command(client: crate::client::AdminClient, command: PipelineCommand) -> anyhow::Result<()> {
    match command {
        PipelineCommand::List => {
            let pipelines = client.get("/v1/pipelines").await?;
            println!("{:<24} {:<10} {:>12} {:>12} {:>10} {:>10}  PLUGINS", "NAME", "STATE", "IN", "OUT", "FILTERED", "DLQ");
            for p in pipelines.as_array().into_iter().flatten() {
                let versions: Vec<String> = p["plugin_versions"].as_object().into_iter().flatten().map(|(k, v)| format!("{k}@{}", v.as_str().unwrap_or(""))).collect();
                println!("{:<24} {:<10} {:>12} {:>12} {:>10} {:>10}  {}", p["name"].as_str().unwrap_or(""), p["state"]["state"].as_str().unwrap_or(""),
                    p["records_in"], p["records_out"], p["records_filtered"], p["records_dead_lettered"], versions.join(","));
            }
        }
        PipelineCommand::Status { name } => print_json(&client.get(&format!("/v1/pipelines/{name}")).await?),
        PipelineCommand::Pause { name } => {
            client.post(&format!("/v1/pipelines/{name}/pause"), &serde_json::Value::Null).await?;
            println!("{name}: pausing at the next batch boundary");
        }
        PipelineCommand::Resume { name } => {
            client.post(&format!("/v1/pipelines/{name}/resume"), &serde_json::Value::Null).await?;
            println!("{name}: resuming");
        }
    }
    Ok(())
}

async fn dlq_command(client: crate::client::AdminClient, command: DlqCommand) -> anyhow::Result<()> {
    let peek = |pipeline: &str, limit: usize, kind: &Option<String>| {
        let mut path = format!("/v1/pipelines/{pipeline}/dlq?limit={limit}");
        if let Some(kind) = kind {
            let kind: String = kind.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { char::from(b).to_string() } else { format!("%{b:02X}") }).collect();
            path.push_str(&format!("&kind={kind}"));
        }
        path
    };
    match command {
        DlqCommand::Redrive { pipeline, since, limit } => {
            let report = client.post(&format!("/v1/pipelines/{pipeline}/dlq/redrive"), &serde_json::json!({ "since": since, "limit": limit })).await?;
            println!("{pipeline}: redrive read {}, delivered {}, filtered {}, dead-lettered again {}", report["read"], report["delivered"], report["filtered"], report["dead_lettered"]);
        }
        DlqCommand::Export { pipeline, limit, kind } => {
            let letters = client.get(&peek(&pipeline, limit, &kind)).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for letter in letters.as_array().into_iter().flatten() {
                writeln!(out, "{letter}")?;
            }
            out.flush()?;
        }
        DlqCommand::List { pipeline, limit, kind } => {
            // The web console's dead-letter table, oldest first (newest at the bottom).
            let letters = client.get(&peek(&pipeline, limit, &kind)).await?;
            let clip = |text: &str, n: usize| if text.chars().count() > n { format!("{}…", text.chars().take(n - 1).collect::<String>()) } else { text.to_owned() };
            println!("{:<20} {:<12} {:<24} {:<24} {:>8}  {:<48} VALUE", "WHEN", "KIND", "OPERATOR", "SOURCE", "ATTEMPTS", "MESSAGE");
            for letter in letters.as_array().into_iter().flatten() {
                let h = &letter["headers"];
                let when = letter["timestamp_ms"].as_i64().and_then(chrono::DateTime::from_timestamp_millis).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default();
                let header = |k: &str| h[k].as_str().unwrap_or("").to_owned();
                let source = format!("{}/{}@{}", header("weir.source.topic"), header("weir.source.partition"), header("weir.source.offset"));
                let operator = match header("weir.error.plugin.version").as_str() { "" => header("weir.error.operator"), v => format!("{}@{v}", header("weir.error.operator")) };
                let value = letter["value"].as_str().unwrap_or("");
                let value = if letter["value_encoding"] == "hex" { format!("hex:{}", clip(value, 60)) } else { clip(value, 64) };
                println!(
                    "{when:<20} {:<12} {operator:<24} {source:<24} {:>8}  {:<48} {value}",
                    header("weir.error.kind"),
                    header("weir.attempts"),
                    clip(&header("weir.error.message").replace('\n', " "), 48)
                );
            }
        }
    }
    Ok(())
}

/// `weir dlq export` lines become their original value; other lines pass.
fn unwrap_dead_letter(line: String) -> String {
    if !line.trim_start().starts_with('{') || !line.contains("\"value_encoding\"") {
        return line;
    }
    match serde_json::from_str::<crate::pipeline::dead_letters::DeadLetterView>(&line) {
        Ok(view) if view.value_encoding == "utf8" => view.value.unwrap_or_default(),
        _ => line,
    }
}

fn parse_datetime_ms(text: &str) -> anyhow::Result<i64> {
    let parsed = arrow_cast::parse::string_to_datetime(&chrono::Utc, text)
        .with_context(|| format!("--to-datetime `{text}`: expected RFC 3339, e.g. 2026-11-23T10:00:00Z"))?;
    Ok(parsed.timestamp_millis())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn run_pipelines(path: &std::path::Path, grace_period_s: u64, admin: &AdminArgs, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let config = crate::config::Config::load(path)?;
    let data_dir = data_dir.or(config.admin.data_dir.clone());
    let cache_dir = match (&config.engine.cache_dir, &data_dir) {
        (Some(dir), _) => dir.clone(),
        (None, Some(data)) => data.join("compiled"),
        (None, None) => default_cache_dir(),
    };
    let engine = Engine::new(EngineConfig { limits: config.engine.limits.clone(), cache_dir: Some(cache_dir) })?;
    let registry = match &data_dir {
        Some(dir) => crate::registry::Registry::open(dir).with_context(|| format!("--data-dir {}", dir.display()))?,
        None => {
            tracing::warn!("no --data-dir: plugin versions pushed over the admin API are kept in memory only");
            crate::registry::Registry::in_memory_with_history(config.admin.memory_history_versions.unwrap_or(crate::registry::DEFAULT_MEMORY_HISTORY))
        }
    };
    let listen = admin.admin_listen.or(config.admin.listen);
    let token = match read_token(admin.admin_token.clone(), admin.admin_token_file.as_deref(), "--admin-token-file")? {
        Some(token) => Some(token),
        None => read_token(config.admin.token.clone(), config.admin.token_file.as_deref(), "admin.token_file")?,
    };
    let allowed_hosts: Vec<String> = admin.admin_allowed_hosts.iter().chain(&config.admin.allowed_hosts).cloned().collect();
    let max_plugin_bytes = config.admin.max_plugin_bytes.unwrap_or(crate::deploy::DEFAULT_MAX_PLUGIN_BYTES);
    if let Some(addr) = listen
        && !addr.ip().is_loopback()
        && token.as_deref().is_none_or(str::is_empty)
        && !admin.insecure_admin
    {
        bail!("admin listen address {addr} is not loopback: set a token (--admin-token-file / WEIR_ADMIN_TOKEN_FILE, or --admin-token) or pass --insecure-admin");
    }
    runtime()?.block_on(async move {
        let mut handles = Vec::new();
        for (name, pipeline) in &config.pipelines {
            handles.push(crate::pipeline::start_with_registry(name, pipeline.clone(), engine.clone(), &registry)?);
        }
        let (stop_admin, stop_admin_rx) = tokio::sync::watch::channel(false);
        if let Some(addr) = listen {
            let controls = handles.iter().map(|h| h.control()).collect();
            let deployer = crate::deploy::Deployer::new(engine.clone(), registry.clone(), controls, max_plugin_bytes);
            let state = crate::admin::AdminState::new(deployer, token).with_allowed_hosts(&allowed_hosts);
            crate::admin::start(addr, state, admin.insecure_admin, stop_admin_rx).await?;
        }
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let failed_early = loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break false,
                _ = sigterm.recv() => break false,
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                    if handles.iter().any(|h| h.is_finished()) { break true; }
                }
            }
        };
        if !failed_early {
            tracing::info!("stop signal: finishing in-flight batches, committing");
        }
        for handle in &handles {
            handle.shutdown();
        }
        let mut failures = Vec::new();
        let joined = async {
            for handle in handles {
                let name = handle.name().to_owned();
                if let Err(error) = handle.join().await {
                    failures.push(format!("{name}: {error}"));
                }
            }
        };
        let timed_out = tokio::time::timeout(std::time::Duration::from_secs(grace_period_s), joined).await.is_err();
        let _ = stop_admin.send(true);
        if timed_out {
            bail!("pipelines did not stop within the {grace_period_s}s grace period");
        }
        if !failures.is_empty() {
            bail!("{}", failures.join("; "));
        }
        Ok(())
    })
}

/// Seed pipelines of `weir demo --scenario`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioArg {
    /// Hourly revenue, orders, average and unique customers per processing center.
    Orders,
    /// Per-user 5-minute windows sliding by 1 minute; alerts to a topic and a webhook.
    Fraud,
}

/// The demo's options, and the embedded components written out for this
/// run when no `--plugins-dir` is given and none are on disk (keep it alive
/// while the demo runs).
fn demo_options(records: Option<u64>, rate: Option<u64>, plugins_dir: Option<PathBuf>, admin: &AdminArgs) -> anyhow::Result<(crate::demo::DemoOptions, Option<crate::demo::ExtractedPlugins>)> {
    use std::io::IsTerminal;
    let (plugins_dir, extracted) = match plugins_dir {
        Some(dir) => (dir, None),
        None => {
            let on_disk = crate::demo::default_plugins_dir();
            match crate::demo::has_plugins(&on_disk) {
                true => (on_disk, None),
                false => match crate::demo::ExtractedPlugins::write().context("writing the embedded example operators")? {
                    Some(extracted) => (extracted.dir().to_path_buf(), Some(extracted)),
                    None => (on_disk, None),
                },
            }
        }
    };
    let options = crate::demo::DemoOptions {
        records,
        rate_per_s: rate,
        plugins_dir,
        cache_dir: Some(default_cache_dir()),
        terminal: std::io::stderr().is_terminal(),
        admin_listen: admin.admin_listen,
        admin_token: read_token(admin.admin_token.clone(), admin.admin_token_file.as_deref(), "--admin-token-file")?,
        insecure_admin: admin.insecure_admin,
        admin_allowed_hosts: admin.admin_allowed_hosts.clone(),
    };
    Ok((options, extracted))
}

fn demo_scenario(scenario: ScenarioArg, records: Option<u64>, rate: Option<u64>, plugins_dir: Option<PathBuf>, admin: AdminArgs) -> anyhow::Result<()> {
    use crate::demo::seeds::{Scenario, format_ms};
    let scenario = match scenario {
        ScenarioArg::Orders => Scenario::Orders,
        ScenarioArg::Fraud => Scenario::Fraud,
    };
    let (options, _extracted) = demo_options(records, rate, plugins_dir, &admin)?;
    let summary = runtime()?.block_on(async move {
        let mut stderr = std::io::stderr();
        crate::demo::seeds::run(scenario, options, &mut stderr).await
    })?;
    let s = &summary.stats;
    // Timestamps arrive as RFC 3339 strings (JSON output) or Unix ms.
    let ms = |row: &serde_json::Value, key: &str| match &row[key] {
        serde_json::Value::String(text) => text.replace('T', " ").trim_end_matches('Z').to_owned(),
        other => other.as_i64().map(format_ms).unwrap_or_else(|| other.to_string()),
    };
    println!("weir demo --scenario {} ({:.1}s)", scenario.name(), summary.elapsed.as_secs_f64());
    println!("  records {}  folded {}  late {} (planted {}, dead-lettered)  checkpoints {}  state {} B", s.records_in, s.records_aggregated, s.records_late, summary.planted_late, s.checkpoints, s.state_bytes);
    match scenario {
        Scenario::Orders => {
            println!("  final windows ({}), from topic {}:", summary.final_rows.len(), scenario.output_topic());
            println!("  {:<20} {:<11} {:>12} {:>7} {:>10} {:>9}", "window start (UTC)", "center", "revenue", "orders", "avg", "customers");
            for row in &summary.final_rows {
                println!(
                    "  {:<20} {:<11} {:>12.2} {:>7} {:>10.2} {:>9}",
                    ms(row, "window_start"),
                    row["processing_center"].as_str().unwrap_or_default(),
                    row["revenue"].as_f64().unwrap_or_default(),
                    row["order_count"],
                    row["average_order_value"].as_f64().unwrap_or_default(),
                    row["unique_customers"]
                );
            }
        }
        Scenario::Fraud => {
            println!("  alerted users ({}; planted {}), from topic {} and the webhook ({} rows):", summary.alerts.len(), summary.planted_fraud.len(), scenario.output_topic(), summary.webhook_rows);
            for (user, reasons) in &summary.alerts {
                let planted = if summary.planted_fraud.contains(user) { "planted" } else { "NOT PLANTED" };
                println!("  {user:<8} {:<40} {planted}", reasons.iter().cloned().collect::<Vec<_>>().join(","));
            }
            let mut latencies = summary.alert_latencies_ms.clone();
            latencies.sort_unstable();
            if let (Some(first), Some(last)) = (latencies.first(), latencies.last()) {
                println!("  alert latency (produce of the crossing payment -> alert produced): min {first} ms, max {last} ms");
            }
        }
    }
    if !summary.consistent() {
        bail!("the scenario's results are inconsistent (see above)");
    }
    println!("  consistent: every record folded, late or dead-lettered{}", if scenario == Scenario::Fraud { "; exactly the planted users alerted" } else { "" });
    Ok(())
}

fn demo(records: Option<u64>, rate: Option<u64>, plugins_dir: Option<PathBuf>, admin: AdminArgs) -> anyhow::Result<()> {
    let (options, _extracted) = demo_options(records, rate, plugins_dir, &admin)?;
    let summary = runtime()?.block_on(async move {
        let mut stderr = std::io::stderr();
        crate::demo::run(options, &mut stderr).await
    })?;
    let s = &summary.stats;
    println!("weir demo summary ({:.1}s{})", summary.elapsed.as_secs_f64(), if summary.interrupted { ", interrupted" } else { "" });
    println!("  input records      {:>9}  (generated {})", s.records_in, summary.generated);
    println!("  output records     {:>9}  (found in topic orders.enriched: {})", s.records_out, summary.output_topic_records);
    println!("  filtered           {:>9}", s.records_filtered);
    println!("  dead-lettered      {:>9}  (found in topic orders.dlq: {}) {:?}", s.records_dead_lettered, summary.dead_letter_topic_records, s.dead_letters_by_kind);
    println!("  guest traps        {:>9}", s.traps);
    let balanced = summary.balanced();
    println!(
        "  inputs = outputs + filtered + dead-lettered: {} = {} + {} + {}  {}",
        s.records_in,
        s.records_out,
        s.records_filtered,
        s.records_dead_lettered,
        if balanced { "OK" } else { "MISMATCH" }
    );
    if !balanced {
        bail!("the demo's counts do not balance");
    }
    Ok(())
}

fn validate(paths: &[PathBuf], config: Option<&str>, args: &EngineArgs) -> anyhow::Result<()> {
    let engine = args.engine()?;
    let mut failed = 0;
    for path in paths {
        match engine.load_file(path) {
            Ok(plugin) => {
                let mut line = format!(
                    "{}: {} operator ({}{}), {} bytes, sha256 {}, {} in {:.1?}",
                    path.display(),
                    plugin.kind(),
                    plugin.kind().export_name(),
                    if plugin.packed() { ", takes packed batches" } else { "" },
                    plugin.size_bytes(),
                    &plugin.sha256()[..16],
                    match plugin.source() {
                        crate::engine::LoadSource::Compiled => "compiled",
                        crate::engine::LoadSource::Cache => "loaded from cache",
                    },
                    plugin.load_time(),
                );
                if let Some(config) = config {
                    match plugin.instantiate(config, &HttpAllowlist::default()) {
                        Ok(instance) => {
                            let reads = instance.reads().map_or("all columns".to_owned(), |r| r.join(", "));
                            line.push_str(&format!("; init ok, reads {reads}"));
                        }
                        Err(error) => {
                            println!("{line}");
                            println!("{}: init failed: {error}", path.display());
                            failed += 1;
                            continue;
                        }
                    }
                }
                println!("{line}");
            }
            Err(error) => {
                println!("{}: invalid: {error}", path.display());
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} plugin(s) invalid", paths.len());
    }
    Ok(())
}

fn exec(
    paths: &[PathBuf],
    configs: &[String],
    schema_path: &PathBuf,
    input: &PathBuf,
    batch_size: usize,
    allow_hosts: Vec<String>,
    args: &EngineArgs,
) -> anyhow::Result<()> {
    if batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let schema_text = std::fs::read_to_string(schema_path)
        .with_context(|| format!("reading schema file {}", schema_path.display()))?;
    let schema = SchemaSpec::from_json(&schema_text)?.to_arrow()?;
    let decoder = JsonDecoder::new(schema);
    let engine = args.engine()?;
    let allowlist = HttpAllowlist::new(allow_hosts);
    let mut configs_by_name = std::collections::HashMap::new();
    for entry in configs {
        let (name, json) = entry.split_once('=').with_context(|| format!("--config `{entry}`: expected NAME=JSON"))?;
        serde_json::from_str::<serde_json::Value>(json).with_context(|| format!("--config {name}: invalid JSON"))?;
        configs_by_name.insert(name.to_owned(), json.to_owned());
    }
    let mut operators = Vec::new();
    for path in paths {
        let plugin = engine.load_file(path)?;
        let config = configs_by_name.remove(plugin.name()).unwrap_or_else(|| "{}".to_owned());
        operators.push(Operator::new(plugin, config, allowlist.clone())?);
    }
    if let Some(name) = configs_by_name.keys().next() {
        bail!("--config {name}: no plugin named `{name}` (names are file stems)");
    }
    let mut chain = Chain::new(operators);

    let reader: Box<dyn BufRead> = if input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?,
        ))
    };
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut totals = Totals::default();
    let mut lines: Vec<String> = Vec::with_capacity(batch_size);
    let mut first_line = 1usize;
    let mut line_number = 0usize;
    for line in reader.lines() {
        let line = unwrap_dead_letter(line.context("reading input")?);
        line_number += 1;
        if line.trim().is_empty() {
            continue;
        }
        if lines.is_empty() {
            first_line = line_number;
        }
        lines.push(line);
        if lines.len() == batch_size {
            run_batch(&decoder, &mut chain, &lines, first_line, &mut stdout, &mut totals)?;
            lines.clear();
        }
    }
    if !lines.is_empty() {
        run_batch(&decoder, &mut chain, &lines, first_line, &mut stdout, &mut totals)?;
    }
    stdout.flush()?;
    eprintln!(
        "weir exec: {} records in, {} out, {} filtered, {} rejected, {} undecodable",
        totals.input, totals.output, totals.filtered, totals.rejected, totals.undecodable
    );
    Ok(())
}

#[derive(Default)]
struct Totals {
    input: usize,
    output: usize,
    filtered: usize,
    rejected: usize,
    undecodable: usize,
}

fn run_batch(
    decoder: &JsonDecoder,
    chain: &mut Chain,
    lines: &[String],
    first_line: usize,
    stdout: &mut impl Write,
    totals: &mut Totals,
) -> anyhow::Result<()> {
    let slices: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let decoded = decoder.decode_lines(&slices)?;
    totals.input += lines.len();
    for bad in &decoded.rejected {
        totals.undecodable += 1;
        report(serde_json::json!({"line": first_line + bad.index, "stage": "decode", "reason": bad.reason}));
    }
    let output = chain.run(decoded.batch, None)?;
    totals.filtered += output.filtered;
    for rejection in &output.rejected {
        totals.rejected += 1;
        let operator = chain.operators()[rejection.operator].plugin().name().to_owned();
        let line = rejection.input_row.map(|row| first_line + decoded.line_of_row[row as usize]);
        report(serde_json::json!({"line": line, "stage": operator, "reason": rejection.reason}));
    }
    for result in &output.sink_results {
        match result {
            SinkResult::Written | SinkResult::RejectedRows(_) => {}
            SinkResult::Retryable(reason) => report(serde_json::json!({"stage": "sink", "retryable": reason})),
            SinkResult::Permanent(reason) => report(serde_json::json!({"stage": "sink", "permanent": reason})),
        }
    }
    let mut buffer = Vec::new();
    for batch in &output.batches {
        totals.output += batch.num_rows();
        write_json_lines(batch, &mut buffer)?;
    }
    stdout.write_all(&buffer)?;
    Ok(())
}

fn report(value: serde_json::Value) {
    eprintln!("{value}");
}
