//! Exactly-once: each batch's outputs, dead letters and consumer offsets
//! (and, with state, its checkpoints) in one Kafka transaction; abort and
//! rewind when a transaction cannot commit (docs/exactly-once.md).

use super::*;

/// Timeout of transaction calls (init, send offsets, commit, abort).
pub(super) const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Resumes of a transaction call that timed out retriably.
const RESUME_ATTEMPTS: u32 = 2;

/// Calls a transaction API again while it fails with a retriable error
/// (librdkafka: "retry call to resume", e.g. after the coordinator
pub(super) fn resume_retriable(mut call: impl FnMut() -> rdkafka::error::KafkaResult<()>) -> rdkafka::error::KafkaResult<()> {
    let mut attempts = 0;
    loop {
        match call() {
            Err(rdkafka::error::KafkaError::Transaction(e)) if e.is_retriable() && attempts < RESUME_ATTEMPTS => {
                attempts += 1;
                tracing::warn!(error = %e, attempts, "transaction call timed out; resuming");
            }
            other => return other,
        }
    }
}

/// What a transaction commits besides its outputs.
enum TransactionPlan {
    /// Consumer offsets.
    Offsets(BTreeMap<(String, i32), i64>),
    /// Offsets covered by these checkpoints, which are in the transaction.
    Checkpoints(BTreeMap<(String, i32), i64>, Vec<state::Checkpoint>),
}


impl Worker {
    /// Exactly-once: the batch's outputs, dead letters and consumer offsets in
    /// one transaction. If the transaction cannot commit (a rebalance fenced
    /// this generation, a broker error), it is aborted and the partitions are
    /// rewound to the last committed offsets, so the records are processed
    /// again by whoever owns them now; fatal errors (another process with the
    /// same transactional id) halt the pipeline.
    pub(super) async fn process_in_transaction(&mut self, records: Vec<OwnedMessage>) -> Result<(), PipelineError> {
        let started = Instant::now();
        let kafka = |source| PipelineError::Kafka { pipeline: self.name.clone(), source };
        self.sender.producer.begin_transaction().map_err(kafka)?;
        let outcome = self.transaction_body(&records).await;
        let (plan, stopped, dead) = match outcome {
            Ok(done) => done,
            Err(error) => {
                self.abort_transaction();
                return Err(error);
            }
        };
        let (plan, checkpoints) = match plan {
            TransactionPlan::Offsets(plan) => (plan, None),
            TransactionPlan::Checkpoints(plan, checkpoints) => (plan, Some(checkpoints)),
        };
        if let Err(error) = self.commit_transaction(&plan) {
            tracing::warn!(pipeline = %self.name, %error, "transaction not committed: aborted; rewinding to the committed offsets");
            self.abort_transaction();
            if matches!(&error, PipelineError::Kafka { source: rdkafka::error::KafkaError::Transaction(e), .. } if e.is_fatal()) {
                return Err(error);
            }
            if matches!(&error, PipelineError::Kafka { source: rdkafka::error::KafkaError::Transaction(e), .. } if e.is_retriable()) {
                // The commit's outcome is unknown after every resume timed
                // out (a broker that drops the coordinator connection instead
                // of answering, or a coordinator that moved with a crashed
                // broker): halt; a restart re-initialises transactions,
                // which settles it.
                return Err(PipelineError::Setup {
                    pipeline: self.name.clone(),
                    message: format!(
                        "the transaction commit did not complete after {} attempts ({error}); this instance may have been fenced by another with the same transactional id: halting (a restart re-initialises transactions)",
                        RESUME_ATTEMPTS + 1
                    ),
                });
            }
            PipelineStats::add(&self.stats.retries, 1);
            self.rewind_to_committed();
            return Ok(());
        }
        self.stats.committed.lock().unwrap_or_else(|e| e.into_inner()).extend(plan);
        if let (Some(checkpoints), Some(tasks)) = (checkpoints, self.tasks.as_mut()) {
            let written = checkpoints.len();
            tasks.confirm(checkpoints);
            let state_bytes = tasks.state_bytes();
            self.record_checkpoint(started, written, state_bytes);
        }
        if let Some(stopped) = stopped {
            return Err(stopped);
        }
        self.budget.push_back((Instant::now(), records.len() as u64, dead as u64));
        Ok(())
    }

    /// The work inside a transaction: outputs, dead letters, and the offsets to commit.
    /// With state, the checkpoints of the changed tasks join the
    /// transaction and their offsets are the ones sent.
    async fn transaction_body(&mut self, records: &[OwnedMessage]) -> Result<(TransactionPlan, Option<PipelineError>, usize), PipelineError> {
        let dead = self.run_batch(records).await?;
        if self.config.errors.policy == ErrorPolicy::Stop && !dead.is_empty() {
            if self.tasks.is_some() {
                let (_, stopped) = self.stop_plan(records, &dead);
                return Ok((TransactionPlan::Offsets(BTreeMap::new()), Some(stopped), dead.len()));
            }
            let (plan, stopped) = self.stop_plan(records, &dead);
            return Ok((TransactionPlan::Offsets(plan.next), Some(stopped), dead.len()));
        }
        if !dead.is_empty() {
            self.sender.produce_dead_letters(&dead, records, None).await?;
        }
        if self.tasks.is_some() {
            let reset = std::mem::take(&mut self.reset_tasks);
            self.tasks.as_mut().expect("stateful").advance(records, &reset);
            let Some(checkpoints) = self.snapshot_tasks()? else {
                return Err(PipelineError::Setup { pipeline: self.name.clone(), message: "state over state.max_bytes: transaction aborted".into() });
            };
            let topic = self.tasks.as_ref().expect("stateful").store().topic().to_owned();
            self.sender.write_checkpoints(&topic, &checkpoints).await?;
            let mut offsets = BTreeMap::new();
            for checkpoint in &checkpoints {
                for (topic, offset) in &checkpoint.offsets {
                    offsets.insert((topic.clone(), checkpoint.task), *offset);
                }
            }
            return Ok((TransactionPlan::Checkpoints(offsets, checkpoints), None, dead.len()));
        }
        let plan = CommitPlan::for_records(records.iter().map(|r| (r.topic(), r.partition(), r.offset())));
        Ok((TransactionPlan::Offsets(plan.next), None, dead.len()))
    }

    /// Sends the consumer offsets into the transaction and commits it.
    pub(super) fn commit_transaction(&self, next: &BTreeMap<(String, i32), i64>) -> Result<(), PipelineError> {
        let kafka = |source| PipelineError::Kafka { pipeline: self.name.clone(), source };
        let mut offsets = rdkafka::TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            offsets.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(*offset)).map_err(kafka)?;
        }
        let metadata = self.consumer.group_metadata().ok_or_else(|| PipelineError::Setup {
            pipeline: self.name.clone(),
            message: "the consumer has no group metadata (not in a group yet)".into(),
        })?;
        let producer = &self.sender.producer;
        tokio::task::block_in_place(|| {
            if offsets.count() > 0 {
                resume_retriable(|| producer.send_offsets_to_transaction(&offsets, &metadata, TRANSACTION_TIMEOUT))?;
            }
            resume_retriable(|| producer.commit_transaction(TRANSACTION_TIMEOUT))
        })
        .map_err(kafka)
    }

    pub(super) fn abort_transaction(&self) {
        if let Err(error) = tokio::task::block_in_place(|| self.sender.producer.abort_transaction(TRANSACTION_TIMEOUT)) {
            tracing::error!(pipeline = %self.name, %error, "aborting the transaction failed");
        }
    }
}
