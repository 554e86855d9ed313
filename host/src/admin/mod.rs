//! The admin HTTP API (axum), first slice: health, readiness, Prometheus
//! metrics, pipeline status, pause and resume. `/v1/*` needs
//! `Authorization: Bearer <token>` when a token is configured; errors are
//! JSON `{"error": ...}`.

mod metrics;

use crate::telemetry::{PipelineState, PipelineStats};
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;

/// What the admin API sees of one pipeline.
#[derive(Clone)]
pub struct PipelineEntry {
    /// Live counters and state.
    pub stats: Arc<PipelineStats>,
    /// Pause (`Some(reason)`) / resume (`None`) control.
    pub control: Arc<watch::Sender<Option<String>>>,
}

/// Shared state of the admin API (cheap to clone).
#[derive(Clone)]
pub struct AdminState {
    pipelines: Arc<BTreeMap<String, PipelineEntry>>,
    token: Option<Arc<str>>,
}

impl AdminState {
    /// State over `pipelines`; `token` protects `/v1/*` when set.
    pub fn new(pipelines: BTreeMap<String, PipelineEntry>, token: Option<String>) -> AdminState {
        AdminState { pipelines: Arc::new(pipelines), token: token.filter(|t| !t.is_empty()).map(Arc::from) }
    }
}

/// An API error: status and message, rendered as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// The router: `/healthz`, `/readyz`, `/metrics` and the `/v1` routes.
pub fn router(state: AdminState) -> Router {
    let v1 = Router::new()
        .route("/v1/pipelines", get(list_pipelines))
        .route("/v1/pipelines/{name}", get(show_pipeline))
        .route("/v1/pipelines/{name}/pause", post(pause_pipeline))
        .route("/v1/pipelines/{name}/resume", post(resume_pipeline))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { Json(serde_json::json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .merge(v1)
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

async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Constant-time comparison: the token is a secret.
        let matches = presented.is_some_and(|p| {
            p.len() == token.len() && p.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        });
        if !matches {
            return ApiError(StatusCode::UNAUTHORIZED, "missing or invalid bearer token".into()).into_response();
        }
    }
    next.run(request).await
}

fn entry<'a>(state: &'a AdminState, name: &str) -> Result<&'a PipelineEntry, ApiError> {
    state.pipelines.get(name).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no pipeline named `{name}`")))
}

async fn list_pipelines(State(state): State<AdminState>) -> Json<serde_json::Value> {
    let list: Vec<serde_json::Value> = state
        .pipelines
        .iter()
        .map(|(name, entry)| {
            let s = entry.stats.snapshot();
            serde_json::json!({
                "name": name,
                "state": s.state,
                "records_in": s.records_in,
                "records_out": s.records_out,
                "records_filtered": s.records_filtered,
                "records_dead_lettered": s.records_dead_lettered,
            })
        })
        .collect();
    Json(serde_json::json!({ "pipelines": list }))
}

async fn show_pipeline(State(state): State<AdminState>, Path(name): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    let snapshot = entry(&state, &name)?.stats.snapshot();
    Ok(Json(serde_json::json!({ "name": name, "status": snapshot })))
}

async fn pause_pipeline(State(state): State<AdminState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    entry(&state, &name)?.control.send_replace(Some("paused through the admin API".into()));
    Ok(StatusCode::ACCEPTED)
}

async fn resume_pipeline(State(state): State<AdminState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    entry(&state, &name)?.control.send_replace(None);
    Ok(StatusCode::ACCEPTED)
}

async fn ready(State(state): State<AdminState>) -> Response {
    let states: BTreeMap<&str, PipelineState> =
        state.pipelines.iter().map(|(name, entry)| (name.as_str(), entry.stats.snapshot().state)).collect();
    let ready = states.values().all(|s| matches!(s, PipelineState::Running | PipelineState::Paused(_)));
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(serde_json::json!({ "ready": ready, "pipelines": states }))).into_response()
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
    let body = metrics::render(state.pipelines.iter().map(|(name, entry)| (name.as_str(), entry.stats.snapshot())));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
