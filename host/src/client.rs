//! A client of the admin API, used by `weir plugin|pipeline|dlq ...`.
//!
//! Plain HTTP/1.1 on hyper, which the host already builds for the admin
//! server and for guests' outgoing requests: one connection per call (the
//! command line makes a handful of calls), no TLS (the API listens on
//! plain HTTP; put a TLS proxy in front of it for remote access). A general
//! client (reqwest) added url, IDNA and ICU to the build for nothing the
//! admin API needs.

use bytes::Bytes;
use http::{Method, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Client failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not an `http://host[:port][/prefix]` URL.
    #[error("admin API URL `{url}`: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request did not get an HTTP answer.
    #[error("admin API at {url}: {source}")]
    Transport {
        /// URL requested.
        url: String,
        /// The connection's or HTTP client's error.
        source: Box<dyn std::error::Error + Send + Sync>,
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
}

impl AdminClient {
    /// A client; `token` is sent as a bearer token when set.
    pub fn new(base: &str, token: Option<String>) -> AdminClient {
        AdminClient { base: base.trim_end_matches('/').to_owned(), token: token.filter(|t| !t.is_empty()) }
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(Method::GET, path, None).await
    }

    /// POST `path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let bytes = serde_json::to_vec(body).expect("JSON values serialise");
        self.send(Method::POST, path, Some((bytes, "application/json"))).await
    }

    /// PUT `path` with a component as the body.
    pub async fn put_wasm(&self, path: &str, component: Vec<u8>) -> Result<Value, ClientError> {
        self.send(Method::PUT, path, Some((component, "application/wasm"))).await
    }

    /// DELETE `path`.
    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.send(Method::DELETE, path, None).await
    }

    async fn send(&self, method: Method, path: &str, body: Option<(Vec<u8>, &str)>) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let target = Target::parse(&url)?;
        // The header marks a deliberate client call: without a token the API
        // refuses state changes without it or a JSON body (CSRF guard).
        let mut request = Request::builder()
            .method(method)
            .uri(target.path_and_query.as_str())
            .header(header::HOST, target.authority.as_str())
            .header(crate::admin::guard::CLIENT_HEADER, "cli");
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let bytes = match body {
            Some((bytes, content_type)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                bytes
            }
            None => Vec::new(),
        };
        let transport = |source: Box<dyn std::error::Error + Send + Sync>| ClientError::Transport { url: url.clone(), source };
        let request = request.body(Full::new(Bytes::from(bytes))).map_err(|e| transport(e.into()))?;
        let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port)).await.map_err(|e| transport(e.into()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| transport(e.into()))?;
        let connection = tokio::spawn(connection);
        let response = sender.send_request(request).await.map_err(|e| transport(e.into()))?;
        let status = response.status();
        let bytes = response.into_body().collect().await.map_err(|e| transport(e.into()))?.to_bytes();
        connection.abort();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status.is_success() {
            Ok(value)
        } else {
            let message = value.get("error").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| value.to_string());
            Err(ClientError::Api { status: status.as_u16(), message })
        }
    }
}

/// Where a request goes: the parts of an `http://` URL.
#[derive(Debug, PartialEq)]
struct Target {
    host: String,
    port: u16,
    /// `host[:port]` as given (the Host header).
    authority: String,
    path_and_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, ClientError> {
        let invalid = |reason: &str| ClientError::Url { url: url.to_owned(), reason: reason.to_owned() };
        let uri: Uri = url.parse().map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(invalid("https is not supported: the admin API serves plain HTTP (put a TLS proxy in front of it and reach the proxy over its network, or tunnel)")),
            _ => return Err(invalid("expected http://host[:port]")),
        }
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        // IPv6 literals come bracketed (`[::1]`); connecting wants them bare.
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        Ok(Target { host, port: uri.port_u16().unwrap_or(80), authority: authority.as_str().to_owned(), path_and_query })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_into_connection_and_request_target() {
        let target = Target::parse("http://127.0.0.1:7070/weir/pipelines?x=1").unwrap();
        assert_eq!(
            target,
            Target { host: "127.0.0.1".into(), port: 7070, authority: "127.0.0.1:7070".into(), path_and_query: "/weir/pipelines?x=1".into() }
        );
        let target = Target::parse("http://[::1]/healthz").unwrap();
        assert_eq!((target.host.as_str(), target.port, target.authority.as_str()), ("::1", 80, "[::1]"));
    }

    #[test]
    fn urls_the_client_cannot_serve_are_refused_with_the_reason() {
        for (url, reason) in [("https://weir:7070/plugins", "https is not supported"), ("ftp://weir/plugins", "expected http://"), ("weir:7070/plugins", "invalid"), ("http:///x", "")] {
            let error = Target::parse(url).unwrap_err().to_string();
            assert!(error.contains(url) && error.contains(reason), "{url}: {error}");
        }
    }
}
