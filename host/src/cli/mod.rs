//! The `weir` command line: argument parsing and wiring (with the binary, the
//! one place for `anyhow`). It lives in the library so that the binary is a
//! thin shim: its code is compiled in parallel with the rest of the library
//! rather than in a serial last step of a cold build.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use crate::batch::{JsonDecoder, SchemaSpec, write_json_lines};
use crate::engine::{Engine, EngineConfig, HttpAllowlist, SandboxLimits, SinkResult, default_cache_dir};
use crate::operator::{Chain, Operator};

mod local;
mod remote;

use local::{ScenarioArg, demo, demo_scenario, exec, validate};
use remote::{ClientArgs, DlqCommand, PipelineCommand, PluginCommand, admin_client, dlq_command, pipeline_command, plugin_command};

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
