/*
 * weir C SDK: helpers shared by the SDK's own .c files. Not part of the API
 * (weir.h); operators do not include it.
 */
#ifndef WEIR_INTERNAL_H
#define WEIR_INTERNAL_H

#include <stdint.h>
#include <stdlib.h>

/* malloc / calloc / realloc that never return NULL (an operator out of memory aborts:
 * the host sees a trap and isolates the batch). Zero sizes allocate one byte. */
static inline void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}
static inline void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        abort();
    return p;
}
static inline void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p)
        abort();
    return p;
}

/* FNV-1a, 64 bit: the hash of the SDK's tables (keyed state, window index). */
static inline uint64_t fnv1a64(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3u;
    return h;
}

#endif
