//! Outbound HTTP for sinks: `wasi:http/outgoing-handler`, restricted to the
//! hosts on the pipeline's allowlist. Other operator kinds are not linked to
//! `wasi:http` at all. Whatever the allowlist says (`*`, `127.0.0.1`), a
//! request that resolves to one of this process's admin listeners is refused:
//! a sink never drives the admin API.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
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
    /// the list's timeouts and to 1.5x `ceiling` (the call deadline, when
    /// set). The call deadline ends a call that waits that long first, as a
    /// `deadline` trap (the request is dropped with the call); a timeout cut
    /// to exactly the deadline would race it and sometimes hand the guest a
    /// timeout error instead.
    pub fn bound(&self, guest: Option<RequestOptions>, ceiling: Option<Duration>) -> RequestOptions {
        let ceiling = ceiling.map(|deadline| deadline + deadline / 2);
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

/// The admin listeners of this process (sinks may not call them).
static ADMIN_LISTENERS: Mutex<Vec<SocketAddr>> = Mutex::new(Vec::new());

/// Records an admin listener's bound address: from now on no sink request
/// that resolves to it is sent.
pub fn protect_admin_listener(addr: SocketAddr) {
    let mut listeners = ADMIN_LISTENERS.lock().unwrap_or_else(|e| e.into_inner());
    if !listeners.contains(&addr) {
        listeners.push(addr);
    }
}

/// Forgets an admin listener that stopped (its port may be reused).
pub fn release_admin_listener(addr: SocketAddr) {
    ADMIN_LISTENERS.lock().unwrap_or_else(|e| e.into_inner()).retain(|a| *a != addr);
}

/// Whether a connection to `target` would reach one of `listeners`: same
/// port, and the same address, a loopback or unspecified one, or (for a
/// listener on `0.0.0.0`/`::`) any address of this host.
fn reaches_listener(target: SocketAddr, listeners: &[SocketAddr]) -> bool {
    let ip = target.ip();
    listeners.iter().any(|listener| {
        listener.port() == target.port()
            && (listener.ip() == ip || ip.is_loopback() || ip.is_unspecified() || (listener.ip().is_unspecified() && is_local_address(ip)))
    })
}

/// Whether `ip` is an address of this host: the kernel picks it as the
/// source address of a (packet-free) UDP "connection" to itself.
fn is_local_address(ip: IpAddr) -> bool {
    let unspecified: SocketAddr = if ip.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    std::net::UdpSocket::bind(unspecified)
        .and_then(|socket| {
            socket.connect((ip, 9))?;
            socket.local_addr()
        })
        .is_ok_and(|local| local.ip() == ip)
}

/// Whether `host:port` resolves to an admin listener of this process.
async fn targets_admin(host: &str, port: u16) -> bool {
    let listeners = ADMIN_LISTENERS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if listeners.is_empty() {
        return false;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match tokio::net::lookup_host((host, port)).await {
        Ok(addresses) => addresses.into_iter().any(|a| reaches_listener(a, &listeners)),
        // Unresolvable: the request fails on its own.
        Err(_) => false,
    }
}

/// `wasi:http` hooks that refuse requests to hosts off the allowlist.
#[derive(Debug, Clone)]
pub struct AllowlistHooks {
    /// The allowlist applied to every outgoing request.
    pub allowlist: HttpAllowlist,
    /// Plugin name, for logs.
    pub plugin: Arc<str>,
    /// The call deadline, which bounds request timeouts (see [`HttpAllowlist::bound`]).
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
        let port = port.unwrap_or(if uri.scheme() == Some(&http::uri::Scheme::HTTPS) { 443 } else { 80 });
        let plugin = self.plugin.clone();
        let options = self.allowlist.bound(options, self.call_deadline);
        Box::new(async move {
            use http_body_util::BodyExt;
            if targets_admin(&host, port).await {
                tracing::warn!(%plugin, %host, port, "outbound HTTP request denied: it would reach this process's admin API");
                return Err(HttpError::HttpRequestDenied);
            }
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
    fn admin_listeners_are_reached_through_loopback_and_local_addresses() {
        let loopback: SocketAddr = "127.0.0.1:7070".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:7070".parse().unwrap();
        assert!(reaches_listener("127.0.0.1:7070".parse().unwrap(), &[loopback]));
        assert!(reaches_listener("0.0.0.0:7070".parse().unwrap(), &[loopback]));
        assert!(reaches_listener("[::1]:7070".parse().unwrap(), &[any]));
        assert!(!reaches_listener("127.0.0.1:7071".parse().unwrap(), &[loopback]));
        assert!(!reaches_listener("192.0.2.1:7070".parse().unwrap(), &[any]), "a remote host on the same port");
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
        assert_eq!(bound.first_byte_timeout, Some(Duration::from_millis(7500)), "cut to past the call deadline");
        assert_eq!(bound.between_bytes_timeout, Some(Duration::from_millis(50)), "a shorter guest timeout stays");
        assert_eq!(list.bound(None, None).first_byte_timeout, Some(Duration::from_secs(10)));
    }
}
