"""Outbound HTTP for sinks, over `wasi:http/outgoing-handler` (WASI 0.2.12).

Only usable in a component built against the SDK's `sink-operator-http`
world (`-d wit -d sdk/python/wit -w weir:python-sdk/sink-operator-http`;
scripts/build-polyglot-guests does this for every sink). The host allows
only the pipeline's allowlisted destinations; a refused request raises
`HttpError` with `kind == "denied"`.

    response = weir_sdk.http.post(url, "application/json", body)
    if 200 <= response.status < 300: ...
"""

from typing import List, NamedTuple, Optional, Sequence, Tuple

# Imported now: componentize-py's generated modules are importable only while
# the component is built (pre-initialisation), not at run time.
try:
    from componentize_py_types import Err
    from wit_world.imports import outgoing_handler, streams
    from wit_world.imports import wasi_http_types as t
except ImportError:  # another world, or plain CPython
    Err = outgoing_handler = streams = t = None


class Response(NamedTuple):
    """An HTTP response: status code and the whole body."""

    status: int
    body: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300


class HttpError(Exception):
    """Why a request produced no response. `kind` is one of `denied`, `timeout`,
    `connection`, `invalid-request`, `other`; `retryable` is true for
    timeouts, connection and other protocol errors (as in the Rust SDK)."""

    _PREFIX = {"denied": "request denied by host", "timeout": "timeout", "connection": "connection error",
               "invalid-request": "invalid request", "other": "http error"}

    def __init__(self, kind: str, detail: str):
        super().__init__("%s: %s" % (self._PREFIX.get(kind, kind), detail))
        self.kind = kind
        self.detail = detail

    @property
    def retryable(self) -> bool:
        return self.kind in ("timeout", "connection", "other")


_DENIED = {"HttpRequestDenied", "DestinationIpProhibited"}
_TIMEOUT = {"DnsTimeout", "ConnectionTimeout", "ConnectionReadTimeout", "ConnectionWriteTimeout",
            "HttpResponseTimeout"}
_CONNECTION = {"DnsError", "DestinationNotFound", "DestinationUnavailable", "DestinationIpUnroutable",
               "ConnectionRefused", "ConnectionTerminated", "ConnectionLimitReached", "TlsProtocolError",
               "TlsCertificateError", "TlsAlertReceived", "HttpResponseIncomplete"}
_INVALID = {"HttpRequestMethodInvalid", "HttpRequestUriInvalid", "HttpRequestUriTooLong"}


def _from_code(code) -> HttpError:
    name = type(code).__name__.replace("ErrorCode_", "")
    kind = ("denied" if name in _DENIED else "timeout" if name in _TIMEOUT else
            "connection" if name in _CONNECTION else "invalid-request" if name in _INVALID else "other")
    return HttpError(kind, name)


def _parse_url(url: str):
    if url.startswith("http://"):
        scheme, rest = t.Scheme_Http(), url[7:]
    elif url.startswith("https://"):
        scheme, rest = t.Scheme_Https(), url[8:]
    else:
        raise HttpError("invalid-request", "unsupported URL `%s` (need http:// or https://)" % url)
    cut = min([i for i in (rest.find("/"), rest.find("?")) if i >= 0] or [len(rest)])
    authority, path = rest[:cut], rest[cut:]
    if not authority:
        raise HttpError("invalid-request", "URL `%s` has no host" % url)
    return scheme, authority, path or "/"


def _stream_error(e) -> HttpError:
    value = getattr(e, "value", e)
    if type(value).__name__.endswith("Closed"):
        return HttpError("connection", "stream closed")
    return HttpError("connection", "stream error")


def post(url: str, content_type: str, body: bytes) -> Response:
    """POSTs `body` to `url` with the given content type; waits for the whole response."""
    return request("POST", url, [("content-type", content_type)], body)


def request(method: str, url: str, headers: Sequence[Tuple[str, str]] = (), body: bytes = b"") -> Response:
    """Sends a request and waits for the whole response; raises HttpError."""
    if outgoing_handler is None:
        raise RuntimeError("weir_sdk.http needs the sink-operator-http world "
                           "(-d wit -d sdk/python/wit -w weir:python-sdk/sink-operator-http)")
    scheme, authority, path = _parse_url(url)
    entries: List[Tuple[str, bytes]] = [(k, v.encode()) for k, v in headers]
    if not any(k.lower() == "content-length" for k, _ in entries):
        # A known length: some webhook receivers refuse chunked uploads.
        entries.append(("content-length", str(len(body)).encode()))
    try:
        fields = t.Fields.from_list(entries)
    except Err as e:
        raise HttpError("invalid-request", "bad header: %s" % type(e.value).__name__) from None
    methods = {"GET": t.Method_Get, "POST": t.Method_Post, "PUT": t.Method_Put, "DELETE": t.Method_Delete,
               "PATCH": t.Method_Patch, "HEAD": t.Method_Head, "OPTIONS": t.Method_Options}
    req = t.OutgoingRequest(fields)
    try:
        req.set_method(methods[method.upper()]() if method.upper() in methods else t.Method_Other(method))
        req.set_scheme(scheme)
        req.set_authority(authority)
        req.set_path_with_query(path)
    except Err:
        raise HttpError("invalid-request", "invalid request for `%s`" % url) from None
    out_body = req.body()
    try:
        future = outgoing_handler.handle(req, None)
    except Err as e:
        raise _from_code(e.value) from None

    write_error: Optional[HttpError] = None
    try:
        stream = out_body.write()
        with stream:
            for i in range(0, len(body), 4096):
                stream.blocking_write_and_flush(bytes(body[i:i + 4096]))
        t.OutgoingBody.finish(out_body, None)
    except Err as e:
        write_error = _stream_error(e) if isinstance(e.value, (streams.StreamError_Closed,
                                                              streams.StreamError_LastOperationFailed)) \
            else _from_code(e.value)

    with future:
        while True:
            got = future.get()
            if got is not None:
                break
            with future.subscribe() as pollable:
                pollable.block()
    # got: Ok(Ok(response)) | Ok(Err(error-code)) | Err(None) (already taken)
    if isinstance(got, Err):
        raise HttpError("other", "response already taken")
    inner = got.value
    if isinstance(inner, Err):
        raise _from_code(inner.value)
    if write_error is not None:
        raise write_error
    response = inner.value
    status = response.status()
    data = []
    with response:
        in_body = response.consume()
        with in_body:
            in_stream = in_body.stream()
            with in_stream:
                while True:
                    try:
                        data.append(in_stream.blocking_read(64 * 1024))
                    except Err as e:
                        if isinstance(e.value, streams.StreamError_Closed):
                            break
                        raise _stream_error(e) from None
    return Response(status, b"".join(data))
