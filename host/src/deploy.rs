//! Deployment: validating an upload, storing it in the registry and swapping
//! it into every running pipeline that uses the name, at their next batch
//! boundary. Everything that can fail is checked before anything changes
//! (the component loads, has the kind each using pipeline needs, and `init`
//! succeeds with each pipeline's config); the new operators are built before
//! the swap, so a pipeline only pauses to exchange them (and move aggregate
//! state). If a pipeline refuses the swap or does not answer in time, the
//! ones that already swapped go back and the live version stays what it
//! was: the registry's live pointer moves only once every pipeline runs the
//! new version. A deploy runs in its own task, so a client that disconnects
//! or a request that times out cannot stop it half-way; its outcome is kept
//! per plugin ([`DeployStatus`]) for the API and the console.

use crate::engine::{Engine, LoadSource, OperatorKind, Plugin};
use crate::operator::Operator;
use crate::operator::shadow::{Shadow, ShadowReport};
use crate::pipeline::PipelineControl;
use crate::pipeline::command::{OperatorSlot, PipelineCommand, REPLY_TIMEOUT, SwapReport, SwapRequest};
use crate::registry::{PluginRecord, PluginVersion, Registry, RegistryError, validate_name};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Default upload size limit (64 MiB).
pub const DEFAULT_MAX_PLUGIN_BYTES: usize = 64 * 1024 * 1024;

/// Why an upload, rollback or removal was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The name is not allowed.
    #[error(transparent)]
    InvalidName(RegistryError),
    /// Larger than the upload limit.
    #[error("plugin is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Upload size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// Not WebAssembly, a core module, not an operator world, does not compile or link.
    #[error("{0}")]
    NotAnOperator(String),
    /// Implements another operator kind than a using pipeline needs.
    #[error("pipeline `{pipeline}` uses `{operator}` as a {expected} operator, but the upload is a {found} operator")]
    WrongKind {
        /// Pipeline.
        pipeline: String,
        /// Operator name.
        operator: String,
        /// Kind in the pipeline.
        expected: OperatorKind,
        /// Kind of the upload.
        found: OperatorKind,
    },
    /// `init` with a using pipeline's config failed.
    #[error("pipeline `{pipeline}`: the new version failed to initialise with the pipeline's config: {reason}")]
    Init {
        /// Pipeline.
        pipeline: String,
        /// Engine error.
        reason: String,
    },
    /// A pipeline refused the swap (aggregate state did not restore); rolled back.
    #[error("pipeline `{pipeline}` refused the swap ({reason}); every pipeline was returned to version {kept}")]
    SwapFailed {
        /// Pipeline.
        pipeline: String,
        /// Why.
        reason: String,
        /// The version that stays live.
        kept: String,
    },
    /// No such plugin.
    #[error("no plugin named `{0}`")]
    UnknownPlugin(String),
    /// No such version.
    #[error("plugin `{name}` has no version {version}")]
    UnknownVersion {
        /// Plugin.
        name: String,
        /// Version.
        version: u32,
    },
    /// Cannot remove: pipelines use it.
    #[error("plugin `{name}` is used by pipeline(s) {}", pipelines.join(", "))]
    InUse {
        /// Plugin.
        name: String,
        /// Pipelines using it.
        pipelines: Vec<String>,
    },
    /// Rollback without an older version.
    #[error("plugin `{0}` has no version before the live one")]
    NoPreviousVersion(String),
    /// Storage failed.
    #[error(transparent)]
    Registry(RegistryError),
    /// Shadow of a kind that cannot run in shadow.
    #[error("a {0} operator cannot run in shadow (filters and maps only: sinks have side effects, aggregates keep state)")]
    ShadowKind(OperatorKind),
    /// No shadow run for the plugin.
    #[error("plugin `{0}` has no shadow candidate")]
    NoShadow(String),
    /// The live version cannot be removed.
    #[error("version {version} of plugin `{name}` is live; roll back to another version first")]
    LiveVersion {
        /// Plugin.
        name: String,
        /// The live version.
        version: u32,
    },
    /// The deploy task ended without an answer (a bug).
    #[error("the deploy task failed: {0}")]
    Task(String),
}

impl DeployError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            DeployError::InvalidName(_) | DeployError::NotAnOperator(_) => 400,
            DeployError::UnknownPlugin(_) | DeployError::UnknownVersion { .. } | DeployError::NoShadow(_) => 404,
            DeployError::InUse { .. } | DeployError::NoPreviousVersion(_) | DeployError::LiveVersion { .. } => 409,
            DeployError::TooLarge { .. } => 413,
            DeployError::WrongKind { .. } | DeployError::Init { .. } | DeployError::SwapFailed { .. } | DeployError::ShadowKind(_) => 422,
            DeployError::Registry(_) | DeployError::Task(_) => 500,
        }
    }
}

impl From<RegistryError> for DeployError {
    fn from(error: RegistryError) -> DeployError {
        match error {
            RegistryError::InvalidName(_) => DeployError::InvalidName(error),
            RegistryError::UnknownPlugin(name) => DeployError::UnknownPlugin(name),
            RegistryError::UnknownVersion { name, version } => DeployError::UnknownVersion { name, version },
            RegistryError::LiveVersion { name, version } => DeployError::LiveVersion { name, version },
            other => DeployError::Registry(other),
        }
    }
}

/// How one pipeline took a new version.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PipelineSwap {
    /// Pipeline.
    pub pipeline: String,
    /// `swapped`, or `not running` (the pipeline has ended).
    pub status: String,
    /// The pipeline's pause and the state carried over.
    pub report: Option<SwapReport>,
}

/// What a push or rollback did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DeployOutcome {
    /// Plugin name.
    pub name: String,
    /// The live version now.
    pub version: PluginVersion,
    /// False when the upload was identical to the live version (nothing changed).
    pub changed: bool,
    /// `compiled` or `cache`: where the machine code came from.
    pub loaded_from: String,
    /// Upload received to live in every pipeline, in milliseconds.
    pub upload_to_live_ms: f64,
    /// Each pipeline that uses the plugin.
    pub pipelines: Vec<PipelineSwap>,
}

/// The last deploy (push, rollback, promotion) of a plugin, as the API and
/// the console report it; kept after the request that started it is gone.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DeployStatus {
    /// `push` or `rollback`.
    pub action: String,
    /// The version being deployed, once stored.
    pub version: Option<u32>,
    /// `validating`, `swapping` (pipelines are taking it), then `live` (every
    /// pipeline runs it and the registry says so), `unchanged`, `refused`
    /// (validation failed; nothing changed) or `reverted` (a pipeline refused
    /// or did not answer; every pipeline went back to the previous version).
    pub state: String,
    /// Why it was refused or reverted.
    pub error: Option<String>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    pub finished_at: Option<String>,
}

/// Pipelines that took a new version, with the version label each ran before.
type Swapped = Vec<(PipelineControl, String)>;

/// Why a pipeline did not take a swap.
enum SwapFailure {
    /// It answered no; nothing changed in it.
    Refused(String),
    /// No answer in time: the swap is still queued and will apply later.
    TimedOut(String),
}

/// Pushes, rolls back and removes plugins (one change at a time).
#[derive(Clone)]
pub struct Deployer {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    registry: Registry,
    pipelines: BTreeMap<String, PipelineControl>,
    max_plugin_bytes: usize,
    /// Serialises changes: one push/rollback/removal at a time.
    lock: tokio::sync::Mutex<()>,
    /// Shadow candidates by plugin name.
    shadows: std::sync::Mutex<BTreeMap<String, ShadowCandidate>>,
    /// The last deploy of each plugin.
    deploys: std::sync::Mutex<BTreeMap<String, DeployStatus>>,
    /// How long a pipeline may take to reach its batch boundary and swap.
    swap_timeout: std::time::Duration,
}

/// A candidate in shadow: its bytes (for promotion) and each pipeline's report.
struct ShadowCandidate {
    bytes: Vec<u8>,
    reports: Vec<Arc<std::sync::Mutex<ShadowReport>>>,
}

/// A shadow run that started.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ShadowStarted {
    /// Plugin name.
    pub name: String,
    /// Candidate SHA-256.
    pub candidate_sha256: String,
    /// Pipelines running the candidate in shadow.
    pub pipelines: Vec<String>,
    /// Batch budget.
    pub batches: u64,
    /// Time budget in seconds.
    pub seconds: u64,
}

impl Deployer {
    /// A deployer over `pipelines`, storing in `registry`.
    pub fn new(engine: Engine, registry: Registry, pipelines: Vec<PipelineControl>, max_plugin_bytes: usize) -> Deployer {
        let pipelines = pipelines.into_iter().map(|p| (p.name.clone(), p)).collect();
        Deployer {
            inner: Arc::new(Inner {
                engine,
                registry,
                pipelines,
                max_plugin_bytes,
                lock: tokio::sync::Mutex::new(()),
                shadows: Default::default(),
                deploys: Default::default(),
                swap_timeout: REPLY_TIMEOUT,
            }),
        }
    }

    /// Sets how long a deploy waits for each pipeline's swap (default
    /// [`REPLY_TIMEOUT`]) before it reverts. Call before cloning.
    pub fn with_swap_timeout(mut self, timeout: std::time::Duration) -> Deployer {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.swap_timeout = timeout;
        }
        self
    }

    /// The last deploy of `name`, finished or not.
    pub fn last_deploy(&self, name: &str) -> Option<DeployStatus> {
        self.deploys().get(name).cloned()
    }

    fn deploys(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, DeployStatus>> {
        self.inner.deploys.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn deploy_started(&self, name: &str, action: &str) {
        let status = DeployStatus { action: action.to_owned(), version: None, state: "validating".into(), error: None, started_at: now(), finished_at: None };
        self.deploys().insert(name.to_owned(), status);
    }

    fn deploy_swapping(&self, name: &str, version: u32) {
        if let Some(status) = self.deploys().get_mut(name) {
            status.version = Some(version);
            status.state = "swapping".into();
        }
    }

    fn deploy_finished(&self, name: &str, result: &Result<DeployOutcome, DeployError>) {
        let known = self.inner.registry.get(name).is_some();
        let mut deploys = self.deploys();
        if !known {
            // A refused upload under a new name leaves nothing to report on
            // (and arbitrary names must not grow the map).
            deploys.remove(name);
            return;
        }
        let Some(status) = deploys.get_mut(name) else { return };
        status.finished_at = Some(now());
        match result {
            Ok(outcome) => {
                status.version = Some(outcome.version.version);
                status.state = if outcome.changed { "live" } else { "unchanged" }.into();
            }
            Err(error) => {
                status.state = if matches!(error, DeployError::SwapFailed { .. }) { "reverted" } else { "refused" }.into();
                status.error = Some(error.to_string());
            }
        }
    }

    /// Runs a deploy step in its own task: dropping the returned future (a
    /// client that disconnects, a request timeout) does not stop it.
    async fn detached<F>(&self, name: &str, action: &'static str, step: impl FnOnce(Deployer) -> F) -> Result<DeployOutcome, DeployError>
    where
        F: std::future::Future<Output = Result<DeployOutcome, DeployError>> + Send + 'static,
    {
        validate_name(name)?;
        let this = self.clone();
        let name = name.to_owned();
        let future = step(self.clone());
        tokio::spawn(async move {
            let _guard = this.inner.lock.lock().await;
            this.deploy_started(&name, action);
            let result = future.await;
            this.deploy_finished(&name, &result);
            result
        })
        .await
        .map_err(|e| DeployError::Task(e.to_string()))?
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The pipelines, by name.
    pub fn pipelines(&self) -> &BTreeMap<String, PipelineControl> {
        &self.inner.pipelines
    }

    /// The upload size limit.
    pub fn max_plugin_bytes(&self) -> usize {
        self.inner.max_plugin_bytes
    }

    /// Names of the pipelines that run the plugin `name`.
    pub fn users(&self, name: &str) -> Vec<String> {
        self.slots_of(name).into_iter().map(|(pipeline, _)| pipeline.name.clone()).collect()
    }

    fn slots_of(&self, name: &str) -> Vec<(&PipelineControl, &OperatorSlot)> {
        self.inner
            .pipelines
            .values()
            .flat_map(|p| p.operators.iter().filter(|slot| slot.name == name).map(move |slot| (p, slot)))
            .collect()
    }

    /// Validates `bytes` as the next version of `name` and makes it live in
    /// every pipeline that uses the name (in its own task, see [`DeployStatus`]).
    pub async fn push(&self, name: &str, bytes: Vec<u8>) -> Result<DeployOutcome, DeployError> {
        if bytes.len() > self.inner.max_plugin_bytes {
            return Err(DeployError::TooLarge { size: bytes.len(), limit: self.inner.max_plugin_bytes });
        }
        let owned = name.to_owned();
        self.detached(name, "push", move |this| async move { this.push_locked(&owned, bytes).await }).await
    }

    async fn push_locked(&self, name: &str, bytes: Vec<u8>) -> Result<DeployOutcome, DeployError> {
        let started = Instant::now();
        let bytes = Arc::new(bytes);
        let plugin = self.load(name, bytes.clone()).await?;
        let operators = self.prepare(name, &plugin).await?;
        let previous = self.inner.registry.get(name);
        let (version, changed) = self.inner.registry.add_version(name, &bytes, plugin.kind().as_str(), "upload")?;
        if !changed {
            return Ok(self.outcome(name, version, false, &plugin, started, Vec::new()));
        }
        drop(bytes);
        self.deploy_swapping(name, version.version);
        let swapped = self.activate(name, operators, &version.label()).await.and_then(|(swaps, swapped)| {
            match self.inner.registry.set_live(name, version.version) {
                Ok(live) => Ok((swaps, live)),
                Err(error) => Err((swapped, "registry".to_owned(), error.to_string())),
            }
        });
        match swapped {
            Ok((swaps, version)) => {
                tracing::info!(plugin = name, version = %version.label(), sha256 = %version.sha256, "plugin pushed and live");
                Ok(self.outcome(name, version, true, &plugin, started, swaps))
            }
            Err((swapped, pipeline, reason)) => {
                self.revert(name, swapped).await;
                let kept = match &previous {
                    Some(record) => {
                        if let Err(error) = self.inner.registry.remove_version(name, version.version) {
                            tracing::warn!(plugin = name, version = %version.label(), %error, "could not forget the reverted version");
                        }
                        record.live_version().label()
                    }
                    None => {
                        self.inner.registry.remove(name)?;
                        "none".to_owned()
                    }
                };
                tracing::warn!(plugin = name, version = %version.label(), %pipeline, %reason, %kept, "deploy reverted");
                Err(DeployError::SwapFailed { pipeline, reason, kept })
            }
        }
    }

    /// Makes `version` (default: the one before the live one) live again
    /// (in its own task, like a push).
    pub async fn rollback(&self, name: &str, version: Option<u32>) -> Result<DeployOutcome, DeployError> {
        let owned = name.to_owned();
        self.detached(name, "rollback", move |this| async move { this.rollback_locked(&owned, version).await }).await
    }

    async fn rollback_locked(&self, name: &str, version: Option<u32>) -> Result<DeployOutcome, DeployError> {
        let started = Instant::now();
        let record = self.inner.registry.get(name).ok_or_else(|| DeployError::UnknownPlugin(name.to_owned()))?;
        let target = match version {
            Some(version) => record.version(version).cloned().ok_or(DeployError::UnknownVersion { name: name.to_owned(), version })?,
            None => {
                let live_index = record.versions.iter().position(|v| v.version == record.live).expect("live is stored");
                live_index.checked_sub(1).map(|i| record.versions[i].clone()).ok_or_else(|| DeployError::NoPreviousVersion(name.to_owned()))?
            }
        };
        let bytes = self.inner.registry.bytes(name, target.version)?;
        let plugin = self.load(name, bytes).await?;
        if target.version == record.live {
            return Ok(self.outcome(name, target, false, &plugin, started, Vec::new()));
        }
        let operators = self.prepare(name, &plugin).await?;
        self.deploy_swapping(name, target.version);
        let swapped = self.activate(name, operators, &target.label()).await.and_then(|(swaps, swapped)| {
            match self.inner.registry.set_live(name, target.version) {
                Ok(live) => Ok((swaps, live)),
                Err(error) => Err((swapped, "registry".to_owned(), error.to_string())),
            }
        });
        match swapped {
            Ok((swaps, version)) => {
                tracing::info!(plugin = name, version = %version.label(), "plugin rolled back");
                Ok(self.outcome(name, version, true, &plugin, started, swaps))
            }
            Err((swapped, pipeline, reason)) => {
                self.revert(name, swapped).await;
                Err(DeployError::SwapFailed { pipeline, reason, kept: record.live_version().label() })
            }
        }
    }

    /// Runs `bytes` in shadow of the live version of `name` in every pipeline
    /// using it, for at most `batches` batches and `duration`; nothing it
    /// produces leaves the process. Filters and maps only: a sink's calls
    /// have side effects and an aggregate's output depends on its state.
    pub async fn shadow(&self, name: &str, bytes: Vec<u8>, batches: u64, duration: std::time::Duration) -> Result<ShadowStarted, DeployError> {
        validate_name(name)?;
        if bytes.len() > self.inner.max_plugin_bytes {
            return Err(DeployError::TooLarge { size: bytes.len(), limit: self.inner.max_plugin_bytes });
        }
        let _guard = self.inner.lock.lock().await;
        if self.inner.registry.get(name).is_none() {
            return Err(DeployError::UnknownPlugin(name.to_owned()));
        }
        let shared = Arc::new(bytes);
        let plugin = self.load(name, shared.clone()).await?;
        if !matches!(plugin.kind(), OperatorKind::Filter | OperatorKind::Map) {
            return Err(DeployError::ShadowKind(plugin.kind()));
        }
        let operators = self.prepare(name, &plugin).await?;
        self.stop_shadow(name, "discarded").await;
        let mut reports = Vec::new();
        let mut pipelines = Vec::new();
        for (pipeline, operator) in operators {
            let report = Arc::new(std::sync::Mutex::new(ShadowReport {
                pipeline: pipeline.name.clone(),
                candidate_sha256: plugin.sha256().to_owned(),
                ..ShadowReport::default()
            }));
            let shadow = Shadow::new(operator.with_version("shadow"), report.clone(), batches, duration);
            if pipeline.commands.send(PipelineCommand::Shadow(Some(shadow))).await.is_ok() {
                reports.push(report);
                pipelines.push(pipeline.name.clone());
            }
        }
        let bytes = Arc::try_unwrap(shared).unwrap_or_else(|shared| (*shared).clone());
        self.inner.shadows.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_owned(), ShadowCandidate { bytes, reports });
        tracing::info!(plugin = name, sha256 = %plugin.sha256(), ?pipelines, batches, ?duration, "shadow run started");
        Ok(ShadowStarted { name: name.to_owned(), candidate_sha256: plugin.sha256().to_owned(), pipelines, batches, seconds: duration.as_secs() })
    }

    /// The reports of `name`'s shadow run, one per pipeline.
    pub fn shadow_reports(&self, name: &str) -> Option<Vec<ShadowReport>> {
        let shadows = self.inner.shadows.lock().unwrap_or_else(|e| e.into_inner());
        shadows.get(name).map(|c| c.reports.iter().map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).clone()).collect())
    }

    /// Pushes the shadow candidate of `name` as the next live version.
    pub async fn promote(&self, name: &str) -> Result<DeployOutcome, DeployError> {
        let bytes = {
            let shadows = self.inner.shadows.lock().unwrap_or_else(|e| e.into_inner());
            shadows.get(name).map(|c| c.bytes.clone()).ok_or_else(|| DeployError::NoShadow(name.to_owned()))?
        };
        self.stop_shadow(name, "promoted").await;
        self.push(name, bytes).await
    }

    /// Stops and forgets the shadow run of `name`.
    pub async fn discard(&self, name: &str) -> Result<(), DeployError> {
        if !self.stop_shadow(name, "discarded").await {
            return Err(DeployError::NoShadow(name.to_owned()));
        }
        Ok(())
    }

    /// Ends the shadow run of `name` in every pipeline; false if there was none.
    async fn stop_shadow(&self, name: &str, state: &str) -> bool {
        let Some(candidate) = self.inner.shadows.lock().unwrap_or_else(|e| e.into_inner()).remove(name) else { return false };
        for report in &candidate.reports {
            report.lock().unwrap_or_else(|e| e.into_inner()).state = state.to_owned();
        }
        for (pipeline, _) in self.slots_of(name) {
            let _ = pipeline.commands.send(PipelineCommand::Shadow(None)).await;
        }
        true
    }

    /// Removes a plugin no pipeline uses.
    pub async fn remove(&self, name: &str) -> Result<PluginRecord, DeployError> {
        let _guard = self.inner.lock.lock().await;
        let users = self.users(name);
        if !users.is_empty() {
            return Err(DeployError::InUse { name: name.to_owned(), pipelines: users });
        }
        let removed = self.inner.registry.remove(name)?;
        self.deploys().remove(name);
        Ok(removed)
    }

    /// Removes one version of a plugin that is not live (from the data dir
    /// too); returns what remains.
    pub async fn remove_version(&self, name: &str, version: u32) -> Result<PluginRecord, DeployError> {
        let _guard = self.inner.lock.lock().await;
        let removed = self.inner.registry.remove_version(name, version)?;
        tracing::info!(plugin = name, version = %removed.label(), sha256 = %removed.sha256, "plugin version removed");
        self.inner.registry.get(name).ok_or_else(|| DeployError::UnknownPlugin(name.to_owned()))
    }

    async fn load(&self, name: &str, bytes: Arc<Vec<u8>>) -> Result<Plugin, DeployError> {
        let engine = self.inner.engine.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || engine.load(&name, &bytes))
            .await
            .map_err(|e| DeployError::NotAnOperator(format!("loading failed: {e}")))?
            .map_err(|e| DeployError::NotAnOperator(e.to_string()))
    }

    /// Checks the kind and builds (instantiates and `init`s) the operator
    /// for every pipeline that uses `name`.
    async fn prepare(&self, name: &str, plugin: &Plugin) -> Result<Vec<(PipelineControl, Operator)>, DeployError> {
        let mut prepared = Vec::new();
        for (pipeline, slot) in self.slots_of(name) {
            if slot.kind != plugin.kind() {
                return Err(DeployError::WrongKind { pipeline: pipeline.name.clone(), operator: name.to_owned(), expected: slot.kind, found: plugin.kind() });
            }
            let operator = instantiate(slot, plugin)
                .await
                .map_err(|reason| DeployError::Init { pipeline: pipeline.name.clone(), reason })?;
            prepared.push((pipeline.clone(), operator));
        }
        Ok(prepared)
    }

    /// Swaps the prepared operators in, one pipeline after the other.
    /// Returns the swaps and the pipelines that took the new version with the
    /// label they ran before; on a refusal or a timeout, the pipelines to
    /// send back (a pipeline that timed out included: its swap is still
    /// queued), the pipeline that failed and why.
    async fn activate(&self, name: &str, operators: Vec<(PipelineControl, Operator)>, label: &str) -> Result<(Vec<PipelineSwap>, Swapped), (Swapped, String, String)> {
        let mut swaps = Vec::new();
        let mut swapped: Swapped = Vec::new();
        for (pipeline, operator) in operators {
            let previous_label = pipeline.stats.snapshot().plugin_versions.get(name).cloned().unwrap_or_default();
            match send_swap(&pipeline, name, operator.with_version(label), self.inner.swap_timeout).await {
                Ok(Some(report)) => {
                    swapped.push((pipeline.clone(), previous_label));
                    swaps.push(PipelineSwap { pipeline: pipeline.name.clone(), status: "swapped".into(), report: Some(report) });
                }
                Ok(None) => swaps.push(PipelineSwap { pipeline: pipeline.name.clone(), status: "not running".into(), report: None }),
                Err(SwapFailure::Refused(reason)) => return Err((swapped, pipeline.name.clone(), reason)),
                Err(SwapFailure::TimedOut(reason)) => {
                    let failed = pipeline.name.clone();
                    swapped.push((pipeline, previous_label));
                    return Err((swapped, failed, reason));
                }
            }
        }
        Ok((swaps, swapped))
    }

    /// Puts the version labelled `previous` back into pipelines. A pipeline
    /// that does not answer in time gets it queued after the swap it has
    /// not handled yet, so it ends on `previous` too.
    async fn revert(&self, name: &str, swapped: Swapped) {
        let Some(record) = self.inner.registry.get(name) else { return };
        for (pipeline, previous) in swapped {
            let Some(version) = record.versions.iter().find(|v| v.label() == previous) else { continue };
            let restored = async {
                let bytes = self.inner.registry.bytes(name, version.version).map_err(|e| e.to_string())?;
                let plugin = self.load(name, bytes).await.map_err(|e| e.to_string())?;
                let slot = pipeline.operators.iter().find(|slot| slot.name == name).ok_or("operator gone")?;
                let operator = instantiate(slot, &plugin).await?;
                match send_swap(&pipeline, name, operator.with_version(previous.clone()), self.inner.swap_timeout).await {
                    Ok(_) => Ok(()),
                    Err(SwapFailure::TimedOut(_)) => {
                        tracing::info!(pipeline = %pipeline.name, plugin = name, version = %previous, "pipeline busy: the swap back is queued behind the swap it has not handled yet");
                        Ok(())
                    }
                    Err(SwapFailure::Refused(reason)) => Err(reason),
                }
            };
            if let Err(error) = restored.await {
                tracing::error!(pipeline = %pipeline.name, plugin = name, %error, "could not swap back to the previous version");
            }
        }
    }

    fn outcome(&self, name: &str, version: PluginVersion, changed: bool, plugin: &Plugin, started: Instant, pipelines: Vec<PipelineSwap>) -> DeployOutcome {
        DeployOutcome {
            name: name.to_owned(),
            version,
            changed,
            loaded_from: match plugin.source() {
                LoadSource::Compiled => "compiled",
                LoadSource::Cache => "cache",
            }
            .to_owned(),
            upload_to_live_ms: started.elapsed().as_secs_f64() * 1000.0,
            pipelines,
        }
    }
}

/// Instantiates `plugin` with a slot's config (off the async threads).
async fn instantiate(slot: &OperatorSlot, plugin: &Plugin) -> Result<Operator, String> {
    let (plugin, config, allowlist) = (plugin.clone(), slot.config_json.clone(), slot.allowlist.clone());
    tokio::task::spawn_blocking(move || Operator::new(plugin, config, allowlist))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Sends a swap and waits up to `timeout` for the pipeline's answer:
/// `Ok(None)` when the pipeline is not running any more.
async fn send_swap(pipeline: &PipelineControl, name: &str, operator: Operator, timeout: std::time::Duration) -> Result<Option<SwapReport>, SwapFailure> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let request = PipelineCommand::Swap(SwapRequest { operator: name.to_owned(), replacement: operator, reply });
    if pipeline.commands.send(request).await.is_err() {
        return Ok(None);
    }
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(result)) => result.map(Some).map_err(SwapFailure::Refused),
        Ok(Err(_)) => Ok(None),
        Err(_) => Err(SwapFailure::TimedOut(format!("no answer within {:?} (the pipeline is busy in a batch)", timeout))),
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
