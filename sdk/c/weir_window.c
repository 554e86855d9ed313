/*
 * weir C SDK: event-time windows (weir_window.h) over the keyed state store.
 *
 * Each key's whole state (panes or sessions, marks, closed_until) is one
 * store entry in the layout weir_window.h describes; every change goes
 * through weir_state_put / weir_state_upsert / weir_state_remove, so the
 * store tracks the changed keys for incremental checkpoints. A row folded
 * into an existing pane (or a session it extends) updates the entry in
 * place (upsert of the same length); a new pane, a merge, a mark or a
 * close rewrites it.
 *
 * Closing: an in-memory index (weir_window_index.c), per key the earliest
 * end of its open windows (a hash table of the store keys plus a binary
 * min-heap on that end), lets close visit only the keys where a window
 * ends at or before the watermark: O(log keys) each, nothing for the
 * others. We do not scan the
 * store with weir_state_foreach at each close: it sorts every key (O(n log
 * n) per call, every batch), and visiting the keys where nothing closes is
 * exactly what must not rewrite them. The index is derived data, never
 * stored: it is rebuilt from the store (one foreach) on the first call after
 * the store was reset or cleared (weir_state_epoch moved: restore-entries,
 * a hot-swap restore), so it cannot disagree with a restored state.
 *
 * Semantics follow sdk/rust/src/window: a key's `closed_until` is the last
 * watermark that closed one of its windows; a window ending at or before it
 * is never emitted again, so a pane kept for later windows does not re-emit
 * the windows that closed. A row whose windows all ended by then is dropped
 * (weir_window_add returns false).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir.h"
#include "weir_internal.h"
#include "weir_state.h"
#include "weir_window.h"
#include "weir_window_index.h"

#define VERSION 1
#define HEADER 24
#define MARK 16
/* No closed_until yet / no open window. */
#define NONE INT64_MIN
/* Event times stay within +-2^62 and sizes within 2^61: start + size never overflows. */
#define MAX_MS (INT64_C(1) << 62)
#define MAX_SIZE (INT64_C(1) << 61)

struct weir_windows {
    weir_window_spec spec;
    weir_window_acc acc;
    bool sessions;
    /* Pane geometry (tumbling: size = slide = pane); sessions: size = gap. */
    int64_t size, slide, pane;
    size_t acc_pad; /* acc_size rounded up to 8 */
    size_t stride;  /* bytes of one pane or session */
    uint8_t *prefix;
    size_t prefix_len;
    /* The close index (see the top of the file), of the store's `epoch`. */
    bool synced;
    uint64_t epoch;
    window_index index;
    size_t units; /* panes + sessions */
    bool has_error;
    char error[320];
    /* Scratch: store key, entry value, accumulators. */
    uint8_t *kbuf, *vbuf;
    size_t kcap, vcap;
    uint8_t *tmp;
};

/* One key's entry, parsed. */
typedef struct {
    const uint8_t *v;
    size_t len;
    int64_t closed;
    uint32_t n, nm;
} view;

/* ------------------------------------------------------------- encoding */

static uint64_t rd_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static int64_t rd64(const uint8_t *p) {
    uint64_t u = rd_u64(p);
    return u <= (uint64_t)INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void wr64(uint8_t *p, int64_t v) {
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++, u >>= 8) p[i] = (uint8_t)u;
}
static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++, v >>= 8) p[i] = (uint8_t)v;
}

static void put_header(const weir_windows *w, uint8_t *v, int64_t closed, uint32_t n, uint32_t nm) {
    v[0] = VERSION;
    v[1] = w->sessions;
    v[2] = v[3] = 0;
    wr32(v + 4, (uint32_t)w->acc.acc_size);
    wr64(v + 8, closed);
    wr32(v + 16, n);
    wr32(v + 20, nm);
}

static size_t value_len(const weir_windows *w, uint32_t n, uint32_t nm) { return HEADER + n * w->stride + (size_t)nm * MARK; }

static uint8_t *entry(const weir_windows *w, const uint8_t *v, uint32_t i) { return (uint8_t *)v + HEADER + i * w->stride; }
static int64_t start_of(const uint8_t *e) { return rd64(e); }
static int64_t end_of(const weir_windows *w, const uint8_t *e) { return w->sessions ? rd64(e + 8) : rd64(e) + w->size; }
static uint8_t *acc_of(const weir_windows *w, uint8_t *e) { return e + (w->sessions ? 16 : 8); }
static const uint8_t *marks_of(const weir_windows *w, const view *vw) { return vw->v + HEADER + vw->n * w->stride; }

/* NULL when `v` is an entry of this window set (header and length), else why not. */
static const char *parse(const weir_windows *w, const uint8_t *v, size_t len, view *out) {
    if (len < HEADER)
        return "shorter than its header";
    if (v[0] != VERSION)
        return "an unknown layout version";
    if (v[1] != (uint8_t)w->sessions)
        return w->sessions ? "written by tumbling or hopping windows, not sessions" : "written by session windows";
    if (v[2] || v[3])
        return "a malformed header";
    if (rd32(v + 4) != w->acc.acc_size)
        return "written with another accumulator size";
    out->v = v;
    out->len = len;
    out->closed = rd64(v + 8);
    out->n = rd32(v + 16);
    out->nm = rd32(v + 20);
    if ((uint64_t)out->n * w->stride + (uint64_t)out->nm * MARK != (uint64_t)(len - HEADER))
        return "of the wrong length";
    return NULL;
}

/* ------------------------------------------------------------- geometry */

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return a % b < 0 ? q - 1 : q;
}

static int64_t sat_add(int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; } /* b >= 0 */

/* First window start whose window ends after `t` (contains a pane at t). */
static int64_t first_start(const weir_windows *w, int64_t t) { return floor_div(t - w->size, w->slide) * w->slide + w->slide; }
/* Last window start at or before `t`. */
static int64_t last_start(const weir_windows *w, int64_t t) { return floor_div(t, w->slide) * w->slide; }
/* First window start not closed by `closed` (closed_until). */
static int64_t first_open(const weir_windows *w, int64_t closed) { return closed == NONE ? INT64_MIN : first_start(w, closed); }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* The earliest end of an open window of the key, or NONE. Sessions are
 * disjoint, so sorted by start is sorted by end. */
static int64_t next_end(const weir_windows *w, const view *vw) {
    if (w->sessions)
        return vw->n ? end_of(w, entry(w, vw->v, 0)) : NONE;
    int64_t from = first_open(w, vw->closed);
    for (uint32_t i = 0; i < vw->n; i++) {
        int64_t p = start_of(entry(w, vw->v, i));
        int64_t s = max64(from, first_start(w, p));
        if (s <= last_start(w, p))
            return s + w->size;
    }
    return NONE;
}

/* NULL when the whole entry is consistent (sorted, aligned, disjoint). */
static const char *check(const weir_windows *w, const uint8_t *v, size_t len, view *vw) {
    const char *why = parse(w, v, len, vw);
    if (why)
        return why;
    if (vw->n == 0)
        return "empty";
    int64_t prev_end = NONE;
    for (uint32_t i = 0; i < vw->n; i++) {
        const uint8_t *e = entry(w, v, i);
        int64_t s = start_of(e), end = end_of(w, e);
        if (s <= -MAX_MS || s >= MAX_MS || end <= s || end > MAX_MS + MAX_SIZE)
            return "a window out of range";
        if (w->sessions ? i && s <= prev_end : (floor_div(s, w->pane) * w->pane != s || (i && s <= start_of(e - w->stride))))
            return "unsorted or overlapping windows";
        prev_end = end;
    }
    const uint8_t *m = marks_of(w, vw);
    for (uint32_t j = 0; j < vw->nm; j++, m += MARK)
        if (rd64(m + 8) <= rd64(m) || (j && (rd64(m) < rd64(m - MARK) || (rd64(m) == rd64(m - MARK) && rd64(m + 8) <= rd64(m - 8)))))
            return "unsorted marks";
    return NULL;
}

static void index_drop(weir_windows *w) {
    window_index_clear(&w->index);
    w->units = 0;
}

static bool has_prefix(const weir_windows *w, weir_str key) {
    return key.len >= w->prefix_len && memcmp(key.ptr, w->prefix, w->prefix_len) == 0;
}

/* Keeps the first error: which key (without the prefix) and why. */
static void set_error(weir_windows *w, const uint8_t *key, size_t len, const char *why) {
    if (w->has_error)
        return;
    char shown[72]; /* 64 bytes shown, the last maybe escaped */
    size_t at = 0;
    key += w->prefix_len;
    len -= w->prefix_len;
    for (size_t i = 0; i < len && at < 64; i++) {
        uint8_t c = key[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            shown[at++] = (char)c;
        else
            at += (size_t)snprintf(shown + at, sizeof shown - at, "\\x%02x", c);
    }
    shown[at] = 0;
    snprintf(w->error, sizeof w->error, "window state of key \"%s%s\" is unreadable: %s (another window kind or accumulator?)",
             shown, len > 64 ? "..." : "", why);
    w->has_error = true;
}

static void sync_one(weir_str key, weir_str value, void *ctx) {
    weir_windows *w = ctx;
    if (!has_prefix(w, key))
        return;
    view vw;
    const char *why = check(w, (const uint8_t *)value.ptr, value.len, &vw);
    if (why) {
        set_error(w, (const uint8_t *)key.ptr, key.len, why);
        return;
    }
    w->units += vw.n;
    window_index_set(&w->index, (const uint8_t *)key.ptr, key.len, next_end(w, &vw));
}

/* Rebuilds the index when the store was reset or cleared since (or on the
 * first call). */
static void sync(weir_windows *w) {
    uint64_t epoch = weir_state_epoch();
    if (w->synced && epoch == w->epoch)
        return;
    index_drop(w);
    w->has_error = false;
    weir_state_foreach(sync_one, w);
    w->synced = true;
    w->epoch = epoch;
}

/* -------------------------------------------------------------- helpers */

/* The store key of `key` (in kbuf unless there is no prefix). */
static const uint8_t *store_key(weir_windows *w, const void *key, size_t len, size_t *out_len) {
    *out_len = w->prefix_len + len;
    if (!w->prefix_len)
        return len ? key : (const void *)""; /* never a NULL key to the store */
    if (*out_len > w->kcap) {
        w->kcap = *out_len * 2;
        w->kbuf = xrealloc(w->kbuf, w->kcap);
    }
    memcpy(w->kbuf, w->prefix, w->prefix_len);
    if (len)
        memcpy(w->kbuf + w->prefix_len, key, len);
    return w->kbuf;
}

/* A value buffer of `len` bytes (vbuf). */
static uint8_t *value_buf(weir_windows *w, size_t len) {
    if (len > w->vcap) {
        w->vcap = len * 2;
        w->vbuf = xrealloc(w->vbuf, w->vcap);
    }
    return w->vbuf;
}

/* Loads the key's entry: false when absent or unreadable (then the error is set). */
static bool load(weir_windows *w, const uint8_t *key, size_t len, view *vw, bool *unreadable) {
    weir_str value;
    *unreadable = false;
    if (!weir_state_get(key, len, &value))
        return false;
    const char *why = parse(w, (const uint8_t *)value.ptr, value.len, vw);
    if (why) {
        set_error(w, key, len, why);
        *unreadable = true;
        return false;
    }
    return true;
}

static void acc_init(const weir_windows *w, void *acc) {
    memset(acc, 0, w->acc_pad); /* padding stays zero: the stored bytes are deterministic */
    if (w->acc.init)
        w->acc.init(acc);
}

/* First pane (index) starting at or after `t`. */
static uint32_t pane_at(const weir_windows *w, const view *vw, int64_t t) {
    uint32_t lo = 0, hi = vw->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (start_of(entry(w, vw->v, mid)) < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Merges the panes in [start, start + size) into acc; false when none. */
static bool merge_panes(const weir_windows *w, const view *vw, int64_t start, void *acc) {
    uint32_t i = pane_at(w, vw, start);
    bool any = false;
    for (; i < vw->n && start_of(entry(w, vw->v, i)) < start + w->size; i++) {
        if (!any)
            acc_init(w, acc);
        w->acc.merge(acc, acc_of(w, entry(w, vw->v, i)));
        any = true;
    }
    return any;
}

/* Whether `window` is a window of the (pane) spec that is still open. */
static bool open_hop(const weir_windows *w, const view *vw, weir_window window) {
    return window.start_ms > -MAX_MS && window.start_ms < MAX_MS && window.end_ms == window.start_ms + w->size &&
           last_start(w, window.start_ms) == window.start_ms && (vw->closed == NONE || window.end_ms > vw->closed);
}

/* The index of the session with exactly these bounds, or n. */
static uint32_t session_at(const weir_windows *w, const view *vw, weir_window window) {
    for (uint32_t i = 0; i < vw->n; i++) {
        const uint8_t *e = entry(w, vw->v, i);
        if (start_of(e) == window.start_ms && end_of(w, e) == window.end_ms)
            return i;
        if (start_of(e) > window.start_ms)
            break;
    }
    return vw->n;
}

/* ------------------------------------------------------------------ API */

bool weir_window_validate(const weir_window_spec *spec, const char **error) {
    bool ok = false;
    switch (spec->kind) {
    case WEIR_TUMBLING:
        ok = spec->size_ms > 0 && spec->size_ms <= MAX_SIZE;
        break;
    case WEIR_HOPPING:
        ok = spec->size_ms > 0 && spec->size_ms <= MAX_SIZE && spec->slide_ms > 0 && spec->slide_ms <= spec->size_ms;
        break;
    case WEIR_SESSION:
        ok = spec->gap_ms > 0 && spec->gap_ms <= MAX_SIZE;
        break;
    default:
        if (error)
            *error = "invalid window: unknown kind (WEIR_TUMBLING, WEIR_HOPPING or WEIR_SESSION)";
        return false;
    }
    if (!ok && error)
        *error = "invalid window: sizes must be positive (at most 2^61 ms) and slide <= size";
    return ok;
}

weir_windows *weir_window_create(const weir_window_spec *spec, const weir_window_acc *acc, const char *prefix,
                                 const char **error) {
    if (!weir_window_validate(spec, error))
        return NULL;
    if (!acc || !acc->add || !acc->merge || acc->acc_size == 0 || acc->acc_size > (1u << 24)) {
        if (error)
            *error = "invalid window accumulator: acc_size must be 1 byte to 16 MiB, add and merge are required";
        return NULL;
    }
    weir_windows *w = xcalloc(1, sizeof *w);
    w->spec = *spec;
    w->acc = *acc;
    switch (spec->kind) {
    case WEIR_TUMBLING:
        w->size = w->slide = w->pane = spec->size_ms;
        break;
    case WEIR_HOPPING: {
        int64_t a = spec->size_ms, b = spec->slide_ms;
        while (b) {
            int64_t r = a % b;
            a = b;
            b = r;
        }
        w->size = spec->size_ms;
        w->slide = spec->slide_ms;
        w->pane = a;
        break;
    }
    default:
        w->sessions = true;
        w->size = spec->gap_ms;
        break;
    }
    w->acc_pad = (acc->acc_size + 7) / 8 * 8;
    w->stride = (w->sessions ? 16 : 8) + w->acc_pad;
    w->prefix_len = prefix ? strlen(prefix) : 0;
    w->prefix = xmalloc(w->prefix_len);
    if (w->prefix_len)
        memcpy(w->prefix, prefix, w->prefix_len);
    w->tmp = xmalloc(w->acc_pad);
    return w;
}

void weir_window_free(weir_windows *w) {
    if (!w)
        return;
    window_index_free(&w->index);
    free(w->prefix);
    free(w->kbuf);
    free(w->vbuf);
    free(w->tmp);
    free(w);
}

size_t weir_window_assign(const weir_windows *w, int64_t t, weir_window *out, size_t cap) {
    if (w->sessions)
        return 0;
    int64_t first = first_start(w, t), last = last_start(w, t);
    size_t n = (size_t)((last - first) / w->slide) + 1;
    for (size_t i = 0; i < n && i < cap; i++) {
        out[i].start_ms = first + (int64_t)i * w->slide;
        out[i].end_ms = out[i].start_ms + w->size;
    }
    return n;
}

bool weir_window_is_late(const weir_windows *w, int64_t t, int64_t watermark) {
    if (w->sessions)
        return sat_add(t, w->size) <= watermark;
    return last_start(w, t) + w->size <= watermark;
}

/* Hopping / tumbling: the row goes into the pane holding t. */
static bool add_to_pane(weir_windows *w, const uint8_t *key, size_t klen, int64_t t, const void *row) {
    view vw;
    bool unreadable;
    bool present = load(w, key, klen, &vw, &unreadable);
    if (unreadable)
        return false;
    int64_t p = floor_div(t, w->pane) * w->pane;
    int64_t closed = present ? vw.closed : NONE;
    if (closed != NONE && last_start(w, p) + w->size <= closed)
        return false; /* every window of the pane closed already */
    uint32_t n = present ? vw.n : 0, nm = present ? vw.nm : 0, i = 0;
    if (present) {
        i = pane_at(w, &vw, p);
        if (i < n && start_of(entry(w, vw.v, i)) == p) {
            /* Same length: the same buffer, marked changed; the windows are unchanged. */
            uint8_t *v = weir_state_upsert(key, klen, vw.len, NULL);
            w->acc.add(acc_of(w, entry(w, v, i)), row);
            return true;
        }
    }
    size_t len = value_len(w, n + 1, nm);
    uint8_t *b = value_buf(w, len);
    put_header(w, b, closed, n + 1, nm);
    if (present)
        memcpy(b + HEADER, vw.v + HEADER, i * w->stride);
    uint8_t *e = entry(w, b, i);
    wr64(e, p);
    acc_init(w, acc_of(w, e));
    w->acc.add(acc_of(w, e), row);
    if (present)
        memcpy(e + w->stride, vw.v + HEADER + i * w->stride, (n - i) * w->stride + (size_t)nm * MARK);
    weir_state_put(key, klen, b, len);
    w->units++;
    view nv = {b, len, closed, n + 1, nm};
    window_index_set(&w->index, key, klen, next_end(w, &nv));
    return true;
}

/* Sessions: the row's session [t, t + gap) absorbs the sessions it touches. */
static bool add_to_session(weir_windows *w, const uint8_t *key, size_t klen, int64_t t, const void *row) {
    view vw;
    bool unreadable;
    bool present = load(w, key, klen, &vw, &unreadable);
    if (unreadable)
        return false;
    int64_t s = t, e = sat_add(t, w->size);
    int64_t closed = present ? vw.closed : NONE;
    if (closed != NONE && e <= closed)
        return false;
    uint32_t n = present ? vw.n : 0, nm = present ? vw.nm : 0, lo = 0, hi;
    /* Sessions are sorted and disjoint: those touching [s, e] are a run. */
    while (lo < n && end_of(w, entry(w, vw.v, lo)) < s) lo++;
    hi = lo;
    while (hi < n && start_of(entry(w, vw.v, hi)) <= e) hi++;
    int64_t ms = s, me = e;
    if (hi > lo) {
        ms = min64(s, start_of(entry(w, vw.v, lo)));
        me = max64(e, end_of(w, entry(w, vw.v, hi - 1)));
    }
    if (hi - lo == 1) {
        /* One session grows (or not): rewritten in place, as its mark. */
        uint8_t *v = weir_state_upsert(key, klen, vw.len, NULL);
        uint8_t *x = entry(w, v, lo);
        int64_t os = start_of(x), oe = end_of(w, x);
        wr64(x, ms);
        wr64(x + 8, me);
        w->acc.add(acc_of(w, x), row);
        uint8_t *m = v + HEADER + n * w->stride;
        for (uint32_t j = 0; j < nm; j++, m += MARK)
            if (rd64(m) == os && rd64(m + 8) == oe) {
                wr64(m, ms);
                wr64(m + 8, me);
            }
        if (lo == 0 && oe != me) {
            view nv = {v, vw.len, closed, n, nm};
            window_index_set(&w->index, key, klen, next_end(w, &nv));
        }
        return true;
    }
    /* A new session, or several merged into one: rebuild the entry. */
    uint8_t *acc = w->tmp;
    acc_init(w, acc);
    w->acc.add(acc, row);
    for (uint32_t i = lo; i < hi; i++) w->acc.merge(acc, acc_of(w, entry(w, vw.v, i)));
    /* Marks of merged sessions (inside [ms, me]) become one mark of the merge. */
    uint32_t before = 0, inside = 0;
    const uint8_t *marks = present ? marks_of(w, &vw) : NULL;
    for (uint32_t j = 0; j < nm; j++) {
        int64_t a = rd64(marks + j * MARK), z = rd64(marks + j * MARK + 8);
        if (z < ms)
            before++;
        else if (a >= ms && z <= me)
            inside++;
    }
    uint32_t n2 = n - (hi - lo) + 1, nm2 = nm - inside + (inside > 0);
    size_t len = value_len(w, n2, nm2);
    uint8_t *b = value_buf(w, len);
    put_header(w, b, closed, n2, nm2);
    if (present)
        memcpy(b + HEADER, vw.v + HEADER, lo * w->stride);
    uint8_t *x = entry(w, b, lo);
    wr64(x, ms);
    wr64(x + 8, me);
    memcpy(acc_of(w, x), acc, w->acc_pad);
    if (present)
        memcpy(x + w->stride, entry(w, vw.v, hi), (n - hi) * w->stride);
    uint8_t *m = b + HEADER + n2 * w->stride;
    if (before)
        memcpy(m, marks, (size_t)before * MARK);
    m += (size_t)before * MARK;
    if (inside) {
        wr64(m, ms);
        wr64(m + 8, me);
        m += MARK;
    }
    if (nm > before + inside)
        memcpy(m, marks + (size_t)(before + inside) * MARK, (size_t)(nm - before - inside) * MARK);
    weir_state_put(key, klen, b, len);
    w->units += 1;
    w->units -= hi - lo;
    view nv = {b, len, closed, n2, nm2};
    window_index_set(&w->index, key, klen, next_end(w, &nv));
    return true;
}

bool weir_window_add(weir_windows *w, const void *key, size_t key_len, int64_t t, const void *row) {
    sync(w);
    size_t klen;
    const uint8_t *k = store_key(w, key, key_len, &klen);
    return w->sessions ? add_to_session(w, k, klen, t, row) : add_to_pane(w, k, klen, t, row);
}

/* Closed windows collected over the keys of one close, sorted before emitting. */
typedef struct {
    int64_t start, end;
    size_t key_off, key_len, acc_off;
    const uint8_t *key; /* set once the arena stops moving */
} closed_item;

typedef struct {
    closed_item *items;
    size_t n, cap;
    uint8_t *arena; /* keys and accumulators (at multiples of 8) */
    size_t len, arena_cap;
} closed_list;

static size_t arena_take(closed_list *c, size_t n) {
    size_t at = (c->len + 7) / 8 * 8;
    if (!c->arena || at + n > c->arena_cap) { /* allocated even for an empty key: never NULL + 0 */
        c->arena_cap = (at + n) * 2;
        c->arena = xrealloc(c->arena, c->arena_cap);
    }
    c->len = at + n;
    return at;
}

static closed_item *closed_push(closed_list *c) {
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->items = xrealloc(c->items, c->cap * sizeof *c->items);
    }
    return &c->items[c->n++];
}

/* Closes the key's windows ending at or before `wm` into `out`, rewrites
 * (or removes) its entry when any closed; returns its next end. */
static int64_t close_key(weir_windows *w, const window_rec *r, int64_t wm, closed_list *out) {
    weir_str value;
    view vw;
    if (!weir_state_get(r->key, r->key_len, &value) || parse(w, (const uint8_t *)value.ptr, value.len, &vw))
        return NONE; /* removed behind our back, or unreadable: forget it */
    int64_t next = next_end(w, &vw);
    if (next == NONE || next > wm)
        return next; /* nothing closes: not rewritten */
    size_t key_off = arena_take(out, r->key_len - w->prefix_len), emitted = out->n;
    memcpy(out->arena + key_off, r->key + w->prefix_len, r->key_len - w->prefix_len);
    uint32_t keep_from = 0; /* sessions: the first one left open */
    if (w->sessions) {
        for (; keep_from < vw.n && end_of(w, entry(w, vw.v, keep_from)) <= wm; keep_from++) {
            uint8_t *e = entry(w, vw.v, keep_from);
            size_t acc_off = arena_take(out, w->acc_pad);
            memcpy(out->arena + acc_off, acc_of(w, e), w->acc_pad);
            *closed_push(out) = (closed_item){start_of(e), end_of(w, e), key_off, r->key_len - w->prefix_len, acc_off, NULL};
        }
    } else {
        int64_t from = first_open(w, vw.closed);
        for (uint32_t i = 0; i < vw.n; i++) {
            int64_t p = start_of(entry(w, vw.v, i)), s = max64(from, first_start(w, p)), last = last_start(w, p);
            for (; s <= last; s += w->slide) {
                if (s + w->size > wm)
                    goto closed;
                size_t acc_off = arena_take(out, w->acc_pad);
                merge_panes(w, &vw, s, out->arena + acc_off);
                *closed_push(out) = (closed_item){s, s + w->size, key_off, r->key_len - w->prefix_len, acc_off, NULL};
            }
            from = max64(from, s);
        }
    closed:;
    }
    if (out->n == emitted)
        return next; /* cannot happen: next <= wm is a window holding rows */
    /* Keep the panes some open window needs, the open sessions, the marks of open windows. */
    uint32_t n2 = 0, nm2 = 0;
    size_t len = value_len(w, vw.n, vw.nm);
    uint8_t *b = value_buf(w, len);
    for (uint32_t i = w->sessions ? keep_from : 0; i < vw.n; i++) {
        const uint8_t *e = entry(w, vw.v, i);
        if (w->sessions || last_start(w, start_of(e)) + w->size > wm)
            memcpy(entry(w, b, n2++), e, w->stride);
    }
    const uint8_t *m = marks_of(w, &vw);
    uint8_t *m2 = b + HEADER + n2 * w->stride;
    for (uint32_t j = 0; j < vw.nm; j++, m += MARK)
        if (rd64(m + 8) > wm)
            memcpy(m2 + (size_t)nm2++ * MARK, m, MARK);
    w->units -= vw.n - n2;
    if (n2 == 0) {
        weir_state_remove(r->key, r->key_len); /* nothing open: marks of open windows cannot be left */
        return NONE;
    }
    put_header(w, b, wm, n2, nm2);
    len = value_len(w, n2, nm2);
    weir_state_put(r->key, r->key_len, b, len);
    view nv = {b, len, wm, n2, nm2};
    return next_end(w, &nv);
}

static int by_end_key_start(const void *pa, const void *pb) {
    const closed_item *a = pa, *b = pb;
    if (a->end != b->end)
        return a->end < b->end ? -1 : 1;
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = n ? memcmp(a->key, b->key, n) : 0;
    if (c)
        return c;
    if (a->key_len != b->key_len)
        return a->key_len < b->key_len ? -1 : 1;
    return (a->start > b->start) - (a->start < b->start);
}

size_t weir_window_close(weir_windows *w, int64_t watermark, weir_window_emit_fn emit, void *ctx) {
    sync(w);
    /* Take the due keys off the heap first: each is visited once. */
    size_t ndue = 0, cap = 0;
    window_rec **due = NULL;
    for (window_rec *r; (r = window_index_pop_due(&w->index, watermark));) {
        if (ndue == cap)
            due = xrealloc(due, (cap = cap ? cap * 2 : 16) * sizeof *due);
        due[ndue++] = r;
    }
    if (!ndue)
        return 0;
    closed_list out = {0};
    for (size_t i = 0; i < ndue; i++) {
        int64_t next = close_key(w, due[i], watermark, &out);
        if (next == NONE)
            window_index_remove(&w->index, due[i]);
        else
            window_index_requeue(&w->index, due[i], next);
    }
    free(due);
    for (size_t i = 0; i < out.n; i++) out.items[i].key = out.arena + out.items[i].key_off;
    if (out.n > 1)
        qsort(out.items, out.n, sizeof *out.items, by_end_key_start);
    for (size_t i = 0; emit && i < out.n; i++) {
        weir_window window = {out.items[i].start, out.items[i].end};
        emit(window, out.items[i].key, out.items[i].key_len, out.arena + out.items[i].acc_off, ctx);
    }
    size_t n = out.n;
    free(out.items);
    free(out.arena);
    return n;
}

/* The public read paths' start: syncs, then loads the entry of the user's
 * `key` into *vw (its store key in *k, *klen); false when absent or unreadable. */
static bool load_user_key(weir_windows *w, const void *key, size_t key_len, const uint8_t **k, size_t *klen, view *vw) {
    sync(w);
    *k = store_key(w, key, key_len, klen);
    bool unreadable;
    return load(w, *k, *klen, vw, &unreadable);
}

bool weir_window_get(weir_windows *w, const void *key, size_t key_len, weir_window window, void *acc_out) {
    size_t klen;
    const uint8_t *k;
    view vw;
    if (!load_user_key(w, key, key_len, &k, &klen, &vw))
        return false;
    if (w->sessions) {
        uint32_t i = session_at(w, &vw, window);
        if (i == vw.n)
            return false;
        memcpy(acc_out, acc_of(w, entry(w, vw.v, i)), w->acc.acc_size);
        return true;
    }
    if (!open_hop(w, &vw, window) || !merge_panes(w, &vw, window.start_ms, w->tmp))
        return false;
    memcpy(acc_out, w->tmp, w->acc.acc_size);
    return true;
}

size_t weir_window_foreach(weir_windows *w, const void *key, size_t key_len, weir_window_visit_fn fn, void *ctx) {
    size_t klen;
    const uint8_t *k;
    view vw;
    if (!load_user_key(w, key, key_len, &k, &klen, &vw))
        return 0;
    /* A copy: fn may add, mark or read (which rewrites the entry or the scratch). */
    uint8_t *copy = xmalloc(vw.len), *acc = xmalloc(w->acc_pad);
    memcpy(copy, vw.v, vw.len);
    vw.v = copy;
    size_t count = 0;
    if (w->sessions) {
        for (uint32_t i = 0; i < vw.n; i++, count++) {
            uint8_t *e = entry(w, vw.v, i);
            weir_window window = {start_of(e), end_of(w, e)};
            memcpy(acc, acc_of(w, e), w->acc_pad);
            fn(window, acc, ctx);
        }
    } else {
        int64_t from = first_open(w, vw.closed);
        for (uint32_t i = 0; i < vw.n; i++) {
            int64_t p = start_of(entry(w, vw.v, i)), s = max64(from, first_start(w, p)), last = last_start(w, p);
            for (; s <= last; s += w->slide, count++) {
                weir_window window = {s, s + w->size};
                merge_panes(w, &vw, s, acc);
                fn(window, acc, ctx);
            }
            from = max64(from, s);
        }
    }
    free(acc);
    free(copy);
    return count;
}

/* Index of `window` in the sorted marks, or where it would go (*found). */
static uint32_t mark_at(const weir_windows *w, const view *vw, weir_window window, bool *found) {
    const uint8_t *m = marks_of(w, vw);
    uint32_t j = 0;
    for (; j < vw->nm; j++, m += MARK) {
        int64_t a = rd64(m), z = rd64(m + 8);
        if (a > window.start_ms || (a == window.start_ms && z >= window.end_ms))
            break;
    }
    *found = j < vw->nm && rd64(m) == window.start_ms && rd64(m + 8) == window.end_ms;
    return j;
}

bool weir_window_mark(weir_windows *w, const void *key, size_t key_len, weir_window window) {
    size_t klen;
    const uint8_t *k;
    view vw;
    bool found;
    if (!load_user_key(w, key, key_len, &k, &klen, &vw))
        return false;
    if (w->sessions ? session_at(w, &vw, window) == vw.n : !open_hop(w, &vw, window) || !merge_panes(w, &vw, window.start_ms, w->tmp))
        return false; /* not an open window holding rows */
    uint32_t j = mark_at(w, &vw, window, &found);
    if (found)
        return false;
    size_t len = vw.len + MARK, at = HEADER + vw.n * w->stride + (size_t)j * MARK;
    uint8_t *b = value_buf(w, len);
    memcpy(b, vw.v, at);
    wr32(b + 20, vw.nm + 1);
    wr64(b + at, window.start_ms);
    wr64(b + at + 8, window.end_ms);
    memcpy(b + at + MARK, vw.v + at, vw.len - at);
    weir_state_put(k, klen, b, len); /* the windows are unchanged: so is the index */
    return true;
}

bool weir_window_is_marked(weir_windows *w, const void *key, size_t key_len, weir_window window) {
    size_t klen;
    const uint8_t *k;
    view vw;
    bool found;
    if (!load_user_key(w, key, key_len, &k, &klen, &vw))
        return false;
    mark_at(w, &vw, window, &found);
    return found;
}

size_t weir_window_len(weir_windows *w) {
    sync(w);
    return w->units;
}

size_t weir_window_keys(weir_windows *w) {
    sync(w);
    return w->index.nrecs;
}

const char *weir_window_error(weir_windows *w) {
    sync(w);
    return w->has_error ? w->error : NULL;
}

/* The store keys of the window set (copies), for clear. */
typedef struct {
    const weir_windows *w;
    uint8_t **keys;
    size_t *lens;
    size_t n, cap;
} key_list;

static void collect_key(weir_str key, weir_str value, void *ctx) {
    (void)value;
    key_list *l = ctx;
    if (!has_prefix(l->w, key))
        return;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->keys = xrealloc(l->keys, l->cap * sizeof *l->keys);
        l->lens = xrealloc(l->lens, l->cap * sizeof *l->lens);
    }
    l->keys[l->n] = xmalloc(key.len);
    memcpy(l->keys[l->n], key.ptr, key.len);
    l->lens[l->n++] = key.len;
}

void weir_window_clear(weir_windows *w) {
    key_list l = {w, NULL, NULL, 0, 0};
    weir_state_foreach(collect_key, &l);
    for (size_t i = 0; i < l.n; i++) {
        weir_state_remove(l.keys[i], l.lens[i]);
        free(l.keys[i]);
    }
    free(l.keys);
    free(l.lens);
    index_drop(w);
    w->has_error = false;
    w->synced = true;
    w->epoch = weir_state_epoch();
}

/* A growing snapshot buffer. */
typedef struct {
    const weir_windows *w;
    uint8_t *ptr;
    size_t len, cap;
    uint32_t count;
} buffer;

static void append(buffer *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->ptr = xrealloc(b->ptr, b->cap);
    }
    if (n)
        memcpy(b->ptr + b->len, p, n);
    b->len += n;
}

static void append_u32(buffer *b, size_t v) {
    uint8_t le[4];
    wr32(le, (uint32_t)v);
    append(b, le, 4);
}

static void append_entry(weir_str key, weir_str value, void *ctx) {
    buffer *b = ctx;
    if (!has_prefix(b->w, key))
        return;
    append_u32(b, key.len - b->w->prefix_len);
    append(b, key.ptr + b->w->prefix_len, key.len - b->w->prefix_len);
    append_u32(b, value.len);
    append(b, value.ptr, value.len);
    b->count++;
}

void weir_window_snapshot(weir_windows *w, uint8_t **bytes, size_t *len) {
    buffer b = {w, NULL, 0, 0, 0};
    append_u32(&b, 0);
    weir_state_foreach(append_entry, &b);
    wr32(b.ptr, b.count);
    *bytes = b.ptr;
    *len = b.len;
}

/* Walks snapshot bytes; with `apply`, puts the entries into the store. */
static const char *walk(weir_windows *w, const uint8_t *p, size_t len, bool apply) {
    if (len < 4)
        return "window snapshot: too short";
    uint32_t count = rd32(p);
    size_t at = 4;
    for (uint32_t i = 0; i < count; i++) {
        if (len - at < 4)
            return "window snapshot: truncated";
        size_t klen = rd32(p + at);
        at += 4;
        if (len - at < klen || len - at - klen < 4)
            return "window snapshot: truncated";
        const uint8_t *key = p + at;
        at += klen;
        size_t vlen = rd32(p + at);
        at += 4;
        if (len - at < vlen)
            return "window snapshot: truncated";
        view vw;
        if (check(w, p + at, vlen, &vw))
            return "window snapshot: an entry of another window kind or accumulator size, or corrupt";
        if (apply) {
            size_t sklen;
            const uint8_t *sk = store_key(w, key, klen, &sklen);
            weir_state_put(sk, sklen, p + at, vlen);
        }
        at += vlen;
    }
    return at == len ? NULL : "window snapshot: trailing bytes";
}

bool weir_window_restore(weir_windows *w, const uint8_t *bytes, size_t len, const char **error) {
    const char *why = walk(w, bytes, len, false);
    if (why) {
        if (error)
            *error = why;
        return false;
    }
    weir_window_clear(w);
    walk(w, bytes, len, true);
    w->synced = false; /* index the restored keys */
    return true;
}

bool weir_window_time_ms(const weir_column *col, size_t row, int64_t *ms) {
    if (!col->i64 || !weir_is_valid(col, row))
        return false;
    int64_t v = col->i64[row];
    if (col->type == WEIR_INT64) {
        *ms = v;
        return true;
    }
    if (col->type != WEIR_TIMESTAMP)
        return false;
    switch (col->unit) {
    case WEIR_SECOND:
        *ms = v > INT64_MAX / 1000 ? INT64_MAX : v < INT64_MIN / 1000 ? INT64_MIN : v * 1000;
        break;
    case WEIR_MILLISECOND:
        *ms = v;
        break;
    case WEIR_MICROSECOND:
        *ms = floor_div(v, 1000);
        break;
    default:
        *ms = floor_div(v, 1000000);
        break;
    }
    return true;
}
