//! Fluvio peer driver of weir's benchmark suite (issue 8): runs JSON-lines
//! orders through a Fluvio SmartModule (`fluvio-smartengine`, wasmtime) and
//! times it, for a side-by-side comparison with weir.
//!
//! What one run measures, per thread: building Fluvio `Record`s from the
//! input lines in calls of `--batch` records, encoding them into a
//! `SmartModuleInput`, `SmartModuleChainInstance::process` (copy into the
//! guest, the guest's decode / transform / encode, copy and decode of the
//! output), and appending every output record's value plus `\n` to an
//! in-memory buffer. Reading and splitting the input file and building /
//! compiling the chains (`load_s`) are not timed. With `--threads T` every
//! thread owns a chain and a contiguous slice of the input; all start
//! together at a barrier and a run lasts until the slowest finishes. One
//! untimed warm-up run precedes `--runs` timed runs, each on freshly built
//! chains (see the leak noted in `main`); the median is reported as one JSON
//! object on stdout.

use std::path::PathBuf;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, ValueEnum};
use fluvio_smartengine::{SmartEngine, SmartModuleChainBuilder, SmartModuleChainInstance, SmartModuleConfig, DEFAULT_SMARTENGINE_VERSION};
use fluvio_smartmodule::dataplane::smartmodule::SmartModuleInput;
use fluvio_smartmodule::Record;
use serde::Serialize;

/// The workload the guest implements (the guest decides what is computed;
/// this names the run and enables the output-count check of `map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Keep orders with `total_amount > 1000`.
    Filter,
    /// Append `amount_bucket` and `tax_amount` to every order.
    Map,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Filter => "filter",
            Workload::Map => "map",
        }
    }
}

/// Times a Fluvio SmartModule over JSON-lines records; prints one JSON report.
#[derive(Debug, Parser)]
#[command(name = "fluvio-driver")]
struct Args {
    /// JSON-lines input, one record per line.
    #[arg(long)]
    input: PathBuf,
    /// Workload the guest implements.
    #[arg(long, value_enum)]
    workload: Workload,
    /// SmartModule guest (.wasm).
    #[arg(long)]
    wasm: PathBuf,
    /// Records per `process` call.
    #[arg(long)]
    batch: usize,
    /// Timed runs (after one warm-up run).
    #[arg(long)]
    runs: usize,
    /// Worker threads, each with its own chain and a contiguous input slice.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Where to write the output of the last run (JSON lines).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Use only the first M records of the input.
    #[arg(long)]
    max_records: Option<usize>,
}

/// The one JSON object printed on stdout.
#[derive(Debug, Serialize)]
struct Report {
    contender: &'static str,
    version: &'static str,
    engine: String,
    workload: &'static str,
    batch: usize,
    threads: usize,
    records: usize,
    output_records: usize,
    median_s: f64,
    runs_s: Vec<f64>,
    /// `process` calls per run, all threads together.
    calls_per_run: usize,
    /// Wall time to build (compile and instantiate) every thread's chain.
    load_s: f64,
}

const SMARTMODULE_NAME: &str = "weir-bench-peer";

/// Builds a one-SmartModule chain (compiles the module and instantiates it).
fn build_chain(engine: &SmartEngine, wasm: &[u8]) -> Result<SmartModuleChainInstance> {
    // A name is mandatory: the builder fails with UninitializedField("smartmodule_names") otherwise.
    let config = SmartModuleConfig::builder().smartmodule_names(&[SMARTMODULE_NAME.to_owned()]).build()?;
    let mut builder = SmartModuleChainBuilder::default();
    builder.add_smart_module(config, wasm.to_vec());
    builder.initialize(engine).context("initializing the SmartModule chain")
}

/// Runs `lines` through `chain` in calls of `batch` records, appending each
/// output record's value and `\n` to `out`. This is the timed part.
///
/// Records carry offset deltas within their call and the call's base offset
/// is the index of its first line in the whole input (as the records of a
/// Fluvio batch do), so a SmartModule error names the failing line.
fn run_slice(chain: &mut SmartModuleChainInstance, lines: &[&[u8]], first: usize, batch: usize, out: &mut Vec<u8>) -> Result<usize> {
    let mut produced = 0;
    for (index, chunk) in lines.chunks(batch).enumerate() {
        let records: Vec<Record> = chunk
            .iter()
            .enumerate()
            .map(|(delta, line)| {
                let mut record = Record::new(*line);
                record.preamble.set_offset_delta(delta as i64);
                record
            })
            .collect();
        let mut input = SmartModuleInput::try_from_records(records, DEFAULT_SMARTENGINE_VERSION)?;
        input.set_base_offset((first + index * batch) as i64);
        let output = chain.process(input)?;
        if let Some(error) = output.error {
            bail!("SmartModule error at input line {} ({:?}): {}", error.offset + 1, error.kind, error.hint.trim());
        }
        produced += output.successes.len();
        for record in &output.successes {
            out.extend_from_slice(record.value.as_ref());
            out.push(b'\n');
        }
    }
    Ok(produced)
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.batch >= 1, "--batch must be at least 1");
    ensure!(args.runs >= 1, "--runs must be at least 1");
    ensure!(args.threads >= 1, "--threads must be at least 1");

    // Untimed: read and split the input.
    let data = std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let mut lines: Vec<&[u8]> = data.split(|b| *b == b'\n').filter(|line| !line.is_empty()).collect();
    if let Some(max) = args.max_records {
        lines.truncate(max);
    }
    ensure!(!lines.is_empty(), "{} holds no records", args.input.display());
    let wasm = std::fs::read(&args.wasm).with_context(|| format!("reading {}", args.wasm.display()))?;

    let slice = lines.len().div_ceil(args.threads);
    let parts: Vec<&[&[u8]]> = lines.chunks(slice).collect();
    let calls_per_run: usize = parts.iter().map(|part| part.len().div_ceil(args.batch)).sum();
    let firsts: Vec<usize> = (0..parts.len()).map(|part| part * slice).collect();
    let out_capacity: Vec<usize> = parts.iter().map(|part| part.iter().map(|line| line.len() + 64).sum()).collect();

    // Timed separately: one chain per thread.
    let engine = SmartEngine::new();
    let loading = Instant::now();
    let mut chains: Vec<SmartModuleChainInstance> = parts.iter().map(|_| build_chain(&engine, &wasm)).collect::<Result<_>>()?;
    let load = loading.elapsed();

    let mut times = Vec::with_capacity(args.runs);
    let mut output = Vec::new();
    let mut output_records = 0;
    for run in 0..=args.runs {
        if run > 0 {
            // Fresh chains for every run (untimed): fluvio-smartengine 0.50.1
            // never frees a call's output buffer in the guest (the SmartModule
            // macros `mem::forget` it and the engine's `dealloc` call is
            // commented out), so linear memory grows by the output bytes of
            // every call until the 1 GB store limit traps ("Requested memory
            // ... exceeded max allowed 1000000000b" after ~4M mapped records).
            chains = parts.iter().map(|_| build_chain(&engine, &wasm)).collect::<Result<_>>()?;
        }
        let barrier = Barrier::new(parts.len());
        let results: Vec<Result<(Vec<u8>, usize, Duration)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chains
                .iter_mut()
                .zip(&parts)
                .zip(firsts.iter().zip(&out_capacity))
                .map(|((chain, part), (&first, &capacity))| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        let mut out = Vec::with_capacity(capacity);
                        barrier.wait();
                        let started = Instant::now();
                        let produced = run_slice(chain, part, first, args.batch, &mut out)?;
                        Ok((out, produced, started.elapsed()))
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().expect("driver thread panicked")).collect()
        });
        let mut slowest = Duration::ZERO;
        output.clear();
        output_records = 0;
        for result in results {
            let (out, produced, time) = result?;
            slowest = slowest.max(time);
            output.extend_from_slice(&out);
            output_records += produced;
        }
        if run > 0 {
            times.push(slowest);
        }
    }
    if args.workload == Workload::Map {
        ensure!(output_records == lines.len(), "map produced {output_records} records from {} (is {} a map guest?)", lines.len(), args.wasm.display());
    }
    if let Some(path) = &args.out {
        std::fs::write(path, &output).with_context(|| format!("writing {}", path.display()))?;
    }

    let mut sorted = times.clone();
    sorted.sort();
    let report = Report {
        contender: "fluvio-smartengine",
        version: env!("FLUVIO_SMARTENGINE_VERSION"),
        engine: format!("wasmtime {}", env!("WASMTIME_VERSION")),
        workload: args.workload.name(),
        batch: args.batch,
        threads: args.threads,
        records: lines.len(),
        output_records,
        median_s: sorted[sorted.len() / 2].as_secs_f64(),
        runs_s: times.iter().map(Duration::as_secs_f64).collect(),
        calls_per_run,
        load_s: load.as_secs_f64(),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
