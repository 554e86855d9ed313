/*
 * Unit test of the C SDK's window helpers (weir_window.c) over the keyed
 * state store, natively:
 *   cc -Wall -Wextra -Werror -Isdk/c sdk/c/weir_state.c sdk/c/weir_window.c sdk/c/weir_window_index.c \
 *      sdk/c/weir_window_test.c -lm -o t && ./t
 * (scripts/test runs it). Prints the failed checks and exits 1 on failure.
 *
 * The core is a differential test: hopping (and tumbling) windows kept as
 * panes against a naive reference that adds each row to each of its
 * windows, and sessions against one that re-clusters the open rows, with
 * random rows, a watermark that advances, random closes, several keys and
 * the store reset and refilled from its checkpointed entries mid-run (as the
 * host's restore-entries does), or moved through a whole snapshot.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir.h"
#include "weir_check.h"
#include "weir_state.h"
#include "weir_window.h"

/* In the random runs: report the run and stop it at the first difference. */
#define REQUIRE(cond)                                                                                            \
    do {                                                                                                         \
        if (!(cond)) {                                                                                           \
            fprintf(stderr, "%s:%d: %s (seed %" PRIu64 ", step %d)\n", __FILE__, __LINE__, #cond, seed, step); \
            failures++;                                                                                          \
            goto out;                                                                                            \
        }                                                                                                        \
    } while (0)

#define MIN INT64_C(60000)

/* ------------------------------------------------------------ accumulators */

/* Which rows a window folded, and how many times: a row counted twice or
 * missed shows in `rows` or the sums. */
typedef struct {
    int64_t rows;
    uint64_t ids, mixed;
} seen;

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdu;
    return x ^ (x >> 29);
}
static void seen_add(void *acc, const void *row) {
    seen *s = acc;
    uint64_t id = *(const uint64_t *)row;
    s->rows++;
    s->ids += id;
    s->mixed += mix(id);
}
static void seen_merge(void *acc, const void *other) {
    seen *s = acc;
    const seen *o = other;
    s->rows += o->rows;
    s->ids += o->ids;
    s->mixed += o->mixed;
}
static const weir_window_acc seen_acc = {sizeof(seen), NULL, seen_add, seen_merge};
static bool seen_eq(const seen *a, const seen *b) { return a->rows == b->rows && a->ids == b->ids && a->mixed == b->mixed; }

/* A count with a non-zero init (min of the row values): init must run. */
typedef struct {
    int64_t count, min;
} counted;
static void counted_init(void *acc) { ((counted *)acc)->min = INT64_MAX; }
static void counted_add(void *acc, const void *row) {
    counted *c = acc;
    int64_t v = row ? *(const int64_t *)row : 0;
    c->count++;
    if (v < c->min)
        c->min = v;
}
static void counted_merge(void *acc, const void *other) {
    counted *c = acc;
    const counted *o = other;
    c->count += o->count;
    if (o->min < c->min)
        c->min = o->min;
}
static const weir_window_acc counted_acc = {sizeof(counted), counted_init, counted_add, counted_merge};

/* ------------------------------------------------------------------ tools */

static uint64_t rng_state;
static uint64_t below(uint64_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state % n;
}

static int64_t fdiv(int64_t a, int64_t b) { return a / b - (a % b < 0); }

/* The keys of the runs: empty, prefixes of each other, a NUL byte inside. */
#define NKEYS 5
static const char *const key_bytes[NKEYS] = {"", "a", "ab", "b", "k\0x"};
static const size_t key_lens[NKEYS] = {0, 1, 2, 1, 3};

static int key_cmp(int a, int b) {
    size_t n = key_lens[a] < key_lens[b] ? key_lens[a] : key_lens[b];
    int c = n ? memcmp(key_bytes[a], key_bytes[b], n) : 0;
    return c ? c : (key_lens[a] > key_lens[b]) - (key_lens[a] < key_lens[b]);
}

/* Index of the key with these bytes, or -1. */
static int key_index(const void *key, size_t len) {
    for (int k = 0; k < NKEYS; k++)
        if (key_lens[k] == len && (len == 0 || memcmp(key_bytes[k], key, len) == 0))
            return k;
    return -1;
}

/* A closed (or open) window of a key, as emitted or expected. */
typedef struct {
    weir_window w;
    int key;
    seen acc;
} result;

static int result_cmp(const void *pa, const void *pb) {
    const result *a = pa, *b = pb;
    if (a->w.end_ms != b->w.end_ms)
        return a->w.end_ms < b->w.end_ms ? -1 : 1;
    int c = key_cmp(a->key, b->key);
    if (c)
        return c;
    return (a->w.start_ms > b->w.start_ms) - (a->w.start_ms < b->w.start_ms);
}

typedef struct {
    result *items;
    size_t n, cap;
} results;

static void results_push(results *r, weir_window w, int key, const seen *acc) {
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->items = realloc(r->items, r->cap * sizeof *r->items);
        if (!r->items)
            abort();
    }
    r->items[r->n++] = (result){w, key, *acc};
}

/* emit callback: collects what weir_window_close hands out. */
static void collect(weir_window window, const void *key, size_t key_len, const void *acc, void *ctx) {
    int k = key_index(key, key_len);
    if (k < 0) {
        fprintf(stderr, "closed a window of an unknown key (%zu bytes)\n", key_len);
        failures++;
        return;
    }
    results_push(ctx, window, k, acc);
}

static bool same_results(const results *a, const results *b) {
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (a->items[i].w.start_ms != b->items[i].w.start_ms || a->items[i].w.end_ms != b->items[i].w.end_ms ||
            a->items[i].key != b->items[i].key || !seen_eq(&a->items[i].acc, &b->items[i].acc))
            return false;
    return true;
}

static void dump(const char *what, const results *r) {
    fprintf(stderr, "  %s (%zu):", what, r->n);
    for (size_t i = 0; i < r->n && i < 12; i++)
        fprintf(stderr, " [%" PRId64 ",%" PRId64 ")k%d:%" PRId64, r->items[i].w.start_ms, r->items[i].w.end_ms, r->items[i].key,
                r->items[i].acc.rows);
    fprintf(stderr, "\n");
}

/* foreach callback: the open windows of one key. */
typedef struct {
    results *r;
    int key;
} visit_ctx;
static void visit(weir_window window, const void *acc, void *ctx) {
    visit_ctx *v = ctx;
    results_push(v->r, window, v->key, acc);
}

/* ------------------------------------------------- the host's state copy */

/* What the state topic holds for the window keys: key -> value, merged from
 * weir_state_take the way the host merges checkpoints. */
typedef struct {
    uint8_t *key, *value;
    size_t key_len, value_len;
} stored;
static stored topic[64];
static size_t ntopic;

static void topic_clear(void) {
    for (size_t i = 0; i < ntopic; i++) {
        free(topic[i].key);
        free(topic[i].value);
    }
    ntopic = 0;
}

/* Takes the changes (or everything), merges them into the topic; returns a
 * bitmask of the window keys among them (bit NKEYS: a key that is not one). */
static unsigned take_into_topic(bool changes, const char *prefix) {
    size_t n, plen = strlen(prefix);
    unsigned keys = 0;
    weir_state_item *items = weir_state_take(changes, &n);
    for (size_t i = 0; i < n; i++) {
        weir_state_item *it = &items[i];
        const uint8_t *key = it->key ? it->key : (const uint8_t *)""; /* NULL when empty */
        int k = it->key_len >= plen && memcmp(key, prefix, plen) == 0 ? key_index(key + plen, it->key_len - plen) : -1;
        keys |= k < 0 ? 1u << NKEYS : 1u << k;
        size_t j = 0;
        while (j < ntopic && !(topic[j].key_len == it->key_len && (it->key_len == 0 || memcmp(topic[j].key, it->key, it->key_len) == 0)))
            j++;
        if (j < ntopic) {
            free(topic[j].key);
            free(topic[j].value);
            topic[j] = topic[--ntopic];
        }
        if (!it->removed) {
            if (ntopic == sizeof topic / sizeof *topic)
                abort();
            topic[ntopic++] = (stored){it->key, it->value, it->key_len, it->value_len};
        } else {
            free(it->key);
            free(it->value);
        }
    }
    free(items);
    return keys;
}

/* restore-entries: a fresh store holding what the topic holds. */
static void restore_from_topic(void) {
    weir_state_reset();
    for (size_t i = 0; i < ntopic; i++) weir_state_restore_put(topic[i].key ? topic[i].key : (const uint8_t *)"", topic[i].key_len, topic[i].value, topic[i].value_len);
}

/* --------------------------------------------------- fixed-window reference */

/* Hopping windows the way a naive implementation keeps them: one
 * accumulator per (key, window), every row added to each of its windows. */
typedef struct {
    int64_t size, slide;
    results open;
} reference;

static void ref_add(reference *ref, int key, int64_t t, uint64_t id) {
    for (int64_t s = fdiv(t, ref->slide) * ref->slide; s > t - ref->size; s -= ref->slide) {
        size_t i = 0;
        while (i < ref->open.n && !(ref->open.items[i].key == key && ref->open.items[i].w.start_ms == s)) i++;
        if (i == ref->open.n) {
            seen zero = {0, 0, 0};
            results_push(&ref->open, (weir_window){s, s + ref->size}, key, &zero);
        }
        seen_add(&ref->open.items[i].acc, &id);
    }
}

static const seen *ref_get(const reference *ref, int key, weir_window w) {
    for (size_t i = 0; i < ref->open.n; i++)
        if (ref->open.items[i].key == key && ref->open.items[i].w.start_ms == w.start_ms && ref->open.items[i].w.end_ms == w.end_ms)
            return &ref->open.items[i].acc;
    return NULL;
}

/* Moves the windows ending at or before wm to `closed`, sorted; a bitmask of their keys. */
static unsigned ref_close(results *open, int64_t wm, results *closed) {
    unsigned keys = 0;
    size_t kept = 0;
    for (size_t i = 0; i < open->n; i++) {
        if (open->items[i].w.end_ms <= wm) {
            results_push(closed, open->items[i].w, open->items[i].key, &open->items[i].acc);
            keys |= 1u << open->items[i].key;
        } else
            open->items[kept++] = open->items[i];
    }
    open->n = kept;
    if (closed->n > 1)
        qsort(closed->items, closed->n, sizeof *closed->items, result_cmp);
    return keys;
}

/* The open windows of `key` by start (what weir_window_foreach lists). */
static void ref_open_of(const results *open, int key, results *out) {
    for (size_t i = 0; i < open->n; i++)
        if (open->items[i].key == key)
            results_push(out, open->items[i].w, key, &open->items[i].acc);
    if (out->n > 1)
        qsort(out->items, out->n, sizeof *out->items, result_cmp); /* one key: by end = by start */
}

/* ------------------------------------------------------ session reference */

/* Sessions recomputed from the open rows: a row's session is [t, t + gap),
 * sessions that overlap or touch are one. */
typedef struct {
    int key;
    int64_t t;
    uint64_t id;
} open_row;

static int by_key_time(const void *pa, const void *pb) {
    const open_row *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key - b->key;
    return (a->t > b->t) - (a->t < b->t);
}

/* The sessions of the open rows (all keys) into `out`, sorted by (end, key, start). */
static void sessions_of(open_row *rows, size_t n, int64_t gap, results *out) {
    if (n > 1)
        qsort(rows, n, sizeof *rows, by_key_time);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        seen acc = {0, 0, 0};
        int64_t end = rows[i].t + gap;
        while (j < n && rows[j].key == rows[i].key && rows[j].t <= end) {
            seen_add(&acc, &rows[j].id);
            if (rows[j].t + gap > end)
                end = rows[j].t + gap;
            j++;
        }
        results_push(out, (weir_window){rows[i].t, end}, rows[i].key, &acc);
        i = j;
    }
    if (out->n > 1)
        qsort(out->items, out->n, sizeof *out->items, result_cmp);
}

/* A mark of the reference: a window of a key, or (sessions) a row time. */
typedef struct {
    int key;
    weir_window w;
    int64_t t;
} mark_ref;

static bool marked_window(const mark_ref *m, size_t n, int key, weir_window w) {
    for (size_t i = 0; i < n; i++)
        if (m[i].key == key && m[i].w.start_ms == w.start_ms && m[i].w.end_ms == w.end_ms)
            return true;
    return false;
}

/* Whether a marked row time of `key` lies in the session `w`. */
static bool marked_session(const mark_ref *m, size_t n, int key, weir_window w) {
    for (size_t i = 0; i < n; i++)
        if (m[i].key == key && w.start_ms <= m[i].t && m[i].t < w.end_ms)
            return true;
    return false;
}

/* --------------------------------------------------------------- the runs */

/* Rows of NKEYS keys at or after the watermark, which advances in steps;
 * windows close at random steps (sometimes twice at the same watermark);
 * after each step the changed keys are taken and must be exactly the keys
 * that got a row or closed a window; every few steps the store is reset
 * and refilled from the taken entries (the same or a fresh window set), or
 * goes through a whole snapshot. Sessions when spec is a session. */
static void run(weir_window_spec spec, uint64_t seed, const char *prefix) {
    int step = -1;
    rng_state = seed * 0x9e3779b97f4a7c15u + 1;
    const char *error = NULL;
    bool sessions = spec.kind == WEIR_SESSION;
    reference ref = {spec.size_ms, spec.kind == WEIR_HOPPING ? spec.slide_ms : spec.size_ms, {NULL, 0, 0}};
    open_row *rows = NULL;
    size_t nrows = 0, cap_rows = 0;
    results got = {0}, want = {0};
    /* Marks: fixed windows by (key, window); sessions by (key, a row's time),
     * so a mark follows its session through merges. */
    mark_ref marks[512];
    size_t nmarks = 0;
    uint8_t *snap = NULL;
    weir_state_reset();
    topic_clear();
    bool other = prefix[0] != 0; /* a key that is not the window set's */
    if (other)
        weir_state_put("zz-other", 8, "keep", 4);
    weir_windows *w = weir_window_create(&spec, &seen_acc, prefix, &error);
    REQUIRE(w && !error);
    take_into_topic(false, prefix);
    int64_t watermark = -3 * MIN;
    uint64_t id = 0;
    for (step = 0; step < 60; step++) {
        unsigned touched = 0;
        int64_t rows_now = (int64_t)below(40);
        for (int64_t r = 0; r < rows_now; r++) {
            int64_t t = watermark + (int64_t)below(sessions ? 5 * MIN : 12 * MIN);
            if (below(2)) /* on a grid of 5 s: rows on pane and window bounds, sessions that just touch */
                t = fdiv(t + 4999, 5000) * 5000;
            int key = (int)below(NKEYS);
            id++;
            REQUIRE(weir_window_add(w, key_bytes[key], key_lens[key], t, &id));
            touched |= 1u << key;
            if (sessions) {
                if (nrows == cap_rows) {
                    cap_rows = cap_rows ? 2 * cap_rows : 256;
                    rows = realloc(rows, cap_rows * sizeof *rows);
                    if (!rows)
                        abort();
                }
                rows[nrows++] = (open_row){key, t, id};
                if (below(6) == 0 && nmarks < 512) { /* mark the row's session */
                    results all = {0};
                    sessions_of(rows, nrows, spec.gap_ms, &all);
                    size_t i = 0;
                    while (!(all.items[i].key == key && all.items[i].w.start_ms <= t && t < all.items[i].w.end_ms)) i++;
                    bool already = marked_session(marks, nmarks, key, all.items[i].w);
                    REQUIRE(weir_window_mark(w, key_bytes[key], key_lens[key], all.items[i].w) == !already);
                    marks[nmarks++] = (mark_ref){key, all.items[i].w, t};
                    free(all.items);
                }
                continue;
            }
            ref_add(&ref, key, t, id);
            /* Reads match at every row, for each window the row is in. */
            weir_window ws[64];
            size_t nw = weir_window_assign(w, t, ws, 64);
            size_t expect_n = 0;
            for (int64_t s = fdiv(t, ref.slide) * ref.slide; s > t - ref.size; s -= ref.slide) expect_n++;
            REQUIRE(nw == expect_n);
            for (size_t i = 0; i < nw && i < 64; i++) {
                seen acc;
                const seen *expected = ref_get(&ref, key, ws[i]);
                REQUIRE(expected && ws[i].start_ms <= t && t < ws[i].end_ms);
                REQUIRE(weir_window_get(w, key_bytes[key], key_lens[key], ws[i], &acc) && seen_eq(&acc, expected));
            }
            if (below(6) == 0 && nmarks < 512) { /* mark one of the row's windows */
                weir_window mw = ws[below(nw < 64 ? nw : 64)];
                bool already = marked_window(marks, nmarks, key, mw);
                REQUIRE(weir_window_mark(w, key_bytes[key], key_lens[key], mw) == !already);
                if (!already)
                    marks[nmarks++] = (mark_ref){key, mw, 0};
            }
        }
        watermark += (int64_t)below(3 * MIN);
        if (below(4)) { /* a close this step (else the watermark moves on without one) */
            got.n = want.n = 0;
            size_t n = weir_window_close(w, watermark, collect, &got);
            if (sessions) {
                results all = {0};
                sessions_of(rows, nrows, spec.gap_ms, &all);
                for (size_t i = 0; i < all.n; i++)
                    if (all.items[i].w.end_ms <= watermark) {
                        results_push(&want, all.items[i].w, all.items[i].key, &all.items[i].acc);
                        touched |= 1u << all.items[i].key;
                    }
                free(all.items);
                /* Drop the rows of the closed sessions: those with a session end <= watermark. */
                size_t kept = 0;
                for (size_t i = 0; i < nrows; i++) {
                    bool closed = false;
                    for (size_t c = 0; c < want.n && !closed; c++)
                        closed = want.items[c].key == rows[i].key && want.items[c].w.start_ms <= rows[i].t && rows[i].t < want.items[c].w.end_ms;
                    if (!closed)
                        rows[kept++] = rows[i];
                }
                nrows = kept;
                kept = 0;
                for (size_t i = 0; i < nmarks; i++) {
                    bool closed = false;
                    for (size_t c = 0; c < want.n && !closed; c++)
                        closed = want.items[c].key == marks[i].key && want.items[c].w.start_ms <= marks[i].t && marks[i].t < want.items[c].w.end_ms;
                    if (!closed)
                        marks[kept++] = marks[i];
                }
                nmarks = kept;
            } else {
                touched |= ref_close(&ref.open, watermark, &want);
                size_t kept = 0;
                for (size_t i = 0; i < nmarks; i++)
                    if (marks[i].w.end_ms > watermark)
                        marks[kept++] = marks[i];
                nmarks = kept;
            }
            if (!same_results(&got, &want)) {
                dump("closed", &got);
                dump("expected", &want);
            }
            REQUIRE(n == got.n && same_results(&got, &want));
            if (below(3) == 0) { /* the same watermark again: nothing more */
                got.n = 0;
                REQUIRE(weir_window_close(w, watermark, collect, &got) == 0 && got.n == 0);
            }
        }
        /* Exactly the keys that got a row or closed a window changed (never the other key). */
        unsigned changed = take_into_topic(true, prefix);
        REQUIRE(changed == touched);
        switch (step % 7) {
        case 3: /* restore-entries into the same window set, or a fresh one */
            restore_from_topic();
            if (step % 2) {
                weir_window_free(w);
                w = weir_window_create(&spec, &seen_acc, prefix, &error);
                REQUIRE(w);
            }
            REQUIRE(take_into_topic(true, prefix) == 0); /* restored entries are not changes */
            break;
        case 5: { /* a hot swap: whole snapshot into a fresh instance */
            size_t len;
            weir_window_snapshot(w, &snap, &len);
            weir_window_free(w);
            weir_state_reset();
            if (other)
                weir_state_put("zz-other", 8, "keep", 4);
            w = weir_window_create(&spec, &seen_acc, prefix, &error);
            REQUIRE(w && weir_window_restore(w, snap, len, &error));
            free(snap);
            snap = NULL;
            topic_clear();
            take_into_topic(false, prefix);
            break;
        }
        default:
            break;
        }
        /* The open windows of each key, and the number of keys. */
        unsigned open_keys = 0;
        if (sessions) {
            results all = {0};
            sessions_of(rows, nrows, spec.gap_ms, &all);
            for (size_t i = 0; i < all.n; i++) open_keys |= 1u << all.items[i].key;
            for (int k = 0; k < NKEYS; k++) {
                got.n = want.n = 0;
                for (size_t i = 0; i < all.n; i++)
                    if (all.items[i].key == k)
                        results_push(&want, all.items[i].w, k, &all.items[i].acc);
                visit_ctx v = {&got, k};
                REQUIRE(weir_window_foreach(w, key_bytes[k], key_lens[k], visit, &v) == want.n && same_results(&got, &want));
                for (size_t i = 0; i < want.n; i++)
                    REQUIRE(weir_window_is_marked(w, key_bytes[k], key_lens[k], want.items[i].w) == marked_session(marks, nmarks, k, want.items[i].w));
            }
            REQUIRE(weir_window_len(w) == all.n);
            free(all.items);
        } else {
            for (int k = 0; k < NKEYS; k++) {
                got.n = want.n = 0;
                ref_open_of(&ref.open, k, &want);
                open_keys |= want.n ? 1u << k : 0;
                visit_ctx v = {&got, k};
                REQUIRE(weir_window_foreach(w, key_bytes[k], key_lens[k], visit, &v) == want.n && same_results(&got, &want));
                for (size_t i = 0; i < want.n; i++)
                    REQUIRE(weir_window_is_marked(w, key_bytes[k], key_lens[k], want.items[i].w) == marked_window(marks, nmarks, k, want.items[i].w));
            }
        }
        size_t nopen = 0;
        for (int k = 0; k < NKEYS; k++) nopen += (open_keys >> k) & 1;
        REQUIRE(weir_window_keys(w) == nopen);
        REQUIRE(!weir_window_error(w));
    }
    got.n = want.n = 0;
    weir_window_close(w, INT64_MAX, collect, &got);
    if (sessions) {
        sessions_of(rows, nrows, spec.gap_ms, &want);
    } else
        ref_close(&ref.open, INT64_MAX, &want);
    REQUIRE(same_results(&got, &want));
    REQUIRE(weir_window_keys(w) == 0 && weir_window_len(w) == 0);
    REQUIRE(weir_state_len() == (other ? 1u : 0u)); /* every window key removed, the other one kept */
out:
    weir_window_free(w);
    free(ref.open.items);
    free(rows);
    free(got.items);
    free(want.items);
    free(snap);
}

/* ------------------------------------------------------- targeted checks */

static size_t changed_count(void) {
    size_t n;
    weir_state_item *items = weir_state_take(true, &n);
    for (size_t i = 0; i < n; i++) {
        free(items[i].key);
        free(items[i].value);
    }
    free(items);
    return n;
}

static void counted_collect(weir_window window, const void *key, size_t key_len, const void *acc, void *ctx) {
    char *out = ctx;
    size_t at = strlen(out);
    const counted *c = acc;
    snprintf(out + at, 1024 - at, "%s%.*s[%" PRId64 ",%" PRId64 ")=%" PRId64, at ? " " : "", (int)key_len, (const char *)key,
             window.start_ms / 1000, window.end_ms / 1000, c->count);
}

static void test_validation(void) {
    const char *error = NULL;
    weir_window_spec bad[] = {
        {WEIR_TUMBLING, 0, 0, 0},
        {WEIR_HOPPING, MIN, 2 * MIN, 0},
        {WEIR_HOPPING, MIN, 0, 0},
        {WEIR_SESSION, 0, 0, -5},
        {WEIR_TUMBLING, INT64_MAX, 0, 0},
        {(weir_window_kind)7, MIN, MIN, MIN},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        error = NULL;
        CHECK(!weir_window_validate(&bad[i], &error) && error != NULL);
        error = NULL;
        CHECK(weir_window_create(&bad[i], &seen_acc, NULL, &error) == NULL && error != NULL);
    }
    weir_window_spec ok = {WEIR_HOPPING, 5 * MIN, MIN, 0};
    CHECK(weir_window_validate(&ok, NULL));
    weir_window_acc no_merge = {8, NULL, seen_add, NULL}, empty = {0, NULL, seen_add, seen_merge};
    CHECK(weir_window_create(&ok, &no_merge, NULL, &error) == NULL && strstr(error, "accumulator"));
    CHECK(weir_window_create(&ok, &empty, NULL, &error) == NULL);
    weir_windows *w = weir_window_create(&ok, &seen_acc, NULL, &error);
    CHECK(w != NULL);
    weir_window_free(w);
}

static void test_assign_and_lateness(void) {
    weir_window_spec hour = {WEIR_TUMBLING, 60 * MIN, 0, 0}, sliding = {WEIR_HOPPING, 5 * MIN, MIN, 0}, odd = {WEIR_HOPPING, 5 * MIN, 90000, 0},
                     session = {WEIR_SESSION, 0, 0, 10000};
    weir_windows *h = weir_window_create(&hour, &counted_acc, NULL, NULL), *s = weir_window_create(&sliding, &counted_acc, NULL, NULL),
                 *o = weir_window_create(&odd, &counted_acc, NULL, NULL), *g = weir_window_create(&session, &counted_acc, NULL, NULL);
    weir_window ws[8];
    CHECK(weir_window_assign(h, 61 * MIN, ws, 8) == 1 && ws[0].start_ms == 60 * MIN && ws[0].end_ms == 120 * MIN);
    CHECK(weir_window_assign(h, -1, ws, 8) == 1 && ws[0].start_ms == -60 * MIN && ws[0].end_ms == 0);
    CHECK(weir_window_assign(s, 7 * MIN + 30000, ws, 8) == 5);
    CHECK(ws[0].start_ms == 3 * MIN && ws[0].end_ms == 8 * MIN && ws[4].start_ms == 7 * MIN && ws[4].end_ms == 12 * MIN);
    CHECK(weir_window_assign(s, 7 * MIN, ws, 2) == 5 && ws[1].start_ms == 4 * MIN); /* capped output, full count */
    /* 5 min every 90 s: 3 or 4 windows hold a row. */
    CHECK(weir_window_assign(o, 0, ws, 8) == 4 && ws[0].start_ms == -270000 && ws[3].start_ms == 0);
    CHECK(weir_window_assign(o, 60000, ws, 8) == 3 && ws[0].start_ms == -180000 && ws[2].start_ms == 0);
    CHECK(weir_window_assign(g, 5, ws, 8) == 0);
    CHECK(weir_window_is_late(s, 30000, 5 * MIN) && !weir_window_is_late(s, 4 * MIN, 5 * MIN));
    CHECK(weir_window_is_late(h, 59 * MIN, 60 * MIN) && !weir_window_is_late(h, 60 * MIN, 60 * MIN));
    CHECK(weir_window_is_late(g, 0, 10000) && !weir_window_is_late(g, 1, 10000));
    weir_window_free(h);
    weir_window_free(s);
    weir_window_free(o);
    weir_window_free(g);
}

/* The Rust SDK's windows_close_when_the_watermark_passes_their_end. */
static void test_hopping_close(void) {
    weir_state_reset();
    weir_window_spec spec = {WEIR_HOPPING, 5 * MIN, MIN, 0};
    weir_windows *w = weir_window_create(&spec, &counted_acc, "h/", NULL);
    int64_t v = 7;
    CHECK(weir_window_add(w, "u1", 2, 30000, &v));
    CHECK(weir_window_add(w, "u1", 2, 4 * MIN, &v));
    CHECK(weir_window_add(w, "u2", 2, 90000, &v));
    CHECK(weir_window_len(w) == 3 && weir_window_keys(w) == 2); /* one pane per row */
    char out[1024] = "";
    CHECK(weir_window_close(w, MIN - 1, counted_collect, out) == 0 && strcmp(out, "") == 0);
    CHECK(weir_window_close(w, MIN, counted_collect, out) == 1 && strcmp(out, "u1[-240,60)=1") == 0);
    out[0] = 0;
    CHECK(weir_window_close(w, 5 * MIN, counted_collect, out) == 8);
    CHECK(strcmp(out, "u1[-180,120)=1 u2[-180,120)=1 u1[-120,180)=1 u2[-120,180)=1 u1[-60,240)=1 u2[-60,240)=1 "
                      "u1[0,300)=2 u2[0,300)=1") == 0);
    /* The panes still open windows need are kept; init ran (min, not 0). */
    counted c;
    CHECK(weir_window_get(w, "u1", 2, (weir_window){MIN, 6 * MIN}, &c) && c.count == 1 && c.min == 7);
    CHECK(!weir_window_get(w, "u1", 2, (weir_window){0, 5 * MIN}, &c));        /* closed */
    CHECK(!weir_window_get(w, "u1", 2, (weir_window){MIN + 1, 6 * MIN + 1}, &c)); /* not a window */
    CHECK(!weir_window_get(w, "u1", 2, (weir_window){MIN, 5 * MIN}, &c));       /* not a window */
    CHECK(!weir_window_get(w, "nope", 4, (weir_window){MIN, 6 * MIN}, &c));
    CHECK(weir_window_len(w) == 2 && weir_window_keys(w) == 2);
    /* A row whose windows all closed for its key is dropped. */
    CHECK(!weir_window_add(w, "u1", 2, 0, &v));
    CHECK(weir_window_add(w, "u1", 2, MIN, &v)); /* [60,360) .. still open */
    weir_window_free(w);
}

/* The Rust SDK's a_late_row_that_bridges_two_sessions_merges_them, plus the changes. */
static void test_sessions(void) {
    weir_state_reset();
    weir_window_spec spec = {WEIR_SESSION, 0, 0, 10000};
    weir_windows *w = weir_window_create(&spec, &counted_acc, NULL, NULL);
    int64_t v[] = {5, 3, 9, 1};
    weir_window_add(w, "k", 1, 0, &v[0]);
    weir_window_add(w, "k", 1, 18000, &v[1]);
    weir_window_add(w, "j", 1, 5000, &v[2]);
    CHECK(weir_window_len(w) == 3); /* 18 s apart with a 10 s gap: two sessions for k */
    CHECK(weir_window_mark(w, "k", 1, (weir_window){18000, 28000}));
    CHECK(!weir_window_mark(w, "k", 1, (weir_window){18000, 27000})); /* not a session */
    changed_count();
    weir_window_add(w, "k", 1, 9000, &v[3]); /* within 10 s of both: [0, 10 s) ~ [9 s, 19 s) ~ [18 s, 28 s) */
    CHECK(changed_count() == 1);             /* a merge is a change of its key only */
    CHECK(weir_window_len(w) == 2);
    CHECK(weir_window_is_marked(w, "k", 1, (weir_window){0, 28000})); /* the mark moved to the merge */
    CHECK(!weir_window_is_marked(w, "k", 1, (weir_window){18000, 28000}));
    counted c;
    CHECK(weir_window_get(w, "k", 1, (weir_window){0, 28000}, &c) && c.count == 3 && c.min == 1);
    char out[1024] = "";
    CHECK(weir_window_close(w, 27999, counted_collect, out) == 1 && strcmp(out, "j[5,15)=1") == 0);
    CHECK(changed_count() == 1); /* j removed, k untouched */
    out[0] = 0;
    CHECK(weir_window_close(w, 28000, counted_collect, out) == 1 && strcmp(out, "k[0,28)=3") == 0);
    CHECK(weir_window_keys(w) == 0 && weir_state_len() == 0);
    /* Sessions that touch ([0, 10 s) and [10 s, 20 s)) are one. */
    weir_window_add(w, "t", 1, 0, &v[0]);
    weir_window_add(w, "t", 1, 10000, &v[0]);
    CHECK(weir_window_len(w) == 1 && weir_window_get(w, "t", 1, (weir_window){0, 20000}, &c) && c.count == 2);
    out[0] = 0;
    CHECK(weir_window_close(w, 20000, counted_collect, out) == 1 && strcmp(out, "t[0,20)=2") == 0);
    /* A row extending a session in place moves its mark along. */
    weir_window_add(w, "m", 1, 100000, &v[0]);
    CHECK(weir_window_mark(w, "m", 1, (weir_window){100000, 110000}));
    weir_window_add(w, "m", 1, 105000, &v[0]);
    CHECK(weir_window_is_marked(w, "m", 1, (weir_window){100000, 115000}) && weir_window_len(w) == 1);
    out[0] = 0;
    CHECK(weir_window_close(w, 115000, counted_collect, out) == 1 && strcmp(out, "m[100,115)=2") == 0);
    weir_window_free(w);
}

/* The Rust SDK's marks_are_state_and_go_with_their_window. */
static void test_marks(void) {
    weir_state_reset();
    weir_window_spec spec = {WEIR_HOPPING, 5 * MIN, MIN, 0};
    weir_windows *w = weir_window_create(&spec, &seen_acc, NULL, NULL);
    weir_window window = {0, 5 * MIN};
    uint64_t id = 1;
    CHECK(!weir_window_mark(w, "1", 1, window)); /* no such key yet */
    weir_window_add(w, "1", 1, 30000, &id);
    changed_count();
    CHECK(!weir_window_mark(w, "1", 1, (weir_window){MIN, 6 * MIN})); /* holds no row */
    CHECK(changed_count() == 0);
    CHECK(weir_window_mark(w, "1", 1, window) && !weir_window_mark(w, "1", 1, window));
    CHECK(weir_window_mark(w, "1", 1, (weir_window){-MIN, 4 * MIN}));
    CHECK(changed_count() == 1); /* a mark is a change of its key */
    /* Marks are state: they survive restore-entries. */
    size_t n;
    weir_state_item *items = weir_state_take(false, &n);
    weir_state_reset();
    for (size_t i = 0; i < n; i++) {
        weir_state_restore_put(items[i].key, items[i].key_len, items[i].value, items[i].value_len);
        free(items[i].key);
        free(items[i].value);
    }
    free(items);
    CHECK(weir_window_is_marked(w, "1", 1, window) && weir_window_is_marked(w, "1", 1, (weir_window){-MIN, 4 * MIN}));
    CHECK(!weir_window_is_marked(w, "1", 1, (weir_window){-2 * MIN, 3 * MIN}));
    weir_window_close(w, 4 * MIN, NULL, NULL);
    CHECK(!weir_window_is_marked(w, "1", 1, (weir_window){-MIN, 4 * MIN}) && weir_window_is_marked(w, "1", 1, window));
    weir_window_close(w, 5 * MIN, NULL, NULL);
    CHECK(!weir_window_is_marked(w, "1", 1, window)); /* closed with its window */
    CHECK(weir_window_keys(w) == 0 && weir_state_len() == 0);
    weir_window_free(w);
}

/* Closing where nothing closes changes no key; only keys that close are rewritten. */
static void test_close_changes_only_closing_keys(void) {
    weir_state_reset();
    weir_window_spec spec = {WEIR_TUMBLING, MIN, 0, 0};
    weir_windows *w = weir_window_create(&spec, &seen_acc, "t/", NULL);
    char key[16];
    uint64_t id = 0;
    for (int k = 0; k < 1000; k++) {
        snprintf(key, sizeof key, "k%04d", k);
        id++;
        weir_window_add(w, key, 5, (k % 10) * MIN + k, &id); /* k%10 == 0 in the first minute */
    }
    CHECK(changed_count() == 1000);
    CHECK(weir_window_close(w, MIN - 1, NULL, NULL) == 0);
    CHECK(changed_count() == 0);
    CHECK(weir_window_close(w, MIN, NULL, NULL) == 100);
    size_t n;
    weir_state_item *items = weir_state_take(true, &n);
    CHECK(n == 100 && items[0].removed && memcmp(items[0].key, "t/k0000", 7) == 0);
    for (size_t i = 0; i < n; i++) {
        free(items[i].key);
        free(items[i].value);
    }
    free(items);
    CHECK(weir_window_close(w, MIN, NULL, NULL) == 0 && changed_count() == 0);
    /* A row into an existing pane changes that key only, in place. */
    id++;
    weir_window_add(w, "k0001", 5, MIN + 5, &id);
    CHECK(changed_count() == 1);
    CHECK(weir_window_keys(w) == 900 && weir_window_len(w) == 900);
    CHECK(weir_window_close(w, 10 * MIN, NULL, NULL) == 900 && weir_window_keys(w) == 0 && weir_state_len() == 0);
    weir_window_free(w);
}

/* restore-entries of an older checkpoint into the same window set (a
 * rollback): the set follows the store, not what it had in memory. */
static void test_rollback(void) {
    weir_state_reset();
    weir_window_spec spec = {WEIR_TUMBLING, MIN, 0, 0};
    weir_windows *w = weir_window_create(&spec, &counted_acc, NULL, NULL);
    int64_t v = 1;
    weir_window_add(w, "a", 1, 10, &v);
    weir_window_add(w, "c", 1, 20, &v);
    size_t n;
    weir_state_item *checkpoint = weir_state_take(false, &n);
    weir_window_add(w, "b", 1, 30, &v);
    char out[1024] = "";
    CHECK(weir_window_close(w, MIN, counted_collect, out) == 3 && strcmp(out, "a[0,60)=1 b[0,60)=1 c[0,60)=1") == 0);
    CHECK(weir_window_keys(w) == 0);
    weir_state_reset();
    for (size_t i = 0; i < n; i++) {
        weir_state_restore_put(checkpoint[i].key, checkpoint[i].key_len, checkpoint[i].value, checkpoint[i].value_len);
        free(checkpoint[i].key);
        free(checkpoint[i].value);
    }
    free(checkpoint);
    CHECK(weir_window_keys(w) == 2 && weir_window_len(w) == 2);
    out[0] = 0;
    CHECK(weir_window_close(w, MIN, counted_collect, out) == 2 && strcmp(out, "a[0,60)=1 c[0,60)=1") == 0);
    weir_window_free(w);
}

/* A tumbling window survives a whole snapshot; bad snapshots are refused. */
static void test_snapshot(void) {
    weir_state_reset();
    weir_window_spec spec = {WEIR_TUMBLING, MIN, 0, 0};
    weir_windows *w = weir_window_create(&spec, &counted_acc, "s/", NULL);
    int64_t v = 4;
    weir_window_add(w, "a", 1, 10, &v);
    weir_window_add(w, "a", 1, 20, &v);
    weir_state_put("x", 1, "y", 1); /* not the window set's */
    uint8_t *snap;
    size_t len;
    weir_window_snapshot(w, &snap, &len);
    weir_window_free(w);
    weir_state_reset();
    w = weir_window_create(&spec, &counted_acc, "s/", NULL);
    weir_window_add(w, "b", 1, 10, &v); /* replaced by the restore */
    const char *error = NULL;
    CHECK(!weir_window_restore(w, (const uint8_t *)"nonsense", 8, &error) && error != NULL);
    CHECK(!weir_window_restore(w, snap, len - 1, &error));
    CHECK(weir_window_keys(w) == 1); /* a refused restore changes nothing */
    CHECK(weir_window_restore(w, snap, len, &error));
    v = 2;
    weir_window_add(w, "a", 1, 30, &v);
    char out[1024] = "";
    CHECK(weir_window_close(w, MIN, counted_collect, out) == 1 && strcmp(out, "a[0,60)=3") == 0);
    counted c;
    CHECK(!weir_window_get(w, "b", 1, (weir_window){0, MIN}, &c));
    free(snap);
    /* Another accumulator size cannot restore it. */
    weir_window_add(w, "a", 1, MIN, &v);
    weir_window_snapshot(w, &snap, &len);
    weir_windows *other = weir_window_create(&spec, &seen_acc, "s/", NULL);
    CHECK(!weir_window_restore(other, snap, len, &error));
    weir_window_free(other);
    free(snap);
    weir_window_free(w);
}

/* An entry another spec wrote is reported, left alone, and its rows dropped. */
static void test_unreadable_entries(void) {
    weir_state_reset();
    weir_window_spec spec = {WEIR_HOPPING, 5 * MIN, MIN, 0}, sessions = {WEIR_SESSION, 0, 0, 1000};
    weir_windows *w = weir_window_create(&spec, &counted_acc, "p/", NULL), *s = weir_window_create(&sessions, &counted_acc, "q/", NULL);
    int64_t v = 1;
    weir_window_add(s, "a", 1, 0, &v);
    weir_window_add(w, "b", 1, 0, &v);
    CHECK(!weir_window_error(w) && !weir_window_error(s));
    size_t n;
    weir_state_item *items = weir_state_take(false, &n);
    weir_state_reset();
    for (size_t i = 0; i < n; i++) {
        /* A session entry restored under the hopping set's prefix. */
        if (items[i].key[0] == 'q')
            weir_state_restore_put((const uint8_t *)"p/a", 3, items[i].value, items[i].value_len);
        weir_state_restore_put(items[i].key, items[i].key_len, items[i].value, items[i].value_len);
        free(items[i].key);
        free(items[i].value);
    }
    free(items);
    const char *e = weir_window_error(w);
    CHECK(e && strstr(e, "\"a\"") && strstr(e, "session"));
    CHECK(!weir_window_error(s));
    CHECK(!weir_window_add(w, "a", 1, MIN, &v) && weir_window_add(w, "b", 1, MIN, &v));
    CHECK(weir_window_keys(w) == 1);
    weir_window_clear(w);
    CHECK(!weir_window_error(w) && weir_window_keys(w) == 0 && weir_state_len() == 1); /* s's key stays */
    CHECK(weir_window_add(w, "a", 1, MIN, &v));
    weir_window_free(w);
    weir_window_free(s);
}

static void test_time_ms(void) {
    int64_t values[] = {1500, -1500, 7};
    uint8_t validity = 0x3; /* row 2 null */
    weir_column col = {0};
    col.type = WEIR_TIMESTAMP;
    col.len = 3;
    col.i64 = values;
    col.validity = &validity;
    int64_t ms;
    col.unit = WEIR_MICROSECOND;
    CHECK(weir_window_time_ms(&col, 0, &ms) && ms == 1);
    CHECK(weir_window_time_ms(&col, 1, &ms) && ms == -2); /* floored */
    CHECK(!weir_window_time_ms(&col, 2, &ms));
    col.unit = WEIR_SECOND;
    CHECK(weir_window_time_ms(&col, 0, &ms) && ms == 1500000);
    col.unit = WEIR_NANOSECOND;
    CHECK(weir_window_time_ms(&col, 1, &ms) && ms == -1);
    col.type = WEIR_INT64;
    CHECK(weir_window_time_ms(&col, 1, &ms) && ms == -1500);
    col.type = WEIR_FLOAT64;
    col.i64 = NULL;
    CHECK(!weir_window_time_ms(&col, 0, &ms));
}

int main(void) {
    test_validation();
    test_assign_and_lateness();
    test_hopping_close();
    test_sessions();
    test_marks();
    test_close_changes_only_closing_keys();
    test_rollback();
    test_snapshot();
    test_unreadable_entries();
    test_time_ms();
    int before = failures;
    for (uint64_t seed = 1; seed < 40 && failures == before; seed++) {
        run((weir_window_spec){WEIR_HOPPING, 5 * MIN, MIN, 0}, seed, seed % 2 ? "w/" : "");
        run((weir_window_spec){WEIR_HOPPING, 5 * MIN, 90000, 0}, seed, "w/"); /* panes of gcd = 30 s */
        run((weir_window_spec){WEIR_HOPPING, 2 * MIN, 2 * MIN, 0}, seed, "");  /* slide = size */
        run((weir_window_spec){WEIR_TUMBLING, MIN, 0, 0}, seed, "w/");
        run((weir_window_spec){WEIR_SESSION, 0, 0, 30000}, seed, seed % 2 ? "w/" : "");
    }
    weir_state_reset();
    topic_clear();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("weir_window: ok\n");
    return 0;
}
