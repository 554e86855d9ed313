//! A pipeline: consumer -> batcher -> decoder -> operator chain (with poison
//! isolation) -> outputs (Kafka topic and/or sink) and dead letters -> commit.
//! Offsets are committed only after everything derived from a batch was
//! acknowledged (see docs/delivery.md).

pub mod command;
pub mod dead_letters;
pub mod decode;
pub mod output;
pub mod source;
pub mod state;
pub mod tasks;
pub mod watermark;

use crate::config::{ErrorPolicy, Guarantee, LatePolicy, PipelineConfig};
use crate::delivery::dead_letter::{DeadLetter, dead_letter_record};
use crate::delivery::isolate::run_isolated;
use crate::delivery::offsets::CommitPlan;
use crate::delivery::retry;
use crate::engine::{Engine, OperatorKind, SinkResult};
use crate::operator::{Chain, Operator};
use crate::registry::Registry;
use crate::telemetry::{Histograms, OperatorMetrics, PipelineLabels, PipelineState, PipelineStats};
use command::{OperatorSlot, PipelineCommand, RedriveReport, SwapReport, SwapRequest};
use arrow_array::RecordBatch;
use decode::RecordDecoder;
use output::OutRecord;
use rdkafka::consumer::CommitMode;
use rdkafka::consumer::Consumer;
use rdkafka::message::{OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::Message;
use source::{Cut, SourceConsumer};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Why a pipeline could not start or had to halt.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// An operator could not be loaded or initialised.
    #[error("pipeline `{pipeline}`: operator `{operator}`: {source}")]
    Operator {
        /// Pipeline name.
        pipeline: String,
        /// Operator name.
        operator: String,
        /// Engine error.
        source: Box<crate::engine::Error>,
    },
    /// The configuration is unusable at run time.
    #[error("pipeline `{pipeline}`: {message}")]
    Setup {
        /// Pipeline name.
        pipeline: String,
        /// What is wrong.
        message: String,
    },
    /// A Kafka client error that retries did not fix.
    #[error("pipeline `{pipeline}`: Kafka: {source}")]
    Kafka {
        /// Pipeline name.
        pipeline: String,
        /// rdkafka's error.
        source: rdkafka::error::KafkaError,
    },
    /// The engine failed in a way bisection cannot isolate.
    #[error("pipeline `{pipeline}`: {source}")]
    Engine {
        /// Pipeline name.
        pipeline: String,
        /// Engine error.
        source: Box<crate::engine::Error>,
    },
    /// Policy `stop`: a record failed; nothing at or after it was committed.
    #[error("pipeline `{pipeline}` stopped at {topic}/{partition}@{offset}: {kind}: {message}")]
    Stopped {
        /// Pipeline name.
        pipeline: String,
        /// Topic of the failed record.
        topic: String,
        /// Partition of the failed record.
        partition: i32,
        /// Offset of the failed record.
        offset: i64,
        /// Error kind.
        kind: String,
        /// Error message.
        message: String,
    },
    /// Produce kept failing after every retry; nothing was committed.
    #[error("pipeline `{pipeline}`: could not deliver {count} record(s) to `{topic}` after {attempts} attempts: {last_error}")]
    Delivery {
        /// Pipeline name.
        pipeline: String,
        /// Topic that failed.
        topic: String,
        /// Records not delivered.
        count: usize,
        /// Attempts made.
        attempts: u32,
        /// Last error.
        last_error: String,
    },
}

/// A running pipeline.
pub struct PipelineHandle {
    name: String,
    stats: Arc<PipelineStats>,
    shutdown: watch::Sender<bool>,
    control: PipelineControl,
    task: tokio::task::JoinHandle<Result<(), PipelineError>>,
}

/// Everything needed to steer a running pipeline from elsewhere (the admin
/// API, the deployer); cheap to clone.
#[derive(Clone)]
pub struct PipelineControl {
    /// Pipeline name.
    pub name: String,
    /// Live counters and state.
    pub stats: Arc<PipelineStats>,
    /// Pause (`Some(reason)`) / resume (`None`).
    pub pause: Arc<watch::Sender<Option<String>>>,
    /// Swap and redrive requests, handled between batches.
    pub commands: mpsc::Sender<PipelineCommand>,
    /// The operators, in chain order (sink last).
    pub operators: Arc<Vec<OperatorSlot>>,
    /// Where the pipeline's dead letters are.
    pub dead_letters: dead_letters::DeadLetterTopic,
}

impl PipelineHandle {
    /// Pipeline name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Live counters.
    pub fn stats(&self) -> &Arc<PipelineStats> {
        &self.stats
    }

    /// Asks the pipeline to finish its batch, commit and stop.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Pauses consumption at the next batch boundary (partitions paused, group
    /// membership kept), with the reason shown in the state.
    pub fn pause(&self, reason: impl Into<String>) {
        self.control.pause.send_replace(Some(reason.into()));
    }

    /// Resumes a paused pipeline from its last committed offsets.
    pub fn resume(&self) {
        self.control.pause.send_replace(None);
    }

    /// A handle for steering the pipeline from elsewhere (admin API, deployer).
    pub fn control(&self) -> PipelineControl {
        self.control.clone()
    }

    /// Stops the pipeline task at once, without draining or committing: what
    /// a crash or `kill -9` does to the process (tests use it).
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Whether the pipeline task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the pipeline to end.
    pub async fn join(self) -> Result<(), PipelineError> {
        match self.task.await {
            Ok(result) => result,
            Err(error) => Err(PipelineError::Setup { pipeline: self.name, message: format!("pipeline task failed: {error}") }),
        }
    }
}

/// Starts a pipeline on the current Tokio runtime (multi-threaded: Wasm
/// calls run in `block_in_place`), with a private in-memory plugin registry.
pub fn start(name: &str, config: PipelineConfig, engine: Engine) -> Result<PipelineHandle, PipelineError> {
    start_with_registry(name, config, engine, &Registry::in_memory())
}

/// Starts a pipeline whose operators come from `registry`: an operator runs
/// the registry's live version of its name; a name the registry does not
/// know yet (or whose live version came from a config file that has since
/// changed) is added from the configured file.
pub fn start_with_registry(name: &str, config: PipelineConfig, engine: Engine, registry: &Registry) -> Result<PipelineHandle, PipelineError> {
    let stats = Arc::new(PipelineStats::default());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let pause = Arc::new(watch::channel(None).0);
    let (commands, commands_rx) = mpsc::channel(16);
    let worker = Worker::new(name, config, engine, registry, stats.clone(), pause.clone(), commands_rx)?;
    let operators = Arc::new(worker.slots());
    let dead_letters = dead_letters::DeadLetterTopic::of(&worker.config);
    let control = PipelineControl { name: name.to_owned(), stats: stats.clone(), pause, commands, operators, dead_letters };
    let task = tokio::spawn(worker.run(shutdown_rx));
    Ok(PipelineHandle { name: name.to_owned(), stats, shutdown, control, task })
}

/// Loads an operator's plugin: the registry's live version of its name, or
/// the configured file (which then becomes a registry version).
fn resolve_plugin(engine: &Engine, registry: &Registry, operator: &crate::config::OperatorConfig, index: usize) -> Result<(crate::engine::Plugin, String), String> {
    let name = operator.display_name();
    let file = std::fs::read(&operator.plugin).map_err(|e| format!("operators[{index}].plugin {}: {e}", operator.plugin.display()));
    if let Some(record) = registry.get(&name) {
        let live = record.live_version().clone();
        let file_changed = file.as_ref().is_ok_and(|bytes| crate::engine::sha256_hex(bytes) != live.sha256);
        if !(live.origin == "config" && file_changed) {
            let bytes = registry.bytes(&name, live.version).map_err(|e| e.to_string())?;
            let plugin = engine.load(&name, &bytes).map_err(|e| e.to_string())?;
            if file_changed {
                tracing::warn!(operator = %name, version = %live.label(), file = %operator.plugin.display(), "running the registry's live version, which differs from the configured file (push the file to update)");
            }
            return Ok((plugin, live.label()));
        }
    }
    let bytes = file?;
    let plugin = engine.load(&name, &bytes).map_err(|e| e.to_string())?;
    let (version, _) = registry.push(&name, &bytes, plugin.kind().as_str(), "config").map_err(|e| e.to_string())?;
    Ok((plugin, version.label()))
}

/// Resumes of a transaction call that timed out retriably.
const RESUME_ATTEMPTS: u32 = 2;

/// Calls a transaction API again while it fails with a retriable error
/// (librdkafka: "retry call to resume", e.g. after the coordinator
/// connection dropped), up to [`RESUME_ATTEMPTS`] times; other errors are returned.
/// Columns the host itself reads from every batch: the event time, the output key.
fn host_columns(config: &PipelineConfig) -> Vec<&str> {
    let event_time = config.event_time.iter().map(|e| e.column.as_str());
    event_time.chain(config.output.iter().filter_map(|o| o.key_column.as_deref())).collect()
}

fn resume_retriable(mut call: impl FnMut() -> rdkafka::error::KafkaResult<()>) -> rdkafka::error::KafkaResult<()> {
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

/// Why a redrive ended early.
enum RedriveFailure {
    /// The pipeline itself must halt (delivery failed after retries...).
    Pipeline(PipelineError),
    /// The dead-letter topic could not be read; the pipeline goes on.
    Reader(String),
}

/// What a transaction commits besides its outputs.
enum TransactionPlan {
    /// Consumer offsets.
    Offsets(BTreeMap<(String, i32), i64>),
    /// Offsets covered by these checkpoints, which are in the transaction.
    Checkpoints(BTreeMap<(String, i32), i64>, Vec<state::Checkpoint>),
}

/// A result batch with the source record of each row (none after an aggregate).
type Results = Vec<(RecordBatch, Option<Vec<usize>>)>;

struct Worker {
    name: String,
    config: PipelineConfig,
    stats: Arc<PipelineStats>,
    decoder: RecordDecoder,
    /// How result rows become output values (follows the chain, like `decoder`).
    emit: output::Emit,
    chain: Chain,
    sink: Option<Operator>,
    consumer: SourceConsumer,
    sender: Sender,
    control: Arc<watch::Sender<Option<String>>>,
    commands: mpsc::Receiver<PipelineCommand>,
    budget: VecDeque<(Instant, u64, u64)>,
    batch_seconds: prometheus_client::metrics::histogram::Histogram,
    /// Event-time progress (with `event_time` configured).
    watermarks: Option<watermark::Watermarks>,
    /// Per-partition chains and their checkpoints (with `state` configured).
    tasks: Option<tasks::Tasks>,
    /// Tasks reset by the last batch (their records are replayed, not committed).
    reset_tasks: std::collections::HashSet<i32>,
}

/// The producing side (shared, `Sync`, so its futures can cross awaits).
struct Sender {
    name: String,
    producer: FutureProducer,
    stats: Arc<PipelineStats>,
    errors: crate::config::ErrorConfig,
    dead_letter_topic: String,
    /// Exactly-once: every produce happens inside a transaction.
    transactional: bool,
    /// Largest record each topic takes.
    message_limits: crate::delivery::message_size::MessageLimits,
}

/// Timeout of transaction calls (init, send offsets, commit, abort).
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

impl Worker {
    fn new(
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
        let consumer = source::create_consumer(name, &config.source, stats.clone(), config.state.is_some()).map_err(kafka)?;
        let transactional_id = (config.guarantee == Guarantee::ExactlyOnce)
            .then(|| format!("weir.{}.{name}.{}", config.source.group_id, config.exactly_once.instance()));
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
            reset_tasks: Default::default(),
        })
    }

    /// The operator slots, in chain order (sink last).
    fn slots(&self) -> Vec<OperatorSlot> {
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
    fn version_of(&self, operator: &str) -> String {
        self.chain
            .operators()
            .iter()
            .chain(self.sink.as_ref())
            .find(|o| o.plugin().name() == operator)
            .map(|o| o.version().to_owned())
            .unwrap_or_default()
    }

    /// `name@version,...` of every operator (the `weir.plugins` header).
    fn versions_header(&self) -> String {
        let labels: Vec<String> =
            self.chain.operators().iter().chain(self.sink.as_ref()).map(|o| format!("{}@{}", o.plugin().name(), o.version())).collect();
        labels.join(",")
    }

    /// Handles a swap or redrive request (between batches).
    async fn handle(&mut self, command: PipelineCommand, shutdown: &watch::Receiver<bool>) -> Result<(), PipelineError> {
        match command {
            PipelineCommand::Swap(SwapRequest { operator, replacement, reply }) => {
                let outcome = tokio::task::block_in_place(|| self.swap(&operator, replacement));
                match &outcome {
                    Ok(report) => tracing::info!(pipeline = %self.name, %operator, version = %self.version_of(&operator), pause_us = report.pause_us, "operator swapped"),
                    Err(error) => tracing::warn!(pipeline = %self.name, %operator, %error, "swap refused; the old version keeps running"),
                }
                let _ = reply.send(outcome);
            }
            PipelineCommand::Shadow(Some(shadow)) if self.tasks.is_some() => {
                // The template chain does not run in stateful pipelines.
                tracing::warn!(pipeline = %self.name, operator = %shadow.name(), "shadow runs are not available on stateful pipelines: ended without batches");
                shadow.finish();
            }
            PipelineCommand::Shadow(shadow) => {
                if let Some(shadow) = &shadow {
                    tracing::info!(pipeline = %self.name, operator = %shadow.name(), "shadow run started");
                }
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
                let committed = tokio::task::block_in_place(|| {
                    resume_retriable(|| producer.send_offsets_to_transaction(&offsets, &metadata, TRANSACTION_TIMEOUT))?;
                    resume_retriable(|| producer.commit_transaction(TRANSACTION_TIMEOUT))
                });
                if let Err(error) = committed {
                    self.abort_transaction();
                    return Err(RedriveFailure::Reader(format!("redrive transaction failed (aborted; rerun the redrive): {error}")));
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
    fn swap(&mut self, name: &str, mut replacement: Operator) -> Result<SwapReport, String> {
        let started = Instant::now();
        let slot = self
            .chain
            .operators_mut()
            .iter_mut()
            .chain(self.sink.as_mut())
            .find(|o| o.plugin().name() == name)
            .ok_or_else(|| format!("pipeline `{}` has no operator `{name}`", self.name))?;
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
        let slot = self
            .chain
            .operators_mut()
            .iter_mut()
            .chain(self.sink.as_mut())
            .find(|o| o.plugin().name() == name)
            .expect("found above");
        let old = std::mem::replace(slot, replacement);
        // The new version may read other columns.
        let host_columns = host_columns(&self.config);
        match RecordDecoder::for_chain(&self.config.format, self.config.output.as_ref(), self.chain.operators_mut(), self.sink.is_some(), &host_columns) {
            Ok((decoder, emit)) => (self.decoder, self.emit) = (decoder, emit),
            Err(error) => tracing::warn!(pipeline = %self.name, %error, "keeping the previous decoder after the swap"),
        }
        let pause_us = started.elapsed().as_micros() as u64;
        drop(old);
        self.stats.set_plugin_version(name, &label);
        PipelineStats::add(&self.stats.plugin_swaps, 1);
        Ok(SwapReport { pause_us, state_bytes })
    }

    async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), PipelineError> {
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

    /// Creates the state topic of a stateful pipeline unless it exists.
    async fn ensure_state_topic(&mut self) -> Result<(), PipelineError> {
        let (Some(tasks), Some(state)) = (&self.tasks, &self.config.state) else { return Ok(()) };
        let created = tasks.store().ensure_topic(state.max_bytes);
        let topic = tasks.store().topic().to_owned();
        created.await.map_err(|e| PipelineError::Setup { pipeline: self.name.clone(), message: e.to_string() })?;
        tracing::info!(pipeline = %self.name, %topic, "aggregate state is checkpointed to the state topic");
        Ok(())
    }

    async fn run_loop(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), PipelineError> {
        let mut control = self.control.subscribe();
        // Stateful pipelines wake up while the input is quiet, to checkpoint.
        let idle = self.config.state.as_ref().map(|s| Duration::from_millis(s.checkpoint_interval_ms));
        loop {
            let paused = control.borrow_and_update().clone();
            if let Some(reason) = paused
                && !self.wait_while_paused(reason, shutdown, &mut control).await? {
                    return self.drain_commit().await;
                }
            let (mut records, cut) =
                source::collect(&self.consumer, &self.config.batch, shutdown, &mut control, &mut self.commands, idle).await;
            let revoked = self.consumer.context().take_revoked();
            if let Some(watermarks) = &mut self.watermarks {
                watermarks.forget(revoked.iter().cloned());
            }
            if let Some(tasks) = &mut self.tasks {
                tasks.forget(&revoked);
            }
            if !revoked.is_empty() {
                records.retain(|r| !revoked.contains(&(r.topic().to_owned(), r.partition())));
            }
            if !records.is_empty() {
                let span = tracing::info_span!("batch", pipeline = %self.name, records = records.len());
                let _entered = span.enter();
                let started = Instant::now();
                self.process(records).await?;
                self.batch_seconds.observe(started.elapsed().as_secs_f64());
            } else if !self.sender.transactional && self.tasks.as_ref().is_some_and(tasks::Tasks::due) {
                self.checkpoint().await?;
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

    async fn drain_commit(&mut self) -> Result<(), PipelineError> {
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
    async fn wait_while_paused(
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

    fn budget_exceeded(&mut self) -> Option<String> {
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

    async fn process(&mut self, mut records: Vec<OwnedMessage>) -> Result<(), PipelineError> {
        if let Some(tasks) = self.tasks.as_mut() {
            let chain = &self.chain;
            let consumer = &self.consumer;
            tokio::task::block_in_place(|| tasks.prepare(&mut records, chain, consumer))
                .map_err(|e| PipelineError::Setup { pipeline: self.name.clone(), message: e.to_string() })?;
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

    /// At-least-once with state: dead letters now; offsets are committed
    /// only by checkpoints, after the state that covers them is durable.
    async fn after_stateful_batch(&mut self, records: &[OwnedMessage], dead: Vec<(usize, DeadLetter)>) -> Result<(), PipelineError> {
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
            self.checkpoint().await?;
        }
        Ok(())
    }

    /// Snapshots the changed tasks; None (and the pipeline paused) when a
    /// snapshot is over `state.max_bytes`.
    fn snapshot_tasks(&mut self) -> Result<Option<Vec<state::Checkpoint>>, PipelineError> {
        let tasks = self.tasks.as_mut().expect("stateful");
        match tokio::task::block_in_place(|| tasks.snapshot()) {
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

    /// At-least-once checkpoint: snapshot, write, then commit the offsets
    /// the checkpoints cover.
    async fn checkpoint(&mut self) -> Result<(), PipelineError> {
        let started = Instant::now();
        let Some(checkpoints) = self.snapshot_tasks()? else { return Ok(()) };
        let topic = self.tasks.as_ref().expect("stateful").store().topic().to_owned();
        self.sender.write_checkpoints(&topic, &checkpoints).await?;
        let written = checkpoints.len();
        let tasks = self.tasks.as_mut().expect("stateful");
        tasks.confirm(checkpoints);
        let offsets = tasks.committable();
        let state_bytes = tasks.state_bytes();
        self.commit(CommitPlan { next: offsets })?;
        self.record_checkpoint(started, written, state_bytes);
        Ok(())
    }

    fn record_checkpoint(&self, started: Instant, written: usize, state_bytes: u64) {
        let took = started.elapsed();
        PipelineStats::add(&self.stats.checkpoints, 1);
        self.stats.state_bytes.store(state_bytes, std::sync::atomic::Ordering::Relaxed);
        self.stats.checkpoint_us.store(took.as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(pipeline = %self.name, tasks = written, state_bytes, took_ms = took.as_millis() as u64, "checkpoint written and offsets committed");
    }

    /// Exactly-once: the batch's outputs, dead letters and consumer offsets in
    /// one transaction. If the transaction cannot commit (a rebalance fenced
    /// this generation, a broker error), it is aborted and the partitions are
    /// rewound to the last committed offsets, so the records are processed
    /// again by whoever owns them now; fatal errors (another process with the
    /// same transactional id) halt the pipeline.
    async fn process_in_transaction(&mut self, records: Vec<OwnedMessage>) -> Result<(), PipelineError> {
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
                // of answering, as tansu does for a fenced producer): halt; a
                // restart re-initialises transactions, which settles it.
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

    /// Takes the rows that arrive behind the watermark out of `decoded`
    /// (returned as (record, event time, watermark)), folds the other rows'
    /// event times into the watermarks, and returns the watermark aggregates
    /// get with this batch.
    #[allow(clippy::type_complexity)]
    fn advance_watermark(&mut self, decoded: &mut decode::Decoded, records: &[OwnedMessage]) -> Result<(Option<i64>, Vec<(usize, i64, i64)>), PipelineError> {
        let Some(event_time) = self.config.event_time.as_ref() else { return Ok((None, Vec::new())) };
        if self.watermarks.is_none() && self.tasks.is_none() {
            return Ok((None, Vec::new()));
        }
        let now = Instant::now();
        let times = watermark::event_times_ms(&decoded.batch, &event_time.column)
            .map_err(|e| PipelineError::Setup { pipeline: self.name.clone(), message: format!("event_time.column: {e}") })?;
        let mut late = Vec::new();
        let mut keep = Vec::with_capacity(times.len());
        // Lateness is judged row by row against the row's own partition
        // (see Watermarks::is_late), so replays decide the same way.
        for (row, time) in times.into_iter().enumerate() {
            let record = decoded.record_of_row[row];
            let (topic, partition) = (records[record].topic(), records[record].partition());
            let watermarks = match self.tasks.as_mut() {
                Some(tasks) => tasks.watermarks_mut(partition).expect("tasks are prepared before decoding"),
                None => self.watermarks.as_mut().expect("checked above"),
            };
            match (time, time.and_then(|_| watermarks.late_mark(topic, partition))) {
                (Some(time), Some(mark)) if time < mark => {
                    tracing::debug!(topic, partition, offset = records[record].offset(), time, mark, "late record");
                    late.push((record, time, mark));
                    keep.push(false);
                }
                (time, _) => {
                    if let Some(time) = time {
                        watermarks.observe(topic, partition, time, now);
                    }
                    keep.push(true);
                }
            }
        }
        if !late.is_empty() {
            let mask = arrow_array::BooleanArray::from(keep.clone());
            decoded.batch = arrow_select::filter::filter_record_batch(&decoded.batch, &mask)
                .map_err(|e| PipelineError::Setup { pipeline: self.name.clone(), message: e.to_string() })?;
            let mut rows = keep.iter();
            decoded.record_of_row.retain(|_| *rows.next().expect("one flag per row"));
        }
        let current = match (self.tasks.as_mut(), self.watermarks.as_mut()) {
            (Some(tasks), _) => tasks.advance_watermarks(now),
            (None, Some(watermarks)) => watermarks.current(now),
            (None, None) => None,
        };
        if let Some(ms) = current {
            self.stats.watermark_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
        }
        Ok((current, late))
    }

    /// Policy `stop`: the offsets to commit (up to the first failed record
    /// of each partition) and the error that halts the pipeline.
    fn stop_plan(&self, records: &[OwnedMessage], dead: &[(usize, DeadLetter)]) -> (CommitPlan, PipelineError) {
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

    /// Sends the consumer offsets into the transaction and commits it.
    fn commit_transaction(&self, next: &BTreeMap<(String, i32), i64>) -> Result<(), PipelineError> {
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

    fn abort_transaction(&self) {
        if let Err(error) = tokio::task::block_in_place(|| self.sender.producer.abort_transaction(TRANSACTION_TIMEOUT)) {
            tracing::error!(pipeline = %self.name, %error, "aborting the transaction failed");
        }
    }

    /// Seeks every assigned partition back to its last committed offset
    /// (this process's, else the group's).
    fn rewind_to_committed(&mut self) {
        if let Some(tasks) = self.tasks.as_mut() {
            // In-memory state is ahead of the committed offsets: restart
            // every task from its checkpoint.
            tasks.reset_all();
        }
        let Ok(assignment) = self.consumer.assignment() else { return };
        let committed = self.stats.committed.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // Ask the group only when this process has not committed some partition yet.
        let needs_group = assignment.elements().iter().any(|e| !committed.contains_key(&(e.topic().to_owned(), e.partition())));
        let group = needs_group.then(|| tokio::task::block_in_place(|| self.consumer.committed(Duration::from_secs(10))).ok()).flatten();
        for element in assignment.elements() {
            let key = (element.topic().to_owned(), element.partition());
            let offset = match committed.get(&key) {
                Some(offset) => rdkafka::Offset::Offset(*offset),
                None => match group.as_ref().and_then(|g| g.find_partition(&key.0, key.1)).map(|e| e.offset()) {
                    Some(rdkafka::Offset::Offset(offset)) => rdkafka::Offset::Offset(offset),
                    _ => continue,
                },
            };
            if let Err(error) = self.consumer.seek(element.topic(), element.partition(), offset, Duration::from_secs(5)) {
                tracing::warn!(pipeline = %self.name, topic = element.topic(), partition = element.partition(), %error, "rewind failed");
            }
        }
    }

    /// Decodes, runs the chain and the sink, and produces the outputs (with
    /// retries); returns the records to dead-letter, by index in `records`.
    async fn run_batch(&mut self, records: &[OwnedMessage]) -> Result<Vec<(usize, DeadLetter)>, PipelineError> {
        let stats = self.stats.clone();
        PipelineStats::add(&stats.records_in, records.len() as u64);
        PipelineStats::add(&stats.batches, 1);
        let mut dead: Vec<(usize, DeadLetter)> = Vec::new();

        let mut decoded = self.decoder.decode(records).map_err(|e| PipelineError::Setup { pipeline: self.name.clone(), message: e.to_string() })?;
        let (watermark, late) = self.advance_watermark(&mut decoded, records)?;
        dead.extend(decoded.failed.into_iter().map(|(record, reason)| (record, DeadLetter::host("decode", reason))));
        let mut late_out: Vec<OutRecord> = Vec::new();
        if let Some(event_time) = self.config.event_time.as_ref() {
            PipelineStats::add(&stats.records_late, late.len() as u64);
            for (record, time, mark) in late {
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
                    (_, sources) => output::encode(batch, sources, output, &key_of),
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

    fn commit(&self, plan: CommitPlan) -> Result<(), PipelineError> {
        source::commit(&self.consumer, &plan.next, CommitMode::Async)
            .map_err(|source| PipelineError::Kafka { pipeline: self.name.clone(), source })?;
        let mut committed = self.stats.committed.lock().unwrap_or_else(|e| e.into_inner());
        committed.extend(plan.next);
        Ok(())
    }
}

impl Sender {
    /// Produces checkpoints to the state topic `topic` and waits for their
    /// acknowledgement (in the open transaction under exactly-once).
    async fn write_checkpoints(&self, topic: &str, checkpoints: &[state::Checkpoint]) -> Result<(), PipelineError> {
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
    async fn produce_all(&self, topic: &str, out: &[OutRecord], sources: &[OwnedMessage], versions: Option<&str>) -> Vec<(usize, output::Undelivered)> {
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
    async fn produce_dead_letters(&self, dead: &[(usize, DeadLetter)], records: &[OwnedMessage], redrive_run: Option<&str>) -> Result<(), PipelineError> {
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
