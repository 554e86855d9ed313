/*
 * weir C SDK runtime: glue between wit-bindgen's C bindings of one operator
 * world and the plain structs of weir.h. Compile with exactly one of
 * -DWEIR_FILTER, -DWEIR_MAP, -DWEIR_AGGREGATE, -DWEIR_KEYED_AGGREGATE
 * (both aggregates with weir_state.c), -DWEIR_SINK, next to the
 * bindings generated for that world, or -DWEIR_SINK_HTTP next to the
 * bindings of sdk/c/wit's sink-operator-http world (see docs/sdk-c.md).
 * Built together with the world-independent parts: weir_config.c (the config
 * parser, number formatting) and weir_http.c (outgoing HTTP for sinks).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir.h"
#include "weir_internal.h"

#if defined(WEIR_FILTER) && defined(WEIR_PACKED)
#include "packed_filter_operator.h"
#define WSTR(x) packed_filter_operator_##x
#define EXPORT(x) exports_weir_operator_filter_##x
#define PACKED(x) exports_weir_operator_filter_packed_##x
#elif defined(WEIR_FILTER)
#include "filter_operator.h"
#define WSTR(x) filter_operator_##x
#define EXPORT(x) exports_weir_operator_filter_##x
#elif defined(WEIR_MAP) && defined(WEIR_PACKED)
#include "packed_map_operator.h"
#define WSTR(x) packed_map_operator_##x
#define EXPORT(x) exports_weir_operator_map_##x
#define PACKED(x) exports_weir_operator_map_packed_##x
#elif defined(WEIR_MAP)
#include "map_operator.h"
#define WSTR(x) map_operator_##x
#define EXPORT(x) exports_weir_operator_map_##x
#elif defined(WEIR_KEYED_AGGREGATE)
#define WEIR_AGGREGATE 1
#include "keyed_aggregate_operator.h"
#include "weir_state.h"
#define WSTR(x) keyed_aggregate_operator_##x
#define EXPORT(x) exports_weir_operator_aggregate_##x
#elif defined(WEIR_AGGREGATE)
#include "aggregate_operator.h"
#define WSTR(x) aggregate_operator_##x
#define EXPORT(x) exports_weir_operator_aggregate_##x
#elif defined(WEIR_SINK_HTTP)
#define WEIR_SINK 1
#include "sink_operator_http.h"
#define WSTR(x) sink_operator_http_##x
#define EXPORT(x) exports_weir_operator_sink_##x
#elif defined(WEIR_SINK)
#include "sink_operator.h"
#define WSTR(x) sink_operator_##x
#define EXPORT(x) exports_weir_operator_sink_##x
#else
#error "compile weir.c with one of -DWEIR_FILTER, -DWEIR_MAP, -DWEIR_AGGREGATE, -DWEIR_KEYED_AGGREGATE, -DWEIR_SINK"
#endif
#if defined(WEIR_PACKED) && !defined(PACKED)
#error "-DWEIR_PACKED (contract 0.1.2's packed batches) goes with -DWEIR_FILTER or -DWEIR_MAP"
#endif

typedef WSTR(string_t) wstring;
typedef WSTR(list_u8_t) wbytes;
typedef weir_operator_types_batch_t wbatch;
typedef weir_operator_types_operator_error_t werror;

/* ------------------------------------------------------------ call arena */

/* Everything handed out during one export call; freed when it returns. */
typedef struct arena_block {
    struct arena_block *next;
    max_align_t data[];
} arena_block;
static arena_block *arena;

static void *scratch(size_t n) {
    arena_block *b = xmalloc(sizeof(arena_block) + n);
    b->next = arena;
    arena = b;
    return b->data;
}
static void *scratch_zero(size_t n) {
    void *p = scratch(n);
    memset(p, 0, n);
    return p;
}
static void arena_reset(void) {
    while (arena) {
        arena_block *next = arena->next;
        free(arena);
        arena = next;
    }
}

/* ---------------------------------------------------------------- errors */

static weir_status pending_kind;
static char *pending_msg;

static char *vformat(const char *fmt, va_list ap) {
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    char *s = xmalloc((size_t)(n < 0 ? 0 : n) + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static weir_status set_error(weir_status kind, char *msg) {
    free(pending_msg);
    pending_msg = msg;
    pending_kind = kind;
    return kind;
}

#define ERROR_FN(fn, kind)                       \
    weir_status fn(const char *fmt, ...) {       \
        va_list ap;                              \
        va_start(ap, fmt);                       \
        char *msg = vformat(fmt, ap);            \
        va_end(ap);                              \
        return set_error(kind, msg);             \
    }
ERROR_FN(weir_invalid_config, WEIR_INVALID_CONFIG)
ERROR_FN(weir_invalid_input, WEIR_INVALID_INPUT)
ERROR_FN(weir_failed, WEIR_FAILED)

weir_status weir_last_error(void) { return pending_kind == WEIR_OK ? WEIR_FAILED : pending_kind; }

/* Moves a malloc'd C string into a WIT string (the bindings free it). */
static void give_string(wstring *out, char *s) {
    out->len = s ? strlen(s) : 0;
    out->ptr = (uint8_t *)s;
    if (s && out->len == 0) {
        free(s);
        out->ptr = NULL;
    }
}
static char *dup_string(const char *s) {
    size_t n = strlen(s);
    char *d = xmalloc(n + 1);
    memcpy(d, s, n + 1);
    return d;
}

static void take_error(weir_status status, werror *err) {
    if (status == WEIR_INVALID_CONFIG)
        err->tag = WEIR_OPERATOR_TYPES_OPERATOR_ERROR_INVALID_CONFIG;
    else if (status == WEIR_INVALID_INPUT)
        err->tag = WEIR_OPERATOR_TYPES_OPERATOR_ERROR_INVALID_INPUT;
    else
        err->tag = WEIR_OPERATOR_TYPES_OPERATOR_ERROR_FAILED;
    char *msg = pending_msg && pending_kind == status ? pending_msg : dup_string("operator failed");
    if (msg != pending_msg)
        free(pending_msg);
    pending_msg = NULL;
    pending_kind = WEIR_OK;
    /* all three cases share the layout */
    give_string(&err->val.failed, msg);
}

/* ------------------------------------------------------------ type names */

const char *weir_type_name(weir_type type) {
    static const char *names[] = {"Boolean", "Int32", "Int64", "Float32", "Float64",
                                  "Utf8", "Binary", "Timestamp", "ListUtf8"};
    return (unsigned)type < sizeof names / sizeof *names ? names[type] : "Unknown";
}

static size_t type_width(weir_type t) {
    switch (t) {
    case WEIR_INT32:
    case WEIR_FLOAT32: return 4;
    case WEIR_INT64:
    case WEIR_FLOAT64:
    case WEIR_TIMESTAMP: return 8;
    default: return 0;
    }
}

/* --------------------------------------------------------------- batches */

static const uint8_t *aligned(const uint8_t *p, size_t len, size_t align) {
    if (((uintptr_t)p & (align - 1)) == 0)
        return p;
    uint8_t *copy = scratch(len);
    memcpy(copy, p, len);
    return copy;
}

static char *scratch_cstr(const uint8_t *p, size_t len) {
    char *s = scratch(len + 1);
    memcpy(s, p, len);
    s[len] = 0;
    return s;
}

/* The field part of a column view: name, type, unit, time zone. `cstr`
 * copies the strings (into the call arena, or to the heap for a schema
 * declared once). */
static void view_field(weir_column *c, const weir_operator_types_field_t *f,
                       char *(*cstr)(const uint8_t *, size_t)) {
    memset(c, 0, sizeof *c);
    c->name = cstr(f->name.ptr, f->name.len);
    c->type = (weir_type)f->data_type.tag;
    c->nullable = f->nullable;
    if (c->type == WEIR_TIMESTAMP) {
        c->unit = (weir_time_unit)f->data_type.val.timestamp.unit;
        if (f->data_type.val.timestamp.timezone.is_some)
            c->timezone = cstr(f->data_type.val.timestamp.timezone.val.ptr,
                               f->data_type.val.timestamp.timezone.val.len);
    }
}

/* The buffer part of a column view (`validity` NULL = no nulls). */
static void view_buffers(weir_column *c, size_t rows, const uint8_t *validity,
                         const uint8_t *offsets, size_t offsets_len,
                         const uint8_t *values, size_t values_len) {
    c->len = rows;
    c->validity = validity;
    c->offsets = offsets_len ? (const int32_t *)aligned(offsets, offsets_len, 4) : NULL;
    size_t width = type_width(c->type);
    c->values = width ? aligned(values, values_len, width) : values;
    c->values_len = values_len;
    switch (c->type) {
    case WEIR_FLOAT64: c->f64 = (const double *)c->values; break;
    case WEIR_FLOAT32: c->f32 = (const float *)c->values; break;
    case WEIR_INT64:
    case WEIR_TIMESTAMP: c->i64 = (const int64_t *)c->values; break;
    case WEIR_INT32: c->i32 = (const int32_t *)c->values; break;
    default: break;
    }
}

/* The strings of a list-utf8 column, as a utf8 column view. */
static const weir_column *view_items(const uint8_t *validity, const uint8_t *offsets,
                                     size_t offsets_len, const uint8_t *values,
                                     size_t values_len) {
    weir_column *items = scratch_zero(sizeof *items);
    items->name = "item";
    items->type = WEIR_UTF8;
    items->nullable = true;
    view_buffers(items, offsets_len >= 4 ? offsets_len / 4 - 1 : 0, validity, offsets,
                 offsets_len, values, values_len);
    return items;
}

static void view_column(weir_column *c, const weir_operator_types_field_t *f,
                        const weir_operator_types_column_t *col, size_t rows) {
    view_field(c, f, scratch_cstr);
    view_buffers(c, rows, col->validity.is_some ? col->validity.val.ptr : NULL,
                 col->offsets.ptr, col->offsets.len, col->values.ptr, col->values.len);
    if (c->type == WEIR_LIST_UTF8 && col->items.is_some) {
        const weir_operator_types_list_items_t *it = &col->items.val;
        c->items = view_items(it->validity.is_some ? it->validity.val.ptr : NULL, it->offsets.ptr,
                              it->offsets.len, it->values.ptr, it->values.len);
    }
}

static weir_batch view_batch(const wbatch *in) {
    weir_batch b;
    b.num_rows = in->num_rows;
    b.num_columns = in->columns.len < in->schema.len ? in->columns.len : in->schema.len;
    weir_column *cols = scratch(sizeof(weir_column) * (b.num_columns ? b.num_columns : 1));
    for (size_t i = 0; i < b.num_columns; i++)
        view_column(&cols[i], &in->schema.ptr[i], &in->columns.ptr[i], in->num_rows);
    b.columns = cols;
    return b;
}

#if defined(WEIR_PACKED)
/* ------------------------------------------------- packed batches (0.1.2) */

/* A schema the host declared once: column views with only the field part
 * set (strings on the heap, kept for the instance's life). */
typedef struct {
    size_t num_columns;
    weir_column *columns;
} declared_schema;
static declared_schema *schemas;
static size_t num_schemas;

static char *heap_cstr(const uint8_t *p, size_t len) {
    char *s = xmalloc(len + 1);
    memcpy(s, p, len);
    s[len] = 0;
    return s;
}

uint32_t PACKED(declare_schema)(PACKED(list_field_t) *schema) {
    declared_schema d = {schema->len, xcalloc(schema->len, sizeof(weir_column))};
    for (size_t i = 0; i < schema->len; i++)
        view_field(&d.columns[i], &schema->ptr[i], heap_cstr);
    PACKED(list_field_free)(schema);
    schemas = xrealloc(schemas, (num_schemas + 1) * sizeof *schemas);
    schemas[num_schemas] = d;
    return (uint32_t)num_schemas++;
}

/* Views a packed batch: the declared schema's fields, each buffer a
 * (start, length) pair of `layout` into the one list `buffers`. */
static weir_status view_packed(const weir_operator_types_packed_batch_t *in, weir_batch *b) {
    if (in->schema >= num_schemas)
        return weir_invalid_input("packed batch: schema handle %u was never declared", (unsigned)in->schema);
    const declared_schema *d = &schemas[in->schema];
    const uint32_t *layout = in->layout.ptr;
    size_t slots = in->layout.len / 2, next = 0;
    const uint8_t *at[6];
    size_t len[6];
    weir_column *cols = scratch(sizeof(weir_column) * (d->num_columns ? d->num_columns : 1));
    for (size_t i = 0; i < d->num_columns; i++) {
        size_t want = d->columns[i].type == WEIR_LIST_UTF8 ? 6 : 3;
        if (next + want > slots)
            return weir_invalid_input("packed batch: layout too short for the schema");
        for (size_t k = 0; k < want; k++, next++) {
            size_t start = layout[2 * next], n = layout[2 * next + 1];
            if (start > in->buffers.len || n > in->buffers.len - start)
                return weir_invalid_input("packed batch: a buffer lies outside the list");
            at[k] = in->buffers.ptr + start;
            len[k] = n;
        }
        cols[i] = d->columns[i];
        view_buffers(&cols[i], in->num_rows, len[0] ? at[0] : NULL, at[1], len[1], at[2], len[2]);
        if (want == 6)
            cols[i].items = view_items(len[3] ? at[3] : NULL, at[4], len[4], at[5], len[5]);
    }
    b->num_rows = in->num_rows;
    b->num_columns = d->num_columns;
    b->columns = cols;
    return WEIR_OK;
}
#endif

const weir_column *weir_batch_find(const weir_batch *batch, const char *name) {
    for (size_t i = 0; i < batch->num_columns; i++)
        if (strcmp(batch->columns[i].name, name) == 0)
            return &batch->columns[i];
    return NULL;
}

const weir_column *weir_batch_column(const weir_batch *batch, const char *name) {
    const weir_column *c = weir_batch_find(batch, name);
    if (!c)
        weir_invalid_input("no column `%s` in the batch", name);
    return c;
}

void weir_selection_and_validity(weir_selection *sel, const weir_column *col) {
    if (!col->validity)
        return;
    for (size_t i = 0; i < (sel->rows + 7) / 8; i++)
        sel->bits[i] &= col->validity[i];
}

/* ---------------------------------------------------------------- output */

struct weir_builder {
    struct weir_builder *next;
    char *name;
    weir_type type;
    weir_time_unit unit;
    char *timezone;
    bool nullable;
    size_t rows;
    uint8_t *values; /* malloc'd; moved into the result */
    size_t values_len, values_cap;
    int32_t *offsets; /* utf8/binary: rows + 1 */
    size_t pushed;
    uint8_t *validity; /* malloc'd or NULL */
};

typedef struct rejection {
    struct rejection *next;
    uint32_t row;
    char *reason;
} rejection;

struct weir_output {
    struct weir_output *next;
    weir_builder *first, *last;
    size_t ncols;
    rejection *rejected, *rejected_last;
    size_t nrejected;
};

weir_builder *weir_add_timestamp(weir_output *out, const char *name, weir_time_unit unit,
                                 const char *timezone, bool nullable, size_t rows) {
    weir_builder *b = weir_add_column(out, name, WEIR_TIMESTAMP, nullable, rows);
    b->unit = unit;
    b->timezone = timezone ? dup_string(timezone) : NULL;
    return b;
}

weir_builder *weir_add_column(weir_output *out, const char *name, weir_type type, bool nullable, size_t rows) {
    weir_builder *b = xcalloc(1, sizeof *b);
    b->name = dup_string(name);
    b->type = type;
    b->nullable = nullable;
    b->rows = rows;
    size_t width = type_width(type);
    if (width) {
        b->values_len = b->values_cap = rows * width;
        b->values = xcalloc(rows, width);
    } else if (type == WEIR_BOOLEAN) {
        b->values_len = b->values_cap = (rows + 7) / 8;
        b->values = xcalloc(b->values_len, 1);
    } else if (type == WEIR_UTF8 || type == WEIR_BINARY) {
        b->offsets = xcalloc(rows + 1, 4);
        b->values_cap = 64;
        b->values = xmalloc(b->values_cap);
    } else {
        /* list-utf8 output is not supported by this SDK version */
        abort();
    }
    if (out->last)
        out->last->next = b;
    else
        out->first = b;
    out->last = b;
    out->ncols++;
    return b;
}

void *weir_values(weir_builder *b) { return b->values; }

void weir_set_bool(weir_builder *b, size_t row, bool value) {
    if (value)
        b->values[row >> 3] |= (uint8_t)(1u << (row & 7));
    else
        b->values[row >> 3] &= (uint8_t)~(1u << (row & 7));
}

void weir_push_str(weir_builder *b, const char *s, size_t len) {
    if (b->pushed >= b->rows)
        abort();
    if (b->values_len + len > b->values_cap) {
        while (b->values_len + len > b->values_cap)
            b->values_cap *= 2;
        b->values = xrealloc(b->values, b->values_cap);
    }
    memcpy(b->values + b->values_len, s, len);
    b->values_len += len;
    b->pushed++;
    b->offsets[b->pushed] = (int32_t)b->values_len;
}

void weir_set_null(weir_builder *b, size_t row) {
    if (!b->validity) {
        size_t n = (b->rows + 7) / 8;
        b->validity = xmalloc(n);
        memset(b->validity, 0xff, n);
    }
    b->validity[row >> 3] &= (uint8_t)~(1u << (row & 7));
}

void weir_push_null(weir_builder *b) {
    size_t row = b->pushed;
    weir_push_str(b, "", 0);
    weir_set_null(b, row);
}

void weir_copy_validity(weir_builder *b, const uint8_t *bitmap) {
    free(b->validity);
    b->validity = NULL;
    if (bitmap) {
        size_t n = (b->rows + 7) / 8;
        b->validity = xmalloc(n);
        memcpy(b->validity, bitmap, n);
    }
}

void weir_reject(weir_output *out, uint32_t row, const char *fmt, ...) {
    rejection *r = xcalloc(1, sizeof *r);
    va_list ap;
    va_start(ap, fmt);
    r->reason = vformat(fmt, ap);
    va_end(ap);
    r->row = row;
    if (out->rejected_last)
        out->rejected_last->next = r;
    else
        out->rejected = r;
    out->rejected_last = r;
    out->nrejected++;
}

static void give_bytes(wbytes *out, uint8_t *p, size_t len) {
    if (len == 0) {
        free(p);
        p = NULL;
    }
    out->ptr = p;
    out->len = len;
}

/* Moves the builders of `out` into a WIT batch and frees them. */
__attribute__((unused)) static void build_batch(weir_output *out, size_t rows, wbatch *ret) {
    size_t n = out->ncols;
    ret->num_rows = (uint32_t)rows;
    ret->schema.len = ret->columns.len = n;
    ret->schema.ptr = n ? xcalloc(n, sizeof *ret->schema.ptr) : NULL;
    ret->columns.ptr = n ? xcalloc(n, sizeof *ret->columns.ptr) : NULL;
    size_t i = 0;
    for (weir_builder *b = out->first, *next; b; b = next, i++) {
        next = b->next;
        weir_operator_types_field_t *f = &ret->schema.ptr[i];
        weir_operator_types_column_t *c = &ret->columns.ptr[i];
        give_string(&f->name, b->name);
        f->data_type.tag = (uint8_t)b->type;
        if (b->type == WEIR_TIMESTAMP) {
            f->data_type.val.timestamp.unit = (uint8_t)b->unit;
            f->data_type.val.timestamp.timezone.is_some = b->timezone != NULL;
            if (b->timezone)
                give_string(&f->data_type.val.timestamp.timezone.val, b->timezone);
        }
        f->nullable = b->nullable;
        if (b->validity) {
            c->validity.is_some = true;
            give_bytes(&c->validity.val, b->validity, (b->rows + 7) / 8);
        }
        if (b->offsets)
            give_bytes(&c->offsets, (uint8_t *)b->offsets, (b->rows + 1) * 4);
        give_bytes(&c->values, b->values, b->values_len);
        free(b);
    }
    out->first = out->last = NULL;
    out->ncols = 0;
}

__attribute__((unused)) static size_t output_rows(const weir_output *out) { return out->first ? out->first->rows : 0; }

__attribute__((unused)) static void free_output(weir_output *out) {
    for (weir_builder *b = out->first, *next; b; b = next) {
        next = b->next;
        free(b->name);
        free(b->timezone);
        free(b->values);
        free(b->offsets);
        free(b->validity);
        free(b);
    }
    for (rejection *r = out->rejected, *next; r; r = next) {
        next = r->next;
        free(r->reason);
        free(r);
    }
    memset(out, 0, sizeof *out);
}

/* --------------------------------------------------------------- logging */

void weir_log(weir_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    wstring s = {(uint8_t *)msg, strlen(msg)};
    weir_operator_host_log((weir_operator_host_level_t)level, &s);
    free(msg);
}

/* ------------------------------------------------------------------ init */

static char **reads;
static size_t nreads;
static bool reads_set;

void weir_reads(const char *column) {
    reads = xrealloc(reads, (nreads + 1) * sizeof *reads);
    reads[nreads++] = dup_string(column);
    reads_set = true;
}

bool EXPORT(init)(wstring *config, weir_operator_types_operator_info_t *ret, werror *err) {
    for (size_t i = 0; i < nreads; i++) free(reads[i]);
    free(reads);
    reads = NULL;
    nreads = 0;
    reads_set = false;
    char *text = xmalloc(config->len + 1);
    memcpy(text, config->ptr, config->len);
    text[config->len] = 0;
    size_t len = config->len;
    WSTR(string_free)(config);
    weir_status status = weir_init(text, len);
    free(text);
    arena_reset();
    if (status != WEIR_OK) {
        take_error(status, err);
        return false;
    }
    memset(ret, 0, sizeof *ret);
    if (reads_set) {
        ret->reads.is_some = true;
        ret->reads.val.len = nreads;
        ret->reads.val.ptr = xcalloc(nreads, sizeof(wstring));
        for (size_t i = 0; i < nreads; i++)
            give_string(&ret->reads.val.ptr[i], dup_string(reads[i]));
    }
    return true;
}

/* ----------------------------------------------------------------- kinds */

#if defined(WEIR_FILTER)
/* weir_filter on a batch view; `viewed` is the status of making the view. */
static bool evaluate(weir_batch batch, weir_status viewed, wbytes *ret, werror *err) {
    weir_selection sel = {xcalloc((batch.num_rows + 7) / 8, 1), batch.num_rows};
    weir_status status = viewed == WEIR_OK ? weir_filter(&batch, &sel) : viewed;
    arena_reset();
    if (status != WEIR_OK) {
        free(sel.bits);
        take_error(status, err);
        return false;
    }
    give_bytes(ret, sel.bits, (batch.num_rows + 7) / 8);
    return true;
}

bool EXPORT(evaluate)(wbatch *input, wbytes *ret, werror *err) {
    bool ok = evaluate(view_batch(input), WEIR_OK, ret, err);
    weir_operator_types_batch_free(input);
    return ok;
}

#if defined(WEIR_PACKED)
bool PACKED(evaluate_packed)(weir_operator_types_packed_batch_t *input, wbytes *ret, werror *err) {
    weir_batch batch = {0, 0, NULL};
    weir_status viewed = view_packed(input, &batch);
    bool ok = evaluate(batch, viewed, ret, err);
    weir_operator_types_packed_batch_free(input);
    return ok;
}
#endif
#endif

#if defined(WEIR_MAP)
/* weir_map on a batch view; `viewed` is the status of making the view. */
static bool process(weir_batch batch, weir_status viewed, weir_operator_map_types_map_output_t *ret, werror *err) {
    weir_output out;
    memset(&out, 0, sizeof out);
    weir_status status = viewed == WEIR_OK ? weir_map(&batch, &out) : viewed;
    size_t rows = batch.num_rows;
    arena_reset();
    if (status != WEIR_OK) {
        free_output(&out);
        take_error(status, err);
        return false;
    }
    build_batch(&out, rows, &ret->output);
    ret->rejected.len = out.nrejected;
    ret->rejected.ptr = out.nrejected ? xcalloc(out.nrejected, sizeof *ret->rejected.ptr) : NULL;
    size_t i = 0;
    for (rejection *r = out.rejected, *next; r; r = next, i++) {
        next = r->next;
        ret->rejected.ptr[i].row = r->row;
        give_string(&ret->rejected.ptr[i].reason, r->reason);
        free(r);
    }
    return true;
}

bool EXPORT(process)(wbatch *input, weir_operator_map_types_map_output_t *ret, werror *err) {
    bool ok = process(view_batch(input), WEIR_OK, ret, err);
    weir_operator_types_batch_free(input);
    return ok;
}

#if defined(WEIR_PACKED)
bool PACKED(process_packed)(weir_operator_types_packed_batch_t *input, weir_operator_map_types_map_output_t *ret, werror *err) {
    weir_batch batch = {0, 0, NULL};
    weir_status viewed = view_packed(input, &batch);
    bool ok = process(batch, viewed, ret, err);
    weir_operator_types_packed_batch_free(input);
    return ok;
}
#endif
#endif

#if defined(WEIR_AGGREGATE)
static weir_output *emitted, *emitted_last;
static size_t nemitted;

weir_output *weir_emit(void) {
    weir_output *o = xcalloc(1, sizeof *o);
    if (emitted_last)
        emitted_last->next = o;
    else
        emitted = o;
    emitted_last = o;
    nemitted++;
    return o;
}

static void drop_emitted(void) {
    for (weir_output *o = emitted, *next; o; o = next) {
        next = o->next;
        free_output(o);
        free(o);
    }
    emitted = emitted_last = NULL;
    nemitted = 0;
}

bool EXPORT(process)(wbatch *input, int64_t *watermark, exports_weir_operator_aggregate_list_batch_t *ret,
                     werror *err) {
    weir_batch batch = view_batch(input);
    drop_emitted();
    weir_status status = weir_aggregate(&batch, watermark);
    arena_reset();
    weir_operator_types_batch_free(input);
    if (status != WEIR_OK) {
        drop_emitted();
        take_error(status, err);
        return false;
    }
    ret->len = nemitted;
    ret->ptr = nemitted ? xcalloc(nemitted, sizeof *ret->ptr) : NULL;
    size_t i = 0;
    for (weir_output *o = emitted; o; o = o->next, i++)
        build_batch(o, output_rows(o), &ret->ptr[i]);
    drop_emitted();
    return true;
}

bool EXPORT(snapshot)(wbytes *ret, werror *err) {
    uint8_t *state = NULL;
    size_t len = 0;
    weir_status status = weir_snapshot(&state, &len);
    arena_reset();
    if (status != WEIR_OK) {
        free(state);
        take_error(status, err);
        return false;
    }
    give_bytes(ret, state, len);
    return true;
}

bool EXPORT(restore)(wbytes *state, werror *err) {
    weir_status status = weir_restore(state->ptr, state->len);
    arena_reset();
    WSTR(list_u8_free)(state);
    if (status != WEIR_OK) {
        take_error(status, err);
        return false;
    }
    return true;
}
#endif

#if defined(WEIR_KEYED_AGGREGATE)
typedef exports_weir_operator_keyed_state_list_state_entry_t wentries;

/* The store's entries (changed ones or all) as the WIT list. */
static void give_entries(bool changes, wentries *ret) {
    size_t n;
    weir_state_item *items = weir_state_take(changes, &n);
    ret->len = n;
    ret->ptr = n ? xcalloc(n, sizeof *ret->ptr) : NULL;
    for (size_t i = 0; i < n; i++) {
        ret->ptr[i].key.ptr = items[i].key;
        ret->ptr[i].key.len = items[i].key_len;
        ret->ptr[i].value.is_some = !items[i].removed;
        ret->ptr[i].value.val.ptr = items[i].value;
        ret->ptr[i].value.val.len = items[i].value_len;
    }
    free(items);
}

bool exports_weir_operator_keyed_state_snapshot_entries(wentries *ret, werror *err) {
    (void)err;
    give_entries(false, ret);
    return true;
}

bool exports_weir_operator_keyed_state_snapshot_changes(wentries *ret, werror *err) {
    (void)err;
    give_entries(true, ret);
    return true;
}

bool exports_weir_operator_keyed_state_restore_entries(wentries *entries, werror *err) {
    (void)err;
    weir_state_reset();
    for (size_t i = 0; i < entries->len; i++) {
        const exports_weir_operator_keyed_state_state_entry_t *e = &entries->ptr[i];
        if (e->value.is_some)
            weir_state_restore_put(e->key.ptr, e->key.len, e->value.val.ptr, e->value.val.len);
    }
    exports_weir_operator_keyed_state_list_state_entry_free(entries);
    return true;
}
#endif

#if defined(WEIR_SINK)
static weir_sink_status sink_kind;
static char *sink_msg;
static weir_output sink_rejects;

static weir_sink_status sink_error(weir_sink_status kind, const char *fmt, va_list ap) {
    free(sink_msg);
    sink_msg = vformat(fmt, ap);
    sink_kind = kind;
    return kind;
}
weir_sink_status weir_retryable(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    weir_sink_status s = sink_error(WEIR_SINK_RETRYABLE, fmt, ap);
    va_end(ap);
    return s;
}
weir_sink_status weir_permanent(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    weir_sink_status s = sink_error(WEIR_SINK_PERMANENT, fmt, ap);
    va_end(ap);
    return s;
}
void weir_sink_reject(uint32_t row, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    weir_reject(&sink_rejects, row, "%s", msg);
    free(msg);
}

bool EXPORT(write)(wbatch *input, weir_operator_sink_types_sink_error_t *err) {
    weir_batch batch = view_batch(input);
    weir_sink_status status = weir_write(&batch);
    arena_reset();
    weir_operator_types_batch_free(input);
    if (status == WEIR_WRITTEN) {
        free_output(&sink_rejects);
        return true;
    }
    if (status == WEIR_SINK_REJECTED_ROWS) {
        err->tag = WEIR_OPERATOR_SINK_TYPES_SINK_ERROR_REJECTED_ROWS;
        size_t n = sink_rejects.nrejected;
        err->val.rejected_rows.len = n;
        err->val.rejected_rows.ptr = n ? xcalloc(n, sizeof *err->val.rejected_rows.ptr) : NULL;
        size_t i = 0;
        for (rejection *r = sink_rejects.rejected, *next; r; r = next, i++) {
            next = r->next;
            err->val.rejected_rows.ptr[i].row = r->row;
            give_string(&err->val.rejected_rows.ptr[i].reason, r->reason);
            free(r);
        }
        memset(&sink_rejects, 0, sizeof sink_rejects);
        return false;
    }
    free_output(&sink_rejects);
    char *msg = sink_msg && sink_kind == status ? sink_msg : dup_string("sink failed");
    if (msg != sink_msg)
        free(sink_msg);
    sink_msg = NULL;
    err->tag = status == WEIR_SINK_RETRYABLE ? WEIR_OPERATOR_SINK_TYPES_SINK_ERROR_RETRYABLE
                                             : WEIR_OPERATOR_SINK_TYPES_SINK_ERROR_PERMANENT;
    give_string(&err->val.permanent, msg);
    return false;
}
#endif
