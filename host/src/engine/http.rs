//! Outbound HTTP for sinks: `wasi:http/outgoing-handler`, restricted to the
//! hosts on the pipeline's allowlist. Other operator kinds are not linked to
//! `wasi:http` at all.

use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiHttpHooks};
use wasmtime_wasi_http::WasiBody;

/// Default time to establish a connection.
pub const DEFAULT_HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time to wait for a response (its headers, then each body frame).
pub const DEFAULT_HTTP_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Hosts a sink may call: `host` or `host:port` entries, compared
/// case-insensitively with the request's authority. `*` allows every host.
/// Also carries the timeouts of those requests, which bound whatever the
/// guest asks for (and are themselves cut to the call deadline).
#[derive(Debug, Clone)]
pub struct HttpAllowlist {
    entries: Arc<[String]>,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl Default for HttpAllowlist {
    fn default() -> Self {
        HttpAllowlist::new(std::iter::empty::<String>())
    }
}

impl HttpAllowlist {
    /// An allowlist from `host` / `host:port` entries, with default timeouts.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(entries: I) -> Self {
        HttpAllowlist {
            entries: entries.into_iter().map(|e| e.into().to_ascii_lowercase()).collect(),
            connect_timeout: DEFAULT_HTTP_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_HTTP_RESPONSE_TIMEOUT,
        }
    }

    /// The same list with other connect and response timeouts.
    pub fn with_timeouts(mut self, connect: Duration, response: Duration) -> Self {
        self.connect_timeout = connect;
        self.response_timeout = response;
        self
    }

    /// The request options the host applies: the guest's own, each cut to
    /// the list's timeouts and to `ceiling` (the call deadline, when set).
    pub fn bound(&self, guest: Option<RequestOptions>, ceiling: Option<Duration>) -> RequestOptions {
        let cap = |ours: Duration, theirs: Option<Duration>| {
            let mut limit = ours.min(ceiling.unwrap_or(Duration::MAX));
            if let Some(theirs) = theirs {
                limit = limit.min(theirs);
            }
            Some(limit)
        };
        let guest = guest.unwrap_or_default();
        RequestOptions {
            connect_timeout: cap(self.connect_timeout, guest.connect_timeout),
            first_byte_timeout: cap(self.response_timeout, guest.first_byte_timeout),
            between_bytes_timeout: cap(self.response_timeout, guest.between_bytes_timeout),
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
    /// The call deadline, which no request timeout may exceed.
    pub call_deadline: Option<Duration>,
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
        let options = self.allowlist.bound(options, self.call_deadline);
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
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

    #[test]
    fn request_timeouts_never_exceed_the_list_or_the_call_deadline() {
        let list = HttpAllowlist::new(["*"]).with_timeouts(Duration::from_secs(2), Duration::from_secs(10));
        let greedy = RequestOptions {
            connect_timeout: Some(Duration::from_secs(3600)),
            first_byte_timeout: None,
            between_bytes_timeout: Some(Duration::from_millis(50)),
        };
        let bound = list.bound(Some(greedy), Some(Duration::from_secs(5)));
        assert_eq!(bound.connect_timeout, Some(Duration::from_secs(2)));
        assert_eq!(bound.first_byte_timeout, Some(Duration::from_secs(5)), "cut to the call deadline");
        assert_eq!(bound.between_bytes_timeout, Some(Duration::from_millis(50)), "a shorter guest timeout stays");
        assert_eq!(list.bound(None, None).first_byte_timeout, Some(Duration::from_secs(10)));
    }
}
