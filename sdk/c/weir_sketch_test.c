/*
 * Unit test of the C SDK's HyperLogLog sketch (weir_sketch.c): the same
 * hashes and estimates as the Rust, Python and JavaScript sketches, merge
 * as union, and a sketch inside a window accumulator, natively:
 *   cc -Wall -Wextra -Werror -Isdk/c sdk/c/weir_state.c sdk/c/weir_window.c sdk/c/weir_window_index.c \
 *      sdk/c/weir_sketch.c sdk/c/weir_sketch_test.c -lm -o t && ./t
 * (scripts/test runs it). Prints the failed checks and exits 1 on failure.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "weir.h"
#include "weir_check.h"
#include "weir_sketch.h"
#include "weir_state.h"
#include "weir_window.h"

#define MIN INT64_C(60000)

static void add_text(weir_hll *h, const char *fmt, int i) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, fmt, i);
    weir_hll_add(h, buf, (size_t)n);
}

/* A window accumulator with a sketch: rows and distinct users. */
typedef struct {
    int64_t rows;
    weir_hll users;
} reach;
static void reach_add(void *acc, const void *row) {
    reach *r = acc;
    r->rows++;
    weir_hll_add_hash(&r->users, *(const uint64_t *)row);
}
static void reach_merge(void *acc, const void *other) {
    reach *r = acc;
    r->rows += ((const reach *)other)->rows;
    weir_hll_merge(&r->users, &((const reach *)other)->users);
}

static void test_sketch(void) {
    /* The Rust / JS / Python sketch's numbers (sdk/python/weir_sdk/sketch.py, sdk/js/sketch.js). */
    CHECK(weir_hash64("", 0) == 0xf52a15e9a9b5e89bu);
    CHECK(weir_hash64("customer-0", 10) == 0xe0ef692b167733d8u);
    CHECK(weir_hash64("a", 1) == 0x02c0bdbf481420f8u);
    static weir_hll h, once, a, b, both;
    weir_hll_init(&h);
    CHECK(weir_hll_estimate(&h) == 0);
    weir_hll_add(&h, "c-1", 3);
    weir_hll_add(&h, "c-2", 3);
    weir_hll_add(&h, "c-1", 3);
    CHECK(weir_hll_estimate(&h) == 2);
    weir_hll_init(&h);
    weir_hll_init(&once);
    for (int i = 0; i < 100000; i++) {
        add_text(&h, "customer-%d", i);
        add_text(&h, "customer-%d", i);
        add_text(&once, "customer-%d", i);
    }
    uint64_t e = weir_hll_estimate(&h);
    CHECK(fabs((double)e - 100000.0) / 100000.0 < 0.02);
    CHECK(e == 101352); /* the same estimate as the other SDKs */
    CHECK(memcmp(&h, &once, sizeof h) == 0); /* duplicates change nothing */
    weir_hll_init(&h);
    for (int i = 0; i < 1000; i++) add_text(&h, "customer-%d", i);
    CHECK(weir_hll_estimate(&h) == 1002);
    uint8_t small[16] = {0};
    for (int i = 0; i < 100; i++) {
        char buf[8];
        int n = snprintf(buf, sizeof buf, "x%d", i);
        weir_hll_registers_add_hash(small, 4, weir_hash64(buf, (size_t)n));
    }
    CHECK(weir_hll_registers_estimate(small, 4) == 104);
    /* merge = union: the registers of the sketch of both sets. */
    weir_hll_init(&a);
    weir_hll_init(&b);
    weir_hll_init(&both);
    for (uint32_t i = 0; i < 7500; i++) {
        uint8_t le[4] = {(uint8_t)i, (uint8_t)(i >> 8), (uint8_t)(i >> 16), (uint8_t)(i >> 24)};
        if (i < 5000)
            weir_hll_add(&a, le, 4);
        if (i >= 2500)
            weir_hll_add(&b, le, 4);
        weir_hll_add(&both, le, 4);
    }
    weir_hll_merge(&a, &b);
    CHECK(memcmp(&a, &both, sizeof a) == 0);
    CHECK(weir_hll_estimate(&a) == 7603 && fabs((double)weir_hll_estimate(&a) - 7500.0) / 7500.0 < 0.02);

    /* In a window: distinct users per hopping window, merged from panes. */
    weir_state_reset();
    weir_window_spec spec = {WEIR_HOPPING, 10 * MIN, 5 * MIN, 0};
    weir_window_acc acc = {sizeof(reach), NULL, reach_add, reach_merge};
    weir_windows *w = weir_window_create(&spec, &acc, NULL, NULL);
    static weir_hll first, second;
    weir_hll_init(&first);
    weir_hll_init(&second);
    for (int i = 0; i < 3000; i++) {
        char user[16];
        int n = snprintf(user, sizeof user, "u%d", i % 2000);
        uint64_t hash = weir_hash64(user, (size_t)n);
        int64_t t = (i % 3) * 4 * MIN; /* panes [0,5) min (2 rows in 3) and [5,10) min */
        weir_window_add(w, "site", 4, t, &hash);
        weir_hll_add_hash(t < 5 * MIN ? &first : &second, hash);
    }
    static reach r;
    CHECK(weir_window_get(w, "site", 4, (weir_window){0, 10 * MIN}, &r) && r.rows == 3000);
    weir_hll_merge(&first, &second);
    CHECK(memcmp(&r.users, &first, sizeof first) == 0 && weir_hll_estimate(&r.users) == weir_hll_estimate(&first));
    CHECK(fabs((double)weir_hll_estimate(&r.users) - 2000.0) / 2000.0 < 0.02);
    weir_window_free(w);
}

int main(void) {
    test_sketch();
    weir_state_reset();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("weir_sketch: ok\n");
    return 0;
}
