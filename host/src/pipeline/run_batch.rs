//! One batch through decode, event time, the operator chain (with poison
//! isolation), the sink and the output topic; returns what to dead-letter.

use super::*;
use crate::delivery::isolate::Isolated;

/// A result batch with the source record of each row (none after an aggregate).
type Results = Vec<(RecordBatch, Option<Vec<usize>>)>;

impl Worker {
    /// Decodes, runs the chain and the sink, and produces the outputs (with
    /// retries); returns the records to dead-letter, by index in `records`.
    pub(super) async fn run_batch(&mut self, records: &[OwnedMessage]) -> Result<Vec<(usize, DeadLetter)>, PipelineError> {
        let stats = self.stats.clone();
        PipelineStats::add(&stats.records_in, records.len() as u64);
        PipelineStats::add(&stats.batches, 1);
        let mut dead: Vec<(usize, DeadLetter)> = Vec::new();

        let isolated = match self.overlap_chunks(records.len()) {
            Some(chunks) => self.decode_and_run_overlapped(records, chunks, &mut dead)?,
            None => self.decode_and_run(records, &mut dead).await?,
        };

        for (record, error, attempts) in isolated.failed {
            let operator = match &error {
                crate::engine::Error::Trap { plugin, .. }
                | crate::engine::Error::Guest { plugin, .. }
                | crate::engine::Error::Contract { plugin, .. } => plugin.clone(),
                _ => String::new(),
            };
            let plugin_version = self.version_of(&operator);
            dead.push((record, DeadLetter { kind: error.kind_str().to_owned(), message: error.to_string(), operator, plugin_version, attempts }));
        }
        let mut results: Results = Vec::new();
        let mut map_columns: Vec<String> = Vec::new();
        for (output, rows) in isolated.outputs {
            for column in output.map_columns {
                if !map_columns.contains(&column) {
                    map_columns.push(column);
                }
            }
            PipelineStats::add(&stats.records_filtered, output.filtered as u64);
            let mut accounted = output.filtered + output.rejected.len();
            for rejection in output.rejected {
                let operator = self.chain.operators()[rejection.operator].plugin().name().to_owned();
                let letter = DeadLetter {
                    kind: "rejected".into(),
                    message: rejection.reason,
                    plugin_version: self.version_of(&operator),
                    operator,
                    attempts: 1,
                };
                if let Some(row) = rejection.input_row {
                    dead.push((rows[row as usize], letter));
                }
            }
            for (batch, input_rows) in output.batches.into_iter().zip(output.input_rows) {
                let sources = input_rows.map(|r| r.iter().map(|&i| rows[i as usize]).collect::<Vec<_>>());
                if let Some(sources) = &sources {
                    accounted += sources.len();
                }
                results.push((batch, sources));
            }
            PipelineStats::add(&stats.records_aggregated, rows.len().saturating_sub(accounted) as u64);
        }

        let with_record_ids = self.sender.transactional;
        if let Some(sink) = self.sink.as_mut() {
            for (batch, sources) in &results {
                // A sink cannot join the transaction: under exactly-once it
                // gets each row's source coordinates as an idempotency key.
                let keyed = match sources {
                    Some(sources) if with_record_ids => Some(with_record_id_column(batch, sources, records).map_err(|e| PipelineError::Setup { pipeline: self.name.clone(), message: e.to_string() })?),
                    _ => None,
                };
                let letters = write_sink(sink, keyed.as_ref().unwrap_or(batch), &self.config.errors, &stats).await;
                for (row, letter) in letters {
                    if let Some(sources) = sources {
                        dead.push((sources[row], letter));
                    }
                }
            }
        }

        let dead_records: std::collections::HashSet<usize> = dead.iter().map(|(r, _)| *r).collect();
        let mut out_records: Vec<OutRecord> = Vec::new();
        if let Some(output) = &self.config.output {
            if let output::Emit::Splice { schema_fields } = &self.emit
                && let Some(column) = map_columns.iter().find(|c| schema_fields.contains(c))
            {
                return Err(PipelineError::Setup { pipeline: self.name.clone(), message: output::SpliceConflict(column.clone()).to_string() });
            }
            for (batch, sources) in &results {
                let key_of = |i: usize| records[i].key().map(<[u8]>::to_vec);
                let payload_of = |i: usize| records[i].payload().unwrap_or_default();
                let encoded = match (&self.emit, sources.as_deref()) {
                    (output::Emit::Forward, Some(sources)) => output::forward(batch, sources, output, &key_of, &|i| bytes::Bytes::copy_from_slice(payload_of(i))),
                    (output::Emit::Splice { .. }, Some(sources)) => output::splice(batch, sources, &map_columns, output, &key_of, &payload_of),
                    (_, sources) => output::encode_on_every_core(batch, sources, output, &key_of),
                }
                .map_err(|e| PipelineError::Setup { pipeline: self.name.clone(), message: format!("encoding output: {e}") })?;
                // Rows a sink rejected are dead letters, not outputs.
                out_records.extend(encoded.into_iter().filter(|r| r.source.is_none_or(|s| !dead_records.contains(&s))));
            }
        } else {
            let written: usize = results.iter().map(|(b, _)| b.num_rows()).sum();
            PipelineStats::add(&stats.records_out, written.saturating_sub(dead.len()) as u64);
        }

        if let Some(output) = self.config.output.clone() {
            let versions = output.plugin_version_header.then(|| self.versions_header());
            let failed = self.sender.produce_all(&output.topic, &out_records, records, versions.as_deref()).await;
            if self.sender.transactional && failed.iter().any(|(_, f)| f.kind != output::TOO_LARGE) {
                // Inside a transaction a failed produce aborts the whole batch.
                return Err(PipelineError::Delivery {
                    pipeline: self.name.clone(),
                    topic: output.topic.clone(),
                    count: failed.len(),
                    attempts: self.config.errors.max_attempts,
                    last_error: failed[0].1.message.clone(),
                });
            }
            PipelineStats::add(&stats.records_out, (out_records.len() - failed.len()) as u64);
            for (record, error) in failed {
                match out_records[record].source {
                    Some(source) => dead.push((source, error.letter())),
                    // An aggregate's result has no source record to dead-letter.
                    None if error.kind == output::TOO_LARGE => output::drop_sourceless(&self.name, &error),
                    None => {
                        return Err(PipelineError::Delivery { pipeline: self.name.clone(), topic: output.topic.clone(), count: 1, attempts: self.config.errors.max_attempts, last_error: error.message });
                    }
                }
            }
        }

        Ok(dead)
    }

    /// Decodes the whole batch, moves the watermark (dead-lettering or
    /// diverting late records), then runs the chain with poison isolation.
    async fn decode_and_run(&mut self, records: &[OwnedMessage], dead: &mut Vec<(usize, DeadLetter)>) -> Result<Isolated, PipelineError> {
        let stats = self.stats.clone();
        let started = Instant::now();
        let mut decoded = self.decoder.decode(records).map_err(|e| PipelineError::Setup { pipeline: self.name.clone(), message: e.to_string() })?;
        let decode_busy = decoded.busy;
        let (watermark, late) = self.advance_watermark(&mut decoded, records)?;
        dead.extend(decoded.failed.into_iter().map(|(record, reason)| (record, DeadLetter::host("decode", reason))));
        let mut late_out: Vec<OutRecord> = Vec::new();
        if let Some(event_time) = self.config.event_time.as_ref() {
            PipelineStats::add(&stats.records_late, late.len() as u64);
            for watermark::LateRow { record, event_ms: time, mark_ms: mark } in late {
                match event_time.late {
                    LatePolicy::Drop => {}
                    LatePolicy::Dlq => dead.push((
                        record,
                        DeadLetter::host("late", format!("event time {time} is behind the watermark {mark} (allowed lateness {} ms)", event_time.allowed_lateness_ms)),
                    )),
                    LatePolicy::Topic => late_out.push(OutRecord {
                        key: records[record].key().map(<[u8]>::to_vec),
                        value: bytes::Bytes::copy_from_slice(records[record].payload().unwrap_or_default()),
                        source: Some(record),
                    }),
                }
            }
        }
        if let Some(topic) = self.config.event_time.as_ref().and_then(|e| e.late_topic.clone()).filter(|_| !late_out.is_empty()) {
            let failed = self.sender.produce_all(&topic, &late_out, records, None).await;
            if let Some((_, error)) = failed.first() {
                return Err(PipelineError::Delivery { pipeline: self.name.clone(), topic, count: failed.len(), attempts: self.config.errors.max_attempts, last_error: error.message.clone() });
            }
        }

        // The chain, with poison isolation (CPU work: off the async reactor).
        let chain = &mut self.chain;
        let chain_started = Instant::now();
        let isolated = match self.tasks.as_mut() {
            Some(tasks) => {
                let consumer = &self.consumer;
                let run = tokio::task::block_in_place(|| tasks.run(chain, decoded.batch, decoded.record_of_row, records, consumer))
                    .map_err(|source| PipelineError::Engine { pipeline: self.name.clone(), source: Box::new(source) })?;
                if !run.reset.is_empty() {
                    // Only the isolated records leave now; the reset tasks'
                    // other records are replayed from the checkpoint.
                    dead.retain(|(record, _)| !run.reset.contains(&records[*record].partition()));
                    PipelineStats::add(&stats.retries, run.reset.len() as u64);
                }
                self.reset_tasks = run.reset;
                run.isolated
            }
            None => tokio::task::block_in_place(|| run_isolated(decoded.batch, decoded.record_of_row, &mut |batch| chain.run(batch, watermark)))
                .map_err(|source| PipelineError::Engine { pipeline: self.name.clone(), source: Box::new(source) })?,
        };
        self.stage_costs.observe_whole(records.len(), decode_busy, chain_started.elapsed(), started.elapsed());
        Ok(isolated)
    }
}


/// Name of the idempotency-key column sinks get under exactly-once.
pub const RECORD_ID_COLUMN: &str = "weir_record_id";

/// `batch` plus a `weir_record_id` column (`topic/partition/offset` of each
/// row's source record).
fn with_record_id_column(batch: &RecordBatch, sources: &[usize], records: &[OwnedMessage]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let ids: arrow_array::StringArray =
        sources.iter().map(|&s| Some(format!("{}/{}/{}", records[s].topic(), records[s].partition(), records[s].offset()))).collect();
    let mut fields: Vec<arrow_schema::FieldRef> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(arrow_schema::Field::new(RECORD_ID_COLUMN, arrow_schema::DataType::Utf8, false)));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(ids));
    RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns)
}

/// Writes a batch to the sink, retrying retryable errors with backoff;
/// returns the rows to dead-letter.
async fn write_sink(
    sink: &mut Operator,
    batch: &RecordBatch,
    errors: &crate::config::ErrorConfig,
    stats: &PipelineStats,
) -> Vec<(usize, DeadLetter)> {
    let operator = sink.plugin().name().to_owned();
    let version = sink.plugin().sha256()[..12].to_owned();
    let letter = |kind: &str, message: String, attempts: u32| DeadLetter {
        kind: kind.into(),
        message,
        operator: operator.clone(),
        plugin_version: version.clone(),
        attempts,
    };
    let all = |kind: &str, message: String, attempts: u32| (0..batch.num_rows()).map(|row| (row, letter(kind, message.clone(), attempts))).collect();
    let mut delays = retry::delays(errors);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = tokio::task::block_in_place(|| sink.write(batch));
        match result {
            Ok(SinkResult::Written) => return Vec::new(),
            Ok(SinkResult::Permanent(reason)) => return all("sink_permanent", reason, attempts),
            Ok(SinkResult::RejectedRows(rows)) => {
                return rows.into_iter().map(|r| (r.row as usize, letter("sink_rejected", r.reason, attempts))).collect();
            }
            Ok(SinkResult::Retryable(reason)) => match delays.next() {
                Some(delay) => {
                    PipelineStats::add(&stats.retries, 1);
                    tracing::warn!(sink = %operator, %reason, ?delay, "sink asked for a retry");
                    tokio::time::sleep(delay).await;
                }
                None => return all("sink_retries_exhausted", reason, attempts),
            },
            Err(error) => match delays.next() {
                Some(delay) if error.is_trap() => {
                    tokio::time::sleep(delay).await;
                }
                _ => return all(error.kind_str(), error.to_string(), attempts),
            },
        }
    }
}
