//! Who may call the admin API. With a token: `Authorization: Bearer`, compared
//! as SHA-256 digests in constant time (neither content nor length leaks).
//! Without one, a web page the operator visits must not drive the API: a
//! state-changing request needs `Content-Type: application/json` (or
//! `application/wasm` for uploads) or the [`CLIENT_HEADER`] header, which a
//! page can only send after a CORS preflight the API never grants; and the
//! `Host` must be an IP address, `localhost` or a configured name, so a
//! DNS-rebound name cannot reach it.

use super::{AdminState, ApiError};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The request header the CLI and the console send on every call.
pub const CLIENT_HEADER: &str = "x-weir-request";

/// The access rules of one admin listener (cheap to clone).
#[derive(Clone, Default)]
pub struct Guard {
    /// SHA-256 of the bearer token, when one is set.
    token_sha256: Option<[u8; 32]>,
    /// Host names accepted without a token, besides IP addresses and `localhost` (lowercase).
    allowed_hosts: Arc<[String]>,
}

impl Guard {
    /// Rules for `token` (none or empty: no token) and extra host names.
    pub fn new(token: Option<&str>, allowed_hosts: &[String]) -> Guard {
        let guard = Guard { token_sha256: token.filter(|t| !t.is_empty()).map(|t| Sha256::digest(t.as_bytes()).into()), allowed_hosts: Arc::default() };
        guard.with_allowed_hosts(allowed_hosts)
    }

    /// The same token, with these extra host names.
    pub fn with_allowed_hosts(self, allowed_hosts: &[String]) -> Guard {
        Guard { allowed_hosts: allowed_hosts.iter().map(|h| h.trim_end_matches('.').to_ascii_lowercase()).collect(), ..self }
    }

    /// Whether routes need the bearer token.
    pub fn has_token(&self) -> bool {
        self.token_sha256.is_some()
    }

    /// Whether `presented` is the token: the digests are compared, so the
    /// time taken does not depend on the token's length or content.
    fn token_matches(&self, presented: Option<&str>) -> bool {
        let Some(expected) = &self.token_sha256 else { return true };
        let digest: [u8; 32] = Sha256::digest(presented.unwrap_or_default().as_bytes()).into();
        crate::engine::constant_time_eq(&digest, expected) & presented.is_some()
    }

    /// Whether a request to `host` (a `Host` header value) may be answered
    /// without a token.
    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host).trim_end_matches('.').to_ascii_lowercase();
        name.parse::<std::net::IpAddr>().is_ok() || name == "localhost" || self.allowed_hosts.contains(&name)
    }
}

/// The name part of a `Host` value: `[::1]:7070` -> `::1`, `a.b:7070` -> `a.b`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Requires the bearer token on the routes it wraps (when one is set).
pub(super) async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let presented = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !state.guard.token_matches(presented) {
        return ApiError(StatusCode::UNAUTHORIZED, "missing or invalid bearer token".into()).into_response();
    }
    next.run(request).await
}

/// Without a token: the DNS rebinding (Host) and CSRF (content type or
/// client header) rules on every route.
pub(super) async fn without_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let guard = &state.guard;
    if guard.has_token() {
        return next.run(request).await;
    }
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).or_else(|| request.uri().authority().map(|a| a.as_str()));
    if !host.is_some_and(|h| guard.host_allowed(h)) {
        let message = format!(
            "host `{}` is not an address of this API: without a token only IP addresses, localhost and admin.allowed_hosts are answered",
            host.unwrap_or_default()
        );
        return ApiError(StatusCode::FORBIDDEN, message).into_response();
    }
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !headers.contains_key(CLIENT_HEADER) {
        let media_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
        if !matches!(media_type.as_deref(), Some("application/json" | "application/wasm")) {
            let message = format!("without a token, a {} needs Content-Type: application/json (application/wasm for uploads) or the {CLIENT_HEADER} header", request.method());
            return ApiError(StatusCode::FORBIDDEN, message).into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_split_from_ports() {
        assert_eq!(host_name("127.0.0.1:7070"), "127.0.0.1");
        assert_eq!(host_name("[::1]:7070"), "::1");
        assert_eq!(host_name("weir.internal"), "weir.internal");
        let guard = Guard::new(None, &["Weir.Internal".to_owned()]);
        for ok in ["127.0.0.1:7070", "[::1]:1", "localhost:7070", "weir.internal:7070", "10.0.0.3", "WEIR.internal."] {
            assert!(guard.host_allowed(ok), "{ok}");
        }
        for bad in ["attacker.example:7070", "localhost.attacker.example", "", "127.0.0.1.nip.io:7070"] {
            assert!(!guard.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_of_any_length_compare_by_digest() {
        let guard = Guard::new(Some("t0ken"), &[]);
        assert!(guard.token_matches(Some("t0ken")));
        for wrong in [None, Some(""), Some("t0ke"), Some("t0ken "), Some("x".repeat(4096).as_str())] {
            assert!(!guard.token_matches(wrong), "{wrong:?}");
        }
        assert!(Guard::new(Some(""), &[]).token_matches(None), "an empty token is no token");
    }
}
