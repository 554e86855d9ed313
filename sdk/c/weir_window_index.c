/*
 * weir C SDK: the close index of weir_window.c (see weir_window_index.h).
 */
#include <stdlib.h>
#include <string.h>

#include "weir_internal.h"
#include "weir_window_index.h"

#define NOT_IN_HEAP ((size_t)-1)

static window_rec *rec_find(const window_index *ix, const uint8_t *key, size_t len, uint64_t h) {
    if (!ix->nbuckets)
        return NULL;
    for (window_rec *r = ix->table[h & (ix->nbuckets - 1)]; r; r = r->chain)
        if (r->hash == h && r->key_len == len && memcmp(r->key, key, len) == 0)
            return r;
    return NULL;
}

static void heap_set(window_index *ix, size_t i, window_rec *r) {
    ix->heap[i] = r;
    r->pos = i;
}

static void sift_up(window_index *ix, size_t i) {
    window_rec *r = ix->heap[i];
    while (i > 0 && ix->heap[(i - 1) / 2]->next > r->next) {
        heap_set(ix, i, ix->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(ix, i, r);
}

static void sift_down(window_index *ix, size_t i) {
    window_rec *r = ix->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= ix->heap_len)
            break;
        if (c + 1 < ix->heap_len && ix->heap[c + 1]->next < ix->heap[c]->next)
            c++;
        if (ix->heap[c]->next >= r->next)
            break;
        heap_set(ix, i, ix->heap[c]);
        i = c;
    }
    heap_set(ix, i, r);
}

static void heap_push(window_index *ix, window_rec *r) {
    if (ix->heap_len == ix->heap_cap) {
        ix->heap_cap = ix->heap_cap ? ix->heap_cap * 2 : 64;
        ix->heap = xrealloc(ix->heap, ix->heap_cap * sizeof *ix->heap);
    }
    heap_set(ix, ix->heap_len++, r);
    sift_up(ix, ix->heap_len - 1);
}

static void heap_remove(window_index *ix, window_rec *r) {
    size_t i = r->pos;
    r->pos = NOT_IN_HEAP;
    window_rec *last = ix->heap[--ix->heap_len];
    if (i == ix->heap_len)
        return;
    heap_set(ix, i, last);
    sift_up(ix, i);
    sift_down(ix, last->pos);
}

static void rec_free(window_index *ix, window_rec *r) {
    if (r->pos != NOT_IN_HEAP)
        heap_remove(ix, r);
    window_rec **p = &ix->table[r->hash & (ix->nbuckets - 1)];
    while (*p != r) p = &(*p)->chain;
    *p = r->chain;
    free(r);
    ix->nrecs--;
}

void window_index_set(window_index *ix, const uint8_t *key, size_t len, int64_t next) {
    uint64_t h = fnv1a64(key, len);
    window_rec *r = rec_find(ix, key, len, h);
    if (next == INT64_MIN) {
        if (r)
            rec_free(ix, r);
        return;
    }
    if (!r) {
        if (ix->nrecs + 1 > ix->nbuckets / 4 * 3) {
            size_t size = ix->nbuckets ? ix->nbuckets * 2 : 64;
            window_rec **fresh = xcalloc(size, sizeof *fresh);
            for (size_t b = 0; b < ix->nbuckets; b++)
                for (window_rec *c = ix->table[b], *nextc; c; c = nextc) {
                    nextc = c->chain;
                    c->chain = fresh[c->hash & (size - 1)];
                    fresh[c->hash & (size - 1)] = c;
                }
            free(ix->table);
            ix->table = fresh;
            ix->nbuckets = size;
        }
        r = xmalloc(sizeof *r + len);
        r->hash = h;
        r->key_len = len;
        memcpy(r->key, key, len);
        r->chain = ix->table[h & (ix->nbuckets - 1)];
        ix->table[h & (ix->nbuckets - 1)] = r;
        ix->nrecs++;
        r->next = next;
        heap_push(ix, r);
        return;
    }
    int64_t old = r->next;
    r->next = next;
    if (r->pos == NOT_IN_HEAP)
        heap_push(ix, r);
    else if (next < old)
        sift_up(ix, r->pos);
    else
        sift_down(ix, r->pos);
}

window_rec *window_index_pop_due(window_index *ix, int64_t by) {
    if (!ix->heap_len || ix->heap[0]->next > by)
        return NULL;
    window_rec *r = ix->heap[0];
    heap_remove(ix, r);
    return r;
}

void window_index_requeue(window_index *ix, window_rec *r, int64_t next) {
    r->next = next;
    heap_push(ix, r);
}

void window_index_remove(window_index *ix, window_rec *r) { rec_free(ix, r); }

void window_index_clear(window_index *ix) {
    for (size_t b = 0; b < ix->nbuckets; b++)
        for (window_rec *r = ix->table[b], *next; r; r = next) {
            next = r->chain;
            free(r);
        }
    free(ix->table);
    ix->table = NULL;
    ix->nbuckets = ix->nrecs = ix->heap_len = 0;
}

void window_index_free(window_index *ix) {
    window_index_clear(ix);
    free(ix->heap);
    ix->heap = NULL;
    ix->heap_cap = 0;
}
