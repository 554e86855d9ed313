/*
 * weir C SDK internals: what weir.c needs from the keyed state store
 * (weir_state.c) to export `weir:operator/keyed-state`, and what the window
 * helpers (weir_window.c) need to notice a restore. Not for operators.
 */
#ifndef WEIR_STATE_H
#define WEIR_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One entry handed to the host: malloc'd copies of key and value (NULL when
 * empty); `removed` = the key was removed (no value). */
typedef struct {
    uint8_t *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
    bool removed;
} weir_state_item;

/* The keys changed or removed since the last take (changes), or every live
 * key (!changes, or before the first take or reset: nothing was tracked),
 * sorted by key bytes; then forgets what changed and tracks from here. Returns a
 * malloc'd array of *count items (the caller owns it and the copies). */
weir_state_item *weir_state_take(bool changes, size_t *count);
/* Empties the store (before restore-entries); tracks changes from here. */
void weir_state_reset(void);
/* Adds an entry without marking it changed (restore-entries). */
void weir_state_restore_put(const uint8_t *key, size_t key_len, const uint8_t *value, size_t len);
/* Bumped by weir_state_reset and weir_state_clear: an index built over the
 * store's keys (weir_window.c) is stale when the epoch moved. */
uint64_t weir_state_epoch(void);

#endif
