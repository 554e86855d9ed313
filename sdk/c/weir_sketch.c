/*
 * weir C SDK: the HyperLogLog sketch of weir_sketch.h, a transcription of
 * sdk/rust/src/sketch.rs (same hash, ranks and floating-point steps in the
 * same order, so the estimates are the same numbers).
 */
#include <math.h>
#include <string.h>

#include "weir_sketch.h"

uint64_t weir_hash64(const void *bytes, size_t len) {
    const uint8_t *p = bytes;
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3u;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9u;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebu;
    return h ^ (h >> 31);
}

static unsigned clamp(unsigned precision) { return precision < 4 ? 4 : precision > 16 ? 16 : precision; }

/* Leading zero bits of x (x != 0). */
static unsigned leading_zeros(uint64_t x) {
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)__builtin_clzll(x);
#else
    unsigned n = 0;
    while (!(x & (UINT64_C(1) << 63))) {
        x <<= 1;
        n++;
    }
    return n;
#endif
}

void weir_hll_registers_add_hash(uint8_t *registers, unsigned precision, uint64_t hash) {
    unsigned p = clamp(precision);
    size_t index = (size_t)(hash >> (64 - p));
    uint64_t rest = (hash << p) | (UINT64_C(1) << (p - 1)); /* never 0: rank <= 65 - p */
    uint8_t rank = (uint8_t)(leading_zeros(rest) + 1);
    if (rank > registers[index])
        registers[index] = rank;
}

void weir_hll_registers_merge(uint8_t *registers, const uint8_t *other, unsigned precision) {
    size_t m = (size_t)1 << clamp(precision);
    for (size_t i = 0; i < m; i++)
        if (other[i] > registers[i])
            registers[i] = other[i];
}

uint64_t weir_hll_registers_estimate(const uint8_t *registers, unsigned precision) {
    size_t count = (size_t)1 << clamp(precision);
    double m = (double)count;
    double alpha = count == 16 ? 0.673 : count == 32 ? 0.697 : count == 64 ? 0.709 : 0.7213 / (1.0 + 1.079 / m);
    double sum = 0.0; /* in register order, like the Rust sum */
    size_t zeros = 0;
    for (size_t i = 0; i < count; i++) {
        sum += ldexp(1.0, -(int)registers[i]); /* = 2f64.powi(-r), exact */
        zeros += registers[i] == 0;
    }
    double raw = alpha * m * m / sum;
    double estimate = raw <= 2.5 * m && zeros > 0 ? m * log(m / (double)zeros) : raw;
    estimate = round(estimate); /* half away from zero, as f64::round */
    return estimate >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)estimate;
}

void weir_hll_init(weir_hll *h) { memset(h->registers, 0, sizeof h->registers); }

void weir_hll_add(weir_hll *h, const void *value, size_t len) {
    weir_hll_registers_add_hash(h->registers, WEIR_HLL_PRECISION, weir_hash64(value, len));
}

void weir_hll_add_hash(weir_hll *h, uint64_t hash) { weir_hll_registers_add_hash(h->registers, WEIR_HLL_PRECISION, hash); }

void weir_hll_merge(weir_hll *h, const weir_hll *other) {
    weir_hll_registers_merge(h->registers, other->registers, WEIR_HLL_PRECISION);
}

uint64_t weir_hll_estimate(const weir_hll *h) { return weir_hll_registers_estimate(h->registers, WEIR_HLL_PRECISION); }
