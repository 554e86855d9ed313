/*
 * weir C SDK: the keyed state store (weir_state_* in weir.h). A hash table
 * of key bytes -> value bytes whose nodes never move (chained buckets), with
 * a list of the keys changed or removed since the last checkpoint, so
 * snapshot-changes costs what changed. A removed key stays as a dead node
 * until a checkpoint has reported it. Tracking starts with the host's first
 * keyed-state call: a pipeline without checkpoints never makes one, so no
 * list and no dead nodes accumulate there. Plain C: no bindings (weir.c exports
 * keyed-state from it when built with -DWEIR_KEYED_AGGREGATE).
 */
#include <stdlib.h>
#include <string.h>

#include "weir.h"
#include "weir_internal.h"
#include "weir_state.h"

typedef struct node {
    struct node *next;         /* bucket chain */
    struct node *next_changed; /* the changed list */
    uint64_t hash;
    bool live;
    bool changed;
    uint8_t *value;
    size_t value_len;
    size_t key_len;
    uint8_t key[];
} node;

static node **buckets;
static size_t nbuckets, nnodes, nlive;
static node *changed;
/* Whether changes are tracked (since the first take or restore). */
static bool tracking;
/* Bumped when the whole store is replaced or emptied (weir_state_epoch). */
static uint64_t epoch;

static node *find(const void *key, size_t len, uint64_t h) {
    if (!nbuckets)
        return NULL;
    for (node *n = buckets[h & (nbuckets - 1)]; n; n = n->next)
        if (n->hash == h && n->key_len == len && memcmp(n->key, key, len) == 0)
            return n;
    return NULL;
}

static void grow(void) {
    size_t size = nbuckets ? nbuckets * 2 : 64;
    node **fresh = xcalloc(size, sizeof *fresh);
    for (size_t b = 0; b < nbuckets; b++)
        for (node *n = buckets[b], *next; n; n = next) {
            next = n->next;
            n->next = fresh[n->hash & (size - 1)];
            fresh[n->hash & (size - 1)] = n;
        }
    free(buckets);
    buckets = fresh;
    nbuckets = size;
}

/* The node of key, created (dead, empty) when absent. */
static node *find_or_add(const void *key, size_t len) {
    uint64_t h = fnv1a64(key, len);
    node *n = find(key, len, h);
    if (n)
        return n;
    if (nnodes + 1 > nbuckets / 4 * 3)
        grow();
    n = xmalloc(sizeof *n + len);
    memset(n, 0, sizeof *n);
    n->hash = h;
    n->key_len = len;
    memcpy(n->key, key, len);
    n->next = buckets[h & (nbuckets - 1)];
    buckets[h & (nbuckets - 1)] = n;
    nnodes++;
    return n;
}

/* Unlinks and frees a node (its value already freed or dead). */
static void purge(node *n);

static void mark(node *n) {
    if (!tracking) {
        if (!n->live)
            purge(n);
        return;
    }
    if (!n->changed) {
        n->changed = true;
        n->next_changed = changed;
        changed = n;
    }
}

/* Unlinks and frees a node (its value already freed or dead). */
static void purge(node *n) {
    node **p = &buckets[n->hash & (nbuckets - 1)];
    while (*p != n) p = &(*p)->next;
    *p = n->next;
    free(n->value);
    free(n);
    nnodes--;
}

bool weir_state_get(const void *key, size_t key_len, weir_str *value) {
    node *n = find(key, key_len, fnv1a64(key, key_len));
    if (!n || !n->live)
        return false;
    value->ptr = (const char *)n->value;
    value->len = n->value_len;
    return true;
}

uint8_t *weir_state_upsert(const void *key, size_t key_len, size_t len, bool *created) {
    node *n = find_or_add(key, key_len);
    bool fresh = !n->live || n->value_len != len;
    if (fresh) {
        free(n->value);
        n->value = xcalloc(len, 1);
        n->value_len = len;
    }
    if (created)
        *created = !n->live;
    if (!n->live)
        nlive++;
    n->live = true;
    mark(n);
    return n->value;
}

void weir_state_put(const void *key, size_t key_len, const void *value, size_t len) {
    memcpy(weir_state_upsert(key, key_len, len, NULL), value, len);
}

void weir_state_remove(const void *key, size_t key_len) {
    node *n = find(key, key_len, fnv1a64(key, key_len));
    if (!n || !n->live)
        return;
    free(n->value);
    n->value = NULL;
    n->value_len = 0;
    n->live = false;
    nlive--;
    mark(n);
}

void weir_state_clear(void) {
    for (size_t b = 0; b < nbuckets; b++)
        for (node *n = buckets[b], *next; n; n = next) {
            next = n->next; /* mark may free n */
            if (n->live) {
                free(n->value);
                n->value = NULL;
                n->value_len = 0;
                n->live = false;
                mark(n);
            }
        }
    nlive = 0;
    epoch++;
}

size_t weir_state_len(void) { return nlive; }

static int by_key(const void *a, const void *b) {
    const node *x = *(node *const *)a, *y = *(node *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* The live nodes (or the changed ones), sorted by key; *n = how many. */
static node **sorted(bool only_changed, size_t *count) {
    size_t cap = only_changed ? 0 : nlive, n = 0;
    if (only_changed)
        for (node *c = changed; c; c = c->next_changed) cap++;
    node **out = xmalloc(cap * sizeof *out);
    if (only_changed)
        for (node *c = changed; c; c = c->next_changed) out[n++] = c;
    else
        for (size_t b = 0; b < nbuckets; b++)
            for (node *c = buckets[b]; c; c = c->next)
                if (c->live)
                    out[n++] = c;
    qsort(out, n, sizeof *out, by_key);
    *count = n;
    return out;
}

void weir_state_foreach(void (*fn)(weir_str key, weir_str value, void *ctx), void *ctx) {
    size_t n;
    node **nodes = sorted(false, &n);
    for (size_t i = 0; i < n; i++) {
        weir_str key = {(const char *)nodes[i]->key, nodes[i]->key_len};
        weir_str value = {(const char *)nodes[i]->value, nodes[i]->value_len};
        fn(key, value, ctx);
    }
    free(nodes);
}

static uint8_t *copy(const uint8_t *p, size_t len) {
    if (!len)
        return NULL;
    uint8_t *d = xmalloc(len);
    memcpy(d, p, len);
    return d;
}

/* Forgets what changed: clears the flags and frees the dead nodes. */
static void reset_tracking(void) {
    for (node *c = changed, *next; c; c = next) {
        next = c->next_changed;
        c->changed = false;
        c->next_changed = NULL;
        if (!c->live)
            purge(c);
    }
    changed = NULL;
}

weir_state_item *weir_state_take(bool changes, size_t *count) {
    size_t n;
    /* Untracked so far: every live key changed since the start. */
    node **nodes = sorted(changes && tracking, &n);
    weir_state_item *items = xmalloc(n * sizeof *items);
    for (size_t i = 0; i < n; i++) {
        items[i].key = copy(nodes[i]->key, nodes[i]->key_len);
        items[i].key_len = nodes[i]->key_len;
        items[i].removed = !nodes[i]->live;
        items[i].value = copy(nodes[i]->value, nodes[i]->value_len);
        items[i].value_len = nodes[i]->value_len;
    }
    free(nodes);
    reset_tracking();
    tracking = true;
    *count = n;
    return items;
}

void weir_state_reset(void) {
    for (size_t b = 0; b < nbuckets; b++)
        for (node *n = buckets[b], *next; n; n = next) {
            next = n->next;
            free(n->value);
            free(n);
        }
    free(buckets);
    buckets = NULL;
    nbuckets = nnodes = nlive = 0;
    changed = NULL;
    tracking = true;
    epoch++;
}

uint64_t weir_state_epoch(void) { return epoch; }

void weir_state_restore_put(const uint8_t *key, size_t key_len, const uint8_t *value, size_t len) {
    node *n = find_or_add(key, key_len);
    free(n->value);
    n->value = xmalloc(len);
    memcpy(n->value, value, len);
    n->value_len = len;
    if (!n->live)
        nlive++;
    n->live = true;
}
