/*
 * weir C SDK: event-time windows for aggregate operators (the C counterpart
 * of the Rust SDK's `weir_sdk::window`). The operator supplies the key bytes
 * and a fixed-size accumulator with three callbacks; a window set assigns
 * rows to tumbling, hopping or session windows, keeps the accumulators per
 * key and hands out the final results once the watermark passed a window's
 * end.
 *
 * Hopping windows (and tumbling ones, a hopping of slide = size) are kept as
 * panes of gcd(size, slide) ms: a row is folded into one pane, not into each
 * of its size / slide windows, and a window's accumulator is the merge of
 * its panes, built when it is read or closed. A pane is dropped when the
 * last window containing it closes. Sessions are kept whole.
 *
 * The state lives in the SDK's keyed state store (weir_state_*, weir.h):
 * one store entry per key (`prefix` + key bytes) holding all that key's
 * panes or sessions, marks and `closed_until`. So an operator built with
 * -DWEIR_KEYED_AGGREGATE checkpoints incrementally with no further code (a
 * checkpoint writes the keys that got a row, a mark or a closed window; a
 * key with nothing open is removed), and restore-entries refills the window
 * set. Do not put, upsert or remove the set's keys yourself. Other keys (and
 * other window sets) may share the store when none of them starts with this
 * set's prefix: give each set its own prefix, none a prefix of another. For
 * weir_snapshot / weir_restore (hot swaps, plain -DWEIR_AGGREGATE builds)
 * use weir_window_snapshot / weir_window_restore.
 *
 * Event times and watermarks are Unix milliseconds; keep times within
 * +-2^62 and sizes within 2^61 (a watermark of INT64_MAX closes
 * everything). The host drops rows behind the watermark; an operator that
 * adds such rows anyway should drop the weir_window_is_late ones (a key
 * whose windows all closed is forgotten, with its closed_until).
 *
 * Entry value layout (little-endian; `acc` is the accumulator's bytes as
 * the callbacks left them, padded with zeros to a multiple of 8):
 *   u8 version = 1, u8 kind (0 panes, 1 sessions), u16 0, u32 acc_size,
 *   i64 closed_until (INT64_MIN: none), u32 entries, u32 marks,
 *   entries: panes `i64 start, acc` / sessions `i64 start, i64 end, acc`
 *   (sorted by start), marks: `i64 start, i64 end` (sorted).
 *
 * Build: add sdk/c/weir_window.c, weir_window_index.c and weir_state.c to the sources
 * (scripts/build-polyglot-guests does). See docs/sdk-c.md#windows.
 */
#ifndef WEIR_WINDOW_H
#define WEIR_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weir.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Which windows a row belongs to. */
typedef enum {
    WEIR_TUMBLING, /* fixed windows of size_ms, aligned to the epoch */
    WEIR_HOPPING,  /* windows of size_ms starting every slide_ms (a row is in size / slide of them) */
    WEIR_SESSION,  /* per key, rows less than gap_ms apart; a session ends gap_ms after its last row */
} weir_window_kind;

/* A window kind and its sizes (the fields of other kinds are ignored). */
typedef struct {
    weir_window_kind kind;
    int64_t size_ms;  /* tumbling, hopping */
    int64_t slide_ms; /* hopping */
    int64_t gap_ms;   /* session */
} weir_window_spec;

/* A window: [start_ms, end_ms) in event time. */
typedef struct {
    int64_t start_ms;
    int64_t end_ms;
} weir_window;

/* The operator's fold over a window's rows: `acc_size` bytes (a struct of
 * counts, sums, min/max, a weir_hll...) that the callbacks get 8-byte
 * aligned. init empties it (NULL: all zero bytes); add folds one row (`row`
 * is whatever the operator passes to weir_window_add); merge folds another
 * accumulator of the same key in (panes into a window, sessions a row
 * bridges). The bytes are stored as they are: no pointers in them. The
 * callbacks must not call weir_window_* functions. */
typedef struct {
    size_t acc_size;
    void (*init)(void *acc);
    void (*add)(void *acc, const void *row);
    void (*merge)(void *acc, const void *other);
} weir_window_acc;

/* A window set (create one per aggregate, in weir_init). */
typedef struct weir_windows weir_windows;

/* Called for each closed window: its key (without the prefix), the final
 * accumulator (valid during the call) and the ctx given to weir_window_close. */
typedef void (*weir_window_emit_fn)(weir_window window, const void *key, size_t key_len, const void *acc, void *ctx);
/* Called for each open window of a key (weir_window_foreach). */
typedef void (*weir_window_visit_fn)(weir_window window, const void *acc, void *ctx);

/* Whether the spec is valid (sizes positive, slide <= size, a known kind);
 * when not, *error (may be NULL) is a static message. */
bool weir_window_validate(const weir_window_spec *spec, const char **error);

/* A window set of `spec` folding with `acc`, whose store keys are `prefix`
 * (NUL-terminated; NULL or "" = none) + the key bytes. NULL when the spec
 * or accumulator is invalid, with *error a static message to report
 * (`return weir_invalid_config("%s", error);`). Picks up keys already in
 * the store. */
weir_windows *weir_window_create(const weir_window_spec *spec, const weir_window_acc *acc, const char *prefix,
                                 const char **error);
/* Frees the window set (not its keys in the store). */
void weir_window_free(weir_windows *w);

/* The tumbling or hopping windows that contain `t`, oldest first: writes up
 * to `cap` of them to `out` and returns how many there are (0 for sessions,
 * which depend on the key's other rows). */
size_t weir_window_assign(const weir_windows *w, int64_t t, weir_window *out, size_t cap);

/* Whether a row at `t` would only land in windows that `watermark` already
 * closed (a late row: drop or dead-letter it instead of adding it). */
bool weir_window_is_late(const weir_windows *w, int64_t t, int64_t watermark);

/* Folds `row` at event time `t` into the windows of `key`; marks the key
 * changed. False when the row was dropped: every window it belongs to was
 * already closed for this key (weir_window_is_late at the key's last closing
 * watermark), or the key's stored state is unreadable (weir_window_error). */
bool weir_window_add(weir_windows *w, const void *key, size_t key_len, int64_t t, const void *row);

/* Closes every window whose end is at or before `watermark`: calls emit
 * with each (window, key, accumulator) by window end, then key bytes, then
 * start, and removes them (and the panes and marks no open window needs).
 * Only keys where a window closed are rewritten (marked changed); a key
 * left with nothing open is removed. Returns how many windows closed. emit
 * may read the window set. Costs O(log keys) per key that closes a window
 * plus the closing itself; keys where nothing closes are not visited. */
size_t weir_window_close(weir_windows *w, int64_t watermark, weir_window_emit_fn emit, void *ctx);

/* Whether anything fell in the open `window` of `key`; if so, writes its
 * accumulator (for hopping windows the merge of its panes) to `acc_out`
 * (acc_size bytes). False for closed windows, windows that are not windows
 * of the spec, and (sessions) anything but an open session's exact bounds.
 * Does not mark the key changed. */
bool weir_window_get(weir_windows *w, const void *key, size_t key_len, weir_window window, void *acc_out);

/* Calls fn for each open window of `key` that holds rows, by start (a
 * hopping window with its merged panes); returns how many. Does not mark
 * the key changed. */
size_t weir_window_foreach(weir_windows *w, const void *key, size_t key_len, weir_window_visit_fn fn, void *ctx);

/* Marks an open window of `key` that holds rows (an early result sent, an
 * alert raised once); true when it was not marked before (then the key is
 * changed). The mark is state (checkpointed) and goes when the window
 * closes; a session's mark moves to the session it merges into. */
bool weir_window_mark(weir_windows *w, const void *key, size_t key_len, weir_window window);
/* Whether weir_window_mark marked this window of `key`. */
bool weir_window_is_marked(weir_windows *w, const void *key, size_t key_len, weir_window window);

/* Panes (tumbling, hopping) plus sessions held, all keys: the state size
 * to bound and report. */
size_t weir_window_len(weir_windows *w);
/* Keys with open windows. */
size_t weir_window_keys(weir_windows *w);

/* Removes every key of the window set from the store (a fresh start). */
void weir_window_clear(weir_windows *w);

/* The whole window set as bytes for weir_snapshot (malloc'd, the caller
 * frees): u32 count, then per key u32 key length, key, u32 value length,
 * entry value (little-endian, keys in byte order, without the prefix). */
void weir_window_snapshot(weir_windows *w, uint8_t **bytes, size_t *len);
/* Replaces the window set's keys with weir_window_snapshot bytes (for
 * weir_restore). False, with *error (may be NULL) a static message and the
 * store unchanged, when the bytes are not such a snapshot of this spec and
 * accumulator size. */
bool weir_window_restore(weir_windows *w, const uint8_t *bytes, size_t len, const char **error);

/* NULL, or why a stored entry of the window set could not be read (after a
 * restore of entries written with another spec kind or accumulator size):
 * such keys are left alone and their rows dropped. Check it in
 * weir_aggregate (`return weir_failed("%s", e);`), or weir_window_clear. */
const char *weir_window_error(weir_windows *w);

/* Event time of `row` in Unix ms from an int64 column (already ms) or a
 * timestamp column of any unit (floored to ms). False for a null row or a
 * column of another type. */
bool weir_window_time_ms(const weir_column *col, size_t row, int64_t *ms);

#ifdef __cplusplus
}
#endif
#endif
