/*
 * weir C SDK: weir_http_post, outgoing HTTP for sinks over
 * wasi:http/outgoing-handler. Compiled into every operator; it has code only
 * with -DWEIR_SINK_HTTP, next to the bindings of sdk/c/wit's
 * sink-operator-http world (see docs/sdk-c.md).
 */
#if defined(WEIR_SINK_HTTP)
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sink_operator_http.h"
#include "weir.h"

static weir_http_result http_fail(weir_http_result r, char *err, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (cap)
        vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return r;
}

static weir_http_result error_code(wasi_http_types_error_code_t *code, char *err, size_t cap) {
    weir_http_result r = code->tag == WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_DENIED
                             ? http_fail(WEIR_HTTP_DENIED, err, cap, "request denied by the host (destination not allowed)")
                             : http_fail(WEIR_HTTP_FAILED, err, cap, "HTTP request failed (wasi:http error-code %d)", (int)code->tag);
    wasi_http_types_error_code_free(code);
    return r;
}

weir_http_result weir_http_post(const char *url, const char *content_type, const uint8_t *body, size_t len,
                                uint16_t *status, char *err, size_t errcap) {
    const char *sep = strstr(url, "://");
    if (!sep)
        return http_fail(WEIR_HTTP_FAILED, err, errcap, "invalid URL `%s`", url);
    size_t scheme_len = (size_t)(sep - url);
    bool https = scheme_len == 5 && strncmp(url, "https", 5) == 0;
    if (!https && !(scheme_len == 4 && strncmp(url, "http", 4) == 0))
        return http_fail(WEIR_HTTP_FAILED, err, errcap, "unsupported URL scheme in `%s`", url);
    const char *authority = sep + 3;
    const char *slash = strchr(authority, '/');
    size_t authority_len = slash ? (size_t)(slash - authority) : strlen(authority);
    const char *path = slash ? slash : "/";

    wasi_http_types_own_fields_t headers = wasi_http_types_constructor_fields();
    wasi_http_types_field_name_t name = {(uint8_t *)"content-type", 12};
    wasi_http_types_field_value_t value = {(uint8_t *)content_type, strlen(content_type)};
    wasi_http_types_header_error_t header_error;
    wasi_http_types_method_fields_append(wasi_http_types_borrow_fields(headers), &name, &value, &header_error);
    /* A known length (not chunked transfer), as most webhook receivers expect. */
    char length[24];
    snprintf(length, sizeof length, "%zu", len);
    wasi_http_types_field_name_t length_name = {(uint8_t *)"content-length", 14};
    wasi_http_types_field_value_t length_value = {(uint8_t *)length, strlen(length)};
    wasi_http_types_method_fields_append(wasi_http_types_borrow_fields(headers), &length_name, &length_value, &header_error);
    wasi_http_types_own_outgoing_request_t request = wasi_http_types_constructor_outgoing_request(headers);
    wasi_http_types_borrow_outgoing_request_t r = wasi_http_types_borrow_outgoing_request(request);
    wasi_http_types_method_t method = {.tag = WASI_HTTP_TYPES_METHOD_POST};
    wasi_http_types_scheme_t scheme = {.tag = https ? WASI_HTTP_TYPES_SCHEME_HTTPS : WASI_HTTP_TYPES_SCHEME_HTTP};
    sink_operator_http_string_t authority_s = {(uint8_t *)authority, authority_len};
    sink_operator_http_string_t path_s = {(uint8_t *)path, strlen(path)};
    wasi_http_types_method_outgoing_request_set_method(r, &method);
    wasi_http_types_method_outgoing_request_set_scheme(r, &scheme);
    wasi_http_types_method_outgoing_request_set_authority(r, &authority_s);
    wasi_http_types_method_outgoing_request_set_path_with_query(r, &path_s);
    wasi_http_types_own_outgoing_body_t outgoing;
    if (!wasi_http_types_method_outgoing_request_body(r, &outgoing)) {
        wasi_http_types_outgoing_request_drop_own(request);
        return http_fail(WEIR_HTTP_FAILED, err, errcap, "request body unavailable");
    }

    wasi_http_outgoing_handler_own_future_incoming_response_t future;
    wasi_http_outgoing_handler_error_code_t code;
    if (!wasi_http_outgoing_handler_handle(request, NULL, &future, &code)) {
        wasi_http_types_outgoing_body_drop_own(outgoing);
        return error_code(&code, err, errcap);
    }
    wasi_io_streams_own_output_stream_t stream;
    if (wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(outgoing), &stream)) {
        for (size_t at = 0; at < len;) {
            size_t n = len - at < 4096 ? len - at : 4096;
            sink_operator_http_list_u8_t chunk = {(uint8_t *)body + at, n};
            wasi_io_streams_stream_error_t stream_error;
            if (!wasi_io_streams_method_output_stream_blocking_write_and_flush(wasi_io_streams_borrow_output_stream(stream), &chunk, &stream_error))
                break;
            at += n;
        }
        wasi_io_streams_output_stream_drop_own(stream);
    }
    /* A body that could not be written or finished (e.g. the host refused
     * the request meanwhile) is reported after the response future, whose
     * error says why. */
    wasi_http_types_error_code_t finish_error;
    bool finished = wasi_http_types_static_outgoing_body_finish(outgoing, NULL, &finish_error);
    wasi_http_types_borrow_future_incoming_response_t f = wasi_http_types_borrow_future_incoming_response(future);
    wasi_io_poll_own_pollable_t ready = wasi_http_types_method_future_incoming_response_subscribe(f);
    wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(ready));
    wasi_io_poll_pollable_drop_own(ready);
    wasi_http_types_option_result_result_own_incoming_response_error_code_void_t got;
    weir_http_result result;
    if (!wasi_http_types_method_future_incoming_response_get(f, &got.val)) {
        result = http_fail(WEIR_HTTP_FAILED, err, errcap, "no response");
    } else if (got.val.is_err) {
        result = http_fail(WEIR_HTTP_FAILED, err, errcap, "response already taken");
    } else if (got.val.val.ok.is_err) {
        result = error_code(&got.val.val.ok.val.err, err, errcap);
    } else {
        wasi_http_types_own_incoming_response_t response = got.val.val.ok.val.ok;
        *status = wasi_http_types_method_incoming_response_status(wasi_http_types_borrow_incoming_response(response));
        wasi_http_types_incoming_response_drop_own(response);
        result = WEIR_HTTP_OK;
    }
    wasi_http_types_future_incoming_response_drop_own(future);
    if (!finished) {
        if (result == WEIR_HTTP_OK)
            return error_code(&finish_error, err, errcap);
        wasi_http_types_error_code_free(&finish_error);
    }
    return result;
}
#endif
