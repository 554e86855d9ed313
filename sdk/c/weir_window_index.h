/*
 * weir C SDK, internal to weir_window.c: the close index. Per store key, the
 * earliest end of its open windows, in a hash table of the keys plus a
 * binary min-heap on that end, so that a close visits only the keys with a
 * window due: O(log keys) each, nothing for the others.
 */
#ifndef WEIR_WINDOW_INDEX_H
#define WEIR_WINDOW_INDEX_H

#include <stddef.h>
#include <stdint.h>

/* One key of the index. */
typedef struct window_rec {
    struct window_rec *chain;
    uint64_t hash;
    int64_t next;  /* the earliest end of the key's open windows */
    size_t pos;    /* in the heap, or (size_t)-1 while taken off it */
    size_t key_len;
    uint8_t key[]; /* the store key (prefix included) */
} window_rec;

/* All zero: an empty index. */
typedef struct {
    window_rec **table;
    size_t nbuckets, nrecs;
    window_rec **heap;
    size_t heap_len, heap_cap;
} window_index;

/* Records `next` as the key's earliest window end; INT64_MIN (no open
 * window) forgets the key. The index keeps its own copy of the key. */
void window_index_set(window_index *ix, const uint8_t *key, size_t len, int64_t next);
/* The key whose earliest end is the smallest, when that end is at or before
 * `by`, taken off the heap; NULL otherwise. A taken key stays in the index
 * until it is put back (window_index_requeue) or forgotten
 * (window_index_remove). */
window_rec *window_index_pop_due(window_index *ix, int64_t by);
/* Puts a key taken by window_index_pop_due back with its new earliest end. */
void window_index_requeue(window_index *ix, window_rec *r, int64_t next);
/* Forgets a key (taken off the heap or not); frees `r`. */
void window_index_remove(window_index *ix, window_rec *r);
/* Forgets every key; the heap keeps its buffer. */
void window_index_clear(window_index *ix);
/* Frees the index (it is then empty again). */
void window_index_free(window_index *ix);

#endif
