/* Aggregate: running count per `key`; emits the keys touched by each batch,
 * in first-seen order, with their counts. State: a growable array of
 * (key, count); snapshot = u32 n, then n x (u32 len, key bytes, i64 count),
 * little-endian (wasm32 is little-endian, so plain memcpy). */
#include "weir.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key;
    size_t len;
    int64_t count;
} entry;

static entry *entries;
static size_t nentries, capacity;

static size_t find_or_add(const char *key, size_t len) {
    for (size_t i = 0; i < nentries; i++)
        if (entries[i].len == len && memcmp(entries[i].key, key, len) == 0)
            return i;
    if (nentries == capacity) {
        capacity = capacity ? capacity * 2 : 16;
        entries = realloc(entries, capacity * sizeof *entries);
    }
    entries[nentries].key = malloc(len ? len : 1);
    memcpy(entries[nentries].key, key, len);
    entries[nentries].len = len;
    entries[nentries].count = 0;
    return nentries++;
}

weir_status weir_init(const char *config, size_t len) {
    weir_reads("key");
    return weir_parse_config(config, len, NULL, 0);
}

weir_status weir_aggregate(const weir_batch *batch, const int64_t *watermark) {
    (void)watermark;
    const weir_column *key = weir_batch_column(batch, "key");
    if (!key)
        return weir_last_error();
    if (key->type != WEIR_UTF8)
        return weir_invalid_input("key is %s, expected Utf8", weir_type_name(key->type));
    size_t *touched = malloc((batch->num_rows ? batch->num_rows : 1) * sizeof *touched);
    size_t ntouched = 0;
    for (size_t row = 0; row < batch->num_rows; row++) {
        if (!weir_is_valid(key, row))
            continue;
        weir_str s = weir_utf8(key, row);
        size_t index = find_or_add(s.ptr, s.len);
        entries[index].count++;
        bool seen = false;
        for (size_t t = 0; t < ntouched && !seen; t++)
            seen = touched[t] == index;
        if (!seen)
            touched[ntouched++] = index;
    }
    if (ntouched > 0) {
        weir_output *out = weir_emit();
        weir_builder *keys = weir_add_column(out, "key", WEIR_UTF8, false, ntouched);
        weir_builder *counts = weir_add_column(out, "count", WEIR_INT64, false, ntouched);
        int64_t *values = weir_values_i64(counts);
        for (size_t t = 0; t < ntouched; t++) {
            weir_push_str(keys, entries[touched[t]].key, entries[touched[t]].len);
            values[t] = entries[touched[t]].count;
        }
    }
    free(touched);
    return WEIR_OK;
}

weir_status weir_snapshot(uint8_t **state, size_t *len) {
    size_t size = 4;
    for (size_t i = 0; i < nentries; i++)
        size += 4 + entries[i].len + 8;
    uint8_t *buf = malloc(size), *p = buf;
    uint32_t n = (uint32_t)nentries;
    memcpy(p, &n, 4), p += 4;
    for (size_t i = 0; i < nentries; i++) {
        uint32_t klen = (uint32_t)entries[i].len;
        memcpy(p, &klen, 4), p += 4;
        memcpy(p, entries[i].key, klen), p += klen;
        memcpy(p, &entries[i].count, 8), p += 8;
    }
    *state = buf;
    *len = size;
    return WEIR_OK;
}

weir_status weir_restore(const uint8_t *state, size_t len) {
    const uint8_t *p = state, *end = state + len;
    uint32_t n;
    if (len < 4)
        return weir_invalid_input("state too short");
    memcpy(&n, p, 4), p += 4;
    nentries = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t klen;
        if (end - p < 4)
            return weir_invalid_input("state truncated");
        memcpy(&klen, p, 4), p += 4;
        if ((size_t)(end - p) < (size_t)klen + 8)
            return weir_invalid_input("state truncated");
        size_t index = find_or_add((const char *)p, klen);
        p += klen;
        memcpy(&entries[index].count, p, 8), p += 8;
    }
    return WEIR_OK;
}
