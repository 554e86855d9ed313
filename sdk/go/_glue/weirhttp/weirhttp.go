// Package weirhttp is weir.HTTPRequest's transport over
// wasi:http/outgoing-handler (the sink-operator-http world of sdk/go/wit).
// Every resource is dropped explicitly, children before parents.
package weirhttp

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"wit_component/wasi_http_outgoing_handler"
	http "wit_component/wasi_http_types"
	"wit_component/wasi_io_streams"

	weir "weir/sdk"
)

func init() { weir.SetHTTPTransport(send) }

// codeNames are the wasi:http error-code cases, by tag (Rust's Debug names).
var codeNames = [...]string{
	"DnsTimeout", "DnsError", "DestinationNotFound", "DestinationUnavailable", "DestinationIpProhibited",
	"DestinationIpUnroutable", "ConnectionRefused", "ConnectionTerminated", "ConnectionTimeout",
	"ConnectionReadTimeout", "ConnectionWriteTimeout", "ConnectionLimitReached", "TlsProtocolError",
	"TlsCertificateError", "TlsAlertReceived", "HttpRequestDenied", "HttpRequestLengthRequired",
	"HttpRequestBodySize", "HttpRequestMethodInvalid", "HttpRequestUriInvalid", "HttpRequestUriTooLong",
	"HttpRequestHeaderSectionSize", "HttpRequestHeaderSize", "HttpRequestTrailerSectionSize",
	"HttpRequestTrailerSize", "HttpResponseIncomplete", "HttpResponseHeaderSectionSize",
	"HttpResponseHeaderSize", "HttpResponseBodySize", "HttpResponseTrailerSectionSize",
	"HttpResponseTrailerSize", "HttpResponseTransferCoding", "HttpResponseContentCoding",
	"HttpResponseTimeout", "HttpUpgradeFailed", "HttpProtocolError", "LoopDetected",
	"ConfigurationError", "InternalError",
}

// fromCode classifies an error code as the Rust SDK does.
func fromCode(code http.ErrorCode) *weir.HTTPError {
	tag := code.Tag()
	name := "InternalError"
	if int(tag) < len(codeNames) {
		name = codeNames[tag]
	}
	kind := weir.HTTPOther
	switch tag {
	case http.ErrorCode_HttpRequestDenied, http.ErrorCode_DestinationIpProhibited:
		kind = weir.HTTPDenied
	case http.ErrorCode_DnsTimeout, http.ErrorCode_ConnectionTimeout, http.ErrorCode_ConnectionReadTimeout,
		http.ErrorCode_ConnectionWriteTimeout, http.ErrorCode_HttpResponseTimeout:
		kind = weir.HTTPTimeout
	case http.ErrorCode_DnsError, http.ErrorCode_DestinationNotFound, http.ErrorCode_DestinationUnavailable,
		http.ErrorCode_DestinationIpUnroutable, http.ErrorCode_ConnectionRefused, http.ErrorCode_ConnectionTerminated,
		http.ErrorCode_ConnectionLimitReached, http.ErrorCode_TlsProtocolError, http.ErrorCode_TlsCertificateError,
		http.ErrorCode_TlsAlertReceived, http.ErrorCode_HttpResponseIncomplete:
		kind = weir.HTTPConnection
	case http.ErrorCode_HttpRequestMethodInvalid, http.ErrorCode_HttpRequestUriInvalid, http.ErrorCode_HttpRequestUriTooLong:
		kind = weir.HTTPInvalidRequest
	}
	return &weir.HTTPError{Kind: kind, Detail: name}
}

func method(m string) http.Method {
	switch m {
	case "GET":
		return http.MakeMethodGet()
	case "HEAD":
		return http.MakeMethodHead()
	case "POST":
		return http.MakeMethodPost()
	case "PUT":
		return http.MakeMethodPut()
	case "DELETE":
		return http.MakeMethodDelete()
	case "PATCH":
		return http.MakeMethodPatch()
	case "OPTIONS":
		return http.MakeMethodOptions()
	}
	return http.MakeMethodOther(m)
}

// writeBody streams body into the request body and finishes it.
func writeBody(out *http.OutgoingBody, body []byte) *weir.HTTPError {
	w := out.Write()
	if w.Tag() != witTypes.ResultOk {
		out.Drop()
		return &weir.HTTPError{Kind: weir.HTTPOther, Detail: "body stream unavailable"}
	}
	stream := w.Ok()
	var failed *weir.HTTPError
	for at := 0; at < len(body) && failed == nil; at += 4096 {
		chunk := body[at:min(at+4096, len(body))]
		if r := stream.BlockingWriteAndFlush(chunk); r.Tag() != witTypes.ResultOk {
			detail := "stream error"
			if r.Err().Tag() == wasi_io_streams.StreamError_Closed {
				detail = "stream closed"
			} else {
				r.Err().LastOperationFailed().Drop()
			}
			failed = &weir.HTTPError{Kind: weir.HTTPConnection, Detail: detail}
		}
	}
	stream.Drop()
	if failed != nil {
		out.Drop()
		return failed
	}
	if r := http.OutgoingBodyFinish(out, witTypes.None[*http.Fields]()); r.Tag() != witTypes.ResultOk {
		return fromCode(r.Err())
	}
	return nil
}

// readBody reads a response body to its end.
func readBody(resp *http.IncomingResponse) ([]byte, *weir.HTTPError) {
	c := resp.Consume()
	if c.Tag() != witTypes.ResultOk {
		return nil, nil
	}
	incoming := c.Ok()
	defer incoming.Drop()
	s := incoming.Stream()
	if s.Tag() != witTypes.ResultOk {
		return nil, nil
	}
	stream := s.Ok()
	defer stream.Drop()
	var body []byte
	for {
		r := stream.BlockingRead(64 << 10)
		if r.Tag() != witTypes.ResultOk {
			if r.Err().Tag() == wasi_io_streams.StreamError_Closed {
				return body, nil
			}
			r.Err().LastOperationFailed().Drop()
			return body, &weir.HTTPError{Kind: weir.HTTPConnection, Detail: "reading the response body failed"}
		}
		body = append(body, r.Ok()...)
	}
}

func send(req *weir.Request) (*weir.Response, *weir.HTTPError) {
	entries := make([]witTypes.Tuple2[string, []uint8], 0, len(req.Headers))
	for _, h := range req.Headers {
		entries = append(entries, witTypes.Tuple2[string, []uint8]{F0: h[0], F1: []byte(h[1])})
	}
	f := http.FieldsFromList(entries)
	if f.Tag() != witTypes.ResultOk {
		return nil, &weir.HTTPError{Kind: weir.HTTPInvalidRequest, Detail: "bad header"}
	}
	request := http.MakeOutgoingRequest(f.Ok())
	scheme := http.MakeSchemeHttp()
	if req.HTTPS {
		scheme = http.MakeSchemeHttps()
	}
	for what, r := range map[string]witTypes.Result[witTypes.Unit, witTypes.Unit]{
		"method":    request.SetMethod(method(req.Method)),
		"scheme":    request.SetScheme(witTypes.Some(scheme)),
		"authority": request.SetAuthority(witTypes.Some(req.Authority)),
		"path":      request.SetPathWithQuery(witTypes.Some(req.Path)),
	} {
		if r.Tag() != witTypes.ResultOk {
			request.Drop()
			return nil, &weir.HTTPError{Kind: weir.HTTPInvalidRequest, Detail: "invalid " + what + " in the URL"}
		}
	}
	b := request.Body()
	if b.Tag() != witTypes.ResultOk {
		request.Drop()
		return nil, &weir.HTTPError{Kind: weir.HTTPOther, Detail: "request body unavailable"}
	}
	out := b.Ok()
	h := wasi_http_outgoing_handler.Handle(request, witTypes.None[*http.RequestOptions]())
	if h.Tag() != witTypes.ResultOk {
		out.Drop()
		return nil, fromCode(h.Err())
	}
	future := h.Ok()
	defer future.Drop()
	// A body that could not be written or finished (the host refused the
	// request meanwhile, the peer hung up) is reported after the response
	// future, whose error says why.
	writeErr := writeBody(out, req.Body)
	ready := future.Subscribe()
	ready.Block()
	ready.Drop()
	got := future.Get()
	if got.Tag() != witTypes.OptionSome || got.Some().Tag() != witTypes.ResultOk {
		if writeErr != nil {
			return nil, writeErr
		}
		return nil, &weir.HTTPError{Kind: weir.HTTPOther, Detail: "no response"}
	}
	result := got.Some().Ok()
	if result.Tag() != witTypes.ResultOk {
		return nil, fromCode(result.Err())
	}
	resp := result.Ok()
	defer resp.Drop()
	if writeErr != nil {
		return nil, writeErr
	}
	status := int(resp.Status())
	body, err := readBody(resp)
	if err != nil {
		return nil, err
	}
	return &weir.Response{Status: status, Body: body}, nil
}
