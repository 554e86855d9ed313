//! The producing side of a pipeline: outputs, dead letters and checkpoints,
//! with retries and backoff (none inside a transaction).

use super::*;

/// The producing side (shared, `Sync`, so its futures can cross awaits).
pub(super) struct Sender {
    pub(super) name: String,
    pub(super) producer: FutureProducer,
    pub(super) stats: Arc<PipelineStats>,
    pub(super) errors: crate::config::ErrorConfig,
    pub(super) dead_letter_topic: String,
    /// Exactly-once: every produce happens inside a transaction.
    pub(super) transactional: bool,
    /// Largest record each topic takes.
    pub(super) message_limits: crate::delivery::message_size::MessageLimits,
}


/// Produces checkpoints of `pipeline` to the state topic `topic` with
/// `producer` and waits for their acknowledgement.
pub(super) async fn write_checkpoints(producer: &FutureProducer, stats: &PipelineStats, pipeline: &str, topic: &str, checkpoints: &[state::Checkpoint]) -> Result<(), PipelineError> {
    // One partition, an idempotent producer, sends enqueued in this
    // order: a task's entry records land before its checkpoint record.
    let entries = checkpoints.iter().flat_map(|c| c.keyed.iter().flat_map(|w| w.records.iter())).map(|(key, value)| async move {
        let record = FutureRecord::<[u8], [u8]>::to(topic).key(key.as_slice());
        let record = match value {
            Some(value) => record.payload(value.as_slice()),
            None => record,
        };
        let bytes = (key.len() + value.as_ref().map_or(0, Vec::len)) as u64;
        producer.send(record, Duration::from_secs(30)).await.map(|_| bytes).map_err(|(e, _)| e.to_string())
    });
    let headers = checkpoints.iter().map(|checkpoint| async move {
        let key = state::Checkpoint::key_of(checkpoint.task);
        let value = checkpoint.encode();
        let bytes = (key.len() + value.len()) as u64;
        producer.send(FutureRecord::to(topic).key(&key).payload(&value), Duration::from_secs(30)).await.map(|_| bytes).map_err(|(e, _)| e.to_string())
    });
    let sends = entries.map(futures::future::Either::Left).chain(headers.map(futures::future::Either::Right));
    let results = futures::future::join_all(sends).await;
    let written = results.iter().filter_map(|r| r.as_ref().ok()).fold((0, 0), |(n, b), bytes| (n + 1, b + bytes));
    PipelineStats::add(&stats.state_written_records, written.0);
    PipelineStats::add(&stats.state_written_bytes, written.1);
    let failed: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if let Some(error) = failed.first() {
        return Err(PipelineError::Delivery { pipeline: pipeline.to_owned(), topic: topic.to_owned(), count: failed.len(), attempts: 1, last_error: error.clone() });
    }
    Ok(())
}

impl Sender {
    /// Produces checkpoints to the state topic `topic` and waits for their
    /// acknowledgement (in the open transaction under exactly-once).
    pub(super) async fn write_checkpoints(&self, topic: &str, checkpoints: &[state::Checkpoint]) -> Result<(), PipelineError> {
        write_checkpoints(&self.producer, &self.stats, &self.name, topic, checkpoints).await
    }

    /// Produces `out` (headers copied from source records) and waits for every
    /// acknowledgement; retries failures with backoff. Returns the records
    /// that still failed, with the last error.
    pub(super) async fn produce_all(&self, topic: &str, out: &[OutRecord], sources: &[OwnedMessage], versions: Option<&str>) -> Vec<(usize, output::Undelivered)> {
        let headers_of = |r: &OutRecord| {
            let headers = r.source.and_then(|s| crate::delivery::dead_letter::passthrough_headers(sources[s].headers()));
            match versions {
                Some(value) => Some(headers.unwrap_or_default().insert(rdkafka::message::Header { key: "weir.plugins", value: Some(value) })),
                None => headers,
            }
        };
        let mut too_large = Vec::new();
        let max = self.message_limits.max_for(topic);
        let mut pending = output::drop_oversize(out, (0..out.len()).collect(), max, headers_of, &mut too_large);
        let mut last_errors: BTreeMap<usize, String> = BTreeMap::new();
        let mut delays = retry::delays(&self.errors);
        loop {
            let sends = pending.iter().map(|&i| {
                let record = &out[i];
                let headers = headers_of(record);
                async move {
                    let mut future = FutureRecord::<[u8], [u8]>::to(topic).payload(&record.value[..]);
                    if let Some(key) = &record.key {
                        future = future.key(key);
                    }
                    if let Some(headers) = headers {
                        future = future.headers(headers);
                    }
                    (i, self.producer.send(future, Duration::from_secs(30)).await)
                }
            });
            let results = futures::future::join_all(sends).await;
            let mut failed = Vec::new();
            for (i, result) in results {
                match result {
                    Err((error, _)) if crate::delivery::message_size::is_too_large(&error) => {
                        too_large.push((i, output::Undelivered { kind: output::TOO_LARGE, message: error.to_string() }));
                    }
                    Err((error, _)) => {
                        last_errors.insert(i, error.to_string());
                        failed.push(i);
                    }
                    Ok(_) => {}
                }
            }
            if failed.is_empty() {
                return too_large;
            }
            // Inside a transaction a failed produce cannot be retried: the
            // transaction aborts (and the batch is redone) instead.
            match delays.next().filter(|_| !self.transactional) {
                Some(delay) => {
                    PipelineStats::add(&self.stats.retries, failed.len() as u64);
                    tracing::warn!(pipeline = %self.name, topic, failed = failed.len(), ?delay, "produce failed; retrying");
                    tokio::time::sleep(delay).await;
                    pending = failed;
                }
                None => {
                    let undelivered = failed.into_iter().map(|i| (i, output::Undelivered { kind: "delivery", message: last_errors.remove(&i).unwrap_or_default() }));
                    return too_large.into_iter().chain(undelivered).collect();
                }
            }
        }
    }

    /// Produces dead letters (with retries). `redrive_run` marks letters a
    /// redrive writes back, so that redrive stops when it meets its own.
    pub(super) async fn produce_dead_letters(&self, dead: &[(usize, DeadLetter)], records: &[OwnedMessage], redrive_run: Option<&str>) -> Result<(), PipelineError> {
        let topic = self.dead_letter_topic.clone();
        let mut pending: Vec<usize> = (0..dead.len()).collect();
        let mut delays = retry::delays(&self.errors);
        let connect = self.errors.connect_headers;
        let max = self.message_limits.max_for(&topic);
        loop {
            let sends = pending.iter().map(|&i| {
                let (record, letter) = &dead[i];
                let dead_letter = dead_letter_record(&records[*record], letter, connect, max);
                let mut headers: OwnedHeaders = dead_letter.headers;
                if let Some(run) = redrive_run {
                    headers = headers.insert(rdkafka::message::Header { key: dead_letters::REDRIVE_RUN_HEADER, value: Some(run) });
                }
                let topic = topic.as_str();
                async move {
                    let mut future = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
                    if let Some(value) = dead_letter.value {
                        future = future.payload(value);
                    }
                    if let Some(key) = dead_letter.key {
                        future = future.key(key);
                    }
                    (i, self.producer.send(future, Duration::from_secs(30)).await)
                }
            });
            let results = futures::future::join_all(sends).await;
            let mut failed = Vec::new();
            let mut last_error = String::new();
            for (i, result) in results {
                match result {
                    Ok(_) => self.stats.dead_lettered(&dead[i].1.kind),
                    Err((error, _)) => {
                        last_error = error.to_string();
                        failed.push(i);
                    }
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            // Inside a transaction a failed produce cannot be retried: the
            // transaction aborts (and the batch is redone) instead.
            match delays.next().filter(|_| !self.transactional) {
                Some(delay) => {
                    PipelineStats::add(&self.stats.retries, failed.len() as u64);
                    tokio::time::sleep(delay).await;
                    pending = failed;
                }
                None => {
                    return Err(PipelineError::Delivery {
                        pipeline: self.name.clone(),
                        topic,
                        count: failed.len(),
                        attempts: self.errors.max_attempts,
                        last_error,
                    });
                }
            }
        }
    }
}
