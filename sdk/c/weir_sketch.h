/*
 * weir C SDK: approximate distinct counting, a HyperLogLog sketch (Flajolet
 * et al. 2007, with the small-range linear-counting correction). Same hash
 * (FNV-1a 64-bit, then the SplitMix64 finaliser), register layout and
 * estimate as the Rust SDK's `weir_sdk::sketch` (and the JS, Python ones),
 * so a C operator's counts agree with theirs. Plain C: no bindings, no
 * allocation; `weir_hll` is a fixed-size struct (4 KiB), so it can be (part
 * of) a window accumulator (weir_window.h) and merges when windows combine.
 *
 *   weir_hll h;
 *   weir_hll_init(&h);
 *   weir_hll_add(&h, "c-1", 3); weir_hll_add(&h, "c-2", 3); weir_hll_add(&h, "c-1", 3);
 *   weir_hll_estimate(&h); // 2
 *
 * Build: add sdk/c/weir_sketch.c to the sources (scripts/build-polyglot-guests
 * does); natively it needs libm (-lm).
 */
#ifndef WEIR_SKETCH_H
#define WEIR_SKETCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The precision of weir_hll: 2^12 registers, about 1.6% standard error (the
 * Rust `HyperLogLog::default()`). */
#define WEIR_HLL_PRECISION 12
#define WEIR_HLL_REGISTERS (1u << WEIR_HLL_PRECISION)

/* A sketch of precision WEIR_HLL_PRECISION: one byte per register, in the
 * Rust sketch's order. All zero = empty (weir_hll_init, or memset). */
typedef struct {
    uint8_t registers[WEIR_HLL_REGISTERS];
} weir_hll;

/* The Rust SDK's `sketch::hash64`: FNV-1a over the bytes, then SplitMix64's
 * finaliser; stable across processes, platforms and languages. */
uint64_t weir_hash64(const void *bytes, size_t len);

/* Empties the sketch. */
void weir_hll_init(weir_hll *h);
/* Adds a value (its bytes). */
void weir_hll_add(weir_hll *h, const void *value, size_t len);
/* Adds a value by its weir_hash64 (hash once, add to several sketches). */
void weir_hll_add_hash(weir_hll *h, uint64_t hash);
/* Folds `other` in: afterwards `h` is the sketch of the union. */
void weir_hll_merge(weir_hll *h, const weir_hll *other);
/* The estimated number of distinct values added (as the Rust sketch's). */
uint64_t weir_hll_estimate(const weir_hll *h);

/* Any precision (clamped to 4..16, as Rust's `HyperLogLog::new`): the
 * sketch is `1 << precision` register bytes the caller keeps (zeroed =
 * empty); `other` must have the same precision. */
void weir_hll_registers_add_hash(uint8_t *registers, unsigned precision, uint64_t hash);
void weir_hll_registers_merge(uint8_t *registers, const uint8_t *other, unsigned precision);
uint64_t weir_hll_registers_estimate(const uint8_t *registers, unsigned precision);

#ifdef __cplusplus
}
#endif
#endif
