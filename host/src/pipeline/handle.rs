//! Starting a pipeline and steering it while it runs.

use super::*;


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
pub(super) fn resolve_plugin(engine: &Engine, registry: &Registry, operator: &crate::config::OperatorConfig, index: usize) -> Result<(crate::engine::Plugin, String), String> {
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
