//! The admin HTTP API (axum): plugins (upload, versions, rollback, removal),
//! pipelines (status with per-partition lag, pause, resume, dead letters,
//! redrive), health, readiness, Prometheus metrics and the OpenAPI document
//! generated from the handlers below (`/v1/openapi.json`).
//!
//! The web console (`/`, [`console`]) is served on the same listener and
//! uses only these routes; recent rates come from [`history`].
//!
//! Every route except `/healthz`, `/readyz` and the console's static files
//! needs `Authorization: Bearer <token>` when a token is configured; without
//! one, [`guard`] applies the CSRF and DNS rebinding rules. Errors are JSON
//! `{"error": ...}`.

mod console;
pub mod guard;
pub mod history;
mod metrics;
mod openapi;
mod upload;

use crate::deploy::{DeployError, DeployOutcome, Deployer};
use crate::pipeline::PipelineControl;
use crate::pipeline::command::{PipelineCommand, REPLY_TIMEOUT, RedriveReport, RedriveRequest};
use crate::pipeline::dead_letters::{self, DeadLetterView};
use crate::registry::PluginRecord;
use crate::telemetry::{PipelineState, StatsSnapshot};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::extract::rejection::QueryRejection;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Body limit of every route but plugin upload.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Requests taking longer are answered 408 (uploads compile; redrives replay).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Uploads read at the same time; more are answered `429`.
const MAX_CONCURRENT_UPLOADS: usize = 2;
/// Dead letters one peek returns at most.
pub const MAX_PEEK: usize = 1000;
/// The longest shadow run, in seconds (a day).
const MAX_SHADOW_SECONDS: u64 = 86_400;

/// Shared state of the admin API (cheap to clone).
#[derive(Clone)]
pub struct AdminState {
    deployer: Deployer,
    guard: guard::Guard,
    history: Arc<history::RateHistory>,
    uploads: Arc<tokio::sync::Semaphore>,
}

impl AdminState {
    /// State over the deployer's pipelines; `token` protects every route but
    /// `/healthz` and `/readyz` when set.
    pub fn new(deployer: Deployer, token: Option<String>) -> AdminState {
        AdminState {
            deployer,
            guard: guard::Guard::new(token.as_deref(), &[]),
            history: Arc::default(),
            uploads: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_UPLOADS)),
        }
    }

    /// Also answers requests without a token whose `Host` is one of `hosts`
    /// (besides IP addresses and `localhost`).
    pub fn with_allowed_hosts(mut self, hosts: &[String]) -> AdminState {
        self.guard = self.guard.with_allowed_hosts(hosts);
        self
    }

    fn pipeline(&self, name: &str) -> Result<&PipelineControl, ApiError> {
        self.deployer.pipelines().get(name).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no pipeline named `{name}`")))
    }
}

/// An API error: status and message, rendered as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

/// The body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl From<DeployError> for ApiError {
    fn from(error: DeployError) -> ApiError {
        ApiError(StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), error.to_string())
    }
}

/// The router.
pub fn router(state: AdminState) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/v1/openapi.json", get(|| async { Json(openapi::document()) }))
        .route("/v1/plugins", get(list_plugins))
        .route(
            "/v1/plugins/{name}",
            put(push_plugin).layer(DefaultBodyLimit::disable()).get(show_plugin).delete(remove_plugin),
        )
        .route("/v1/plugins/{name}/rollback", post(rollback_plugin))
        .route("/v1/plugins/{name}/shadow", get(shadow_report))
        .route("/v1/plugins/{name}/shadow/promote", post(promote_shadow))
        .route("/v1/plugins/{name}/shadow/discard", post(discard_shadow))
        .route("/v1/pipelines", get(list_pipelines))
        .route("/v1/pipelines/{name}", get(show_pipeline))
        .route("/v1/pipelines/{name}/pause", post(pause_pipeline))
        .route("/v1/pipelines/{name}/resume", post(resume_pipeline))
        .route("/v1/pipelines/{name}/rates", get(pipeline_rates))
        .route("/v1/pipelines/{name}/dlq", get(peek_dead_letters))
        .route("/v1/pipelines/{name}/dlq/redrive", post(redrive_dead_letters))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard::require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready))
        .merge(console::routes())
        .merge(protected)
        .layer(middleware::from_fn_with_state(state.clone(), guard::without_token))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

/// Liveness, and whether the other routes need the bearer token.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The process is alive: `{\"status\": \"ok\", \"auth\": true}`")))]
async fn healthz(State(state): State<AdminState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok", "auth": state.guard.has_token()}))
}

/// Readiness of one pipeline.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Running or paused.
    pub running: bool,
    /// The consumer received its partition assignment.
    pub partitions_assigned: bool,
    /// At least one broker connection is up.
    pub broker_reachable: bool,
    /// Operators are loaded (always true once running).
    pub plugins_loaded: bool,
}

/// Ready when every pipeline runs (or is paused), has its partitions assigned and reaches a broker.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "Ready"), (status = 503, description = "Not ready")))]
async fn ready(State(state): State<AdminState>) -> Response {
    let mut all = true;
    let mut pipelines = BTreeMap::new();
    for (name, pipeline) in state.deployer.pipelines() {
        let snapshot = pipeline.stats.snapshot();
        let running = matches!(snapshot.state, PipelineState::Running | PipelineState::Paused(_));
        let readiness = Readiness {
            running,
            partitions_assigned: snapshot.assigned_partitions.is_some(),
            broker_reachable: snapshot.brokers_up > 0,
            plugins_loaded: running,
        };
        all &= readiness.running && readiness.partitions_assigned && readiness.broker_reachable;
        pipelines.insert(name.clone(), readiness);
    }
    let status = if all { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(serde_json::json!({ "ready": all, "pipelines": pipelines }))).into_response()
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")), security(("bearer" = [])))]
async fn metrics_text(State(state): State<AdminState>) -> Response {
    let body = metrics::render(state.deployer.pipelines().values());
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}

/// A plugin with the pipelines that use it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PluginView {
    /// Name, live version and history.
    #[serde(flatten)]
    pub record: PluginRecord,
    /// Pipelines running it.
    pub used_by: Vec<String>,
    /// The last push or rollback and how it ended (kept after its request is gone).
    pub last_deploy: Option<crate::deploy::DeployStatus>,
}

/// Every plugin.
#[utoipa::path(get, path = "/v1/plugins", responses((status = 200, body = Vec<PluginView>)), security(("bearer" = [])))]
async fn list_plugins(State(state): State<AdminState>) -> Json<Vec<PluginView>> {
    let deployer = &state.deployer;
    Json(
        deployer
            .registry()
            .list()
            .into_iter()
            .map(|record| PluginView { used_by: deployer.users(&record.name), last_deploy: deployer.last_deploy(&record.name), record })
            .collect(),
    )
}

/// One plugin: versions and which pipelines use it.
#[utoipa::path(get, path = "/v1/plugins/{name}", params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, body = PluginView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn show_plugin(State(state): State<AdminState>, Path(name): Path<String>) -> Result<Json<PluginView>, ApiError> {
    let record = state.deployer.registry().get(&name).ok_or_else(|| ApiError::from(DeployError::UnknownPlugin(name.clone())))?;
    Ok(Json(PluginView { used_by: state.deployer.users(&name), last_deploy: state.deployer.last_deploy(&name), record }))
}

/// Uploads a new version (the body is the component) and makes it live in every pipeline using the name, at their next batch boundary.
#[utoipa::path(put, path = "/v1/plugins/{name}", params(("name" = String, Path, description = "Plugin name: a-z, 0-9, -, _, ."), PushQuery),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses(
        (status = 201, description = "New version live", body = DeployOutcome),
        (status = 200, description = "Identical to the live version; nothing changed", body = DeployOutcome),
        (status = 202, description = "Shadow run started (mode=shadow)", body = crate::deploy::ShadowStarted),
        (status = 400, description = "Bad name, not WebAssembly, not a component, not an operator", body = ErrorBody),
        (status = 413, description = "Larger than the upload limit", body = ErrorBody),
        (status = 429, description = "Too many uploads at once", body = ErrorBody),
        (status = 422, description = "Wrong operator kind for a pipeline, init failed, or a pipeline refused the swap", body = ErrorBody)),
    security(("bearer" = [])))]
async fn push_plugin(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    query: Result<Query<PushQuery>, QueryRejection>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let limit = state.deployer.max_plugin_bytes();
    let checked = query.map_err(bad_query).and_then(|Query(query)| match query.mode.as_deref() {
        None | Some("live") => Ok(None),
        Some("shadow") => shadow_budget(&query).map(Some),
        Some(other) => Err(ApiError(StatusCode::BAD_REQUEST, format!("mode `{other}`: expected `live` or `shadow`"))),
    });
    let permit = state.uploads.clone().try_acquire_owned().map_err(|_| {
        ApiError(StatusCode::TOO_MANY_REQUESTS, format!("{MAX_CONCURRENT_UPLOADS} uploads are in progress; retry when one has finished"))
    });
    // Refused before reading: drain the body (nothing kept) so the client reads the answer.
    let (shadow, _permit) = match (checked, permit) {
        (Ok(shadow), Ok(permit)) => (shadow, permit),
        (Err(error), _) | (_, Err(error)) => {
            upload::drain(body, limit).await;
            return Err(error);
        }
    };
    let spool = state.deployer.registry().data_dir().map_or_else(std::env::temp_dir, |dir| dir.join("uploads"));
    let body = upload::read_upload(body, limit, &spool).await?;
    if let Some((batches, duration)) = shadow {
        let started = state.deployer.shadow(&name, body, batches, duration).await?;
        return Ok((StatusCode::ACCEPTED, Json(started)).into_response());
    }
    let outcome = state.deployer.push(&name, body).await?;
    let status = if outcome.changed { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(outcome)).into_response())
}

/// A query string that does not parse: `400` with the reason.
fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, rejection.body_text())
}

/// The batch and time budget of a shadow run, checked.
fn shadow_budget(query: &PushQuery) -> Result<(u64, Duration), ApiError> {
    let batches = query.batches.unwrap_or(100);
    let seconds = query.seconds.unwrap_or(300);
    if batches == 0 {
        return Err(ApiError(StatusCode::BAD_REQUEST, "`batches` must be at least 1".into()));
    }
    if !(1..=MAX_SHADOW_SECONDS).contains(&seconds) {
        return Err(ApiError(StatusCode::BAD_REQUEST, format!("`seconds` must be between 1 and {MAX_SHADOW_SECONDS}")));
    }
    Ok((batches, Duration::from_secs(seconds)))
}

/// Upload options.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PushQuery {
    /// `live` (default) or `shadow`: run beside the live version without producing, then compare.
    pub mode: Option<String>,
    /// Shadow: batches to compare (default 100).
    pub batches: Option<u64>,
    /// Shadow: seconds at most (default 300, at most 86400).
    pub seconds: Option<u64>,
}

/// The shadow run's comparison, per pipeline.
#[utoipa::path(get, path = "/v1/plugins/{name}/shadow", params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, body = Vec<crate::operator::shadow::ShadowReport>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn shadow_report(State(state): State<AdminState>, Path(name): Path<String>) -> Result<Json<Vec<crate::operator::shadow::ShadowReport>>, ApiError> {
    state.deployer.shadow_reports(&name).map(Json).ok_or_else(|| DeployError::NoShadow(name).into())
}

/// Makes the shadow candidate the next live version (same checks as an upload).
#[utoipa::path(post, path = "/v1/plugins/{name}/shadow/promote", params(("name" = String, Path, description = "Plugin name")),
    responses((status = 201, body = DeployOutcome), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn promote_shadow(State(state): State<AdminState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let outcome = state.deployer.promote(&name).await?;
    Ok((StatusCode::CREATED, Json(outcome)).into_response())
}

/// Stops the shadow run and forgets the candidate.
#[utoipa::path(post, path = "/v1/plugins/{name}/shadow/discard", params(("name" = String, Path, description = "Plugin name")),
    responses((status = 204, description = "Discarded"), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn discard_shadow(State(state): State<AdminState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    state.deployer.discard(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rollback target.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Version to make live (default: the one before the live one).
    pub version: Option<u32>,
}

/// Makes an earlier version live again.
#[utoipa::path(post, path = "/v1/plugins/{name}/rollback", params(("name" = String, Path, description = "Plugin name")),
    request_body(content = Option<RollbackRequest>, content_type = "application/json"),
    responses((status = 200, body = DeployOutcome), (status = 404, body = ErrorBody), (status = 409, description = "No earlier version", body = ErrorBody)),
    security(("bearer" = [])))]
async fn rollback_plugin(State(state): State<AdminState>, Path(name): Path<String>, body: Bytes) -> Result<Json<DeployOutcome>, ApiError> {
    let request: RollbackRequest = json_or_default(&body)?;
    Ok(Json(state.deployer.rollback(&name, request.version).await?))
}

/// What to remove.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    /// Only this version (not the live one); its blob leaves the data dir.
    pub version: Option<u32>,
}

/// Removes a plugin and its versions (answers the removed record), or one version that is not live (answers what remains).
#[utoipa::path(delete, path = "/v1/plugins/{name}", params(("name" = String, Path, description = "Plugin name"), RemoveQuery),
    responses((status = 200, body = PluginRecord), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "A pipeline uses it, or the version is live", body = ErrorBody)),
    security(("bearer" = [])))]
async fn remove_plugin(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    query: Result<Query<RemoveQuery>, QueryRejection>,
) -> Result<Json<PluginRecord>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    match query.version {
        Some(version) => Ok(Json(state.deployer.remove_version(&name, version).await?)),
        None => Ok(Json(state.deployer.remove(&name).await?)),
    }
}

/// A pipeline in the list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PipelineSummary {
    /// Name.
    pub name: String,
    /// Lifecycle state.
    pub state: PipelineState,
    /// Records consumed.
    pub records_in: u64,
    /// Records written.
    pub records_out: u64,
    /// Records filtered.
    pub records_filtered: u64,
    /// Records dead-lettered.
    pub records_dead_lettered: u64,
    /// Live version per operator.
    pub plugin_versions: BTreeMap<String, String>,
}

/// Every pipeline.
#[utoipa::path(get, path = "/v1/pipelines", responses((status = 200, body = Vec<PipelineSummary>)), security(("bearer" = [])))]
async fn list_pipelines(State(state): State<AdminState>) -> Json<Vec<PipelineSummary>> {
    Json(
        state
            .deployer
            .pipelines()
            .iter()
            .map(|(name, pipeline)| {
                let s = pipeline.stats.snapshot();
                PipelineSummary {
                    name: name.clone(),
                    state: s.state,
                    records_in: s.records_in,
                    records_out: s.records_out,
                    records_filtered: s.records_filtered,
                    records_dead_lettered: s.records_dead_lettered,
                    plugin_versions: s.plugin_versions,
                }
            })
            .collect(),
    )
}

/// A pipeline's full status.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PipelineStatus {
    /// Name.
    pub name: String,
    /// Operators in chain order.
    pub operators: Vec<String>,
    /// Dead-letter topic.
    pub dead_letter_topic: String,
    /// Counters, state, versions, per-partition offsets and lag.
    pub status: StatsSnapshot,
}

/// One pipeline: state, counters, plugin versions, per-partition committed offset and lag.
#[utoipa::path(get, path = "/v1/pipelines/{name}", params(("name" = String, Path, description = "Pipeline name")),
    responses((status = 200, body = PipelineStatus), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn show_pipeline(State(state): State<AdminState>, Path(name): Path<String>) -> Result<Json<PipelineStatus>, ApiError> {
    let pipeline = state.pipeline(&name)?;
    Ok(Json(PipelineStatus {
        name,
        operators: pipeline.operators.iter().map(|o| o.name.clone()).collect(),
        dead_letter_topic: pipeline.dead_letters.topic.clone(),
        status: pipeline.stats.snapshot(),
    }))
}

/// Pauses consumption at the next batch boundary (group membership kept).
#[utoipa::path(post, path = "/v1/pipelines/{name}/pause", params(("name" = String, Path, description = "Pipeline name")),
    responses((status = 202, description = "Pausing"), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn pause_pipeline(State(state): State<AdminState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    state.pipeline(&name)?.pause.send_replace(Some("paused through the admin API".into()));
    Ok(StatusCode::ACCEPTED)
}

/// Resumes from the last committed offsets.
#[utoipa::path(post, path = "/v1/pipelines/{name}/resume", params(("name" = String, Path, description = "Pipeline name")),
    responses((status = 202, description = "Resuming"), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn resume_pipeline(State(state): State<AdminState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    state.pipeline(&name)?.pause.send_replace(None);
    Ok(StatusCode::ACCEPTED)
}

/// Per-second rates of records in, out, filtered and dead-lettered, and the
/// mean operator call time per plugin version, every 5 s over the last 15
/// minutes (sampled in the process from its own counters).
#[utoipa::path(get, path = "/v1/pipelines/{name}/rates", params(("name" = String, Path, description = "Pipeline name")),
    responses((status = 200, body = history::RateHistoryView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn pipeline_rates(State(state): State<AdminState>, Path(name): Path<String>) -> Result<Json<history::RateHistoryView>, ApiError> {
    state.pipeline(&name)?;
    let points = state.history.points(&name);
    Ok(Json(history::RateHistoryView { pipeline: name, interval_seconds: history::SAMPLE_INTERVAL.as_secs(), points }))
}

/// Dead-letter query.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PeekQuery {
    /// At most this many (newest), default 100, at most 1000.
    pub limit: Option<usize>,
    /// Only this error kind (`weir.error.kind`).
    pub kind: Option<String>,
}

/// The newest dead letters with their `weir.error.*` and `weir.source.*` headers, oldest first.
#[utoipa::path(get, path = "/v1/pipelines/{name}/dlq", params(("name" = String, Path, description = "Pipeline name"), PeekQuery),
    responses((status = 200, body = Vec<DeadLetterView>), (status = 400, description = "Bad limit", body = ErrorBody), (status = 404, body = ErrorBody), (status = 502, description = "Kafka unreachable", body = ErrorBody)),
    security(("bearer" = [])))]
async fn peek_dead_letters(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    query: Result<Query<PeekQuery>, QueryRejection>,
) -> Result<Json<Vec<DeadLetterView>>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let topic = state.pipeline(&name)?.dead_letters.clone();
    let limit = query.limit.unwrap_or(100);
    if limit > MAX_PEEK {
        return Err(ApiError(StatusCode::BAD_REQUEST, format!("`limit` is at most {MAX_PEEK}")));
    }
    let views = tokio::task::spawn_blocking(move || dead_letters::peek(&topic, limit, query.kind.as_deref()))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError(StatusCode::BAD_GATEWAY, format!("reading the dead-letter topic: {e}")))?;
    Ok(Json(views))
}

/// Redrive options.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveOptions {
    /// Only dead letters written at or after this time (RFC 3339 or Unix ms).
    pub since: Option<String>,
    /// At most this many dead letters.
    pub limit: Option<u64>,
}

/// Replays dead letters through the current chain: successes to the output, failures back to the DLQ (`weir.attempts` incremented). Progress is committed, so a redrive resumes where the last stopped.
#[utoipa::path(post, path = "/v1/pipelines/{name}/dlq/redrive", params(("name" = String, Path, description = "Pipeline name")),
    request_body(content = Option<RedriveOptions>, content_type = "application/json"),
    responses((status = 200, body = RedriveReport), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)),
    security(("bearer" = [])))]
async fn redrive_dead_letters(State(state): State<AdminState>, Path(name): Path<String>, body: Bytes) -> Result<Json<RedriveReport>, ApiError> {
    let options: RedriveOptions = json_or_default(&body)?;
    let since_ms = options.since.as_deref().map(parse_time_ms).transpose()?;
    let pipeline = state.pipeline(&name)?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    let request = PipelineCommand::Redrive(RedriveRequest { since_ms, limit: options.limit, reply });
    let gone = || ApiError(StatusCode::CONFLICT, format!("pipeline `{name}` is not running"));
    pipeline.commands.send(request).await.map_err(|_| gone())?;
    match tokio::time::timeout(REQUEST_TIMEOUT.max(REPLY_TIMEOUT), answer).await {
        Ok(Ok(Ok(report))) => Ok(Json(report)),
        Ok(Ok(Err(message))) => Err(ApiError(StatusCode::BAD_GATEWAY, message)),
        Ok(Err(_)) => Err(gone()),
        Err(_) => Err(ApiError(StatusCode::GATEWAY_TIMEOUT, "redrive did not finish in time; it goes on in the pipeline".into())),
    }
}

fn json_or_default<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() || trimmed == b"null" {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

/// RFC 3339 or Unix milliseconds.
pub fn parse_time_ms(text: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("`since`: expected RFC 3339 (2026-11-23T10:00:00Z) or Unix ms: {e}")))
}

/// Why the admin API could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminStartError {
    /// A non-loopback address without a token.
    #[error("admin listen address {0} is not loopback: set a token (--admin-token-file / WEIR_ADMIN_TOKEN_FILE, or --admin-token) or pass --insecure-admin")]
    InsecureListen(std::net::SocketAddr),
    /// Binding failed.
    #[error("admin listen address {addr}: {source}")]
    Bind {
        /// Address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Binds `addr` and serves the API in the background until `stop` turns
/// true. Refuses a non-loopback address without a token unless `insecure`.
/// Returns the bound address.
pub async fn start(
    addr: std::net::SocketAddr,
    state: AdminState,
    insecure: bool,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<std::net::SocketAddr, AdminStartError> {
    let auth = state.guard.has_token();
    if !addr.ip().is_loopback() && !auth && !insecure {
        return Err(AdminStartError::InsecureListen(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| AdminStartError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(|source| AdminStartError::Bind { addr, source })?;
    crate::engine::protect_admin_listener(bound);
    tracing::info!(addr = %bound, auth, "admin API listening");
    if !auth {
        tracing::warn!(
            addr = %bound,
            "the admin API is unauthenticated: every local user and process that reaches {bound} can deploy code, pause pipelines and read dead letters; set a token (--admin-token-file, WEIR_ADMIN_TOKEN_FILE)"
        );
    }
    let pipelines = state.deployer.pipelines().values().cloned().collect();
    tokio::spawn(state.history.clone().run(pipelines, stop.clone()));
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(error) = serve(listener, state, shutdown).await {
            tracing::error!(%error, "admin API failed");
        }
        crate::engine::release_admin_listener(bound);
    });
    Ok(bound)
}
