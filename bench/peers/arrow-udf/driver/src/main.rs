//! arrow-udf-wasm peer driver of weir's benchmark suite (issue 8): runs
//! JSON-lines orders through RisingWave's Arrow scalar UDFs on core Wasm
//! (`arrow-udf-wasm`, wasmtime) and times it, for a side-by-side comparison
//! with weir.
//!
//! What one run measures, per thread: for every call of `--batch` lines,
//! arrow-json decode of the lines into a `RecordBatch` (the whole schema),
//! `Runtime::call` of the workload's UDF(s) on a batch holding only the
//! `total_amount` column (each call copies the batch in and out of the guest
//! as Arrow IPC), then forwarding the lines the mask keeps (filter, as weir
//! does) or appending the two result columns and arrow-json encoding the
//! rows (map, explicit nulls) into an in-memory buffer. Reading and
//! splitting the input file, compiling the module (`load_s`) and looking the
//! functions up are not timed. With `--threads T` every thread takes a
//! contiguous slice of the input; all start together at a barrier and a run
//! lasts until the slowest finishes. One untimed warm-up run precedes
//! `--runs` timed runs; the median is reported as one JSON object on stdout.
//! `udf_s` is measured apart: the median time of the UDF calls alone over
//! the pre-decoded batches of the whole input, single thread, so that the
//! engine's cost can be told from the JSON cost.

use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_json::writer::LineDelimited;
use arrow_json::{ReaderBuilder, WriterBuilder};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use arrow_udf_wasm::{FunctionHandle, Runtime};
use clap::{Parser, ValueEnum};
use serde::Serialize;

/// `Runtime` holds the compiled module and a `Mutex`-guarded pool of
/// instances (`call` pops one, or instantiates a new one when the pool is
/// empty, and pushes it back afterwards), and is documented as shareable by
/// threads. So the driver builds one `Runtime` and shares it: after the
/// warm-up run the pool holds one instance per thread. Checked here at
/// compile time.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Runtime>();
};

/// The workload: which UDFs are called and what the host does with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Keep orders with `total_amount > 1000` (UDF `high_value`).
    Filter,
    /// Append `amount_bucket` and `tax_amount` to every order (two UDFs).
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

/// Times arrow-udf-wasm scalar UDFs over JSON-lines records; prints one JSON report.
#[derive(Debug, Parser)]
#[command(name = "arrowudf-driver")]
struct Args {
    /// JSON-lines input, one order per line.
    #[arg(long)]
    input: PathBuf,
    /// Workload to run.
    #[arg(long, value_enum)]
    workload: Workload,
    /// UDF guest (.wasm, built with arrow-udf for wasm32-wasip1).
    #[arg(long)]
    wasm: PathBuf,
    /// Records per call (per decoded record batch).
    #[arg(long)]
    batch: usize,
    /// Timed runs (after one warm-up run).
    #[arg(long)]
    runs: usize,
    /// Worker threads, each with a contiguous input slice (one shared Runtime).
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
    arrow: &'static str,
    workload: &'static str,
    batch: usize,
    threads: usize,
    records: usize,
    output_records: usize,
    median_s: f64,
    runs_s: Vec<f64>,
    /// Calls (decoded record batches) per run, all threads together.
    calls_per_run: usize,
    /// `Runtime::call`s per run (calls times the workload's UDF count).
    udf_calls_per_run: usize,
    /// Median time of the UDF calls alone on pre-decoded batches, one thread.
    udf_s: f64,
    /// Wall time of `Runtime::new` (compiling the module).
    load_s: f64,
}

/// The input schema, as every contender reads it.
fn order_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("processing_center", DataType::Utf8, true),
        Field::new("total_amount", DataType::Float64, true),
        Field::new("quantity", DataType::Int32, true),
        Field::new("express", DataType::Boolean, true),
        Field::new("timestamp", DataType::Int64, false),
        Field::new("items", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), true),
    ]))
}

/// The workload's UDFs, looked up once.
enum Udfs {
    Filter { high_value: FunctionHandle },
    Map { amount_bucket: FunctionHandle, tax_amount: FunctionHandle },
}

impl Udfs {
    fn find(rt: &Runtime, workload: Workload) -> Result<Self> {
        Ok(match workload {
            Workload::Filter => Udfs::Filter {
                high_value: rt.find_function("high_value", vec![DataType::Float64], DataType::Boolean)?,
            },
            Workload::Map => Udfs::Map {
                amount_bucket: rt.find_function("amount_bucket", vec![DataType::Float64], DataType::Int64)?,
                tax_amount: rt.find_function("tax_amount", vec![DataType::Float64], DataType::Float64)?,
            },
        })
    }

    fn count(&self) -> usize {
        match self {
            Udfs::Filter { .. } => 1,
            Udfs::Map { .. } => 2,
        }
    }
}

/// Calls `func` on `args` and returns its one result column.
fn call(rt: &Runtime, func: &FunctionHandle, args: &RecordBatch) -> Result<ArrayRef> {
    let result = rt.call(func, args)?;
    ensure!(
        result.num_columns() >= 1 && result.num_rows() == args.num_rows(),
        "UDF returned {} rows in {} columns for {} rows",
        result.num_rows(),
        result.num_columns(),
        args.num_rows()
    );
    Ok(result.column(0).clone())
}

/// What every thread shares: the runtime, the functions, the schemas.
struct Shared {
    rt: Runtime,
    udfs: Udfs,
    input_schema: SchemaRef,
    /// Index of `total_amount` in the input schema.
    amount: usize,
    /// The UDFs' argument batch: `total_amount` alone.
    args_schema: SchemaRef,
    /// map: the input schema plus `amount_bucket` and `tax_amount`.
    map_schema: SchemaRef,
}

impl Shared {
    /// The UDFs' argument batch for a decoded batch (no copy: the column is shared).
    fn args(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(self.args_schema.clone(), vec![batch.column(self.amount).clone()])?)
    }

    /// Calls the workload's UDF(s) on one argument batch.
    fn call_udfs(&self, args: &RecordBatch) -> Result<Vec<ArrayRef>> {
        Ok(match &self.udfs {
            Udfs::Filter { high_value } => vec![call(&self.rt, high_value, args)?],
            Udfs::Map { amount_bucket, tax_amount } => {
                vec![call(&self.rt, amount_bucket, args)?, call(&self.rt, tax_amount, args)?]
            }
        })
    }

    /// UDF call(s), then the filter forwards the kept `lines` as they are
    /// (as weir and the other filters do) or the map appends the two result
    /// columns and JSON-encodes the rows into `out`. Returns the output rows.
    fn process(&self, batch: RecordBatch, lines: &[&[u8]], out: &mut Vec<u8>) -> Result<usize> {
        ensure!(batch.num_rows() == lines.len(), "decoded {} rows from {} lines", batch.num_rows(), lines.len());
        let mut results = self.call_udfs(&self.args(&batch)?)?;
        match &self.udfs {
            Udfs::Filter { .. } => {
                let mask = results[0]
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .context("high_value did not return booleans")?;
                // A null amount gives a null result: drop the row.
                let mut rows = 0;
                for (line, keep) in lines.iter().zip(mask.iter()) {
                    if keep == Some(true) {
                        out.extend_from_slice(line);
                        out.push(b'\n');
                        rows += 1;
                    }
                }
                Ok(rows)
            }
            Udfs::Map { .. } => {
                let mut columns = batch.columns().to_vec();
                columns.append(&mut results);
                let output = RecordBatch::try_new(self.map_schema.clone(), columns)?;
                let mut writer = WriterBuilder::new().with_explicit_nulls(true).build::<_, LineDelimited>(&mut *out);
                writer.write(&output)?;
                writer.finish()?;
                Ok(output.num_rows())
            }
        }
    }
}

/// The byte span of `lines` in the input buffer: the lines of a call are
/// contiguous (each with its `\n`), so the decoder gets them in one slice.
fn span<'a>(data: &'a [u8], lines: &[&[u8]]) -> &'a [u8] {
    let base = data.as_ptr() as usize;
    let first = lines[0].as_ptr() as usize - base;
    let last = lines[lines.len() - 1];
    let end = last.as_ptr() as usize - base + last.len();
    &data[first..end]
}

/// Decodes `bytes` (whole JSON lines) with `decoder`, handing each record
/// batch to `each` (one batch when `bytes` holds at most the decoder's batch
/// size of lines).
fn decode(decoder: &mut arrow_json::reader::Decoder, mut bytes: &[u8], mut each: impl FnMut(RecordBatch) -> Result<()>) -> Result<()> {
    while !bytes.is_empty() {
        let read = decoder.decode(bytes)?;
        bytes = &bytes[read..];
        if read == 0 {
            // The decoder is full: hand out what it holds and go on.
            if let Some(batch) = decoder.flush()? {
                each(batch)?;
            }
        }
    }
    if let Some(batch) = decoder.flush()? {
        each(batch)?;
    }
    Ok(())
}

fn new_decoder(schema: &SchemaRef, batch: usize) -> Result<arrow_json::reader::Decoder> {
    Ok(ReaderBuilder::new(schema.clone()).with_batch_size(batch).build_decoder()?)
}

/// Runs `lines` (input lines `first..`) through decode -> UDF(s) -> kernel
/// -> encode in calls of `batch` records, appending the JSON lines to `out`.
/// This is the timed part.
fn run_slice(
    shared: &Shared,
    decoder: &mut arrow_json::reader::Decoder,
    data: &[u8],
    lines: &[&[u8]],
    first: usize,
    batch: usize,
    out: &mut Vec<u8>,
) -> Result<usize> {
    let mut produced = 0;
    for (index, chunk) in lines.chunks(batch).enumerate() {
        decode(decoder, span(data, chunk), |decoded| {
            produced += shared.process(decoded, chunk, out)?;
            Ok(())
        })
        .with_context(|| {
            let start = first + index * batch + 1;
            format!("in the call of input lines {start}..={}", start + chunk.len() - 1)
        })?;
    }
    Ok(produced)
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.batch >= 1, "--batch must be at least 1");
    ensure!(args.runs >= 1, "--runs must be at least 1");
    ensure!(args.threads >= 1, "--threads must be at least 1");

    // Untimed: read and split the input (each line keeps its `\n`).
    let data = std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let mut lines: Vec<&[u8]> = data.split_inclusive(|b| *b == b'\n').filter(|line| !line.trim_ascii().is_empty()).collect();
    if let Some(max) = args.max_records {
        lines.truncate(max);
    }
    ensure!(!lines.is_empty(), "{} holds no records", args.input.display());
    let wasm = std::fs::read(&args.wasm).with_context(|| format!("reading {}", args.wasm.display()))?;

    // Timed separately: compiling the module. Untimed: the function look-ups.
    let loading = Instant::now();
    let rt = Runtime::new(&wasm).with_context(|| format!("loading {}", args.wasm.display()))?;
    let load = loading.elapsed();
    let udfs = Udfs::find(&rt, args.workload)?;

    let input_schema = order_schema();
    let amount = input_schema.index_of("total_amount")?;
    let args_schema = Arc::new(Schema::new(vec![input_schema.field(amount).clone()]));
    let mut map_fields: Vec<Field> = input_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    map_fields.push(Field::new("amount_bucket", DataType::Int64, true));
    map_fields.push(Field::new("tax_amount", DataType::Float64, true));
    let shared = Shared { rt, udfs, input_schema, amount, args_schema, map_schema: Arc::new(Schema::new(map_fields)) };

    let slice = lines.len().div_ceil(args.threads);
    let parts: Vec<&[&[u8]]> = lines.chunks(slice).collect();
    let calls_per_run: usize = parts.iter().map(|part| part.len().div_ceil(args.batch)).sum();
    let out_capacity: Vec<usize> = parts.iter().map(|part| part.iter().map(|line| line.len() + 64).sum()).collect();

    let mut times = Vec::with_capacity(args.runs);
    let mut output = Vec::new();
    let mut output_records = 0;
    for run in 0..=args.runs {
        let barrier = Barrier::new(parts.len());
        let results: Vec<Result<(Vec<u8>, usize, Duration)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .iter()
                .zip(&out_capacity)
                .enumerate()
                .map(|(index, (part, &capacity))| {
                    let (barrier, shared, data) = (&barrier, &shared, &data);
                    scope.spawn(move || {
                        let mut out = Vec::with_capacity(capacity);
                        let decoder = new_decoder(&shared.input_schema, args.batch);
                        barrier.wait();
                        let mut decoder = decoder?;
                        let started = Instant::now();
                        let produced = run_slice(shared, &mut decoder, data, part, index * slice, args.batch, &mut out)?;
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
        ensure!(output_records == lines.len(), "map produced {output_records} records from {}", lines.len());
    }
    if let Some(path) = &args.out {
        std::fs::write(path, &output).with_context(|| format!("writing {}", path.display()))?;
    }

    // Apart: the UDF calls alone, on argument batches decoded beforehand.
    let mut decoder = new_decoder(&shared.input_schema, args.batch)?;
    let mut arg_batches = Vec::with_capacity(calls_per_run);
    for chunk in lines.chunks(args.batch) {
        decode(&mut decoder, span(&data, chunk), |decoded| {
            arg_batches.push(shared.args(&decoded)?);
            Ok(())
        })?;
    }
    let mut udf_times = Vec::with_capacity(args.runs);
    for run in 0..=args.runs {
        let started = Instant::now();
        for batch in &arg_batches {
            std::hint::black_box(shared.call_udfs(batch)?);
        }
        if run > 0 {
            udf_times.push(started.elapsed());
        }
    }

    let report = Report {
        contender: "arrow-udf-wasm",
        version: env!("ARROW_UDF_WASM_VERSION"),
        engine: format!("wasmtime {}", env!("WASMTIME_VERSION")),
        arrow: env!("ARROW_VERSION"),
        workload: args.workload.name(),
        batch: args.batch,
        threads: args.threads,
        records: lines.len(),
        output_records,
        median_s: median(&times).as_secs_f64(),
        runs_s: times.iter().map(Duration::as_secs_f64).collect(),
        calls_per_run,
        udf_calls_per_run: calls_per_run * shared.udfs.count(),
        udf_s: median(&udf_times).as_secs_f64(),
        load_s: load.as_secs_f64(),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
