// Approximate distinct counting for aggregate state: a HyperLogLog sketch
// (Flajolet et al. 2007, with the small-range linear-counting correction)
// that fits in a window accumulator and merges when windows combine.
//
// Same hash (FNV-1a 64-bit, then the SplitMix64 finaliser), register layout
// and estimate as the Rust SDK's `weir_sdk::sketch`, so a JavaScript
// operator's counts agree with a Rust one's; `toJSON()` matches its serde
// form (`{"precision": 12, "registers": "<hex>"}`).
//
//   import { HyperLogLog } from "../../../sdk/js/sketch.js";
//   const hll = new HyperLogLog();
//   for (const c of ["c-1", "c-2", "c-1"]) hll.insert(c);
//   hll.estimate(); // 2

const encoder = new TextEncoder();
const MASK64 = (1n << 64n) - 1n;
const TWO32 = 4294967296;

/**
 * FNV-1a over the bytes (a string: its UTF-8), then the SplitMix64
 * finaliser; a BigInt in [0, 2^64). Stable across processes and languages.
 */
export function hash64(value) {
  const bytes = typeof value === "string" ? encoder.encode(value) : value;
  // FNV-1a on 32-bit halves (prime 2^40 + 0x1b3), BigInt only for the finaliser.
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (let i = 0; i < bytes.length; i++) {
    lo = (lo ^ bytes[i]) >>> 0;
    const p = lo * 0x1b3;
    hi = (Math.imul(hi, 0x1b3) + (lo << 8) + Math.floor(p / TWO32)) >>> 0;
    lo = p >>> 0;
  }
  let h = (BigInt(hi) << 32n) | BigInt(lo);
  h ^= h >> 30n;
  h = (h * 0xbf58476d1ce4e5b9n) & MASK64;
  h ^= h >> 27n;
  h = (h * 0x94d049bb133111ebn) & MASK64;
  return h ^ (h >> 31n);
}

function leadingZeros64(x) {
  const hi = Number(x >> 32n);
  return hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(Number(x & 0xffffffffn));
}

/** A HyperLogLog sketch with 2^precision registers (precision clamped to 4..16; default 12, about 1.6% error). */
export class HyperLogLog {
  constructor(precision = 12) {
    this.precision = Math.min(Math.max(Math.trunc(precision), 4), 16);
    this.registers = new Uint8Array(1 << this.precision);
  }

  /** Adds a value (a string: its UTF-8 bytes; or a Uint8Array). */
  insert(value) {
    this.insertHash(hash64(value));
  }

  /** Adds a value by its `hash64` (hash once, insert into several windows). */
  insertHash(hash) {
    const p = this.precision;
    const index = Number(hash >> BigInt(64 - p));
    const rest = ((hash << BigInt(p)) & MASK64) | (1n << BigInt(p - 1));
    const rank = leadingZeros64(rest) + 1;
    if (rank > this.registers[index]) this.registers[index] = rank;
  }

  /** Folds another sketch of the same precision in (a union); other precisions are ignored. */
  merge(other) {
    if (other.precision !== this.precision) return;
    const mine = this.registers;
    other.registers.forEach((r, i) => { if (r > mine[i]) mine[i] = r; });
  }

  /** The estimated number of distinct values inserted. */
  estimate() {
    const m = this.registers.length;
    const alpha = { 16: 0.673, 32: 0.697, 64: 0.709 }[m] ?? 0.7213 / (1.0 + 1.079 / m);
    let sum = 0;
    let zeros = 0;
    for (const r of this.registers) { // in register order, like the Rust sum
      sum += 2 ** -r;
      if (r === 0) zeros++;
    }
    const raw = (alpha * m * m) / sum;
    const estimate = raw <= 2.5 * m && zeros > 0 ? m * Math.log(m / zeros) : raw;
    return Math.round(estimate); // = Rust's f64::round for non-negative values
  }

  /** The Rust sketch's serde form: registers as lowercase hex. */
  toJSON() {
    let hex = "";
    for (const r of this.registers) hex += (r < 16 ? "0" : "") + r.toString(16);
    return { precision: this.precision, registers: hex };
  }

  /** A sketch from `toJSON()` output (or a Rust sketch's JSON). */
  static fromJSON(data) {
    const sketch = new HyperLogLog(data.precision);
    const hex = String(data.registers);
    if (hex.length !== sketch.registers.length * 2 || !/^[0-9a-fA-F]*$/.test(hex)) {
      throw new RangeError(`HyperLogLog: bad registers for precision ${sketch.precision}`);
    }
    for (let i = 0; i < sketch.registers.length; i++) sketch.registers[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    return sketch;
  }
}
