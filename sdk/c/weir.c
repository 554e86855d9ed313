/*
 * weir C SDK runtime: glue between wit-bindgen's C bindings of one operator
 * world and the plain structs of weir.h. Compile with exactly one of
 * -DWEIR_FILTER, -DWEIR_MAP, -DWEIR_AGGREGATE, -DWEIR_KEYED_AGGREGATE
 * (both aggregates with weir_state.c), -DWEIR_SINK, next to the
 * bindings generated for that world, or -DWEIR_SINK_HTTP next to the
 * bindings of sdk/c/wit's sink-operator-http world (see docs/sdk-c.md).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir.h"

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

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}
static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        abort();
    return p;
}

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
    declared_schema *grown = realloc(schemas, (num_schemas + 1) * sizeof *schemas);
    if (!grown)
        abort();
    schemas = grown;
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
        b->values = realloc(b->values, b->values_cap);
        if (!b->values)
            abort();
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

/* ---------------------------------------------------------------- config */

typedef struct {
    const char *p, *end;
} json;

static void ws(json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static void put_utf8(char *out, size_t *n, unsigned cp) {
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xc0 | (cp >> 6));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xe0 | (cp >> 12));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*n)++] = (char)(0xf0 | (cp >> 18));
        out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

static bool hex4(json *j, unsigned *v) {
    if (j->end - j->p < 4)
        return false;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *j->p++;
        *v <<= 4;
        if (c >= '0' && c <= '9') *v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') *v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') *v |= (unsigned)(c - 'A' + 10);
        else return false;
    }
    return true;
}

/* Parses a JSON string at j->p (at the quote) into a malloc'd C string. */
static char *json_string(json *j) {
    if (j->p >= j->end || *j->p != '"')
        return NULL;
    j->p++;
    char *out = xmalloc((size_t)(j->end - j->p) + 1);
    size_t n = 0;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if ((unsigned char)c < 0x20)
            goto bad;
        if (c != '\\') {
            out[n++] = c;
            continue;
        }
        if (j->p >= j->end)
            goto bad;
        c = *j->p++;
        switch (c) {
        case '"': case '\\': case '/': out[n++] = c; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (!hex4(j, &cp))
                goto bad;
            if (cp >= 0xd800 && cp < 0xdc00 && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
                j->p += 2;
                if (!hex4(j, &lo) || lo < 0xdc00 || lo > 0xdfff)
                    goto bad;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            put_utf8(out, &n, cp);
            break;
        }
        default: goto bad;
        }
    }
    if (j->p >= j->end)
        goto bad;
    j->p++;
    out[n] = 0;
    return out;
bad:
    free(out);
    return NULL;
}

static bool json_number(json *j, double *v) {
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return false;
    if (*j->p == '0') j->p++;
    else while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9') return false;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9') return false;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    }
    char buf[64];
    size_t n = (size_t)(j->p - s);
    if (n >= sizeof buf) {
        char *big = scratch(n + 1);
        memcpy(big, s, n);
        big[n] = 0;
        *v = strtod(big, NULL);
    } else {
        memcpy(buf, s, n);
        buf[n] = 0;
        *v = strtod(buf, NULL);
    }
    return true;
}

static bool literal(json *j, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return false;
    j->p += n;
    return true;
}

/* Skips any JSON value. */
static bool json_skip(json *j, int depth) {
    ws(j);
    if (j->p >= j->end || depth > 64)
        return false;
    char c = *j->p;
    if (c == '"') {
        char *s = json_string(j);
        free(s);
        return s != NULL;
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        ws(j);
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return true;
        }
        for (;;) {
            if (c == '{') {
                ws(j);
                char *k = json_string(j);
                if (!k) return false;
                free(k);
                ws(j);
                if (j->p >= j->end || *j->p++ != ':') return false;
            }
            if (!json_skip(j, depth + 1)) return false;
            ws(j);
            if (j->p >= j->end) return false;
            if (*j->p == ',') { j->p++; continue; }
            if (*j->p == close) { j->p++; return true; }
            return false;
        }
    }
    double d;
    return literal(j, "true") || literal(j, "false") || literal(j, "null") || json_number(j, &d);
}

static const char *kind_name(weir_cfg_kind k) {
    return k == WEIR_CFG_NUMBER ? "a number" : k == WEIR_CFG_STRING ? "a string" : "a boolean";
}

weir_status weir_parse_config(const char *text, size_t len, const weir_cfg *keys, size_t n) {
    json j = {text, text + len};
    ws(&j);
    if (j.p == j.end || literal(&j, "null")) {
        ws(&j);
        return j.p == j.end ? WEIR_OK : weir_invalid_config("config is not valid JSON");
    }
    if (*j.p != '{') {
        json probe = j;
        if (!json_skip(&probe, 0))
            return weir_invalid_config("config is not valid JSON");
        return weir_invalid_config("config must be a JSON object, got %.*s", (int)(probe.p - j.p), j.p);
    }
    j.p++;
    ws(&j);
    if (j.p < j.end && *j.p == '}') {
        j.p++;
    } else {
        for (;;) {
            ws(&j);
            char *key = json_string(&j);
            if (!key)
                return weir_invalid_config("config is not valid JSON");
            ws(&j);
            if (j.p >= j.end || *j.p++ != ':') {
                free(key);
                return weir_invalid_config("config is not valid JSON");
            }
            ws(&j);
            const weir_cfg *slot = NULL;
            for (size_t i = 0; i < n; i++)
                if (strcmp(keys[i].key, key) == 0)
                    slot = &keys[i];
            if (!slot) {
                weir_status s = weir_invalid_config("unknown field `%s`", key);
                free(key);
                return s;
            }
            const char *start = j.p;
            bool ok;
            if (slot->kind == WEIR_CFG_NUMBER) {
                ok = json_number(&j, (double *)slot->slot);
            } else if (slot->kind == WEIR_CFG_BOOL) {
                ok = literal(&j, "true") ? (*(bool *)slot->slot = true, true)
                   : literal(&j, "false") ? (*(bool *)slot->slot = false, true) : false;
            } else {
                char *s = json_string(&j);
                ok = s != NULL;
                if (ok)
                    *(const char **)slot->slot = s; /* lives as long as the instance */
            }
            if (!ok) {
                j.p = start;
                json probe = j;
                bool valid = json_skip(&probe, 0);
                weir_status s = valid ? weir_invalid_config("`%s`: expected %s, got %.*s", key, kind_name(slot->kind),
                                                            (int)(probe.p - start), start)
                                      : weir_invalid_config("config is not valid JSON");
                free(key);
                return s;
            }
            free(key);
            ws(&j);
            if (j.p < j.end && *j.p == ',') { j.p++; continue; }
            if (j.p < j.end && *j.p == '}') { j.p++; break; }
            return weir_invalid_config("config is not valid JSON");
        }
    }
    ws(&j);
    return j.p == j.end ? WEIR_OK : weir_invalid_config("config is not valid JSON: trailing characters");
}

/* ------------------------------------------------------------ formatting */

static size_t put(char *buf, size_t cap, const char *s) {
    size_t n = strlen(s);
    if (cap) {
        size_t m = n < cap - 1 ? n : cap - 1;
        memcpy(buf, s, m);
        buf[m] = 0;
    }
    return n;
}

size_t weir_format_f64(char *buf, size_t cap, double v) {
    if (isnan(v)) return put(buf, cap, "NaN");
    if (isinf(v)) return put(buf, cap, v > 0 ? "inf" : "-inf");
    if (v == 0) return put(buf, cap, signbit(v) ? "-0" : "0");
    char sci[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(sci, sizeof sci, "%.*e", p - 1, v);
        if (strtod(sci, NULL) == v)
            break;
    }
    /* sci: [-]d[.ddd]e[+-]xx */
    char digits[20];
    size_t nd = 0;
    const char *s = sci;
    bool neg = *s == '-';
    if (neg) s++;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9') digits[nd++] = *s;
    int exp = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    char out[340];
    size_t n = 0;
    if (neg) out[n++] = '-';
    int point = exp + 1; /* digits before the decimal point */
    if (point <= 0) {
        out[n++] = '0';
        out[n++] = '.';
        for (int i = 0; i < -point; i++) out[n++] = '0';
        for (size_t i = 0; i < nd; i++) out[n++] = digits[i];
    } else if ((size_t)point >= nd) {
        for (size_t i = 0; i < nd; i++) out[n++] = digits[i];
        for (size_t i = nd; i < (size_t)point; i++) out[n++] = '0';
    } else {
        for (size_t i = 0; i < nd; i++) {
            if (i == (size_t)point) out[n++] = '.';
            out[n++] = digits[i];
        }
    }
    out[n] = 0;
    return put(buf, cap, out);
}

int64_t weir_f64_to_i64(double v) {
    if (isnan(v)) return 0;
    if (v >= 9223372036854775808.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
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
    reads = realloc(reads, (nreads + 1) * sizeof *reads);
    if (!reads)
        abort();
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

#if defined(WEIR_SINK_HTTP)
/* ------------------------------------------------- outgoing HTTP (sinks) */

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
