//! The commands that run in this process without a config file: `weir demo`,
//! `weir validate` and `weir exec`.

use super::*;

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

/// Seed pipelines of `weir demo --scenario`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum ScenarioArg {
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

pub(super) fn demo_scenario(scenario: ScenarioArg, records: Option<u64>, rate: Option<u64>, plugins_dir: Option<PathBuf>, admin: AdminArgs) -> anyhow::Result<()> {
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

pub(super) fn demo(records: Option<u64>, rate: Option<u64>, plugins_dir: Option<PathBuf>, admin: AdminArgs) -> anyhow::Result<()> {
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

pub(super) fn validate(paths: &[PathBuf], config: Option<&str>, args: &EngineArgs) -> anyhow::Result<()> {
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

pub(super) fn exec(
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
