//! Decoding overlapped with the operator chain (`batch.overlap`), on the
//! worker's CPU path without a broker: 10k JSON records per batch decoded,
//! run through one Wasm operator with poison isolation, and the results
//! encoded as the pipeline encodes them. Each batch is either decoded whole
//! on every core and then run (`never`), or decoded chunk by chunk on a
//! thread of its own while the chain runs on the previous chunk (`always`).
//! Both modes alternate in one run; `auto` is what the pipeline would pick
//! from the costs measured in the whole-batch mode.

use crate::contenders::json_output;
use crate::report::Table;
use crate::workload;
use rdkafka::Timestamp;
use rdkafka::message::OwnedMessage;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use weir::config::{DecodeScope, FormatConfig};
use weir::delivery::isolate::{Isolated, run_isolated};
use weir::engine::{Engine, EngineConfig, HttpAllowlist};
use weir::operator::{Chain, Operator};
use weir::pipeline::decode::RecordDecoder;
use weir::pipeline::output::{self, Emit};
use weir::pipeline::overlap::{StageCosts, chunks, decode_and_run};
use weir_tests::guests;

type Error = Box<dyn std::error::Error>;

/// Records per batch (the pipeline's default `batch.max_records`).
const BATCH: usize = 10_000;

struct Subject {
    operator: &'static str,
    language: &'static str,
    path: PathBuf,
    config: &'static str,
}

const FILTER: &str = "high-value-orders (filter)";
const MAP: &str = "enrich-order (map)";
const THRESHOLD: &str = r#"{"threshold": 1000.0}"#;

fn subjects(quick: bool) -> Vec<Subject> {
    let polyglot = weir_tests::repo_root().join("target/guests/polyglot");
    let mut list = vec![
        Subject { operator: FILTER, language: "Rust", path: guests::HIGH_VALUE_ORDERS.into(), config: THRESHOLD },
        Subject { operator: MAP, language: "Rust", path: guests::ENRICH_ORDER.into(), config: "{}" },
    ];
    if !quick {
        for (language, prefix) in [("Go", "go"), ("Python", "python"), ("JS", "js")] {
            for (operator, name, config) in [(FILTER, "high-value-orders", THRESHOLD), (MAP, "enrich-order", "{}")] {
                let path = polyglot.join(format!("{prefix}-{name}.wasm"));
                if path.exists() {
                    list.push(Subject { operator, language, path, config });
                }
            }
        }
    }
    list
}

/// One pipeline's decoder, chain and output mode.
struct Worker {
    decoder: RecordDecoder,
    chain: Chain,
    emit: Emit,
}

impl Worker {
    fn new(engine: &Engine, guest: &Path, config: &str, schema: &Path) -> Result<Worker, Error> {
        let format = FormatConfig::Json { schema: schema.to_owned(), decode: DecodeScope::Schema };
        let mut operators = vec![Operator::new(engine.load_file(guest)?, config, HttpAllowlist::default())?];
        let (decoder, emit) = RecordDecoder::for_chain(&format, Some(&json_output()), &mut operators, false, &[])?;
        Ok(Worker { decoder, chain: Chain::new(operators), emit })
    }

    /// Decodes whole (every core), then runs; feeds `costs` as the pipeline
    /// does and returns the decoding (summed over threads) and chain times.
    fn whole(&mut self, records: &[OwnedMessage], costs: &mut StageCosts) -> Result<(Duration, Duration), Error> {
        let started = Instant::now();
        let decoded = self.decoder.decode(records)?;
        let chain_started = Instant::now();
        let chain = &mut self.chain;
        let isolated = run_isolated(decoded.batch, decoded.record_of_row, &mut |batch| chain.run(batch, None))?;
        let chain_time = chain_started.elapsed();
        costs.observe_whole(records.len(), decoded.busy, chain_time, started.elapsed());
        self.encode(isolated, records)?;
        Ok((decoded.busy, chain_time))
    }

    /// Decodes chunk by chunk beside the chain.
    fn overlapped(&mut self, records: &[OwnedMessage], costs: &mut StageCosts) -> Result<(), Error> {
        let started = Instant::now();
        let chain = &mut self.chain;
        let out = decode_and_run(&self.decoder, records, chunks(records.len()).unwrap_or(1), &mut |batch| chain.run(batch, None))
            .map_err(|failure| format!("{failure:?}"))?;
        costs.observe_overlapped(records.len(), started.elapsed());
        self.encode(out.isolated, records)
    }

    /// The output records, as the pipeline builds them.
    fn encode(&self, isolated: Isolated, records: &[OwnedMessage]) -> Result<(), Error> {
        use rdkafka::Message;
        if !isolated.failed.is_empty() {
            return Err(format!("{} records failed", isolated.failed.len()).into());
        }
        let config = json_output();
        for (output, rows) in isolated.outputs {
            for (batch, input_rows) in output.batches.iter().zip(output.input_rows) {
                let sources: Vec<usize> = input_rows.unwrap_or_default().iter().map(|&r| rows[r as usize]).collect();
                let encoded = match self.emit {
                    Emit::Forward => output::forward(batch, &sources, &config, &|_| None, &|i| bytes::Bytes::copy_from_slice(records[i].payload().unwrap_or_default()))?,
                    _ => output::encode_on_every_core(batch, Some(&sources), &config, &|_| None)?,
                };
                std::hint::black_box(encoded);
            }
        }
        Ok(())
    }
}

/// The table: records/s of both modes by operator and language.
pub fn table(quick: bool) -> Result<Table, Error> {
    let batches = if quick { 2 } else { 20 };
    let rounds = if quick { 1 } else { 3 };
    let bytes = workload::order_lines(BATCH * batches, 0);
    let records: Vec<OwnedMessage> = workload::lines(&bytes)
        .iter()
        .enumerate()
        .map(|(i, line)| OwnedMessage::new(Some(line.to_vec()), None, "orders".into(), Timestamp::NotAvailable, 0, i as i64, None))
        .collect();
    let dir = tempfile::tempdir()?;
    let schema = dir.path().join("orders.schema.json");
    std::fs::write(&schema, workload::schema_json(0))?;
    let engine = Engine::new(EngineConfig::default())?;
    let mut table = Table::new(
        &format!("Decoding overlapped with the chain (`batch.overlap`), worker CPU path without a broker: {BATCH}-record batches, medians of {rounds} alternating rounds of {} records", records.len()),
        &["operator", "language", "decode µs/record (one core)", "chain µs/record", "never: decode whole, then run", "always: overlapped", "always / never", "auto picks"],
    );
    for subject in subjects(quick) {
        eprintln!("bench: overlap, {} {}", subject.language, subject.operator);
        let mut worker = Worker::new(&engine, &subject.path, subject.config, &schema)?;
        let mut costs = StageCosts::default();
        worker.whole(&records[..BATCH], &mut costs)?;
        worker.overlapped(&records[..BATCH], &mut costs)?;
        let (mut never, mut always) = (Vec::new(), Vec::new());
        let (mut decode_busy, mut chain_time) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..rounds {
            let started = Instant::now();
            for batch in records.chunks(BATCH) {
                let (decode, chain) = worker.whole(batch, &mut costs)?;
                decode_busy += decode;
                chain_time += chain;
            }
            never.push(started.elapsed());
            let started = Instant::now();
            for batch in records.chunks(BATCH) {
                worker.overlapped(batch, &mut costs)?;
            }
            always.push(started.elapsed());
        }
        let median = |times: &mut Vec<Duration>| {
            times.sort();
            times[times.len() / 2]
        };
        let (never, always) = (median(&mut never), median(&mut always));
        let per_record = |d: Duration| format!("{:.3}", d.as_secs_f64() * 1e6 / (records.len() * rounds) as f64);
        table.row(vec![
            subject.operator.into(),
            subject.language.into(),
            per_record(decode_busy),
            per_record(chain_time),
            crate::report::rate(records.len(), never),
            crate::report::rate(records.len(), always),
            format!("{:.2}x", never.as_secs_f64() / always.as_secs_f64()),
            if costs.overlap_can_pay() && costs.overlap_is_faster() { "always" } else { "never" }.into(),
        ]);
    }
    Ok(table)
}
