//! The pipeline worker's main loop: collect a batch, process it, commit
//! (at-least-once), pause and resume, drain on shutdown.

use super::*;

/// Columns the host itself reads from every batch: the event time, the output key.
pub(super) fn host_columns(config: &PipelineConfig) -> Vec<&str> {
    let event_time = config.event_time.iter().map(|e| e.column.as_str());
    event_time.chain(config.output.iter().filter_map(|o| o.key_column.as_deref())).collect()
}


impl Worker {
    pub(super) fn new(
        name: &str,
        config: PipelineConfig,
        engine: Engine,
        registry: &Registry,
        stats: Arc<PipelineStats>,
        control: Arc<watch::Sender<Option<String>>>,
        commands: mpsc::Receiver<PipelineCommand>,
    ) -> Result<Worker, PipelineError> {
        let setup = |message: String| PipelineError::Setup { pipeline: name.to_owned(), message };
        let mut chain = Vec::new();
        let mut sink = None;
        let count = config.operators.len();
        for (index, operator) in config.operators.iter().enumerate() {
            let operator_name = operator.display_name();
            let fail = |source| PipelineError::Operator { pipeline: name.to_owned(), operator: operator_name.clone(), source: Box::new(source) };
            let (plugin, version) = resolve_plugin(&engine, registry, operator, index).map_err(|e| setup(format!("operator `{operator_name}`: {e}")))?;
            let kind = plugin.kind();
            let mut live = Operator::new(plugin, operator.config_json(), operator.http_allowlist())
                .map_err(fail)?
                .with_version(version.clone());
            live.set_metrics(OperatorMetrics::new(stats.clone(), name, &operator_name, &version));
            stats.set_plugin_version(&operator_name, &version);
            if kind == OperatorKind::Sink {
                if index + 1 != count {
                    return Err(setup(format!("operators[{index}] (`{operator_name}`) is a sink: sinks must come last")));
                }
                sink = Some(live);
            } else {
                chain.push(live);
            }
        }
        let host_columns = host_columns(&config);
        let (decoder, emit) = RecordDecoder::for_chain(&config.format, config.output.as_ref(), &mut chain, sink.is_some(), &host_columns).map_err(|e| setup(e.to_string()))?;
        let mut chain = Chain::new(chain);
        // Forwarded records need only which rows the last filter kept.
        chain.set_rows_only_tail(emit == output::Emit::Forward && config.output.as_ref().is_some_and(|o| o.key_column.is_none()));
        let kafka = |source| PipelineError::Kafka { pipeline: name.to_owned(), source };
        let transactional = config.guarantee == Guarantee::ExactlyOnce;
        let consumer = source::create_consumer(name, &config.source, stats.clone(), config.state.is_some(), transactional).map_err(kafka)?;
        let transactional_id = transactional.then(|| transaction::transactional_id(&config, name));
        let transactional = transactional_id.as_deref().map(|id| (id, config.exactly_once.transaction_timeout_ms));
        let producer = output::create_producer(&config.source, config.output.as_ref(), transactional, config.state.as_ref().map(|s| s.max_bytes + (1 << 20))).map_err(kafka)?;
        if let Some(id) = &transactional_id {
            // Also fences an earlier incarnation with the same id and aborts
            // the transaction it left open.
            producer.init_transactions(TRANSACTION_TIMEOUT).map_err(|e| {
                setup(format!(
                    "guarantee = \"exactly-once\": initialising transactions for transactional.id `{id}` failed: {e}. \
                     The brokers must support transactions (Kafka 2.5+ for group-based fencing); use guarantee = \"at-least-once\" otherwise"
                ))
            })?;
            tracing::info!(pipeline = name, transactional_id = %id, "exactly-once: transactions initialised");
        }
        let sender = Sender {
            name: name.to_owned(),
            producer,
            stats: stats.clone(),
            errors: config.errors.clone(),
            dead_letter_topic: config.dead_letter_topic(),
            transactional: transactional_id.is_some(),
            message_limits: output::message_limits(&config.source, config.output.as_ref(), config.state.as_ref().map(|s| s.max_bytes + (1 << 20))),
        };
        let watermarks = config
            .event_time
            .as_ref()
            .map(|e| watermark::Watermarks::new(e.allowed_lateness_ms as i64, Duration::from_millis(e.idle_timeout_ms)));
        let has_aggregate = chain.operators().iter().any(|o: &Operator| o.kind() == OperatorKind::Aggregate);
        let tasks = match (&config.state, config.state_topic(name)) {
            (Some(state), Some(topic)) => {
                if !has_aggregate {
                    tracing::warn!(pipeline = name, "`state` is configured but the chain has no aggregate operator: nothing to checkpoint");
                }
                let event_time = config.event_time.as_ref().map(|e| (e.allowed_lateness_ms as i64, Duration::from_millis(e.idle_timeout_ms)));
                Some(tasks::Tasks::new(state::StateStore::new(topic, &config.source.bootstrap_servers, &config.source.properties), state.clone(), event_time))
            }
            _ => {
                if has_aggregate {
                    tracing::warn!(pipeline = name, "aggregate state is kept in memory only: configure [pipelines.{name}.state] to checkpoint it (a crash otherwise loses it)");
                }
                None
            }
        };
        // Stateful pipelines keep a watermark per task instead.
        let watermarks = watermarks.filter(|_| tasks.is_none());
        if tasks.is_some() && !sender.transactional {
            // Checkpoints are written in the background: a revocation waits for them.
            consumer.context().flush_on_revoke(sender.producer.clone());
        }
        Ok(Worker {
            name: name.to_owned(),
            config,
            stats,
            decoder,
            emit,
            chain,
            sink,
            consumer,
            sender,
            control,
            commands,
            budget: VecDeque::new(),
            batch_seconds: Histograms::global().batch_seconds.get_or_create(&PipelineLabels { pipeline: name.to_owned() }).clone(),
            watermarks,
            tasks,
            consumed: Default::default(),
            started_at: Default::default(),
            unpositioned: Default::default(),
            reset_tasks: Default::default(),
            state_write: None,
            stage_costs: Default::default(),
        })
    }

    pub(super) async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), PipelineError> {
        self.stats.set_state(PipelineState::Running);
        tracing::info!(pipeline = %self.name, topics = ?self.config.source.topics, "pipeline running");
        let result = match self.ensure_state_topic().await {
            Ok(()) => self.run_loop(&mut shutdown).await,
            Err(error) => Err(error),
        };
        match &result {
            Ok(()) => self.stats.set_state(PipelineState::Stopped),
            Err(error) => {
                tracing::error!(pipeline = %self.name, %error, "pipeline halted");
                self.stats.set_state(PipelineState::Failed(error.to_string()));
            }
        }
        result
    }

    pub(super) async fn run_loop(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), PipelineError> {
        let mut control = self.control.subscribe();
        // Stateful pipelines wake up while the input is quiet, to checkpoint.
        let idle = self.config.state.as_ref().map(|s| Duration::from_millis(s.checkpoint_interval_ms));
        loop {
            self.settle_checkpoint_if_written().await?;
            let paused = control.borrow_and_update().clone();
            if let Some(reason) = paused {
                // Resuming rewinds every task to its checkpoint.
                self.settle_checkpoint().await?;
                if !self.wait_while_paused(reason, shutdown, &mut control).await? {
                    return self.drain_commit().await;
                }
            }
            // Without the records of partitions revoked meanwhile.
            let state_written = self.state_write.as_ref().map(checkpoint::StateWrite::signal);
            let (mut records, cut) =
                source::collect(&self.consumer, &self.config.batch, shutdown, &mut control, &mut self.commands, idle, state_written.as_ref().map(|s| &s.notify)).await;
            let revoked = self.consumer.context().take_revoked();
            if !revoked.is_empty() {
                // Its tasks may be among the revoked ones: confirmed first.
                self.settle_checkpoint().await?;
            }
            if let Some(tasks) = &mut self.tasks {
                tasks.forget(&revoked);
            }
            self.follow_assignment(&revoked);
            if !self.unpositioned.is_empty() {
                // Never process past a batch an abort could not rewind.
                self.settle_checkpoint().await?;
                self.rewind_to_committed();
                let unpositioned = &self.unpositioned;
                records.retain(|r| !unpositioned.contains(&(r.topic().to_owned(), r.partition())));
            }
            self.note_delivered(&records);
            if !records.is_empty() {
                let span = tracing::info_span!("batch", pipeline = %self.name, records = records.len());
                let _entered = span.enter();
                let started = Instant::now();
                self.process(records).await?;
                self.batch_seconds.observe(started.elapsed().as_secs_f64());
            } else if !self.sender.transactional && self.tasks.as_ref().is_some_and(tasks::Tasks::due) {
                self.checkpoint_in_background().await?;
            }
            match cut {
                Cut::Shutdown => return self.drain_commit().await,
                Cut::Command(command) => self.handle(*command, shutdown).await?,
                Cut::Limit => {}
            }
            if let Some(reason) = self.budget_exceeded() {
                tracing::error!(pipeline = %self.name, %reason, "error budget exceeded: pausing the pipeline");
                self.budget.clear();
                self.control.send_replace(Some(reason));
            }
        }
    }

    pub(super) async fn drain_commit(&mut self) -> Result<(), PipelineError> {
        if self.tasks.is_some() && !self.sender.transactional {
            self.checkpoint().await?;
        }
        if self.sender.transactional {
            tracing::info!(pipeline = %self.name, "drained; offsets were committed in the transactions; stopping");
            return Ok(());
        }
        // Only partitions still owned: another member may own the others now.
        let owned: std::collections::HashSet<(String, i32)> = self
            .consumer
            .assignment()
            .map(|a| a.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect())
            .unwrap_or_default();
        let mut committed = self.stats.committed.lock().unwrap_or_else(|e| e.into_inner()).clone();
        committed.retain(|key, _| owned.contains(key));
        match source::commit(&self.consumer, &committed, CommitMode::Sync) {
            Ok(()) => tracing::info!(pipeline = %self.name, "drained and committed; stopping"),
            // A rebalance is under way: the partitions' next owner starts from
            // the previous commit (and, with state, from the checkpoints).
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                code @ (rdkafka::types::RDKafkaErrorCode::IllegalGeneration
                | rdkafka::types::RDKafkaErrorCode::RebalanceInProgress
                | rdkafka::types::RDKafkaErrorCode::UnknownMemberId),
            )) => tracing::warn!(pipeline = %self.name, error = %code, "drained; the final commit was refused by a rebalance in progress"),
            Err(source) => return Err(PipelineError::Kafka { pipeline: self.name.clone(), source }),
        }
        Ok(())
    }

    /// Pauses consumption (the consumer keeps its group membership) until
    /// resumed (returns true) or shut down (false). On resume every assigned
    /// partition is rewound to its last committed offset, so nothing fetched
    /// around the pause is skipped.
    pub(super) async fn wait_while_paused(
        &mut self,
        reason: String,
        shutdown: &mut watch::Receiver<bool>,
        control: &mut watch::Receiver<Option<String>>,
    ) -> Result<bool, PipelineError> {
        tracing::warn!(pipeline = %self.name, %reason, "pipeline paused");
        self.stats.set_state(PipelineState::Paused(reason));
        if let Ok(assignment) = self.consumer.assignment() {
            let _ = self.consumer.pause(&assignment);
        }
        loop {
            if *shutdown.borrow() {
                return Ok(false);
            }
            let command = tokio::select! {
                _ = shutdown.changed() => return Ok(false),
                // Swaps and redrives work while paused (pause, push a fix, redrive, resume).
                Some(command) = self.commands.recv() => Some(command),
                changed = control.changed() => {
                    if changed.is_err() || control.borrow_and_update().is_none() {
                        break;
                    }
                    None
                }
                // Keep serving group callbacks while paused; anything fetched
                // is read again after the rewind below.
                message = self.consumer.recv() => { let _ = message; None }
            };
            if let Some(command) = command {
                self.handle(command, shutdown).await?;
            }
        }
        self.rewind_to_committed();
        if let Ok(assignment) = self.consumer.assignment() {
            let _ = self.consumer.resume(&assignment);
        }
        self.stats.set_state(PipelineState::Running);
        tracing::info!(pipeline = %self.name, "pipeline resumed");
        Ok(true)
    }

    pub(super) fn budget_exceeded(&mut self) -> Option<String> {
        let errors = &self.config.errors;
        let window = Duration::from_secs(errors.error_budget_window_s);
        let now = Instant::now();
        while self.budget.front().is_some_and(|(at, _, _)| now.duration_since(*at) > window) {
            self.budget.pop_front();
        }
        let (seen, dead) = self.budget.iter().fold((0, 0), |(s, d), (_, a, b)| (s + a, d + b));
        if seen >= errors.error_budget_min_records && dead as f64 > errors.error_budget_ratio * seen as f64 {
            return Some(format!(
                "{dead} of {seen} records dead-lettered in the last {}s (budget {:.0}%)",
                errors.error_budget_window_s,
                errors.error_budget_ratio * 100.0
            ));
        }
        None
    }

    pub(super) async fn process(&mut self, mut records: Vec<OwnedMessage>) -> Result<(), PipelineError> {
        if let Some(tasks) = self.tasks.as_mut() {
            let chain = &self.chain;
            let consumer = &self.consumer;
            let prepared = tokio::task::block_in_place(|| tasks.prepare(&mut records, chain, consumer));
            self.stats.state_topic_reads.store(tasks.topic_reads(), std::sync::atomic::Ordering::Relaxed);
            prepared.map_err(|e| PipelineError::Setup { pipeline: self.name.clone(), message: e.to_string() })?;
            if records.is_empty() {
                return Ok(());
            }
        }
        if self.sender.transactional {
            return self.process_in_transaction(records).await;
        }
        let dead = self.run_batch(&records).await?;
        if self.tasks.is_some() {
            return self.after_stateful_batch(&records, dead).await;
        }
        if self.config.errors.policy == ErrorPolicy::Stop && !dead.is_empty() {
            let (plan, stopped) = self.stop_plan(&records, &dead);
            self.commit(plan)?;
            return Err(stopped);
        }
        if !dead.is_empty() {
            self.sender.produce_dead_letters(&dead, &records, None).await?;
        }
        self.budget.push_back((Instant::now(), records.len() as u64, dead.len() as u64));
        self.commit(CommitPlan::for_records(records.iter().map(|r| (r.topic(), r.partition(), r.offset()))))
    }

    /// Policy `stop`: the offsets to commit (up to the first failed record
    /// of each partition) and the error that halts the pipeline.
    pub(super) fn stop_plan(&self, records: &[OwnedMessage], dead: &[(usize, DeadLetter)]) -> (CommitPlan, PipelineError) {
        let mut plan = CommitPlan::for_records(records.iter().map(|r| (r.topic(), r.partition(), r.offset())));
        plan.stop_at(dead.iter().map(|(i, _)| (records[*i].topic(), records[*i].partition(), records[*i].offset())));
        let (index, letter) = dead.iter().min_by_key(|(i, _)| records[*i].offset()).expect("not empty");
        let record = &records[*index];
        let stopped = PipelineError::Stopped {
            pipeline: self.name.clone(),
            topic: record.topic().to_owned(),
            partition: record.partition(),
            offset: record.offset(),
            kind: letter.kind.clone(),
            message: letter.message.clone(),
        };
        (plan, stopped)
    }

    /// Seeks every assigned partition back to its last committed offset
    /// (this process's, else the group's).
    pub(super) fn rewind_to_committed(&mut self) {
        if let Some(tasks) = self.tasks.as_mut() {
            // In-memory state is ahead of the committed offsets: restart
            // every task from its checkpoint.
            tasks.reset_all();
        }
        let Ok(assignment) = self.consumer.assignment() else { return };
        let committed = self.stats.committed.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // Ask the group only when this process has not committed some partition yet.
        let needs_group = assignment.elements().iter().any(|e| !committed.contains_key(&(e.topic().to_owned(), e.partition())));
        let group = needs_group.then(|| tokio::task::block_in_place(|| self.consumer.committed(Duration::from_secs(10))));
        for element in assignment.elements() {
            let key = (element.topic().to_owned(), element.partition());
            let group_offset = match &group {
                Some(Ok(list)) => list.find_partition(&key.0, key.1).map(|e| e.offset()),
                _ => None,
            };
            let offset = match (committed.get(&key), group_offset, self.started_at.get(&key)) {
                (Some(offset), _, _) => *offset,
                (None, Some(rdkafka::Offset::Offset(offset)), _) => offset,
                // The group has no offset: back to where this assignment
                // started reading (auto.offset.reset chose it).
                (None, Some(_), Some(first)) => *first,
                // Nothing read from it since it was assigned: it has not moved.
                (None, Some(_), None) => {
                    self.unpositioned.remove(&key);
                    continue;
                }
                // The group could not be asked: try again before the next batch.
                (None, None, _) => {
                    tracing::warn!(pipeline = %self.name, topic = %key.0, partition = key.1, "rewind postponed: the group's committed offsets could not be read");
                    self.unpositioned.insert(key);
                    continue;
                }
            };
            match self.consumer.seek(element.topic(), element.partition(), rdkafka::Offset::Offset(offset), Duration::from_secs(5)) {
                Ok(()) => {
                    tracing::debug!(pipeline = %self.name, topic = %key.0, partition = key.1, offset, "rewound to the committed offset");
                    self.unpositioned.remove(&key);
                    self.started_at.remove(&key);
                    self.consumed.remove(&key);
                }
                Err(error) => {
                    tracing::warn!(pipeline = %self.name, topic = element.topic(), partition = element.partition(), %error, "rewind failed: retried before the next batch");
                    self.unpositioned.insert(key);
                }
            }
        }
        // Partitions no longer assigned start from the group's offsets wherever they go.
        let assigned: std::collections::HashSet<(String, i32)> = assignment.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
        self.unpositioned.retain(|key| assigned.contains(key));
    }

    pub(super) fn commit(&self, plan: CommitPlan) -> Result<(), PipelineError> {
        source::commit(&self.consumer, &plan.next, CommitMode::Async)
            .map_err(|source| PipelineError::Kafka { pipeline: self.name.clone(), source })?;
        let mut committed = self.stats.committed.lock().unwrap_or_else(|e| e.into_inner());
        committed.extend(plan.next);
        Ok(())
    }
}
