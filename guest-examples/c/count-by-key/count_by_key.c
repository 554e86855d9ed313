/*
 * Aggregate: running count and sum of `value` per `key`. Each call emits one
 * batch (`key` utf8, `count` int64, `sum` float64) with the keys it touched,
 * in first-seen order, and their running totals. Null keys are skipped; a
 * null value counts but adds 0. Key columns may be utf8, int32 or int64
 * (stringified); the value column must be float64. Snapshots are byte for
 * byte the Rust original's: `u64 n` then n x (`u32 len`, key bytes, `i64
 * count`, `f64 sum`), little-endian, keys in sorted order. Same behaviour as
 * guest-examples/rust/count-by-key.
 *
 * The totals live in the SDK's keyed state (weir_state_*), one entry per key
 * (key bytes -> `i64 count`, `f64 sum`): built for the keyed-aggregate
 * world, a checkpoint writes only the keys touched since the previous one.
 *
 * Config (optional): {"key": "customer_id", "value": "total_amount"}
 * Build: scripts/build-polyglot-guests c (-> target/guests/polyglot/c-count-by-key.wasm)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir.h"

static const char *key_column = "customer_id";
static const char *value_column = "total_amount";

/* A key's entry value: count then sum (wasm is little-endian). */
typedef struct {
    int64_t count;
    double sum;
} total;

weir_status weir_init(const char *config, size_t len) {
    const weir_cfg keys[] = {
        {"key", WEIR_CFG_STRING, &key_column},
        {"value", WEIR_CFG_STRING, &value_column},
    };
    weir_status status = weir_parse_config(config, len, keys, 2);
    if (status == WEIR_OK) {
        weir_reads(key_column);
        weir_reads(value_column);
    }
    return status;
}

/* A key touched by this call: its value in the store and its text. */
typedef struct {
    uint8_t *value;
    char *key;
    size_t len;
} touched;

/* Index of `value` in the open-addressed pointer set, or of its free slot. */
static size_t slot(uint8_t **set, size_t mask, uint8_t *value) {
    size_t i = (size_t)(((uintptr_t)value >> 3) * 0x9e3779b97f4a7c15u) & mask;
    while (set[i] && set[i] != value) i = (i + 1) & mask;
    return i;
}

weir_status weir_aggregate(const weir_batch *batch, const int64_t *watermark) {
    (void)watermark;
    const weir_column *kcol = weir_batch_find(batch, key_column);
    if (!kcol)
        return weir_invalid_input("missing column `%s`", key_column);
    const weir_column *vcol = weir_batch_find(batch, value_column);
    if (!vcol)
        return weir_invalid_input("missing column `%s`", value_column);
    if (kcol->type != WEIR_UTF8 && kcol->type != WEIR_INT32 && kcol->type != WEIR_INT64)
        return weir_invalid_input("key column is %s, expected utf8/int32/int64", weir_type_name(kcol->type));
    if (vcol->type != WEIR_FLOAT64)
        return weir_invalid_input("expected a Float64 column, found %s", weir_type_name(vcol->type));
    size_t rows = batch->num_rows, mask = 15;
    while (mask < 2 * rows) mask = mask * 2 + 1;
    uint8_t **seen = calloc(mask + 1, sizeof *seen);
    touched *order = malloc((rows ? rows : 1) * sizeof *order);
    if (!seen || !order)
        abort();
    size_t ntouched = 0;
    char digits[24];
    for (size_t row = 0; row < rows; row++) {
        if (!weir_is_valid(kcol, row))
            continue;
        weir_str key = {digits, 0};
        if (kcol->type == WEIR_UTF8)
            key = weir_utf8(kcol, row);
        else if (kcol->type == WEIR_INT32)
            key.len = (size_t)snprintf(digits, sizeof digits, "%" PRId32, kcol->i32[row]);
        else
            key.len = (size_t)snprintf(digits, sizeof digits, "%" PRId64, kcol->i64[row]);
        uint8_t *value = weir_state_upsert(key.ptr, key.len, sizeof(total), NULL);
        size_t i = slot(seen, mask, value);
        if (!seen[i]) {
            seen[i] = value;
            touched *t = &order[ntouched++];
            t->value = value;
            t->len = key.len;
            t->key = malloc(key.len ? key.len : 1);
            if (!t->key)
                abort();
            memcpy(t->key, key.ptr, key.len);
        }
        total sum;
        memcpy(&sum, value, sizeof sum);
        sum.count++;
        sum.sum += weir_is_valid(vcol, row) ? vcol->f64[row] : 0.0;
        memcpy(value, &sum, sizeof sum);
    }
    if (ntouched) {
        weir_output *out = weir_emit();
        weir_builder *keys = weir_add_column(out, "key", WEIR_UTF8, false, ntouched);
        int64_t *counts = weir_values_i64(weir_add_column(out, "count", WEIR_INT64, false, ntouched));
        double *sums = weir_values_f64(weir_add_column(out, "sum", WEIR_FLOAT64, false, ntouched));
        for (size_t i = 0; i < ntouched; i++) {
            total t;
            memcpy(&t, order[i].value, sizeof t);
            weir_push_str(keys, order[i].key, order[i].len);
            counts[i] = t.count;
            sums[i] = t.sum;
        }
    }
    for (size_t i = 0; i < ntouched; i++) free(order[i].key);
    free(order);
    free(seen);
    return WEIR_OK;
}

/* A growing snapshot buffer. */
typedef struct {
    uint8_t *ptr;
    size_t len, cap;
} buffer;

static void append(buffer *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->ptr = realloc(b->ptr, b->cap);
        if (!b->ptr)
            abort();
    }
    memcpy(b->ptr + b->len, p, n);
    b->len += n;
}

static void append_entry(weir_str key, weir_str value, void *ctx) {
    uint32_t len = (uint32_t)key.len;
    append(ctx, &len, 4);
    append(ctx, key.ptr, key.len);
    append(ctx, value.ptr, value.len);
}

weir_status weir_snapshot(uint8_t **state, size_t *len) {
    buffer b = {0};
    uint64_t n = weir_state_len();
    append(&b, &n, 8);
    weir_state_foreach(append_entry, &b);
    *state = b.ptr;
    *len = b.len;
    return WEIR_OK;
}

/* Whether p[0..n) is UTF-8 as Rust's String::from_utf8 accepts it. */
static bool valid_utf8(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t more = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 4;
        if (more == 4 || more >= n - i)
            return false;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
        for (size_t k = 1; k <= more; k++) {
            if (p[i + k] < (k == 1 ? lo : 0x80) || p[i + k] > (k == 1 ? hi : 0xbf))
                return false;
        }
        i += more + 1;
    }
    return true;
}

/* Walks a snapshot; with `apply`, puts its totals into the store. */
static bool walk(const uint8_t *p, size_t len, bool apply) {
    if (len < 8)
        return false;
    uint64_t n;
    memcpy(&n, p, 8);
    size_t at = 8;
    for (; n > 0; n--) {
        uint32_t klen;
        if (len - at < 4)
            return false;
        memcpy(&klen, p + at, 4);
        at += 4;
        if (len - at < klen || !valid_utf8(p + at, klen) || len - at - klen < sizeof(total))
            return false;
        if (apply)
            weir_state_put(p + at, klen, p + at + klen, sizeof(total));
        at += klen + sizeof(total);
    }
    return true;
}

weir_status weir_restore(const uint8_t *state, size_t len) {
    if (!walk(state, len, false))
        return weir_failed("corrupt count-by-key snapshot");
    weir_state_clear();
    walk(state, len, true);
    return WEIR_OK;
}
