/* Sink: POSTs each batch to `url` as a JSON array of row objects, like the
 * Rust webhook-alert: numbers as JSON numbers (NaN/inf as null), timestamps
 * as integers in the column's unit, binary as lowercase hex, list<utf8> as
 * arrays, nulls as null. 2xx -> written; 5xx and connection errors ->
 * retryable; other statuses -> permanent; a destination the host refuses ->
 * permanent ("... denied ...").
 * Config (required): {"url": "http://host:port/path"}
 * Built with -DWEIR_SINK_HTTP against sdk/c/wit's sink-operator-http world. */
#include "weir.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char url[2048];

typedef struct {
    char *data;
    size_t len, cap;
} text;

static void put(text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->data = realloc(t->data, t->cap);
        if (!t->data)
            abort();
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
}

static void puts_(text *t, const char *s) { put(t, s, strlen(s)); }

static void put_json_string(text *t, const char *s, size_t n) {
    put(t, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            put(t, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(t, esc, 6);
        } else {
            put(t, (const char *)&s[i], 1);
        }
    }
    put(t, "\"", 1);
}

static void put_f64(text *t, double v) {
    if (v != v || v == 1.0 / 0.0 || v == -1.0 / 0.0) {
        puts_(t, "null");
        return;
    }
    char buf[340];
    size_t n = weir_format_f64(buf, sizeof buf, v);
    put(t, buf, n);
    if (!memchr(buf, '.', n) && !memchr(buf, 'e', n))
        put(t, ".0", 2); /* stay a JSON float, as serde_json writes it */
}

static void put_cell(text *t, const weir_column *col, size_t row) {
    char buf[64];
    if (!weir_is_valid(col, row)) {
        puts_(t, "null");
        return;
    }
    switch (col->type) {
    case WEIR_BOOLEAN: puts_(t, weir_bool(col, row) ? "true" : "false"); break;
    case WEIR_INT32: snprintf(buf, sizeof buf, "%d", (int)col->i32[row]), puts_(t, buf); break;
    case WEIR_INT64:
    case WEIR_TIMESTAMP: snprintf(buf, sizeof buf, "%lld", (long long)col->i64[row]), puts_(t, buf); break;
    case WEIR_FLOAT32: put_f64(t, (double)col->f32[row]); break;
    case WEIR_FLOAT64: put_f64(t, col->f64[row]); break;
    case WEIR_UTF8: {
        weir_str s = weir_utf8(col, row);
        put_json_string(t, s.ptr, s.len);
        break;
    }
    case WEIR_BINARY: {
        weir_str s = weir_utf8(col, row);
        put(t, "\"", 1);
        for (size_t i = 0; i < s.len; i++)
            snprintf(buf, sizeof buf, "%02x", (unsigned char)s.ptr[i]), put(t, buf, 2);
        put(t, "\"", 1);
        break;
    }
    case WEIR_LIST_UTF8: {
        put(t, "[", 1);
        for (size_t i = 0; i < weir_list_len(col, row); i++) {
            weir_str s = weir_list_item(col, row, i);
            if (i)
                put(t, ",", 1);
            put_json_string(t, s.ptr, s.len);
        }
        put(t, "]", 1);
        break;
    }
    }
}

weir_status weir_init(const char *config, size_t len) {
    const char *u = NULL;
    const weir_cfg keys[] = {{"url", WEIR_CFG_STRING, &u}};
    weir_status status = weir_parse_config(config, len, keys, 1);
    if (status != WEIR_OK)
        return status;
    if (!u)
        return weir_invalid_config("missing `url`");
    snprintf(url, sizeof url, "%s", u);
    return WEIR_OK;
}

weir_sink_status weir_write(const weir_batch *batch) {
    if (batch->num_rows == 0)
        return WEIR_WRITTEN;
    text body = {0};
    put(&body, "[", 1);
    for (size_t row = 0; row < batch->num_rows; row++) {
        put(&body, row ? ",{" : "{", row ? 2 : 1);
        for (size_t c = 0; c < batch->num_columns; c++) {
            const weir_column *col = &batch->columns[c];
            if (c)
                put(&body, ",", 1);
            put_json_string(&body, col->name, strlen(col->name));
            put(&body, ":", 1);
            put_cell(&body, col, row);
        }
        put(&body, "}", 1);
    }
    put(&body, "]", 1);
    uint16_t status = 0;
    char err[256];
    weir_http_result result = weir_http_post(url, "application/json", (const uint8_t *)body.data, body.len, &status, err, sizeof err);
    free(body.data);
    switch (result) {
    case WEIR_HTTP_DENIED: return weir_permanent("%s: %s", url, err);
    case WEIR_HTTP_FAILED: return weir_retryable("%s: %s", url, err);
    case WEIR_HTTP_OK: break;
    }
    if (status >= 200 && status < 300)
        return WEIR_WRITTEN;
    if (status >= 500)
        return weir_retryable("%s answered %u", url, (unsigned)status);
    return weir_permanent("%s answered %u", url, (unsigned)status);
}
