//! `weir plugin`, `weir pipeline` and `weir dlq`: clients of a running
//! weir's admin API.

use super::*;

/// Where the admin API is.
#[derive(clap::Args)]
pub(super) struct ClientArgs {
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
pub(super) enum PluginCommand {
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
pub(super) enum PipelineCommand {
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
pub(super) enum DlqCommand {
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

/// Runs an admin API client command on a small runtime.
pub(super) fn admin_client<F, Fut>(args: ClientArgs, command: F) -> anyhow::Result<()>
where
    F: FnOnce(crate::client::AdminClient) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let token = read_token(args.token, args.token_file.as_deref(), "--token-file")?;
    let client = crate::client::AdminClient::new(&args.admin_url, token);
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(command(client))
}

fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

pub(super) async fn plugin_command(client: crate::client::AdminClient, command: PluginCommand) -> anyhow::Result<()> {
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

pub(super) async fn pipeline_command(client: crate::client::AdminClient, command: PipelineCommand) -> anyhow::Result<()> {
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

pub(super) async fn dlq_command(client: crate::client::AdminClient, command: DlqCommand) -> anyhow::Result<()> {
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
