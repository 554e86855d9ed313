//! Outbound HTTP for sinks (feature `http`), through
//! `wasi:http/outgoing-handler` (wasi 0.2). The host only allows
//! destinations on the pipeline's allowlist; a refused request is
//! reported as [`HttpError::Denied`].

use core::fmt;

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasi::io::streams::StreamError;

/// An HTTP response: status code and the whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response body.
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a request produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The host refused the request (destination not on the allowlist,
    /// wasi-http `HTTP-request-denied` or `destination-IP-prohibited`).
    Denied(String),
    /// The connection timed out (connect, read, write, DNS or response).
    Timeout(String),
    /// Connecting or talking to the destination failed (refused, reset, DNS…).
    Connection(String),
    /// The URL or request is malformed.
    InvalidRequest(String),
    /// Any other protocol error.
    Other(String),
}

impl HttpError {
    /// Whether the host refused the request.
    pub fn is_denied(&self) -> bool {
        matches!(self, HttpError::Denied(_))
    }
    /// Whether retrying later may succeed (timeouts and connection errors).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            HttpError::Timeout(_) | HttpError::Connection(_) | HttpError::Other(_)
        )
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Denied(m) => write!(f, "request denied by host: {m}"),
            HttpError::Timeout(m) => write!(f, "timeout: {m}"),
            HttpError::Connection(m) => write!(f, "connection error: {m}"),
            HttpError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            HttpError::Other(m) => write!(f, "http error: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<ErrorCode> for HttpError {
    fn from(e: ErrorCode) -> Self {
        let msg = format!("{e:?}");
        match e {
            ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => {
                HttpError::Denied(msg)
            }
            ErrorCode::DnsTimeout
            | ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::HttpResponseTimeout => HttpError::Timeout(msg),
            ErrorCode::DnsError(_)
            | ErrorCode::DestinationNotFound
            | ErrorCode::DestinationUnavailable
            | ErrorCode::DestinationIpUnroutable
            | ErrorCode::ConnectionRefused
            | ErrorCode::ConnectionTerminated
            | ErrorCode::ConnectionLimitReached
            | ErrorCode::TlsProtocolError
            | ErrorCode::TlsCertificateError
            | ErrorCode::TlsAlertReceived(_)
            | ErrorCode::HttpResponseIncomplete => HttpError::Connection(msg),
            ErrorCode::HttpRequestMethodInvalid
            | ErrorCode::HttpRequestUriInvalid
            | ErrorCode::HttpRequestUriTooLong => HttpError::InvalidRequest(msg),
            _ => HttpError::Other(msg),
        }
    }
}

fn stream_err(e: StreamError) -> HttpError {
    match e {
        StreamError::LastOperationFailed(err) => HttpError::Connection(err.to_debug_string()),
        StreamError::Closed => HttpError::Connection("stream closed".into()),
    }
}

/// Splits `http[s]://authority/path?query`.
fn parse_url(url: &str) -> Result<(Scheme, &str, &str), HttpError> {
    let (scheme, rest) = if let Some(r) = url.strip_prefix("http://") {
        (Scheme::Http, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (Scheme::Https, r)
    } else {
        return Err(HttpError::InvalidRequest(format!(
            "unsupported URL `{url}` (need http:// or https://)"
        )));
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() {
        return Err(HttpError::InvalidRequest(format!(
            "URL `{url}` has no host"
        )));
    }
    Ok((scheme, authority, if path.is_empty() { "/" } else { path }))
}

/// POSTs `body` to `url` with the given content type and waits for the
/// whole response.
pub fn post(url: &str, content_type: &str, body: &[u8]) -> Result<Response, HttpError> {
    request(Method::Post, url, &[("content-type", content_type)], body)
}

/// Sends a request with `method`, extra `headers` and `body`, and waits for
/// the whole response.
pub fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, HttpError> {
    let (scheme, authority, path) = parse_url(url)?;
    let mut entries: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    // A known length: some webhook receivers refuse chunked uploads.
    if !entries.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-length")) {
        entries.push(("content-length".into(), body.len().to_string().into_bytes()));
    }
    let fields = Fields::from_list(&entries)
        .map_err(|e| HttpError::InvalidRequest(format!("bad header: {e:?}")))?;
    let req = OutgoingRequest::new(fields);
    let bad = |what: &str| HttpError::InvalidRequest(format!("invalid {what} in `{url}`"));
    req.set_method(&method).map_err(|_| bad("method"))?;
    req.set_scheme(Some(&scheme)).map_err(|_| bad("scheme"))?;
    req.set_authority(Some(authority))
        .map_err(|_| bad("authority"))?;
    req.set_path_with_query(Some(path))
        .map_err(|_| bad("path"))?;
    let out_body = req
        .body()
        .map_err(|_| HttpError::Other("request body unavailable".into()))?;
    let future = outgoing_handler::handle(req, None)?;
    let sent = (|| {
        let stream = out_body
            .write()
            .map_err(|_| HttpError::Other("body stream unavailable".into()))?;
        for chunk in body.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(stream_err)?;
        }
        drop(stream);
        OutgoingBody::finish(out_body, None)?;
        Ok::<(), HttpError>(())
    })();
    if let Err(write_error) = sent {
        // The host may have refused the request (allowlist) or the peer hung
        // up: the response future carries the real reason.
        future.subscribe().block();
        return match future.get() {
            Some(Ok(Err(code))) => Err(code.into()),
            _ => Err(write_error),
        };
    }
    let response = loop {
        match future.get() {
            Some(Ok(r)) => break r?,
            Some(Err(())) => return Err(HttpError::Other("response already taken".into())),
            None => future.subscribe().block(),
        }
    };
    let status = response.status();
    let in_body = response
        .consume()
        .map_err(|_| HttpError::Other("response body unavailable".into()))?;
    let mut data = Vec::new();
    {
        let stream = in_body
            .stream()
            .map_err(|_| HttpError::Other("response stream unavailable".into()))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(bytes) => data.extend_from_slice(&bytes),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(stream_err(e)),
            }
        }
    }
    let _ = IncomingBody::finish(in_body);
    Ok(Response { status, body: data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (s, a, p) = parse_url("http://localhost:8080/hook?x=1").unwrap();
        assert!(matches!(s, Scheme::Http));
        assert_eq!((a, p), ("localhost:8080", "/hook?x=1"));
        assert_eq!(parse_url("https://h").unwrap().2, "/");
        assert!(parse_url("ftp://h/").is_err());
    }
}
