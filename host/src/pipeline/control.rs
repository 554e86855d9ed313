//! Requests handled between batches: hot swaps of an operator, shadow runs
//! and redrives of dead letters; the operator slots and version labels the
//! admin API shows.

use super::*;

/// Why a redrive ended early.
enum RedriveFailure {
    /// The pipeline itself must halt (delivery failed after retries...).
    Pipeline(PipelineError),
    /// The dead-letter topic could not be read; the pipeline goes on.
    Reader(String),
}


impl Worker {
    /// The operator slots, in chain order (sink last).
    pub(super) fn slots(&self) -> Vec<OperatorSlot> {
        self.chain
            .operators()
            .iter()
            .chain(self.sink.as_ref())
            .zip(&self.config.operators)
            .map(|(operator, config)| OperatorSlot {
                name: operator.plugin().name().to_owned(),
                kind: operator.kind(),
                config_json: operator.config_json().to_owned(),
                allowlist: config.http_allowlist(),
            })
            .collect()
    }

    /// The live version label of the operator named `operator`.
    pub(super) fn version_of(&self, operator: &str) -> String {
        self.chain
            .operators()
            .iter()
            .chain(self.sink.as_ref())
            .find(|o| o.plugin().name() == operator)
            .map(|o| o.version().to_owned())
            .unwrap_or_default()
    }

    /// `name@version,...` of every operator (the `weir.plugins` header).
    pub(super) fn versions_header(&self) -> String {
        let labels: Vec<String> =
            self.chain.operators().iter().chain(self.sink.as_ref()).map(|o| format!("{}@{}", o.plugin().name(), o.version())).collect();
        labels.join(",")
    }

    /// Handles a swap or redrive request (between batches).
    pub(super) async fn handle(&mut self, command: PipelineCommand, shutdown: &watch::Receiver<bool>) -> Result<(), PipelineError> {
        // Swaps, shadows and redrives see the checkpoints settled.
        self.settle_checkpoint().await?;
        match command {
            PipelineCommand::Swap(SwapRequest { operator, replacement, reply }) => {
                let outcome = tokio::task::block_in_place(|| self.swap(&operator, replacement));
                match &outcome {
                    Ok(report) => tracing::info!(pipeline = %self.name, %operator, version = %self.version_of(&operator), pause_us = report.pause_us, "operator swapped"),
                    Err(error) => tracing::warn!(pipeline = %self.name, %operator, %error, "swap refused; the old version keeps running"),
                }
                // The state topic holds what the old version wrote, which the
                // new one may not read (keyed entries of another SDK): its
                // whole state is checkpointed before the swap is reported done
                // (exactly-once: in a transaction of its own).
                if outcome.as_ref().is_ok_and(|report| report.state_bytes.is_some()) && self.tasks.is_some() {
                    if self.sender.transactional {
                        self.checkpoint_in_transaction().await?;
                    } else {
                        self.checkpoint().await?;
                    }
                }
                let _ = reply.send(outcome);
            }
            PipelineCommand::Shadow(Some(shadow)) if self.tasks.is_some() => {
                // The template chain does not run in stateful pipelines.
                tracing::warn!(pipeline = %self.name, operator = %shadow.name(), "shadow runs are not available on stateful pipelines: ended without batches");
                shadow.finish();
            }
            PipelineCommand::Shadow(mut shadow) => {
                if let Some(shadow) = &shadow {
                    tracing::info!(pipeline = %self.name, operator = %shadow.name(), "shadow run started");
                }
                // The candidate may read columns the live chain does not.
                let candidate_reads = shadow.as_mut().map(|s| s.reads());
                self.rebuild_decoder(candidate_reads);
                self.chain.set_shadow(shadow);
            }
            PipelineCommand::Redrive(request) => {
                let outcome = self.redrive(request.since_ms, request.limit, shutdown).await;
                let reply = match outcome {
                    Ok(report) => Ok(report),
                    Err(RedriveFailure::Pipeline(error)) => {
                        let _ = request.reply.send(Err(error.to_string()));
                        return Err(error);
                    }
                    Err(RedriveFailure::Reader(message)) => Err(message),
                };
                let _ = request.reply.send(reply);
            }
        }
        Ok(())
    }

    /// Replays dead letters through the current chain: successes go to the
    /// outputs, failures back to the DLQ with `weir.attempts` incremented;
    /// progress is committed in the redrive group after each batch.
    async fn redrive(&mut self, since_ms: Option<i64>, limit: Option<u64>, shutdown: &watch::Receiver<bool>) -> Result<RedriveReport, RedriveFailure> {
        let topic = dead_letters::DeadLetterTopic::of(&self.config);
        let reader_error = |e: rdkafka::error::KafkaError| RedriveFailure::Reader(format!("reading `{}`: {e}", topic.topic));
        let mut reader = tokio::task::block_in_place(|| dead_letters::RedriveReader::open(&topic, since_ms)).map_err(reader_error)?;
        let mut report = RedriveReport::default();
        let mut remaining = limit.unwrap_or(u64::MAX);
        tracing::info!(pipeline = %self.name, topic = %topic.topic, ?since_ms, ?limit, "redrive started");
        while remaining > 0 && !*shutdown.borrow() {
            let max = remaining.min(self.config.batch.max_records as u64) as usize;
            let batch = reader.next_batch(max).await.map_err(reader_error)?;
            if batch.is_empty() {
                break;
            }
            let (originals, prior): (Vec<OwnedMessage>, Vec<u32>) = batch.iter().map(dead_letters::original_record).unzip();
            let filtered_before = self.stats.records_filtered.load(std::sync::atomic::Ordering::Relaxed);
            let transactional = self.sender.transactional;
            let kafka = |source| RedriveFailure::Pipeline(PipelineError::Kafka { pipeline: self.name.clone(), source });
            if transactional {
                self.sender.producer.begin_transaction().map_err(kafka)?;
            }
            let outcome = async {
                let mut dead = self.run_batch(&originals).await?;
                for (record, letter) in &mut dead {
                    letter.attempts += prior[*record];
                }
                if !dead.is_empty() {
                    self.sender.produce_dead_letters(&dead, &originals, Some(reader.run_id())).await?;
                }
                Ok(dead)
            }
            .await;
            let dead = match outcome {
                Ok(dead) => dead,
                Err(error) => {
                    if transactional {
                        self.abort_transaction();
                    }
                    return Err(RedriveFailure::Pipeline(error));
                }
            };
            if transactional {
                // The redrive group's progress commits with the outputs.
                let offsets = reader.next_offsets(&batch).map_err(reader_error)?;
                let metadata = reader.group_metadata().ok_or_else(|| RedriveFailure::Reader("redrive consumer has no group metadata".into()))?;
                let producer = &self.sender.producer;
                let committed = tokio::task::block_in_place(|| match transaction::send_offsets_bounded(producer, offsets, metadata)? {
                    transaction::SentOffsets::Sent => resume_retriable(|| producer.commit_transaction(TRANSACTION_TIMEOUT)).map(|()| true),
                    transaction::SentOffsets::Stuck => Ok(false),
                });
                match committed {
                    Ok(true) => {}
                    Ok(false) => {
                        // The stuck producer's transaction is aborted by the fencing.
                        self.replace_producer().map_err(RedriveFailure::Pipeline)?;
                        return Err(RedriveFailure::Reader("redrive transaction did not commit (its group coordinator was lost; rerun the redrive)".into()));
                    }
                    Err(error) => {
                        self.abort_transaction();
                        return Err(RedriveFailure::Reader(format!("redrive transaction failed (aborted; rerun the redrive): {error}")));
                    }
                }
            } else {
                tokio::task::block_in_place(|| reader.commit(&batch)).map_err(reader_error)?;
            }
            let filtered = self.stats.records_filtered.load(std::sync::atomic::Ordering::Relaxed) - filtered_before;
            report.read += batch.len() as u64;
            report.filtered += filtered;
            report.dead_lettered += dead.len() as u64;
            report.delivered += (batch.len() - dead.len()) as u64 - filtered;
            PipelineStats::add(&self.stats.records_redriven, batch.len() as u64);
            remaining -= batch.len() as u64;
        }
        tracing::info!(pipeline = %self.name, ?report, "redrive finished");
        Ok(report)
    }

    /// Replaces the operator named `name` by `replacement`; aggregate state
    /// moves over (snapshot on the old instance, restore on the new).
    pub(super) fn swap(&mut self, name: &str, mut replacement: Operator) -> Result<SwapReport, String> {
        let started = Instant::now();
        let pipeline = &self.name;
        let slot = operator_named(&mut self.chain, &mut self.sink, name).ok_or_else(|| format!("pipeline `{pipeline}` has no operator `{name}`"))?;
        if slot.kind() != replacement.kind() {
            return Err(format!("operator `{name}` is a {} operator; the new version is a {}", slot.kind(), replacement.kind()));
        }
        let mut state_bytes = None;
        if slot.kind() == OperatorKind::Aggregate {
            let state = slot.snapshot().map_err(|e| format!("snapshot on the old version failed: {e}"))?;
            replacement.restore(&state).map_err(|e| format!("the new version could not restore the state: {e}"))?;
            state_bytes = Some(state.len() as u64);
        }
        let label = replacement.version().to_owned();
        replacement.set_metrics(OperatorMetrics::new(self.stats.clone(), &self.name, name, &label));
        // Stateful pipelines: every task's copy moves to the new version
        // with its own state, or none does.
        let mut task_replacements = Vec::new();
        if let Some(tasks) = self.tasks.as_mut() {
            for (task, chain) in tasks.chains_mut() {
                let Some(index) = chain.operators().iter().position(|o| o.plugin().name() == name) else { continue };
                let mut fresh = replacement.fresh().map_err(|e| format!("task {task}: the new version could not be instantiated: {e}"))?;
                if fresh.kind() == OperatorKind::Aggregate {
                    let old = &mut chain.operators_mut()[index];
                    let state = old.snapshot().map_err(|e| format!("task {task}: snapshot on the old version failed: {e}"))?;
                    fresh.restore(&state).map_err(|e| format!("task {task}: the new version could not restore the state: {e}"))?;
                    *state_bytes.get_or_insert(0) += state.len() as u64;
                }
                task_replacements.push((task, index, fresh));
            }
            for (task, chain) in tasks.chains_mut() {
                if let Some(position) = task_replacements.iter().position(|(t, _, _)| *t == task) {
                    let (_, index, fresh) = task_replacements.swap_remove(position);
                    chain.operators_mut()[index] = fresh;
                }
            }
        }
        let slot = operator_named(&mut self.chain, &mut self.sink, name).expect("found above");
        let old = std::mem::replace(slot, replacement);
        // The new version may read other columns.
        self.rebuild_decoder(None);
        let pause_us = started.elapsed().as_micros() as u64;
        drop(old);
        self.stats.set_plugin_version(name, &label);
        PipelineStats::add(&self.stats.plugin_swaps, 1);
        Ok(SwapReport { pause_us, state_bytes })
    }

    /// Rebuilds the decoder for the chain as it is now (the batches hold
    /// only the columns it reads, see `RecordDecoder::for_chain`), plus the
    /// columns of a shadow candidate: `Some(None)` when it reads every one.
    fn rebuild_decoder(&mut self, candidate_reads: Option<Option<Vec<String>>>) {
        let mut columns = host_columns(&self.config);
        let candidate_columns = candidate_reads.clone().flatten().unwrap_or_default();
        columns.extend(candidate_columns.iter().map(String::as_str));
        let rebuilt = RecordDecoder::for_chain(&self.config.format, self.config.output.as_ref(), self.chain.operators_mut(), self.sink.is_some(), &columns)
            .and_then(|(decoder, emit)| match candidate_reads {
                Some(None) => Ok((RecordDecoder::new(&self.config.format)?, emit)),
                _ => Ok((decoder, emit)),
            });
        match rebuilt {
            Ok((decoder, emit)) => (self.decoder, self.emit) = (decoder, emit),
            Err(error) => tracing::warn!(pipeline = %self.name, %error, "keeping the previous decoder"),
        }
    }
}

/// The operator of the chain (or the sink) whose plugin is `name`.
fn operator_named<'a>(chain: &'a mut Chain, sink: &'a mut Option<Operator>, name: &str) -> Option<&'a mut Operator> {
    chain.operators_mut().iter_mut().chain(sink.as_mut()).find(|o| o.plugin().name() == name)
}
