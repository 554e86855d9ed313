//! At-least-once with `state`: checkpoints of the tasks' aggregate state to
//! the state topic, and offsets committed only once the checkpoints that
//! cover them are durable (docs/state.md).

use super::*;

impl Worker {
    /// Creates the state topic of a stateful pipeline unless it exists.
    pub(super) async fn ensure_state_topic(&mut self) -> Result<(), PipelineError> {
        let (Some(tasks), Some(state)) = (&self.tasks, &self.config.state) else { return Ok(()) };
        let created = tasks.store().ensure_topic(state.max_bytes);
        let topic = tasks.store().topic().to_owned();
        created.await.map_err(|e| PipelineError::Setup { pipeline: self.name.clone(), message: e.to_string() })?;
        tracing::info!(pipeline = %self.name, %topic, "aggregate state is checkpointed to the state topic");
        Ok(())
    }

    /// At-least-once with state: dead letters now; offsets are committed
    /// only by checkpoints, after the state that covers them is durable.
    pub(super) async fn after_stateful_batch(&mut self, records: &[OwnedMessage], dead: Vec<(usize, DeadLetter)>) -> Result<(), PipelineError> {
        if self.config.errors.policy == ErrorPolicy::Stop && !dead.is_empty() {
            // Nothing past the last checkpoint is committed: a restart replays
            // from there and stops at the same record.
            let (_, stopped) = self.stop_plan(records, &dead);
            return Err(stopped);
        }
        if !dead.is_empty() {
            self.sender.produce_dead_letters(&dead, records, None).await?;
        }
        self.budget.push_back((Instant::now(), records.len() as u64, dead.len() as u64));
        let reset = std::mem::take(&mut self.reset_tasks);
        let tasks = self.tasks.as_mut().expect("stateful");
        tasks.advance(records, &reset);
        if tasks.due() {
            self.checkpoint_in_background().await?;
        }
        Ok(())
    }

    /// Snapshots the changed tasks; None (and the pipeline paused) when a
    /// snapshot is over `state.max_bytes`.
    pub(super) fn snapshot_tasks(&mut self) -> Result<Option<Vec<state::Checkpoint>>, PipelineError> {
        let started = Instant::now();
        let tasks = self.tasks.as_mut().expect("stateful");
        let snapshot = tokio::task::block_in_place(|| tasks.snapshot());
        PipelineStats::add(&self.stats.checkpoint_snapshot_us, started.elapsed().as_micros() as u64);
        match snapshot {
            Ok(checkpoints) => Ok(Some(checkpoints)),
            Err(error @ tasks::TaskError::TooLarge { .. }) => {
                let reason = format!("checkpoint refused: {error}; raise state.max_bytes or bound the operator's state, then restart");
                tracing::error!(pipeline = %self.name, %reason, "pausing the pipeline (nothing is committed past the last checkpoint)");
                self.control.send_replace(Some(reason));
                Ok(None)
            }
            Err(error) => Err(PipelineError::Setup { pipeline: self.name.clone(), message: format!("checkpoint: {error}") }),
        }
    }

    /// At-least-once checkpoint, done when it returns: snapshot, write, then
    /// commit the offsets the checkpoints cover (shutdown, hot swaps).
    pub(super) async fn checkpoint(&mut self) -> Result<(), PipelineError> {
        self.checkpoint_in_background().await?;
        self.settle_checkpoint().await
    }

    /// At-least-once checkpoint written while the worker goes on: the
    /// snapshot is taken now (the operators' state at this batch boundary),
    /// its records are produced in the background, and the offsets it covers
    /// are committed once they are acknowledged ([`Self::settle_checkpoint`]).
    /// One checkpoint is in flight at most: a previous one is settled first.
    pub(super) async fn checkpoint_in_background(&mut self) -> Result<(), PipelineError> {
        self.settle_checkpoint().await?;
        let started = Instant::now();
        let Some(checkpoints) = self.snapshot_tasks()? else { return Ok(()) };
        let topic = self.tasks.as_ref().expect("stateful").store().topic().to_owned();
        let (producer, stats, pipeline) = (self.sender.producer.clone(), self.stats.clone(), self.name.clone());
        let signal = Arc::new(WriteSignal::default());
        let raise = signal.clone();
        let write = tokio::spawn(async move {
            let written = sender::write_checkpoints(&producer, &stats, &pipeline, &topic, &checkpoints).await;
            raise.done.store(true, std::sync::atomic::Ordering::Release);
            raise.notify.notify_one();
            written.map(|()| checkpoints)
        });
        self.state_write = Some(StateWrite { write, started, signal });
        Ok(())
    }

    /// Settles the checkpoint written in the background, if any: waits for
    /// its acknowledgements, then commits the offsets it covers. Called
    /// before anything that resets, forgets or snapshots tasks.
    pub(super) async fn settle_checkpoint(&mut self) -> Result<(), PipelineError> {
        let Some(StateWrite { write, started, .. }) = self.state_write.take() else { return Ok(()) };
        let waiting = Instant::now();
        let written = write.await;
        PipelineStats::add(&self.stats.checkpoint_wait_us, waiting.elapsed().as_micros() as u64);
        let checkpoints = written.map_err(|e| PipelineError::Setup { pipeline: self.name.clone(), message: format!("checkpoint write: {e}") })??;
        self.confirm_checkpoint(checkpoints, started)
    }

    /// Settles the checkpoint written in the background if its writes are
    /// all acknowledged already (never waits).
    pub(super) async fn settle_checkpoint_if_written(&mut self) -> Result<(), PipelineError> {
        if self.state_write.as_ref().is_some_and(|w| w.signal.done.load(std::sync::atomic::Ordering::Acquire) || w.write.is_finished()) {
            self.settle_checkpoint().await?;
        }
        Ok(())
    }

    /// Marks durable `checkpoints` (snapshot taken at `started`) and commits
    /// the offsets they cover, of the partitions this process still owns.
    fn confirm_checkpoint(&mut self, checkpoints: Vec<state::Checkpoint>, started: Instant) -> Result<(), PipelineError> {
        let written = checkpoints.len();
        let tasks = self.tasks.as_mut().expect("stateful");
        tasks.confirm(checkpoints);
        let mut offsets = tasks.committable();
        let state_bytes = tasks.state_bytes();
        if let Some(owned) = self.stats.assigned.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            offsets.retain(|partition, _| owned.contains(partition));
        }
        self.commit(CommitPlan { next: offsets })?;
        self.record_checkpoint(started, written, state_bytes);
        Ok(())
    }

    pub(super) fn record_checkpoint(&self, started: Instant, written: usize, state_bytes: u64) {
        let took = started.elapsed();
        PipelineStats::add(&self.stats.checkpoints, 1);
        self.stats.state_bytes.store(state_bytes, std::sync::atomic::Ordering::Relaxed);
        self.stats.checkpoint_us.store(took.as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(pipeline = %self.name, tasks = written, state_bytes, took_ms = took.as_millis() as u64, "checkpoint written and offsets committed");
    }
}

/// A checkpoint whose records are being produced while the worker goes on.
pub(super) struct StateWrite {
    /// The produce; yields the checkpoints once all are acknowledged.
    write: tokio::task::JoinHandle<Result<Vec<state::Checkpoint>, PipelineError>>,
    /// When its snapshot was started.
    started: Instant,
    /// Raised once every record is acknowledged.
    signal: Arc<WriteSignal>,
}

impl StateWrite {
    /// What the write raises once every record is acknowledged.
    pub(super) fn signal(&self) -> Arc<WriteSignal> {
        self.signal.clone()
    }
}

/// Raised by a background state write once every record is acknowledged:
/// the worker, waiting for records, wakes up to commit at once.
#[derive(Default)]
pub(super) struct WriteSignal {
    /// Set when the acknowledgements are in (the task ends right after).
    done: std::sync::atomic::AtomicBool,
    /// Notified at the same time (a permit is kept if nobody waits).
    pub(super) notify: tokio::sync::Notify,
}
