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
}


impl Sender {
    /// Produces checkpoints to the state topic `topic` and waits for their
    /// acknowledgement (in the open transaction under exactly-once).
    pub(super) async fn write_checkpoints(&self, topic: &str, checkpoints: &[state::Checkpoint]) -> Result<(), PipelineError> {
        let sends = checkpoints.iter().map(|checkpoint| async move {
            let key = state::Checkpoint::key_of(checkpoint.task);
            let value = checkpoint.encode();
            self.producer.send(FutureRecord::to(topic).key(&key).payload(&value), Duration::from_secs(30)).await.map(|_| ()).map_err(|(e, _)| e.to_string())
        });
        let failed: Vec<String> = futures::future::join_all(sends).await.into_iter().filter_map(Result::err).collect();
        if let Some(error) = failed.first() {
            return Err(PipelineError::Delivery { pipeline: self.name.clone(), topic: topic.to_owned(), count: failed.len(), attempts: 1, last_error: error.clone() });
        }
        Ok(())
    }

    /// Produces `out` (headers copied from source records) and waits for every
    /// acknowledgement; retries failures with backoff. Returns the records
    /// that still failed, with the last error.
    pub(super) async fn produce_all(&self, topic: &str, out: &[OutRecord], sources: &[OwnedMessage], versions: Option<&str>) -> Vec<(usize, String)> {
        let headers_of = |r: &OutRecord| {
            let headers = r.source.and_then(|s| sources[s].headers().cloned());
            match versions {
                Some(value) => Some(headers.unwrap_or_default().insert(rdkafka::message::Header { key: "weir.plugins", value: Some(value) })),
                None => headers,
            }
        };
        let mut pending: Vec<usize> = (0..out.len()).collect();
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
                if let Err((error, _)) = result {
                    last_errors.insert(i, error.to_string());
                    failed.push(i);
                }
            }
            if failed.is_empty() {
                return Vec::new();
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
                None => return failed.into_iter().map(|i| (i, last_errors.remove(&i).unwrap_or_default())).collect(),
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
        loop {
            let sends = pending.iter().map(|&i| {
                let (record, letter) = &dead[i];
                let source = &records[*record];
                let mut headers: OwnedHeaders = dead_letter_headers(source, letter, connect);
                if let Some(run) = redrive_run {
                    headers = headers.insert(rdkafka::message::Header { key: dead_letters::REDRIVE_RUN_HEADER, value: Some(run) });
                }
                let topic = topic.as_str();
                async move {
                    let mut future = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
                    if let Some(value) = source.payload() {
                        future = future.payload(value);
                    }
                    if let Some(key) = source.key() {
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
