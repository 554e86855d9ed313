/*
 * weir C SDK: write weir operators (filter, map, aggregate, sink) in C.
 *
 * The SDK hides the wit-bindgen C bindings behind plain structs: an input
 * batch is an array of column views over the Arrow buffers the host copied
 * into guest memory (typed pointers such as `const double *f64`, no copy when
 * aligned), and output columns are written through builders. The operator
 * author implements only the functions of one kind (see "Operator
 * functions" below); `weir.c`, compiled with -DWEIR_FILTER / -DWEIR_MAP /
 * -DWEIR_AGGREGATE / -DWEIR_KEYED_AGGREGATE / -DWEIR_SINK (and, for
 * aggregates, `weir_state.c`), provides the exports. Event-time windows over
 * the keyed state: weir_window.h; a HyperLogLog sketch: weir_sketch.h.
 *
 * Build (what `scripts/build-polyglot-guests c` does): see docs/sdk-c.md.
 *
 * Memory: everything the SDK hands out (views, builders, messages) lives
 * until the current export call returns; the SDK frees it afterwards.
 */
#ifndef WEIR_H
#define WEIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ types */

/* Logical column types (the WIT `data-type` variant). */
typedef enum {
    WEIR_BOOLEAN,
    WEIR_INT32,
    WEIR_INT64,
    WEIR_FLOAT32,
    WEIR_FLOAT64,
    WEIR_UTF8,
    WEIR_BINARY,
    WEIR_TIMESTAMP,
    WEIR_LIST_UTF8,
} weir_type;

/* Unit of a timestamp column. */
typedef enum { WEIR_SECOND, WEIR_MILLISECOND, WEIR_MICROSECOND, WEIR_NANOSECOND } weir_time_unit;

/* Name of a type as Rust's SDK prints it ("Float64", "Utf8", ...). */
const char *weir_type_name(weir_type type);

/* A byte string (not NUL-terminated). */
typedef struct {
    const char *ptr;
    size_t len;
} weir_str;

/* A read-only view of one input column. The typed pointer matching `type`
 * is set (the others are NULL): `f64` for float64, `i64` for int64 and
 * timestamp, `i32` for int32, `f32` for float32. Booleans: `values` is the
 * bit-packed buffer (use weir_bool). utf8/binary: `offsets` (len + 1
 * entries) into `values` (use weir_utf8). list-utf8: `offsets` index the
 * strings of `items` (use weir_list_len / weir_list_item). */
typedef struct weir_column {
    const char *name;             /* NUL-terminated */
    weir_type type;
    bool nullable;
    weir_time_unit unit;          /* timestamp only */
    const char *timezone;         /* timestamp only; NULL = naive */
    size_t len;                   /* rows */
    const uint8_t *validity;      /* 1 bit per row, LSB first, 1 = valid; NULL = no nulls */
    const int32_t *offsets;       /* utf8, binary, list-utf8 */
    const uint8_t *values;
    size_t values_len;
    const double *f64;
    const float *f32;
    const int64_t *i64;
    const int32_t *i32;
    const struct weir_column *items; /* list-utf8: the strings (a utf8 column) */
} weir_column;

/* An input batch. */
typedef struct {
    size_t num_rows;
    size_t num_columns;
    const weir_column *columns;
} weir_batch;

/* The column called `name`, or NULL. */
const weir_column *weir_batch_find(const weir_batch *batch, const char *name);

/* Whether row `row` is not null. */
static inline bool weir_is_valid(const weir_column *col, size_t row) {
    return col->validity == NULL || ((col->validity[row >> 3] >> (row & 7)) & 1);
}

/* Value of a boolean column at `row`. */
static inline bool weir_bool(const weir_column *col, size_t row) {
    return (col->values[row >> 3] >> (row & 7)) & 1;
}

/* The string (utf8) or bytes (binary) at `row`. */
static inline weir_str weir_utf8(const weir_column *col, size_t row) {
    weir_str s = {(const char *)col->values + col->offsets[row],
                  (size_t)(col->offsets[row + 1] - col->offsets[row])};
    return s;
}

/* Number of strings in the list at `row` (list-utf8), and the i-th one. */
static inline size_t weir_list_len(const weir_column *col, size_t row) {
    return (size_t)(col->offsets[row + 1] - col->offsets[row]);
}
static inline weir_str weir_list_item(const weir_column *col, size_t row, size_t i) {
    return weir_utf8(col->items, (size_t)col->offsets[row] + i);
}

/* ----------------------------------------------------------------- errors */

/* What an operator function returns: WEIR_OK or one of the errors, set with
 * the helpers below (which keep the message and return the kind). */
typedef enum {
    WEIR_OK = 0,
    WEIR_INVALID_CONFIG,
    WEIR_INVALID_INPUT,
    WEIR_FAILED,
} weir_status;

/* printf-style: `return weir_invalid_input("column `%s` is missing", name);` */
weir_status weir_invalid_config(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
weir_status weir_invalid_input(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
weir_status weir_failed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The column called `name`; when missing, NULL and the pending error
 * "no column `name` in the batch" (return weir_last_error() then). */
const weir_column *weir_batch_column(const weir_batch *batch, const char *name);
/* The kind of the pending error (WEIR_INVALID_INPUT after weir_batch_column). */
weir_status weir_last_error(void);

/* ----------------------------------------------------------------- config */

/* Declarative JSON config: init parses the config into these slots, refusing
 * (invalid-config) non-objects, unknown keys and values of the wrong JSON
 * type; keys absent from the config keep the slot's current value (the
 * default). Strings are NUL-terminated copies that live as long as the
 * instance. */
typedef enum { WEIR_CFG_NUMBER, WEIR_CFG_STRING, WEIR_CFG_BOOL } weir_cfg_kind;
typedef struct {
    const char *key;
    weir_cfg_kind kind;
    void *slot; /* double *, const char ** or bool * */
} weir_cfg;

weir_status weir_parse_config(const char *json, size_t len, const weir_cfg *keys, size_t n);

/* -------------------------------------------------------------- selection */

/* A filter's result: one bit per row, LSB first, all 0 (drop) initially. */
typedef struct {
    uint8_t *bits;
    size_t rows;
} weir_selection;

static inline void weir_keep(weir_selection *sel, size_t row, bool keep) {
    if (keep)
        sel->bits[row >> 3] |= (uint8_t)(1u << (row & 7));
    else
        sel->bits[row >> 3] &= (uint8_t)~(1u << (row & 7));
}
/* Drops the rows where `col` is null. */
void weir_selection_and_validity(weir_selection *sel, const weir_column *col);

/* ----------------------------------------------------------- output batch */

typedef struct weir_builder weir_builder;
typedef struct weir_output weir_output;

/* Adds a column of `rows` rows to `out`. Fixed-width types: write the values
 * through weir_values (zeroed, aligned); booleans through weir_set_bool;
 * utf8 / binary: append with weir_push_str / weir_push_null, in row order. */
weir_builder *weir_add_column(weir_output *out, const char *name, weir_type type, bool nullable, size_t rows);
weir_builder *weir_add_timestamp(weir_output *out, const char *name, weir_time_unit unit,
                                 const char *timezone, bool nullable, size_t rows);
/* The value buffer of a fixed-width column: cast to double *, int64_t *, ... */
void *weir_values(weir_builder *b);
static inline double *weir_values_f64(weir_builder *b) { return (double *)weir_values(b); }
static inline int64_t *weir_values_i64(weir_builder *b) { return (int64_t *)weir_values(b); }
static inline int32_t *weir_values_i32(weir_builder *b) { return (int32_t *)weir_values(b); }
static inline float *weir_values_f32(weir_builder *b) { return (float *)weir_values(b); }
void weir_set_bool(weir_builder *b, size_t row, bool value);
void weir_push_str(weir_builder *b, const char *s, size_t len);
void weir_push_null(weir_builder *b); /* utf8/binary: an empty null entry */
/* Validity: marks `row` null, or copies a whole bitmap (NULL = no nulls). */
void weir_set_null(weir_builder *b, size_t row);
void weir_copy_validity(weir_builder *b, const uint8_t *bitmap);

/* Map rejections: `row` goes to the dead-letter path with the reason. */
void weir_reject(weir_output *out, uint32_t row, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------- formatting */

/* Formats like Rust's `format!("{}", v)`: shortest round-trip digits in
 * plain decimal notation (`-5`, `-1.5`, `0.0000001`, `15000000000000000000000`),
 * `NaN`, `inf`, `-inf`. Returns the length (the buffer needs <= 330 bytes). */
size_t weir_format_f64(char *buf, size_t cap, double v);
/* Rust's `v as i64`: saturating, NaN -> 0. */
int64_t weir_f64_to_i64(double v);

/* ----------------------------------------------------------------- logging */

typedef enum { WEIR_TRACE, WEIR_DEBUG, WEIR_INFO, WEIR_WARN, WEIR_ERROR } weir_level;
void weir_log(weir_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ----------------------------------------------------- operator functions */

/* Every operator: called once per instance with the JSON config ("{}" when
 * none). Declare the columns it reads with weir_reads (not calling it means
 * every column). */
weir_status weir_init(const char *config, size_t len);
void weir_reads(const char *column);

/* filter-operator: set the bits of the rows to keep. */
weir_status weir_filter(const weir_batch *batch, weir_selection *keep);

/* map-operator: add the output columns (exactly batch->num_rows rows each)
 * and reject rows with weir_reject. With weir_reads, only the added or
 * replaced columns. */
weir_status weir_map(const weir_batch *batch, weir_output *out);

/* aggregate-operator: fold `batch` into the state; emit result batches with
 * weir_emit (each a weir_output to add columns to). */
weir_status weir_aggregate(const weir_batch *batch, const int64_t *watermark);
weir_output *weir_emit(void);
/* Snapshot: fill *state / *len with malloc'd bytes (the SDK frees them). */
weir_status weir_snapshot(uint8_t **state, size_t *len);
weir_status weir_restore(const uint8_t *state, size_t len);

/* ------------------------------------------------------------ keyed state */

/* An aggregate's per-key state (key bytes -> value bytes), kept by the SDK
 * (weir_state.c), which records the keys put, upserted and removed since the
 * last checkpoint. Built with -DWEIR_KEYED_AGGREGATE against the
 * keyed-aggregate-operator world (contract 0.1.1), the component exports
 * `weir:operator/keyed-state` from this store: each key is one entry of the
 * state topic and a checkpoint writes only the keys changed since the
 * previous one. Built with -DWEIR_AGGREGATE, the store works the same and
 * checkpoints take weir_snapshot as a whole. weir_snapshot / weir_restore
 * (hot swaps, 0.1.0 hosts) stay the operator's. Keys and values are copied
 * in; a value view stays valid until its key is next put, upserted or
 * removed. */

/* The value of `key`, or false when absent (does not mark it changed). */
bool weir_state_get(const void *key, size_t key_len, weir_str *value);
/* Sets the value of `key` and marks it changed. */
void weir_state_put(const void *key, size_t key_len, const void *value, size_t len);
/* The value buffer of `key` to update in place, `len` bytes (zeroed when the
 * key is new or its value had another length); marks it changed. *created
 * (may be NULL) tells whether the key was absent. */
uint8_t *weir_state_upsert(const void *key, size_t key_len, size_t len, bool *created);
/* Removes `key` (the next checkpoint removes its entry). */
void weir_state_remove(const void *key, size_t key_len);
/* Removes every key. */
void weir_state_clear(void);
/* Number of keys. */
size_t weir_state_len(void);
/* Calls fn for every key in byte order (do not change the store from fn). */
void weir_state_foreach(void (*fn)(weir_str key, weir_str value, void *ctx), void *ctx);

/* sink-operator: write the batch; on failure return one of these (the
 * message is printf-style), or reject single rows with weir_sink_reject and
 * return WEIR_SINK_REJECTED_ROWS. */
typedef enum { WEIR_WRITTEN = 0, WEIR_SINK_RETRYABLE, WEIR_SINK_PERMANENT, WEIR_SINK_REJECTED_ROWS } weir_sink_status;
weir_sink_status weir_write(const weir_batch *batch);
weir_sink_status weir_retryable(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
weir_sink_status weir_permanent(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void weir_sink_reject(uint32_t row, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sinks built with -DWEIR_SINK_HTTP (against sdk/c/wit's sink-operator-http
 * world): POST `body` to `url` (http:// or https://). WEIR_HTTP_OK sets
 * *status; otherwise `err` holds the reason. The host allows only the
 * pipeline's `allow_hosts`: anything else is WEIR_HTTP_DENIED, before any
 * connection is made. */
typedef enum { WEIR_HTTP_OK = 0, WEIR_HTTP_DENIED, WEIR_HTTP_FAILED } weir_http_result;
weir_http_result weir_http_post(const char *url, const char *content_type, const uint8_t *body, size_t len,
                                uint16_t *status, char *err, size_t errcap);

#ifdef __cplusplus
}
#endif
#endif
