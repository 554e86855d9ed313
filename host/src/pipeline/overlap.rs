//! Decoding and the operator chain overlapped across the chunks of a batch
//! (`batch.overlap`).
//!
//! Without overlap a large batch is decoded on every core, then the chain
//! runs on one while the others wait. With it, a decoder thread decodes
//! chunk k + 1 while the worker runs the chain on chunk k. Chunks run in
//! order, so outputs keep the order of their records. Only a stateless
//! chain of filters and maps without event time is overlapped: aggregates
//! run per partition task and event time needs the whole batch to move the
//! watermark. On two cores overlap can hide at most half of the decode time
//! and costs a guest call per chunk, so `auto` ([`StageCosts`]) decides from
//! what both modes measure (BENCHMARKS.md, "Decoding, the operators and the
//! output on two cores").

use super::PipelineError;
use super::decode::{Decoded, RecordDecoder};
use crate::batch::BatchError;
use crate::config::Overlap;
use crate::delivery::dead_letter::DeadLetter;
use crate::delivery::isolate::{Isolated, run_isolated};
use crate::engine::{Error, OperatorKind};
use crate::operator::ChainOutput;
use crate::telemetry::PipelineStats;
use arrow_array::RecordBatch;
use rdkafka::message::OwnedMessage;
use std::time::{Duration, Instant};

/// Records per chunk at least: fewer make per-call costs show.
const MIN_CHUNK_RECORDS: usize = 1024;

/// Chunks per batch at most.
const MAX_CHUNKS: usize = 8;

/// Weight of the newest batch in the cost averages.
const NEWEST_WEIGHT: f64 = 0.3;

/// `auto` runs one batch in every this many in the mode it does not
/// prefer, so the comparison follows the load.
const EXPLORE_EVERY: u64 = 32;

/// What `batch.overlap = "auto"` knows: moving averages of what one record
/// costs in each stage and in each mode, measured as the pipeline runs.
///
/// Overlap can only pay when the chain costs at least half as much as
/// decoding: decoding a whole batch on two cores takes half its time, which
/// is all overlap can hide. Past that gate the modes are compared on the
/// wall time they took (the chain's per-call cost grows with the chunks, a
/// lot for interpreted guests), trying the other mode now and then.
#[derive(Debug, Default, Clone, Copy)]
pub struct StageCosts {
    /// Decoding, in ns of one thread's time per record (whole batches).
    decode_ns: Option<f64>,
    /// The chain (with isolation), in ns per record (whole batches).
    chain_ns: Option<f64>,
    /// Decoding and the chain, wall ns per record, batch decoded whole.
    whole_ns: Option<f64>,
    /// The same, overlapped.
    overlapped_ns: Option<f64>,
    /// Decisions taken past the gate.
    decisions: u64,
}

fn blend(old: Option<f64>, new: f64) -> Option<f64> {
    Some(old.map_or(new, |old| old + NEWEST_WEIGHT * (new - old)))
}

fn per_record(time: Duration, records: usize) -> f64 {
    time.as_nanos() as f64 / records as f64
}

impl StageCosts {
    /// Adds a batch of `records` decoded whole, which took `decode`
    /// (summed over the decoder's threads), `chain`, and `wall` for both.
    pub fn observe_whole(&mut self, records: usize, decode: Duration, chain: Duration, wall: Duration) {
        if records > 0 {
            self.decode_ns = blend(self.decode_ns, per_record(decode, records));
            self.chain_ns = blend(self.chain_ns, per_record(chain, records));
            self.whole_ns = blend(self.whole_ns, per_record(wall, records));
        }
    }

    /// Adds an overlapped batch of `records` that took `wall`.
    pub fn observe_overlapped(&mut self, records: usize, wall: Duration) {
        if records > 0 {
            self.overlapped_ns = blend(self.overlapped_ns, per_record(wall, records));
        }
    }

    /// Whether the chain costs enough for overlap to be able to pay.
    pub fn overlap_can_pay(&self) -> bool {
        matches!((self.decode_ns, self.chain_ns), (Some(decode), Some(chain)) if chain * 2.0 >= decode)
    }

    /// Whether overlapped batches have been the faster ones so far.
    pub fn overlap_is_faster(&self) -> bool {
        matches!((self.overlapped_ns, self.whole_ns), (Some(overlapped), Some(whole)) if overlapped < whole)
    }

    /// `auto`'s decision for the next batch: past the gate, a first
    /// overlapped batch to measure, then the faster mode, and the other
    /// one every [`EXPLORE_EVERY`] batches.
    pub fn decide(&mut self) -> bool {
        if !self.overlap_can_pay() {
            return false;
        }
        self.decisions += 1;
        if self.overlapped_ns.is_none() {
            return true;
        }
        self.overlap_is_faster() != self.decisions.is_multiple_of(EXPLORE_EVERY)
    }
}

/// The number of chunks to overlap a batch of `records` in, or `None` when
/// it is too small to split.
pub fn chunks(records: usize) -> Option<usize> {
    (records >= 2 * MIN_CHUNK_RECORDS).then(|| (records / MIN_CHUNK_RECORDS).min(MAX_CHUNKS))
}

/// What went wrong in an overlapped batch.
#[derive(Debug)]
pub enum Failure {
    /// The decoder failed (not a bad record: those are dead-lettered).
    Decode(BatchError),
    /// The chain failed in a way isolation does not handle.
    Chain(Error),
}

/// The outcome of an overlapped batch, like decoding then isolating it whole.
#[derive(Debug, Default)]
pub struct Overlapped {
    /// Records that did not decode, with the reason (indices into the batch).
    pub failed: Vec<(usize, String)>,
    /// The chain's outputs and isolated failures, chunk after chunk.
    pub isolated: Isolated,
    /// Time the decoder thread spent decoding.
    pub decode_busy: Duration,
    /// Time the chain took.
    pub chain_busy: Duration,
}

/// Decodes `records` in `chunks` chunks on a thread of its own while `run`
/// (the chain) takes the decoded chunks in order, each with poison isolation.
pub fn decode_and_run(
    decoder: &RecordDecoder,
    records: &[OwnedMessage],
    chunks: usize,
    run: &mut dyn FnMut(RecordBatch) -> Result<ChainOutput, Error>,
) -> Result<Overlapped, Failure> {
    let size = records.len().div_ceil(chunks.max(1)).max(1);
    std::thread::scope(|scope| {
        // One chunk decoded ahead of the chain at most.
        let (decoded_tx, decoded_rx) = std::sync::mpsc::sync_channel::<(usize, Result<Decoded, BatchError>, Duration)>(1);
        std::thread::Builder::new()
            .name("weir-decode".into())
            .spawn_scoped(scope, move || {
                for (index, part) in records.chunks(size).enumerate() {
                    let started = Instant::now();
                    let decoded = decoder.decode_serial(part);
                    // The worker stopped taking chunks (a failure): stop too.
                    if decoded_tx.send((index * size, decoded, started.elapsed())).is_err() {
                        return;
                    }
                }
            })
            .expect("spawning the decoder thread");
        let mut out = Overlapped::default();
        for (base, decoded, busy) in decoded_rx {
            out.decode_busy += busy;
            let decoded = decoded.map_err(Failure::Decode)?;
            out.failed.extend(decoded.failed.into_iter().map(|(record, reason)| (record + base, reason)));
            if decoded.batch.num_rows() == 0 {
                continue;
            }
            let rows = decoded.record_of_row.into_iter().map(|record| record + base).collect();
            let started = Instant::now();
            let isolated = run_isolated(decoded.batch, rows, run).map_err(Failure::Chain)?;
            out.chain_busy += started.elapsed();
            out.isolated.outputs.extend(isolated.outputs);
            out.isolated.failed.extend(isolated.failed);
            out.isolated.calls += isolated.calls;
        }
        Ok(out)
    })
}

impl super::Worker {
    /// The chunks to overlap a batch of `records` in: `None` unless
    /// `batch.overlap` asks for it (`auto`: the measured costs say it
    /// pays), the chain is stateless (filters and maps, no
    /// event time, no shadow run, which counts calls), the machine has two
    /// cores or more and the batch is large enough to split.
    pub(super) fn overlap_chunks(&mut self, records: usize) -> Option<usize> {
        let stateless = self.tasks.is_none()
            && self.config.event_time.is_none()
            && !self.chain.has_shadow()
            && self.chain.operators().iter().all(|o| matches!(o.kind(), OperatorKind::Filter | OperatorKind::Map));
        let chunks = chunks(records).filter(|_| stateless && super::cores() >= 2)?;
        let wanted = match self.config.batch.overlap {
            Overlap::Never => false,
            Overlap::Always => true,
            Overlap::Auto => self.stage_costs.decide(),
        };
        wanted.then_some(chunks)
    }

    /// [`decode_and_run`] for the pipeline: records that do not decode go
    /// to `dead`, the costs measured feed the next decision.
    pub(super) fn decode_and_run_overlapped(&mut self, records: &[OwnedMessage], chunks: usize, dead: &mut Vec<(usize, DeadLetter)>) -> Result<Isolated, PipelineError> {
        let started = Instant::now();
        let (decoder, chain) = (&self.decoder, &mut self.chain);
        let out = tokio::task::block_in_place(|| decode_and_run(decoder, records, chunks, &mut |batch| chain.run(batch, None))).map_err(|failure| match failure {
            Failure::Decode(error) => PipelineError::Setup { pipeline: self.name.clone(), message: error.to_string() },
            Failure::Chain(source) => PipelineError::Engine { pipeline: self.name.clone(), source: Box::new(source) },
        })?;
        self.stage_costs.observe_overlapped(records.len(), started.elapsed());
        PipelineStats::add(&self.stats.batches_overlapped, 1);
        dead.extend(out.failed.into_iter().map(|(record, reason)| (record, DeadLetter::host("decode", reason))));
        Ok(out.isolated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_overlaps_only_past_the_gate_and_when_overlapped_batches_are_faster() {
        let ms = Duration::from_millis;
        let mut costs = StageCosts::default();
        assert!(!costs.decide(), "nothing measured yet: decode whole");
        costs.observe_whole(10_000, ms(2), Duration::from_micros(100), ms(1));
        assert!(!costs.decide(), "a chain much cheaper than decoding is never overlapped");
        // A heavier chain: the average moves towards it, batch after batch.
        costs.observe_whole(10_000, ms(2), ms(3), ms(4));
        assert!(!costs.overlap_can_pay(), "one batch does not outweigh the average");
        for _ in 0..5 {
            costs.observe_whole(10_000, ms(2), ms(3), ms(4));
        }
        assert!(costs.decide(), "past the gate: one overlapped batch to measure");
        costs.observe_overlapped(10_000, ms(5));
        let picks: Vec<bool> = (0..64).map(|_| costs.decide()).collect();
        assert_eq!(picks.iter().filter(|&&p| p).count(), 2, "slower: overlapped only to re-measure, 1 in {EXPLORE_EVERY}");
        for _ in 0..10 {
            costs.observe_overlapped(10_000, ms(3));
        }
        let picks: Vec<bool> = (0..64).map(|_| costs.decide()).collect();
        assert_eq!(picks.iter().filter(|&&p| !p).count(), 2, "faster: whole only to re-measure");
        assert_eq!(chunks(10_000), Some(8));
        assert_eq!(chunks(3_000), Some(2));
        assert_eq!(chunks(2_000), None, "too small to split");
    }

    #[test]
    fn chunks_keep_record_order_and_indices() {
        use rdkafka::Timestamp;
        let dir = tempfile::tempdir().unwrap();
        let schema = dir.path().join("s.json");
        std::fs::write(&schema, r#"{"fields":[{"name":"n","type":"int64","nullable":false}]}"#).unwrap();
        let decoder = RecordDecoder::new(&crate::config::FormatConfig::Json { schema, decode: Default::default() }).unwrap();
        let records: Vec<OwnedMessage> = (0..5000)
            .map(|n| {
                let value = if n % 1000 == 7 { "not json".to_owned() } else { format!(r#"{{"n":{n}}}"#) };
                OwnedMessage::new(Some(value.into_bytes()), None, "t".into(), Timestamp::NotAvailable, 0, n, None)
            })
            .collect();
        let mut calls = Vec::new();
        let out = decode_and_run(&decoder, &records, 4, &mut |batch| {
            let values = batch.column(0).as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
            calls.push((values.value(0), batch.num_rows()));
            Ok(ChainOutput { batches: vec![batch.clone()], input_rows: vec![Some((0..batch.num_rows() as u32).collect())], ..Default::default() })
        })
        .unwrap();
        assert_eq!(calls.len(), 4);
        assert!(calls.windows(2).all(|w| w[0].0 < w[1].0), "chunks in order: {calls:?}");
        let failed: Vec<usize> = out.failed.iter().map(|(r, _)| *r).collect();
        assert_eq!(failed, vec![7, 1007, 2007, 3007, 4007]);
        let rows: Vec<usize> = out.isolated.outputs.iter().flat_map(|(_, rows)| rows.iter().copied()).collect();
        assert_eq!(rows.len(), 4995);
        assert!(rows.windows(2).all(|w| w[0] < w[1]) && !rows.contains(&1007));
    }
}
