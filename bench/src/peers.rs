//! Peer benchmark (issue: peer benchmarks): weir against other Wasm stream
//! engines and native Rust on the same input bytes, in the same run.
//!
//! Contenders: native Rust (serde_json per record; arrow-json + arrow kernels
//! per batch) as the floor, weir (Rust and C guests), Fluvio SmartModules
//! through `fluvio-smartengine` and RisingWave's `arrow-udf-wasm`. The peers
//! pin other wasmtime and arrow majors than weir, so each lives in its own
//! cargo workspace under `bench/peers/` (built by its `build` script into
//! `target/peers`) with a driver binary that reads the same input file, times
//! the same work and writes its output; this module runs the drivers, checks
//! every output against the native one and writes the tables.

use crate::contenders::{self, Contender, DecodeOnly, Measured, NativeArrow, NativeSerde};
use weir::config::DecodeScope;
use crate::report::Table;
use crate::workload::{self, Digest, Workload};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use weir::engine::{Engine, EngineConfig};
use weir_tests::guests;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Records per call in the main tables (weir's default pipeline batch cut).
const BATCH: usize = 10_000;

/// Sizes of the run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Records of the main input.
    pub records: usize,
    /// Timed runs per figure (median reported).
    pub runs: usize,
    /// Batch sizes of the per-call overhead table.
    pub batch_sizes: Vec<usize>,
    /// Extra 16-character string fields of the record-width table.
    pub widths: Vec<usize>,
    /// Records of the end-to-end Kafka comparison.
    pub pipeline_records: u64,
}

impl Plan {
    /// The published run (`quick = false`) or the CI smoke run.
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan { records: 20_000, runs: 1, batch_sizes: vec![1, 100, 10_000], widths: vec![0, 8], pipeline_records: 20_000 }
        } else {
            Plan {
                records: 1_000_000,
                runs: 5,
                batch_sizes: vec![1, 10, 100, 1_000, 10_000, 65_536],
                widths: vec![0, 8, 32],
                pipeline_records: 200_000,
            }
        }
    }
}

/// What a peer driver prints (one JSON object).
#[derive(Debug, Deserialize)]
struct DriverReport {
    engine: String,
    version: String,
    median_s: f64,
    #[serde(default)]
    udf_s: Option<f64>,
}

/// A peer engine: its workspace, driver and guests.
struct Peer {
    /// Display name.
    name: &'static str,
    /// Workspace directory under `bench/peers`.
    dir: &'static str,
    /// Driver binary under `target/peers/release`.
    driver: &'static str,
    /// Guest per workload (path under `target/peers`), none if the peer has no such operator.
    guest: fn(Workload) -> Option<&'static str>,
    /// Why a workload is missing.
    missing: &'static str,
}

const PEERS: [Peer; 2] = [
    Peer {
        name: "Fluvio SmartModule (fluvio-smartengine)",
        dir: "fluvio",
        driver: "fluvio-driver",
        guest: |w| match w {
            Workload::Filter => Some("wasm32-unknown-unknown/guest/fluvio_filter.wasm"),
            Workload::Map => Some("wasm32-unknown-unknown/guest/fluvio_map.wasm"),
            Workload::Aggregate => None,
        },
        missing: "SmartModule aggregates keep one unkeyed accumulator and re-emit it per record",
    },
    Peer {
        name: "arrow-udf-wasm (RisingWave)",
        dir: "arrow-udf",
        driver: "arrowudf-driver",
        guest: |w| match w {
            Workload::Filter | Workload::Map => Some("wasm32-wasip1/guest/arrowudf_orders.wasm"),
            Workload::Aggregate => None,
        },
        missing: "arrow-udf-wasm runs scalar and table functions only",
    },
];

/// A built peer, or why it could not be built.
struct BuiltPeer {
    peer: &'static Peer,
    built: Result<(), String>,
}

fn peers_target() -> PathBuf {
    weir_tests::repo_root().join("target/peers")
}

/// Builds every peer workspace (its `build` script; a no-op when up to date).
fn build_peers() -> Vec<BuiltPeer> {
    PEERS
        .iter()
        .map(|peer| {
            let script = weir_tests::repo_root().join("bench/peers").join(peer.dir).join("build");
            eprintln!("bench: building {} ({})", peer.name, script.display());
            let built = Command::new("bash")
                .arg(&script)
                .env("CARGO_TARGET_DIR", peers_target())
                .env_remove("RUSTFLAGS")
                .output()
                .map_err(|e| format!("{}: {e}", script.display()))
                .and_then(|out| {
                    if out.status.success() {
                        Ok(())
                    } else {
                        let stderr = String::from_utf8_lossy(&out.stderr);
                        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
                        Err(tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
                    }
                });
            if let Err(error) = &built {
                eprintln!("bench: {} did not build:\n{error}", peer.name);
            }
            BuiltPeer { peer, built }
        })
        .collect()
}

/// Runs a peer driver and checks its output against `expected`.
#[allow(clippy::too_many_arguments)]
fn run_peer(
    peer: &Peer,
    workload: Workload,
    input: &Path,
    records: usize,
    batch: usize,
    threads: usize,
    runs: usize,
    expected: Option<&Digest>,
) -> Result<(DriverReport, Duration), Error> {
    let guest = (peer.guest)(workload).ok_or(peer.missing)?;
    let out = tempfile::NamedTempFile::new()?;
    let driver = peers_target().join("release").join(peer.driver);
    let mut command = Command::new(&driver);
    command
        .args(["--input".as_ref(), input.as_os_str()])
        .args(["--workload", workload.name()])
        .args(["--wasm".as_ref(), peers_target().join(guest).as_os_str()])
        .args(["--batch", &batch.to_string(), "--runs", &runs.to_string(), "--threads", &threads.to_string()])
        .args(["--max-records", &records.to_string()])
        .env_remove("RUST_BACKTRACE");
    if expected.is_some() {
        command.args(["--out".as_ref(), out.path().as_os_str()]);
    }
    let output = command.output().map_err(|e| format!("{}: {e}", driver.display()))?;
    if !output.status.success() {
        return Err(format!("{} failed: {}", peer.driver, String::from_utf8_lossy(&output.stderr).trim()).into());
    }
    let report: DriverReport = serde_json::from_slice(&output.stdout).map_err(|e| format!("{} printed no report ({e})", peer.driver))?;
    if let Some(expected) = expected {
        workload::check(expected, &workload::digest(workload, &std::fs::read(out.path())?)?).map_err(|e| format!("{}: {e}", peer.name))?;
    }
    let median = Duration::from_secs_f64(report.median_s);
    Ok((report, median))
}

/// An in-process contender measured and checked.
fn run_local(
    factory: &contenders::Factory,
    lines: &[&[u8]],
    batch: usize,
    threads: usize,
    runs: usize,
    workload: Workload,
    expected: Option<&Digest>,
) -> Result<(Measured, Digest), Error> {
    let measured = contenders::measure(factory, lines, batch, threads, runs)?;
    let digest = workload::digest(workload, &measured.output)?;
    if let Some(expected) = expected {
        workload::check(expected, &digest)?;
    }
    Ok((measured, digest))
}

/// A weir contender: label, component, config, decode scope.
struct WeirGuest {
    label: String,
    path: PathBuf,
    config: &'static str,
    decode: DecodeScope,
}

/// The weir guests per workload: the Rust guest with the whole schema
/// decoded (the default) and with `decode = "read"`, then the C (filter,
/// map) or Go (aggregate) guest with `decode = "read"`.
fn weir_guests(workload: Workload) -> Vec<WeirGuest> {
    let polyglot = weir_tests::repo_root().join("target/guests/polyglot");
    let (rust, other, lang, config) = match workload {
        Workload::Filter => (guests::HIGH_VALUE_ORDERS, "c-high-value-orders.wasm", "C", r#"{"threshold": 1000.0}"#),
        Workload::Map => (guests::ENRICH_ORDER, "c-enrich-order.wasm", "C", r#"{"tax_rate": 0.2}"#),
        Workload::Aggregate => (guests::COUNT_BY_KEY, "go-count-by-key.wasm", "Go", r#"{"key": "customer_id", "value": "total_amount"}"#),
    };
    let read = DecodeScope::Read;
    vec![
        WeirGuest { label: "weir, Rust guest".into(), path: rust.into(), config, decode: DecodeScope::Schema },
        WeirGuest { label: "weir, Rust guest, decode = \"read\"".into(), path: rust.into(), config, decode: read },
        WeirGuest { label: format!("weir, {lang} guest, decode = \"read\""), path: polyglot.join(other), config, decode: read },
    ]
}

const WEIR_ENGINE: &str = "wasmtime 48.0.8";

/// Everything a table needs: the plan, the input, the engines.
struct Suite {
    plan: Plan,
    input_bytes: Vec<u8>,
    input: PathBuf,
    schema: String,
    schema_path: PathBuf,
    engine: Engine,
    built: Vec<BuiltPeer>,
}

impl Suite {
    /// The input's records.
    fn lines(&self) -> Vec<&[u8]> {
        workload::lines(&self.input_bytes)
    }

    /// The peers that built.
    fn peers(&self) -> impl Iterator<Item = &'static Peer> + '_ {
        self.built.iter().filter(|b| b.built.is_ok()).map(|b| b.peer)
    }

    /// Native serde_json: its time and its output, the reference of the others.
    fn serde(&self, workload: Workload, lines: &[&[u8]], threads: usize) -> Result<(Measured, Digest), Error> {
        run_local(&|| Ok(Box::new(NativeSerde::new(workload))), lines, BATCH, threads, self.plan.runs, workload, None)
    }

    /// Native arrow (whole schema, or read fields only), checked against `expected`.
    fn arrow(&self, workload: Workload, lines: &[&[u8]], batch: usize, threads: usize, projected: bool, expected: &Digest) -> Result<Measured, Error> {
        let schema = &self.schema;
        Ok(run_local(&|| Ok(Box::new(NativeArrow::new(workload, schema, projected)?)), lines, batch, threads, self.plan.runs, workload, Some(expected))?.0)
    }

    /// weir with `guest`, checked against `expected`.
    fn weir(&self, workload: Workload, guest: &WeirGuest, lines: &[&[u8]], batch: usize, threads: usize, expected: &Digest) -> Result<Measured, Error> {
        let factory = || Ok(Box::new(contenders::Weir::new(&self.engine, &guest.path, guest.config, &self.schema_path, guest.decode)?) as Box<dyn Contender>);
        Ok(run_local(&factory, lines, batch, threads, self.plan.runs, workload, Some(expected))?.0)
    }

    /// A peer's driver, checked against `expected`.
    fn peer(&self, peer: &Peer, workload: Workload, records: usize, batch: usize, threads: usize, expected: &Digest) -> Result<(DriverReport, Duration), Error> {
        run_peer(peer, workload, &self.input, records, batch, threads, self.plan.runs, Some(expected))
    }
}

/// Runs the suite; `quick` is the CI smoke run (small input, no timing claims).
pub fn run(quick: bool) -> Result<String, Error> {
    let plan = Plan::new(quick);
    let data = weir_tests::repo_root().join("target/bench-data");
    std::fs::create_dir_all(&data)?;
    let input_bytes = workload::order_lines(plan.records, 0);
    let input = data.join(format!("orders-{}.jsonl", plan.records));
    std::fs::write(&input, &input_bytes)?;
    let schema = workload::schema_json(0);
    let schema_path = data.join("orders.schema.json");
    std::fs::write(&schema_path, &schema)?;
    let built = build_peers();
    if quick {
        // CI: a peer that stops building must fail the smoke run, not vanish.
        if let Some(failed) = built.iter().find(|b| b.built.is_err()) {
            return Err(format!("{} did not build: {}", failed.peer.name, failed.built.as_ref().unwrap_err()).into());
        }
    }
    let suite = Suite { plan, input_bytes, input, schema, schema_path, engine: Engine::new(EngineConfig::default())?, built };

    let mut tables = Vec::new();
    let mut summary = Summary::default();
    // WEIR_BENCH_TABLES=same,decode,batch,threads,width,memory,pipeline picks tables (all by default).
    let wants = crate::report::wanted;
    if wants("same") {
        for workload in [Workload::Filter, Workload::Map, Workload::Aggregate] {
            tables.push(same_work(&suite, workload, &mut summary)?);
        }
    }
    if wants("decode") {
        tables.push(decode_alone(&suite, &mut summary)?);
    }
    if wants("batch") {
        tables.push(batch_sizes(&suite)?);
    }
    if wants("threads") {
        tables.push(threads(&suite)?);
    }
    if wants("width") {
        tables.push(widths(&suite)?);
    }
    if wants("memory") {
        let instances = if quick { 20 } else { 500 };
        tables.push(crate::engine::memory_per_instance(&suite.engine, instances).map_err(|e| e.to_string())?);
    }
    if wants("pipeline") {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let (end_to_end, ratio) = runtime.block_on(crate::pipeline::throughput(suite.plan.pipeline_records)).map_err(|e| e.to_string())?;
        summary.end_to_end = Some(ratio);
        tables.push(end_to_end);
        tables.push(runtime.block_on(crate::pipeline::scale_out(suite.plan.pipeline_records)).map_err(|e| e.to_string())?);
    }
    tables.insert(0, summary.table());

    let heading = format!("Peer benchmarks ({} seed orders as JSON lines, {BATCH} records per call{})", suite.plan.records, if quick { ", quick mode" } else { "" });
    Ok(crate::report::publish("peers", &heading, &tables, serde_json::json!({"records": suite.plan.records, "quick": quick}), "")?)
}

/// One workload's times against which the issue's targets are read.
struct SummaryRow {
    workload: Workload,
    /// Native serde_json per record (reads only the fields it needs).
    serde: Duration,
    /// weir, Rust guest, whole schema decoded; and its native floor.
    weir: Duration,
    native: Duration,
    /// weir with `decode = "read"` and its (projected) native floor.
    weir_read: Option<(Duration, Duration)>,
    fluvio: Option<Duration>,
    arrow_udf: Option<Duration>,
}

/// The figures the issue sets targets for.
#[derive(Default)]
struct Summary {
    rows: Vec<SummaryRow>,
    /// weir identity end to end / raw passthrough records/s.
    end_to_end: Option<f64>,
    /// JSON decode alone, whole schema: (arrow-json, weir's decoder).
    decode: Option<(Duration, Duration)>,
}

impl Summary {
    fn table(&self) -> Table {
        let mut table = Table::new("Targets (same input, same run)", &["claim", "target", "measured"]);
        let speedup = |weir: Duration, other: Duration| format!("{:.1}x", other.as_secs_f64() / weir.as_secs_f64());
        let slower = |weir: Duration, native: Duration| format!("{:.2}x", weir.as_secs_f64() / native.as_secs_f64());
        for row in &self.rows {
            let (name, bound) = match row.workload {
                Workload::Filter => ("filter", "<= 1.2x"),
                Workload::Map => ("map", "<= 1.5x"),
                Workload::Aggregate => ("aggregate", "-"),
            };
            table.row(vec![format!("weir {name} time / native arrow (whole schema decoded)"), bound.into(), slower(row.weir, row.native)]);
            match row.workload {
                Workload::Filter => table.row(vec![
                    "weir filter records/s vs native serde_json per record".into(),
                    ">= 1.0x".into(),
                    match row.weir_read {
                        Some((read, _)) => format!("{} (default), {} (decode = \"read\")", speedup(row.weir, row.serde), speedup(read, row.serde)),
                        None => speedup(row.weir, row.serde),
                    },
                ]),
                Workload::Map => table.row(vec![
                    "weir map records/s vs native arrow-json floor (whole schema)".into(),
                    ">= 1.3x".into(),
                    match row.weir_read {
                        Some((read, _)) => format!("{} (default), {} (decode = \"read\")", speedup(row.weir, row.native), speedup(read, row.native)),
                        None => speedup(row.weir, row.native),
                    },
                ]),
                Workload::Aggregate => {}
            }
            if let Some((weir, native)) = row.weir_read {
                table.row(vec![format!("weir {name} time / native arrow (`decode = \"read\"`: read fields only)"), bound.into(), slower(weir, native)]);
            }
            let both = |peer: Duration| match row.weir_read {
                Some((read, _)) => format!("{} (default), {} (decode = \"read\")", speedup(row.weir, peer), speedup(read, peer)),
                None => speedup(row.weir, peer),
            };
            if let Some(fluvio) = row.fluvio {
                let target = if row.workload == Workload::Filter { ">= 5x" } else { "-" };
                table.row(vec![format!("weir {name} records/s vs Fluvio SmartModule (10k per call)"), target.into(), both(fluvio)]);
            }
            if let Some(arrow_udf) = row.arrow_udf {
                table.row(vec![format!("weir {name} records/s vs arrow-udf-wasm"), ">= 1x".into(), both(arrow_udf)]);
            }
        }
        if let Some((arrow, weir)) = self.decode {
            table.row(vec!["weir JSON decode alone (whole schema) records/s vs arrow-json".into(), ">= 1.3x".into(), speedup(weir, arrow)]);
        }
        if let Some(ratio) = self.end_to_end {
            table.row(vec!["weir identity end to end vs raw rdkafka passthrough (records/s)".into(), ">= 0.7x".into(), format!("{ratio:.2}x")]);
        }
        table
    }
}

/// One timed run of a contender; with `true`, its output is also checked.
type TimedRun<'a> = Box<dyn FnMut(bool) -> Result<Duration, Error> + 'a>;

/// One contender of the main table: how to time one run of it.
struct Entry<'a> {
    contender: String,
    engine: String,
    notes: String,
    records: usize,
    /// Divided by the native figure that decodes the same fields.
    reads_only: bool,
    run: TimedRun<'a>,
    times: Vec<Duration>,
}

impl Entry<'_> {
    fn median(&self) -> Duration {
        let mut sorted = self.times.clone();
        sorted.sort();
        sorted[sorted.len() / 2]
    }
}

/// An in-process contender, warmed up, as an [`Entry`] runner.
fn local<'a>(factory: Box<contenders::Factory<'a>>, lines: &'a [&'a [u8]], workload: Workload, reference: &'a Digest) -> Result<TimedRun<'a>, Error> {
    let prepared = contenders::Prepared::new(factory, lines, BATCH, 1)?;
    Ok(Box::new(move |check| {
        let (time, output) = prepared.run()?;
        if check {
            workload::check(reference, &workload::digest(workload, &output)?)?;
        }
        Ok(time)
    }))
}

/// One workload, every contender, [`BATCH`] records per call, one thread.
/// The runs are interleaved (every contender once per round, `runs` rounds)
/// so a slow spell of the shared machine hits all of them alike; each
/// output is checked against native in the first round.
fn same_work(suite: &Suite, workload: Workload, summary: &mut Summary) -> Result<Table, Error> {
    let lines = suite.lines();
    let records = lines.len();
    eprintln!("bench: {} ...", workload.name());
    let (_, reference) = suite.serde(workload, &lines, 1)?;
    let reference = &reference;
    let lines = &lines;
    let schema = &suite.schema;
    let entry = |contender: &str, engine: &str, notes: &str, records: usize, reads_only: bool, run| Entry {
        contender: contender.into(),
        engine: engine.into(),
        notes: notes.into(),
        records,
        reads_only,
        run,
        times: Vec::new(),
    };
    let mut entries = vec![
        entry("native Rust, serde_json per record (reads only the fields it needs)", "-", "vs the whole-schema floor", records, false, local(Box::new(move || Ok(Box::new(NativeSerde::new(workload)))), lines, workload, reference)?),
        entry("native Rust, arrow-json (whole schema) + arrow kernels", "-", "floor", records, false, local(Box::new(move || Ok(Box::new(NativeArrow::new(workload, schema, false)?))), lines, workload, reference)?),
        entry("native Rust, arrow-json (read fields only) + arrow kernels", "-", "floor for decode = \"read\"", records, true, local(Box::new(move || Ok(Box::new(NativeArrow::new(workload, schema, true)?))), lines, workload, reference)?),
    ];
    let mut missing = Vec::new();
    for guest in weir_guests(workload) {
        if !guest.path.exists() {
            missing.push((guest.label, WEIR_ENGINE.to_owned(), format!("not built ({})", guest.path.display())));
            continue;
        }
        let (label, reads_only) = (guest.label.clone(), guest.decode == DecodeScope::Read);
        let factory = move || -> Result<Box<dyn Contender>, Error> {
            Ok(Box::new(contenders::Weir::new(&suite.engine, &guest.path, guest.config, &suite.schema_path, guest.decode)?))
        };
        entries.push(entry(&label, WEIR_ENGINE, "", records, reads_only, local(Box::new(factory), lines, workload, reference)?));
    }
    for built in &suite.built {
        let peer = built.peer;
        if let Err(error) = &built.built {
            missing.push((peer.name.into(), "-".into(), format!("could not be built here: {}", error_line(error))));
            continue;
        }
        if (peer.guest)(workload).is_none() {
            missing.push((peer.name.into(), "-".into(), format!("n/a: {}", peer.missing)));
            continue;
        }
        // A first untimed call names the engine (and the UDF-only time).
        let (report, _) = run_peer(peer, workload, &suite.input, records, BATCH, 1, 1, None)?;
        let engine = format!("{} ({} {})", report.engine, peer.dir, report.version);
        let notes = report.udf_s.map(|udf| format!("UDF calls alone: {}", crate::report::rate(records, Duration::from_secs_f64(udf)))).unwrap_or_default();
        let input = &suite.input;
        entries.push(entry(peer.name, &engine, &notes, records, false, Box::new(move |check| Ok(run_peer(peer, workload, input, records, BATCH, 1, 1, check.then_some(reference))?.1))));
        if peer.dir == "fluvio" {
            // One record per call: how a SmartModule sees a record stream at worst.
            let first = records.min(200_000);
            let subset = subset_reference(workload, lines, first)?;
            let name = format!("{}, 1 record per call", peer.name);
            entries.push(entry(&name, &engine, &format!("first {first} records"), first, false, Box::new(move |check| Ok(run_peer(peer, workload, input, first, 1, 1, 1, check.then_some(&subset))?.1))));
        }
    }
    for round in 0..suite.plan.runs.max(1) {
        for entry in &mut entries {
            let time = (entry.run)(round == 0).map_err(|e| format!("{}: {e}", entry.contender))?;
            entry.times.push(time);
        }
    }

    let per_record = |entry: &Entry| entry.median().as_secs_f64() / entry.records as f64;
    let floor = |reads_only: bool| per_record(&entries[if reads_only { 2 } else { 1 }]);
    let find = |prefix: &str, reads_only: bool| entries.iter().find(|e| e.contender.starts_with(prefix) && e.reads_only == reads_only && !e.contender.contains("1 record")).map(|e| e.median());
    summary.rows.push(SummaryRow {
        workload,
        serde: entries[0].median(),
        weir: find("weir, Rust guest", false).unwrap_or(Duration::MAX),
        native: entries[1].median(),
        weir_read: find("weir, Rust guest", true).map(|weir| (weir, entries[2].median())),
        fluvio: find("Fluvio", false),
        arrow_udf: find("arrow-udf", false),
    });
    let mut table = Table::new(
        &format!("{}: JSON lines in -> JSON lines out, {records} records, {BATCH} per call, one thread", workload.describe()),
        &["contender", "engine", "records/s", "time / native arrow (same fields decoded)", "notes"],
    );
    for entry in &entries {
        table.row(vec![
            entry.contender.clone(),
            entry.engine.clone(),
            crate::report::rate(entry.records, entry.median()),
            format!("{:.2}x", per_record(entry) / floor(entry.reads_only)),
            entry.notes.clone(),
        ]);
    }
    for (contender, engine, notes) in missing {
        table.row(vec![contender, engine, "-".into(), "-".into(), notes]);
    }
    Ok(table)
}

/// The most telling line of a build error.
fn error_line(text: &str) -> &str {
    text.lines().find(|l| l.starts_with("error")).unwrap_or_else(|| text.lines().last().unwrap_or(""))
}

/// The native result over the first `records` lines.
fn subset_reference(workload: Workload, lines: &[&[u8]], records: usize) -> Result<Digest, Error> {
    let mut native = NativeSerde::new(workload);
    let mut out = Vec::new();
    native.batch(&lines[..records.min(lines.len())], &mut out)?;
    Ok(workload::digest(workload, &out)?)
}

/// JSON decoding alone, weir's decoder against arrow-json alone, on the
/// whole schema and on the fields each workload reads (`decode = "read"`);
/// runs interleaved like the main tables.
fn decode_alone(suite: &Suite, summary: &mut Summary) -> Result<Table, Error> {
    let lines = suite.lines();
    let lines = &lines;
    let schema = &suite.schema;
    let scopes: [(&str, &[&str]); 3] = [
        ("whole schema (8 fields)", &[]),
        ("filter / map reads: total_amount", &["total_amount"]),
        ("aggregate reads: customer_id, total_amount", &["customer_id", "total_amount"]),
    ];
    eprintln!("bench: JSON decode alone ...");
    let mut prepared = Vec::new();
    for (_, fields) in scopes {
        for arrow_json in [true, false] {
            let factory = move || Ok(Box::new(DecodeOnly::new(schema, fields, arrow_json)?) as Box<dyn Contender>);
            prepared.push((contenders::Prepared::new(Box::new(factory), lines, BATCH, 1)?, Vec::new()));
        }
    }
    for _ in 0..suite.plan.runs.max(1) {
        for (contender, times) in &mut prepared {
            times.push(contender.run()?.0);
        }
    }
    let median = |times: &Vec<Duration>| {
        let mut sorted = times.clone();
        sorted.sort();
        sorted[sorted.len() / 2]
    };
    let mut table = Table::new(
        &format!("JSON decode alone: JSON lines -> Arrow batch, {} records, {BATCH} per call, one thread", lines.len()),
        &["fields decoded", "arrow-json", "weir decoder (scanner)", "speed-up"],
    );
    for (index, (label, _)) in scopes.iter().enumerate() {
        let arrow = median(&prepared[2 * index].1);
        let weir = median(&prepared[2 * index + 1].1);
        if index == 0 {
            summary.decode = Some((arrow, weir));
        }
        table.row(vec![
            (*label).into(),
            crate::report::rate(lines.len(), arrow),
            crate::report::rate(lines.len(), weir),
            format!("{:.2}x", arrow.as_secs_f64() / weir.as_secs_f64()),
        ]);
    }
    Ok(table)
}

/// Records/s and per-call overhead by records per call (the filter).
fn batch_sizes(suite: &Suite) -> Result<Table, Error> {
    let workload = Workload::Filter;
    let lines = suite.lines();
    let guest = weir_guests(workload).remove(0);
    // WEIR_BENCH_PEERS_BASELINE=<filter.wasm> adds a column for another build
    // of the Rust filter (for example one built before contract 0.1.2).
    let baseline = std::env::var_os("WEIR_BENCH_PEERS_BASELINE")
        .map(|path| WeirGuest { label: "weir, Rust guest (baseline build)".into(), path: path.into(), ..weir_guests(workload).remove(0) });
    let mut header = vec!["records per call".to_owned(), "native (arrow)".into(), "weir, Rust guest".into()];
    header.extend(baseline.iter().map(|b| b.label.clone()));
    header.extend(suite.peers().map(|p| p.name.to_owned()));
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut table = Table::new(
        "Filter by records per call: records/s (overhead per call = time per call - records x time per record at the largest size)",
        &header_refs,
    );
    let mut columns: Vec<Vec<(usize, Duration)>> = vec![Vec::new(); header.len() - 1];
    for &batch in &suite.plan.batch_sizes {
        // Small calls are slow by design: fewer records keep the run short.
        let records = if batch < 100 { suite.plan.records.min(100_000) } else { suite.plan.records };
        let subset = &lines[..records];
        let reference = subset_reference(workload, &lines, records)?;
        eprintln!("bench: filter, {batch} records per call ({records} records)");
        columns[0].push((records, suite.arrow(workload, subset, batch, 1, false, &reference)?.median));
        columns[1].push((records, suite.weir(workload, &guest, subset, batch, 1, &reference)?.median));
        let mut next = 2;
        if let Some(baseline) = &baseline {
            columns[next].push((records, suite.weir(workload, baseline, subset, batch, 1, &reference)?.median));
            next += 1;
        }
        for (index, peer) in suite.peers().enumerate() {
            columns[next + index].push((records, suite.peer(peer, workload, records, batch, 1, &reference)?.1));
        }
    }
    for (row, &batch) in suite.plan.batch_sizes.iter().enumerate() {
        let mut cells = vec![batch.to_string()];
        for column in &columns {
            let (records, time) = column[row];
            let (big_records, big_time) = *column.last().expect("one size at least");
            let per_record = big_time.as_secs_f64() / big_records as f64;
            let calls = records.div_ceil(batch) as f64;
            let overhead = (time.as_secs_f64() / calls - per_record * records as f64 / calls).max(0.0);
            cells.push(format!("{} ({:.1} µs/call)", crate::report::rate(records, time), overhead * 1e6));
        }
        table.row(cells);
    }
    Ok(table)
}

/// One thread vs two (each with its own instance, contiguous halves).
fn threads(suite: &Suite) -> Result<Table, Error> {
    let lines = suite.lines();
    let mut table = Table::new(
        &format!("Worker threads on this 2-core machine ({BATCH} records per call; each thread its own instance and half the input)"),
        &["workload", "contender", "1 thread", "2 threads", "speed-up"],
    );
    for workload in [Workload::Filter, Workload::Map] {
        let (_, reference) = suite.serde(workload, &lines, 1)?;
        let guest = weir_guests(workload).remove(0);
        let mut rows: Vec<(String, Duration, Duration)> = vec![
            ("native (arrow)".into(), suite.arrow(workload, &lines, BATCH, 1, false, &reference)?.median, suite.arrow(workload, &lines, BATCH, 2, false, &reference)?.median),
            (guest.label.clone(), suite.weir(workload, &guest, &lines, BATCH, 1, &reference)?.median, suite.weir(workload, &guest, &lines, BATCH, 2, &reference)?.median),
        ];
        for peer in suite.peers() {
            let one = suite.peer(peer, workload, lines.len(), BATCH, 1, &reference)?.1;
            let two = suite.peer(peer, workload, lines.len(), BATCH, 2, &reference)?.1;
            rows.push((peer.name.into(), one, two));
        }
        for (contender, one, two) in rows {
            table.row(vec![
                workload.name().into(),
                contender,
                crate::report::rate(lines.len(), one),
                crate::report::rate(lines.len(), two),
                format!("{:.2}x", one.as_secs_f64() / two.as_secs_f64()),
            ]);
        }
    }
    Ok(table)
}

/// Cost by record width: the filter on records with extra string fields.
fn widths(suite: &Suite) -> Result<Table, Error> {
    let mut table = Table::new(
        &format!("Filter by record width ({BATCH} records per call, one thread; every field in the schema)"),
        &["fields", "bytes/record", "native serde_json", "native (arrow)", "weir, Rust guest", "weir, decode = \"read\"", "weir / native (arrow)"],
    );
    let records = (suite.plan.records / 4).max(10_000);
    let workload = Workload::Filter;
    for &extra in &suite.plan.widths {
        let bytes = workload::order_lines(records, extra);
        let lines = workload::lines(&bytes);
        let schema = workload::schema_json(extra);
        let schema_path = suite.schema_path.with_file_name(format!("orders-{extra}.schema.json"));
        std::fs::write(&schema_path, &schema)?;
        let wide = Suite { plan: suite.plan.clone(), input_bytes: Vec::new(), input: suite.input.clone(), schema, schema_path, engine: suite.engine.clone(), built: Vec::new() };
        eprintln!("bench: filter, {} fields", 8 + extra);
        let (serde, reference) = wide.serde(workload, &lines, 1)?;
        let arrow = wide.arrow(workload, &lines, BATCH, 1, false, &reference)?;
        let mut guests = weir_guests(workload).into_iter();
        let weir = wide.weir(workload, &guests.next().expect("rust guest"), &lines, BATCH, 1, &reference)?;
        let weir_read = wide.weir(workload, &guests.next().expect("rust guest, read"), &lines, BATCH, 1, &reference)?;
        let mb = |time: Duration| format!("{} ({:.0} MB/s)", crate::report::rate(records, time), bytes.len() as f64 / time.as_secs_f64() / 1e6);
        table.row(vec![
            (8 + extra).to_string(),
            (bytes.len() / records).to_string(),
            mb(serde.median),
            mb(arrow.median),
            mb(weir.median),
            mb(weir_read.median),
            format!("{:.2}x", weir.median.as_secs_f64() / arrow.median.as_secs_f64()),
        ]);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    /// The suite in quick mode, peers included (CI keeps it from rotting; no
    /// timing assertions, but every output is checked against native).
    #[test]
    fn quick_peer_suite_runs() {
        let markdown = super::run(true).expect("peer suite");
        assert!(markdown.contains("fluvio") && markdown.contains("arrow-udf"), "{markdown}");
    }
}
