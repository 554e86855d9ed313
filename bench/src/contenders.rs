//! The in-process contenders of the peer benchmark: native Rust (serde_json
//! per record, and arrow-json + arrow kernels per batch) as the floor, and
//! weir's own path (the pipeline's JSON decoder, an operator chain with a
//! Wasm guest, the pipeline's output encoder). Each turns JSON lines into
//! JSON lines one batch (call) at a time; [`measure`] times them.

use crate::workload::{FILTER_THRESHOLD, KeyedTotals, TAX_RATE, Workload};
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, ArrowNativeTypeOp, BooleanArray, Float64Array, RecordBatch, StringArray};
use arrow_buffer::BooleanBuffer;
use arrow_schema::{Field, Schema, SchemaRef};
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use weir::batch::{JsonDecoder, SchemaSpec};
use weir::config::{DecodeScope, Encoding, FormatConfig, OutputConfig};
use weir::pipeline::decode::RecordDecoder;
use weir::pipeline::output::{self, Emit};
use weir::engine::{Engine, HttpAllowlist};
use weir::operator::{Chain, Operator};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// One contender instance (one per thread): JSON lines in, JSON lines out.
pub trait Contender: Send {
    /// Processes one batch (one call) of records, appending output lines.
    fn batch(&mut self, lines: &[&[u8]], out: &mut Vec<u8>) -> Result<(), Error>;
}

/// Builds a contender instance (called once per thread, outside the timing).
pub type Factory<'a> = dyn Fn() -> Result<Box<dyn Contender>, Error> + Sync + 'a;

/// Median run time and the output of the last run.
pub struct Measured {
    /// Median wall time of one run over all records.
    pub median: Duration,
    /// Every timed run.
    pub runs: Vec<Duration>,
    /// Output of the last run (thread outputs concatenated in input order).
    pub output: Vec<u8>,
}

/// Runs every record through `threads` instances (contiguous slices, started
/// together) in calls of `batch` records: one warm-up, then `runs` timed runs.
pub fn measure<'a>(factory: &'a Factory<'a>, lines: &'a [&'a [u8]], batch: usize, threads: usize, runs: usize) -> Result<Measured, Error> {
    let prepared = Prepared::new(Box::new(factory), lines, batch, threads)?;
    let mut times = Vec::new();
    let mut output = Vec::new();
    for _ in 0..runs.max(1) {
        let (time, out) = prepared.run()?;
        times.push(time);
        output = out;
    }
    let mut sorted = times.clone();
    sorted.sort();
    Ok(Measured { median: sorted[sorted.len() / 2], runs: times, output })
}

/// A contender warmed up and ready for timed runs (so runs of several
/// contenders can be interleaved). Every run starts on fresh instances, built
/// untimed: an aggregate's totals then cover one pass over the input, as
/// the reference does.
pub struct Prepared<'a> {
    factory: Box<Factory<'a>>,
    threads: usize,
    lines: &'a [&'a [u8]],
    batch: usize,
}

impl<'a> Prepared<'a> {
    /// `threads` instances per run; one untimed warm-up run now.
    pub fn new(factory: Box<Factory<'a>>, lines: &'a [&'a [u8]], batch: usize, threads: usize) -> Result<Prepared<'a>, Error> {
        let prepared = Prepared { factory, threads: threads.max(1), lines, batch: batch.max(1) };
        prepared.run()?;
        Ok(prepared)
    }

    /// One timed run over every record (threads start together; the run
    /// lasts until the slowest ends); its output, thread outputs in input order.
    pub fn run(&self) -> Result<(Duration, Vec<u8>), Error> {
        let threads = self.threads;
        let mut instances: Vec<Box<dyn Contender>> = (0..threads).map(|_| (self.factory)()).collect::<Result<_, _>>()?;
        let slice = self.lines.len().div_ceil(threads).max(1);
        let batch = self.batch;
        let barrier = Barrier::new(threads);
        let results: Vec<Result<(Vec<u8>, Duration), Error>> = std::thread::scope(|scope| {
            let handles: Vec<_> = instances
                .iter_mut()
                .zip(self.lines.chunks(slice))
                .map(|(instance, part)| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        // Touched before the clock starts: first-touch page faults of
                        // two threads serialise on the process's memory map lock.
                        let mut out = vec![0u8; part.len() * 256];
                        out.clear();
                        barrier.wait();
                        let started = Instant::now();
                        for chunk in part.chunks(batch) {
                            instance.batch(chunk, &mut out)?;
                        }
                        Ok((out, started.elapsed()))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("contender thread panicked")).collect()
        });
        let mut slowest = Duration::ZERO;
        let mut output = Vec::new();
        for result in results {
            let (out, time) = result?;
            slowest = slowest.max(time);
            output.extend_from_slice(&out);
        }
        Ok((slowest, output))
    }
}

#[derive(Deserialize)]
struct Amount {
    total_amount: Option<f64>,
}

#[derive(Deserialize)]
struct KeyedAmount<'a> {
    #[serde(borrow)]
    customer_id: Cow<'a, str>,
    total_amount: Option<f64>,
}

/// Native Rust, one record at a time with serde_json: only the fields the
/// workload needs are deserialized; filter outputs the record's bytes, map
/// appends the two fields to them.
pub struct NativeSerde {
    workload: Workload,
    totals: KeyedTotals,
}

impl NativeSerde {
    /// A fresh instance.
    pub fn new(workload: Workload) -> NativeSerde {
        NativeSerde { workload, totals: KeyedTotals::default() }
    }
}

impl Contender for NativeSerde {
    fn batch(&mut self, lines: &[&[u8]], out: &mut Vec<u8>) -> Result<(), Error> {
        for line in lines {
            match self.workload {
                Workload::Filter => {
                    let order: Amount = serde_json::from_slice(line)?;
                    if order.total_amount.is_some_and(|a| a > FILTER_THRESHOLD) {
                        out.extend_from_slice(line);
                        out.push(b'\n');
                    }
                }
                Workload::Map => {
                    let order: Amount = serde_json::from_slice(line)?;
                    let close = line.iter().rposition(|b| *b == b'}').ok_or("record is not a JSON object")?;
                    out.extend_from_slice(&line[..close]);
                    out.extend_from_slice(b",\"amount_bucket\":");
                    serde_json::to_writer(&mut *out, &order.total_amount.map(|a| (a / 100.0).floor() as i64))?;
                    out.extend_from_slice(b",\"tax_amount\":");
                    serde_json::to_writer(&mut *out, &order.total_amount.map(|a| a * TAX_RATE))?;
                    out.extend_from_slice(b"}\n");
                }
                Workload::Aggregate => {
                    let order: KeyedAmount = serde_json::from_slice(line)?;
                    self.totals.add(&order.customer_id, order.total_amount);
                }
            }
        }
        if self.workload == Workload::Aggregate {
            self.totals.flush(out);
        }
        Ok(())
    }
}

/// Native Rust with Arrow, one batch at a time: arrow-json decode (of the
/// whole schema, or with `projected` only the fields the workload reads),
/// an arrow kernel (comparison + filter, unary arithmetic, a hash map over
/// the two columns), then the filter forwards the kept lines as they are,
/// the map appends its two fields to them when projected (both like weir)
/// or encodes its rows, and the aggregate encodes its totals.
pub struct NativeArrow {
    workload: Workload,
    schema: SchemaRef,
    projected: bool,
    totals: KeyedTotals,
}

impl NativeArrow {
    /// A fresh instance for records of `schema_json` (weir's schema format).
    pub fn new(workload: Workload, schema_json: &str, projected: bool) -> Result<NativeArrow, Error> {
        let mut schema = SchemaSpec::from_json(schema_json)?.to_arrow()?;
        if projected {
            let read: &[&str] = match workload {
                Workload::Filter => &["total_amount"],
                Workload::Map => &["total_amount"],
                Workload::Aggregate => &["customer_id", "total_amount"],
            };
            let indices: Vec<usize> = read.iter().map(|name| schema.index_of(name)).collect::<Result<_, _>>()?;
            schema = Arc::new(schema.project(&indices)?);
        }
        Ok(NativeArrow { workload, schema, projected, totals: KeyedTotals::default() })
    }

    fn decode(&self, lines: &[&[u8]]) -> Result<RecordBatch, Error> {
        let mut decoder = arrow_json::ReaderBuilder::new(self.schema.clone()).with_batch_size(lines.len().max(1)).build_decoder()?;
        for line in lines {
            decoder.decode(line)?;
        }
        Ok(decoder.flush()?.ok_or("no rows decoded")?)
    }
}

fn amounts(batch: &RecordBatch) -> Result<&Float64Array, Error> {
    Ok(batch.column_by_name("total_amount").and_then(|c| c.as_any().downcast_ref()).ok_or("no float64 total_amount")?)
}

fn write_json(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), Error> {
    let mut writer = arrow_json::WriterBuilder::new().with_explicit_nulls(true).build::<_, arrow_json::writer::LineDelimited>(out);
    writer.write(batch)?;
    writer.finish()?;
    Ok(())
}

/// `array > threshold`, computed as arrow-ord's `cmp::gt` kernel computes it
/// (a `collect_bool` bit-packing loop over the values, floats compared in
/// total order, the array's nulls kept) but compiled in this crate: the
/// workspace builds arrow-ord at opt-level 0, since weir never calls it
/// (Cargo.toml, `[profile.release.package.arrow-ord]`), and the native
/// contenders must not pay for that.
pub fn greater_than(array: &Float64Array, threshold: f64) -> BooleanArray {
    let values = array.values();
    let bits = BooleanBuffer::collect_bool(values.len(), |i| values[i].is_gt(threshold));
    BooleanArray::new(bits, array.nulls().cloned())
}

impl Contender for NativeArrow {
    fn batch(&mut self, lines: &[&[u8]], out: &mut Vec<u8>) -> Result<(), Error> {
        let batch = self.decode(lines)?;
        match self.workload {
            Workload::Filter => {
                let mask = greater_than(amounts(&batch)?, FILTER_THRESHOLD);
                for (line, keep) in lines.iter().zip(mask.iter()) {
                    if keep == Some(true) {
                        out.extend_from_slice(line);
                        out.push(b'\n');
                    }
                }
                Ok(())
            }
            Workload::Map => {
                let amount = amounts(&batch)?;
                let bucket: ArrayRef = Arc::new(amount.unary::<_, Int64Type>(|a| (a / 100.0).floor() as i64));
                let tax: ArrayRef = Arc::new(amount.unary::<_, Float64Type>(|a| a * TAX_RATE));
                let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
                fields.push(Arc::new(Field::new("amount_bucket", arrow_schema::DataType::Int64, true)));
                fields.push(Arc::new(Field::new("tax_amount", arrow_schema::DataType::Float64, true)));
                let mut columns = batch.columns().to_vec();
                columns.extend([bucket, tax]);
                let mapped = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
                if !self.projected {
                    return write_json(&mapped, out);
                }
                // Only total_amount was decoded: append the two fields to the source bytes.
                let rows: Vec<usize> = (0..lines.len()).collect();
                let added = ["amount_bucket".to_owned(), "tax_amount".to_owned()];
                for record in output::splice(&mapped, &rows, &added, &json_output(), &|_| None, &|i| lines[i])? {
                    out.extend_from_slice(&record.value);
                    out.push(b'\n');
                }
                Ok(())
            }
            Workload::Aggregate => {
                let keys: &StringArray = batch.column_by_name("customer_id").and_then(|c| c.as_any().downcast_ref()).ok_or("no utf8 customer_id")?;
                let amount = amounts(&batch)?;
                for row in 0..batch.num_rows() {
                    self.totals.add(keys.value(row), amount.is_valid(row).then(|| amount.value(row)));
                }
                self.totals.flush(out);
                Ok(())
            }
        }
    }
}

/// An output config for JSON values (topic and key unused here).
/// A JSON output topic `out` (what the pipelines of the peer suite write).
pub fn json_output() -> OutputConfig {
    OutputConfig {
        topic: "out".into(),
        key_column: None,
        encoding: Encoding::Json,
        bootstrap_servers: None,
        properties: Default::default(),
        plugin_version_header: false,
    }
}

/// weir's path without the broker: the pipeline's JSON decoder (for the
/// chain, so `decode = "read"` projects like the pipeline does), a chain with
/// one Wasm operator, the pipeline's output step (source records forwarded
/// by a filter-only chain, or with the map's fields spliced in under
/// `decode = "read"`; result rows encoded otherwise).
pub struct Weir {
    decoder: JsonDecoder,
    chain: Chain,
    output: OutputConfig,
    emit: Emit,
}

impl Weir {
    /// A fresh instance of the guest at `guest` (instantiated here, outside the timing).
    pub fn new(engine: &Engine, guest: &std::path::Path, config: &str, schema: &std::path::Path, decode: DecodeScope) -> Result<Weir, Error> {
        let format = FormatConfig::Json { schema: schema.to_owned(), decode };
        let operator = Operator::new(engine.load_file(guest)?, config, HttpAllowlist::default())?;
        let mut operators = vec![operator];
        let output = json_output();
        let (RecordDecoder::Json(decoder), emit) = RecordDecoder::for_chain(&format, Some(&output), &mut operators, false, &[])? else {
            return Err("not a JSON decoder".into());
        };
        let mut chain = Chain::new(operators);
        chain.set_rows_only_tail(emit == Emit::Forward);
        Ok(Weir { decoder, chain, output, emit })
    }
}

impl Contender for Weir {
    fn batch(&mut self, lines: &[&[u8]], out: &mut Vec<u8>) -> Result<(), Error> {
        let decoded = self.decoder.decode_lines(lines)?;
        if !decoded.rejected.is_empty() {
            return Err(format!("{} records did not decode: {}", decoded.rejected.len(), decoded.rejected[0].reason).into());
        }
        let result = self.chain.run(decoded.batch, None)?;
        if let Some(rejection) = result.rejected.first() {
            return Err(format!("operator rejected a row: {}", rejection.reason).into());
        }
        for (batch, rows) in result.batches.iter().zip(&result.input_rows) {
            let sources: Option<Vec<usize>> = rows.as_ref().map(|r| r.iter().map(|&i| decoded.line_of_row[i as usize]).collect());
            let records = match (&self.emit, sources.as_deref()) {
                (Emit::Forward, Some(sources)) => output::forward(batch, sources, &self.output, &|_| None, &|i| bytes::Bytes::copy_from_slice(lines[i]))?,
                (Emit::Splice { schema_fields }, Some(sources)) => {
                    if let Some(column) = result.map_columns.iter().find(|c| schema_fields.contains(c)) {
                        return Err(output::SpliceConflict(column.clone()).into());
                    }
                    output::splice(batch, sources, &result.map_columns, &self.output, &|_| None, &|i| lines[i])?
                }
                (_, sources) => output::encode(batch, sources, &self.output, &|_| None)?,
            };
            for record in records {
                out.extend_from_slice(&record.value);
                out.push(b'\n');
            }
        }
        Ok(())
    }
}

/// JSON decoding alone: lines -> one Arrow batch per call, with weir's
/// decoder (the scanner, arrow-json for what it leaves) or arrow-json alone;
/// outputs nothing (a record that does not decode fails the run).
pub struct DecodeOnly {
    decoder: JsonDecoder,
}

impl DecodeOnly {
    /// A decoder for `schema_json` projected to `fields` (all when empty);
    /// `arrow_json` for arrow-json alone.
    pub fn new(schema_json: &str, fields: &[&str], arrow_json: bool) -> Result<DecodeOnly, Error> {
        let mut schema = SchemaSpec::from_json(schema_json)?.to_arrow()?;
        if !fields.is_empty() {
            let indices: Vec<usize> = fields.iter().map(|name| schema.index_of(name)).collect::<Result<_, _>>()?;
            schema = Arc::new(schema.project(&indices)?);
        }
        let decoder = if arrow_json { JsonDecoder::arrow_json(schema) } else { JsonDecoder::new(schema) };
        Ok(DecodeOnly { decoder })
    }
}

impl Contender for DecodeOnly {
    fn batch(&mut self, lines: &[&[u8]], _out: &mut Vec<u8>) -> Result<(), Error> {
        let decoded = self.decoder.decode_lines(lines)?;
        if decoded.batch.num_rows() != lines.len() {
            return Err(format!("{} of {} records decoded", decoded.batch.num_rows(), lines.len()).into());
        }
        Ok(())
    }
}
