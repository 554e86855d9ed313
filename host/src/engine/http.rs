//! Outbound HTTP for sinks: `wasi:http/outgoing-handler`, restricted to the
//! hosts on the pipeline's allowlist. Other operator kinds are not linked to
//! `wasi:http` at all.

use std::sync::Arc;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiHttpHooks};
use wasmtime_wasi_http::WasiBody;

/// Hosts a sink may call: `host` or `host:port` entries, compared
/// case-insensitively with the request's authority. `*` allows every host.
#[derive(Debug, Clone, Default)]
pub struct HttpAllowlist {
    entries: Arc<[String]>,
}

impl HttpAllowlist {
    /// An allowlist from `host` / `host:port` entries.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(entries: I) -> Self {
        HttpAllowlist {
            entries: entries.into_iter().map(|e| e.into().to_ascii_lowercase()).collect(),
        }
    }

    /// Whether a request to `host` (and `port`, when explicit) may be sent.
    pub fn allows(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.to_ascii_lowercase();
        self.entries.iter().any(|entry| {
            if entry == "*" || *entry == host {
                return true;
            }
            match (entry.rsplit_once(':'), port) {
                (Some((entry_host, entry_port)), Some(port)) => {
                    entry_host == host && entry_port.parse::<u16>().ok() == Some(port)
                }
                _ => false,
            }
        })
    }

    /// Whether the list is empty (no outbound HTTP at all).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `wasi:http` hooks that refuse requests to hosts off the allowlist.
#[derive(Debug, Clone)]
pub struct AllowlistHooks {
    /// The allowlist applied to every outgoing request.
    pub allowlist: HttpAllowlist,
    /// Plugin name, for logs.
    pub plugin: Arc<str>,
}

type ResponseFuture = Box<
    dyn std::future::Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn std::future::Future<Output = Result<(), HttpError>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for AllowlistHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn std::future::Future<Output = Result<(), HttpError>> + Send>,
    ) -> ResponseFuture {
        let uri = request.uri();
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri.port_u16();
        if !self.allowlist.allows(&host, port) {
            tracing::warn!(plugin = %self.plugin, %host, "outbound HTTP request denied: host is not on the allowlist");
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        tracing::debug!(plugin = %self.plugin, uri = %uri, "outbound HTTP request");
        let _ = fut;
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn std::future::Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_matches_host_and_explicit_port() {
        let list = HttpAllowlist::new(["alerts.example.com", "127.0.0.1:8080"]);
        assert!(list.allows("alerts.example.com", None));
        assert!(list.allows("ALERTS.example.com", Some(443)));
        assert!(list.allows("127.0.0.1", Some(8080)));
        assert!(!list.allows("127.0.0.1", Some(8081)));
        assert!(!list.allows("evil.example.com", None));
        assert!(HttpAllowlist::new(["*"]).allows("anything", Some(1)));
        assert!(!HttpAllowlist::default().allows("localhost", None));
    }
}
