//! A client of the admin API, used by `weir plugin|pipeline|dlq ...`.

use serde_json::Value;

/// Client failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not get an HTTP answer.
    #[error("admin API at {url}: {source}")]
    Transport {
        /// URL requested.
        url: String,
        /// The HTTP client's error.
        source: reqwest::Error,
    },
    /// The API answered with an error status.
    #[error("admin API answered {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The `error` field of the body, or the body.
        message: String,
    },
}

/// The admin API at `base` (e.g. `http://127.0.0.1:7070`).
pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client; `token` is sent as a bearer token when set.
    pub fn new(base: &str, token: Option<String>) -> AdminClient {
        AdminClient { base: base.trim_end_matches('/').to_owned(), token: token.filter(|t| !t.is_empty()), http: reqwest::Client::new() }
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// POST `path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let bytes = serde_json::to_vec(body).expect("JSON values serialise");
        self.send(reqwest::Method::POST, path, Some((bytes, "application/json"))).await
    }

    /// PUT `path` with a component as the body.
    pub async fn put_wasm(&self, path: &str, component: Vec<u8>) -> Result<Value, ClientError> {
        self.send(reqwest::Method::PUT, path, Some((component, "application/wasm"))).await
    }

    /// DELETE `path`.
    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<(Vec<u8>, &str)>) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        // The header marks a deliberate client call: without a token the API
        // refuses state changes without it or a JSON body (CSRF guard).
        let mut request = self.http.request(method, &url).header(crate::admin::guard::CLIENT_HEADER, "cli");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some((bytes, content_type)) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type).body(bytes);
        }
        let transport = |source| ClientError::Transport { url: url.clone(), source };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status.is_success() {
            Ok(value)
        } else {
            let message = value.get("error").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| value.to_string());
            Err(ClientError::Api { status: status.as_u16(), message })
        }
    }
}
