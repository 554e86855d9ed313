//! Exactly-once: each batch's outputs, dead letters and consumer offsets
//! (and, with state, its checkpoints) in one Kafka transaction; abort and
//! rewind when a transaction cannot commit (docs/exactly-once.md).

use super::*;

/// Timeout of transaction calls (init, send offsets, commit, abort).
pub(super) const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Resumes of a transaction call that timed out retriably.
const RESUME_ATTEMPTS: u32 = 2;

/// Timeout of one `send_offsets_to_transaction` call (resumed like the others).
const SEND_OFFSETS_TIMEOUT: Duration = Duration::from_secs(10);

/// How long past its own timeout a `send_offsets_to_transaction` call may
/// block before the producer counts as stuck in it. librdkafka 2.12 does not
/// enforce that timeout while its cached group coordinator is a broker that
/// died and left the metadata (confluentinc/librdkafka#5456, #5511): the call
/// then blocks until that broker returns.
const STUCK_AFTER: Duration = Duration::from_secs(5);

/// The transactional id of pipeline `name`'s producer.
pub(super) fn transactional_id(config: &PipelineConfig, name: &str) -> String {
    format!("weir.{}.{name}.{}", config.source.group_id, config.exactly_once.instance())
}

/// Calls a transaction API again while it fails with a retriable error
/// (librdkafka: "retry call to resume", e.g. after the coordinator moved).
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

/// Why a transaction did not commit.
enum CommitError {
    /// A call failed (see [`Worker::process_in_transaction`]).
    Failed(PipelineError),
    /// `send_offsets_to_transaction` did not return (see [`STUCK_AFTER`]).
    Stuck,
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
        let committed = match self.commit_transaction(&plan) {
            Err(CommitError::Stuck) => {
                tracing::warn!(
                    pipeline = %self.name,
                    "send_offsets_to_transaction did not return (its group coordinator is a broker that died): \
                     replacing the producer, which fences the stuck one and aborts its transaction; rewinding to the committed offsets"
                );
                self.replace_producer()?;
                PipelineStats::add(&self.stats.retries, 1);
                self.rewind_to_committed();
                return Ok(());
            }
            Err(CommitError::Failed(error)) => Err(error),
            Ok(()) => Ok(()),
        };
        if let Err(error) = committed {
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
        if let Some(checkpoints) = checkpoints {
            self.confirm_committed(checkpoints, started);
        }
        if let Some(stopped) = stopped {
            return Err(stopped);
        }
        self.budget.push_back((Instant::now(), records.len() as u64, dead as u64));
        Ok(())
    }

    /// Exactly-once, between batches: the changed tasks' state (after a hot
    /// swap: every task's, whole) in a transaction of its own, committed
    /// without consumer offsets. The state is the one the last committed
    /// transaction's offsets cover, so its checkpoints carry those offsets.
    pub(super) async fn checkpoint_in_transaction(&mut self) -> Result<(), PipelineError> {
        let started = Instant::now();
        let kafka = |source| PipelineError::Kafka { pipeline: self.name.clone(), source };
        self.sender.producer.begin_transaction().map_err(kafka)?;
        let committed = self.write_checkpoints_in_transaction().await.and_then(|checkpoints| match self.commit_transaction(&BTreeMap::new()) {
            Ok(()) => Ok(checkpoints),
            Err(CommitError::Failed(error)) => Err(error),
            // Only sending offsets can get stuck, and none are sent.
            Err(CommitError::Stuck) => Err(PipelineError::Setup { pipeline: self.name.clone(), message: "checkpoint transaction stuck".into() }),
        });
        let checkpoints = match committed {
            Ok(checkpoints) => checkpoints,
            Err(error) => {
                self.abort_transaction();
                return Err(error);
            }
        };
        self.confirm_committed(checkpoints, started);
        Ok(())
    }

    /// Marks the checkpoints of a committed transaction durable (snapshot
    /// taken at `started`).
    fn confirm_committed(&mut self, checkpoints: Vec<state::Checkpoint>, started: Instant) {
        let Some(tasks) = self.tasks.as_mut() else { return };
        let written = checkpoints.len();
        tasks.confirm(checkpoints);
        let state_bytes = tasks.state_bytes();
        self.record_checkpoint(started, written, state_bytes);
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
            let checkpoints = self.write_checkpoints_in_transaction().await?;
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

    /// Snapshots the changed tasks and produces their checkpoints into the
    /// open transaction; a snapshot over `state.max_bytes` aborts it.
    async fn write_checkpoints_in_transaction(&mut self) -> Result<Vec<state::Checkpoint>, PipelineError> {
        let Some(checkpoints) = self.snapshot_tasks()? else {
            return Err(PipelineError::Setup { pipeline: self.name.clone(), message: "state over state.max_bytes: transaction aborted".into() });
        };
        let topic = self.tasks.as_ref().expect("stateful").store().topic().to_owned();
        self.sender.write_checkpoints(&topic, &checkpoints).await?;
        Ok(checkpoints)
    }

    /// Sends the consumer offsets into the transaction and commits it.
    fn commit_transaction(&self, next: &BTreeMap<(String, i32), i64>) -> Result<(), CommitError> {
        let kafka = |source| CommitError::Failed(PipelineError::Kafka { pipeline: self.name.clone(), source });
        let mut offsets = rdkafka::TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            offsets.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(*offset)).map_err(kafka)?;
        }
        let metadata = self.consumer.group_metadata().ok_or_else(|| {
            CommitError::Failed(PipelineError::Setup {
                pipeline: self.name.clone(),
                message: "the consumer has no group metadata (not in a group yet)".into(),
            })
        })?;
        let producer = &self.sender.producer;
        tokio::task::block_in_place(|| {
            if offsets.count() > 0 && send_offsets_bounded(producer, offsets, metadata).map_err(kafka)? == SentOffsets::Stuck {
                return Err(CommitError::Stuck);
            }
            resume_retriable(|| producer.commit_transaction(TRANSACTION_TIMEOUT)).map_err(kafka)
        })
    }

    /// Replaces a producer stuck in a transaction call with a new one under
    /// the same transactional id. Its `init_transactions` fences the stuck
    /// producer and aborts the transaction that one left open; the stuck
    /// call's thread keeps the old producer until the call returns.
    pub(super) fn replace_producer(&mut self) -> Result<(), PipelineError> {
        let kafka = |source| PipelineError::Kafka { pipeline: self.name.clone(), source };
        let config = &self.config;
        let id = transactional_id(config, &self.name);
        let producer = output::create_producer(
            &config.source,
            config.output.as_ref(),
            Some((&id, config.exactly_once.transaction_timeout_ms)),
            config.state.as_ref().map(|s| s.max_bytes + (1 << 20)),
        )
        .map_err(kafka)?;
        tokio::task::block_in_place(|| producer.init_transactions(TRANSACTION_TIMEOUT)).map_err(kafka)?;
        tracing::info!(pipeline = %self.name, transactional_id = %id, "exactly-once: producer replaced, transactions initialised");
        self.sender.producer = producer;
        Ok(())
    }

    pub(super) fn abort_transaction(&self) {
        if let Err(error) = tokio::task::block_in_place(|| self.sender.producer.abort_transaction(TRANSACTION_TIMEOUT)) {
            tracing::error!(pipeline = %self.name, %error, "aborting the transaction failed");
        }
    }
}

/// What [`send_offsets_bounded`] saw.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SentOffsets {
    /// The offsets are in the transaction.
    Sent,
    /// The call did not return within its timeout plus [`STUCK_AFTER`]: the
    /// producer must be replaced (see `replace_producer`).
    Stuck,
}

/// `send_offsets_to_transaction` (resumed like the other transaction calls)
/// on a thread of its own, so that a call that never returns (librdkafka
/// while its group coordinator is a broker that died) does not take the
/// pipeline with it. Blocks: call it in `block_in_place`.
pub(super) fn send_offsets_bounded(
    producer: &FutureProducer,
    offsets: rdkafka::TopicPartitionList,
    metadata: rdkafka::consumer::ConsumerGroupMetadata,
) -> Result<SentOffsets, rdkafka::error::KafkaError> {
    let (offsets, metadata) = (Arc::new(offsets), Arc::new(metadata));
    let mut stuck = false;
    resume_retriable(|| {
        let (call_producer, call_offsets, call_metadata) = (producer.clone(), offsets.clone(), metadata.clone());
        let (done, outcome) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new().name("weir-send-offsets".into()).spawn(move || {
            let _ = done.send(call_producer.send_offsets_to_transaction(&call_offsets, &call_metadata, SEND_OFFSETS_TIMEOUT));
        });
        if spawned.is_err() {
            return producer.send_offsets_to_transaction(&offsets, &metadata, SEND_OFFSETS_TIMEOUT);
        }
        outcome.recv_timeout(SEND_OFFSETS_TIMEOUT + STUCK_AFTER).unwrap_or_else(|_| {
            stuck = true;
            Ok(())
        })
    })?;
    Ok(if stuck { SentOffsets::Stuck } else { SentOffsets::Sent })
}
