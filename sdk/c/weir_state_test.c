/*
 * Unit test of the C SDK's keyed state store (weir_state.c), natively:
 *   cc -Wall -Wextra -Werror -Isdk/c sdk/c/weir_state.c sdk/c/weir_state_test.c -o t && ./t
 * (scripts/test runs it). Prints the failed check and exits 1 on failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir.h"
#include "weir_check.h"
#include "weir_state.h"


static void put(const char *key, const char *value) { weir_state_put(key, strlen(key), value, strlen(value)); }

/* The taken entries as "key=value" / "key removed", joined by spaces. */
static char *take(bool changes) {
    static char out[4096];
    size_t n, at = 0;
    weir_state_item *items = weir_state_take(changes, &n);
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (at >= sizeof out - 64) { /* long lists are cut (never equal to a short one) */
            free(items[i].key);
            free(items[i].value);
            continue;
        }
        at += (size_t)snprintf(out + at, sizeof out - at, "%s%.*s", i ? " " : "", (int)items[i].key_len, items[i].key);
        if (items[i].removed)
            at += (size_t)snprintf(out + at, sizeof out - at, " removed");
        else
            at += (size_t)snprintf(out + at, sizeof out - at, "=%.*s", (int)items[i].value_len, items[i].value);
        free(items[i].key);
        free(items[i].value);
    }
    free(items);
    return out;
}

static void collect(weir_str key, weir_str value, void *ctx) {
    char *out = ctx;
    size_t at = strlen(out);
    snprintf(out + at, 4096 - at, "%s%.*s=%.*s", at ? " " : "", (int)key.len, key.ptr, (int)value.len, value.ptr);
}

int main(void) {
    /* Nothing is tracked before the host first asks: removed keys are freed
     * at once, and the first take of changes is every live key. */
    char early[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(early, sizeof early, "e%04d", i);
        put(early, "x");
        weir_state_remove(early, strlen(early));
    }
    put("kept", "1");
    CHECK(strcmp(take(true), "kept=1") == 0);
    weir_state_remove("kept", 4);
    CHECK(strcmp(take(true), "kept removed") == 0); /* tracked from then on */

    put("b", "2");
    put("a", "1");
    put("c", "3");
    CHECK(strcmp(take(true), "a=1 b=2 c=3") == 0);
    CHECK(strcmp(take(true), "") == 0); /* nothing touched since */

    put("d", "4");
    weir_state_remove("a", 1);
    weir_state_remove("nope", 4); /* never existed: no entry */
    put("b", "20");
    put("b", "21");
    CHECK(weir_state_len() == 3);
    CHECK(strcmp(take(true), "a removed b=21 d=4") == 0);

    /* A removed key comes back; a get does not mark it changed. */
    put("a", "5");
    weir_str v;
    CHECK(weir_state_get("a", 1, &v) && v.len == 1 && v.ptr[0] == '5');
    CHECK(!weir_state_get("zz", 2, &v));
    CHECK(strcmp(take(false), "a=5 b=21 c=3 d=4") == 0);
    CHECK(strcmp(take(true), "") == 0); /* entries start tracking afresh */
    weir_state_get("a", 1, &v);
    CHECK(strcmp(take(true), "") == 0);

    /* upsert: zeroed when new or resized, in place otherwise, always marked. */
    bool created = false;
    uint8_t *p = weir_state_upsert("e", 1, 2, &created);
    CHECK(created && p[0] == 0 && p[1] == 0);
    p[0] = 'x';
    p[1] = 'y';
    CHECK(weir_state_upsert("e", 1, 2, &created) == p && !created);
    CHECK(strcmp(take(true), "e=xy") == 0);

    /* Many keys: the table grows, nodes keep their values. */
    char key[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%05d", i);
        put(key, key);
    }
    CHECK(weir_state_len() == 5005);
    CHECK(weir_state_get("k04321", 6, &v) && v.len == 6 && memcmp(v.ptr, "k04321", 6) == 0);
    size_t n;
    weir_state_item *items = weir_state_take(true, &n);
    CHECK(n == 5000);
    for (size_t i = 0; i < n; i++) {
        free(items[i].key);
        free(items[i].value);
    }
    free(items);

    /* clear removes every key; restore puts entries without marking them. */
    weir_state_clear();
    CHECK(weir_state_len() == 0);
    items = weir_state_take(true, &n);
    CHECK(n == 5005 && items[0].removed);
    for (size_t i = 0; i < n; i++) free(items[i].key);
    free(items);
    put("gone", "1");
    weir_state_reset();
    weir_state_restore_put((const uint8_t *)"y", 1, (const uint8_t *)"2", 1);
    weir_state_restore_put((const uint8_t *)"x", 1, (const uint8_t *)"1", 1);
    CHECK(strcmp(take(true), "") == 0);
    char all[4096] = "";
    weir_state_foreach(collect, all);
    CHECK(strcmp(all, "x=1 y=2") == 0);

    if (failures)
        return 1;
    printf("weir_state: ok\n");
    return 0;
}
