package weir

import (
	"fmt"
	"strings"
)

// Response is an HTTP response: the status and the whole body.
type Response struct {
	Status int
	Body   []byte
}

// IsSuccess says whether the status is 2xx.
func (r *Response) IsSuccess() bool { return r.Status >= 200 && r.Status < 300 }

// HTTPErrorKind classifies why a request produced no response.
type HTTPErrorKind uint8

const (
	// HTTPDenied: the host refused the destination (not on the pipeline's
	// allowlist: wasi:http `HTTP-request-denied`, `destination-IP-prohibited`).
	HTTPDenied HTTPErrorKind = iota
	// HTTPTimeout: connect, DNS, read, write or response timeout.
	HTTPTimeout
	// HTTPConnection: refused, reset, DNS failure, TLS, incomplete response.
	HTTPConnection
	// HTTPInvalidRequest: the URL or request is malformed.
	HTTPInvalidRequest
	// HTTPOther: any other protocol error.
	HTTPOther
)

var httpPrefix = [...]string{"request denied by host", "timeout", "connection error", "invalid request", "http error"}

// HTTPError is why a request produced no response (the Rust SDK's HttpError).
// Detail names the wasi:http error code (`ConnectionRefused`, ...).
type HTTPError struct {
	Kind   HTTPErrorKind
	Detail string
}

func (e *HTTPError) Error() string { return httpPrefix[e.Kind] + ": " + e.Detail }

// Retryable says whether trying again later may help (timeouts,
// connection and other protocol errors).
func (e *HTTPError) Retryable() bool {
	return e.Kind == HTTPTimeout || e.Kind == HTTPConnection || e.Kind == HTTPOther
}

// Request is one outgoing request, as the glue's transport receives it.
type Request struct {
	Method    string // "POST", "GET", ...
	HTTPS     bool
	Authority string // host[:port]
	Path      string // path and query, "/" at least
	Headers   [][2]string
	Body      []byte
}

var httpTransport func(req *Request) (*Response, *HTTPError)

// SetHTTPTransport is called by the glue of the sink-operator-http world
// with its wasi:http client. Not for operator authors.
func SetHTTPTransport(t func(req *Request) (*Response, *HTTPError)) { httpTransport = t }

// HTTPPost POSTs body to url (http:// or https://) with the given content
// type and a content-length, and waits for the whole response. Errors are
// *HTTPError. Sinks only: the host refuses destinations outside the
// pipeline's allowlist (HTTPDenied).
func HTTPPost(url, contentType string, body []byte) (*Response, error) {
	return HTTPRequest("POST", url, [][2]string{{"content-type", contentType}}, body)
}

// HTTPRequest sends a request and waits for the whole response (see HTTPPost).
func HTTPRequest(method, url string, headers [][2]string, body []byte) (*Response, error) {
	req, herr := ParseURL(url)
	if herr != nil {
		return nil, herr
	}
	req.Method, req.Body = method, body
	req.Headers = append([][2]string(nil), headers...)
	known := false
	for _, h := range headers {
		known = known || strings.EqualFold(h[0], "content-length")
	}
	if !known { // a known length: some webhook receivers refuse chunked uploads
		req.Headers = append(req.Headers, [2]string{"content-length", fmt.Sprint(len(body))})
	}
	if httpTransport == nil {
		return nil, &HTTPError{HTTPOther, "no wasi:http in this component (only sinks built against sdk/go/wit's sink-operator-http world have it)"}
	}
	resp, herr := httpTransport(req)
	if herr != nil {
		return nil, herr
	}
	return resp, nil
}

// ParseURL splits an http(s) URL into scheme, authority and path (with
// query), as the Rust SDK does.
func ParseURL(url string) (*Request, *HTTPError) {
	req := &Request{}
	rest, ok := strings.CutPrefix(url, "http://")
	if !ok {
		if rest, ok = strings.CutPrefix(url, "https://"); !ok {
			return nil, &HTTPError{HTTPInvalidRequest, fmt.Sprintf("unsupported URL `%s` (need http:// or https://)", url)}
		}
		req.HTTPS = true
	}
	cut := strings.IndexAny(rest, "/?")
	if cut < 0 {
		cut = len(rest)
	}
	req.Authority, req.Path = rest[:cut], rest[cut:]
	if req.Authority == "" {
		return nil, &HTTPError{HTTPInvalidRequest, fmt.Sprintf("URL `%s` has no host", url)}
	}
	if req.Path == "" {
		req.Path = "/"
	}
	return req, nil
}
