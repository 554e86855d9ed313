// Map: adds `amount_bucket` (int64 = floor(total_amount / 100)) and
// `tax_amount` (float64 = total_amount * tax_rate). A null `total_amount`
// gives nulls; a negative one rejects the row ("negative total_amount:
// <value>", formatted like Rust). Declares reads = ["total_amount"], so only
// that column crosses in and only the two new columns cross out. Same
// behaviour as guest-examples/rust/enrich-order.
//
// Config (optional): {"tax_rate": 0.2}
// Build: scripts/build-polyglot-guests (-> target/guests/polyglot/js-enrich-order.wasm)

import { Batch, Column, FLOAT64, Field, INT64, InvalidInput, MapOutput, formatF64, mapOperator } from "../../../sdk/js/weir.js";

const I64_MAX = 9223372036854775807n;
const I64_MIN = -9223372036854775808n;

/** floor(q) with Rust's saturating `as i64` (NaN -> 0). */
function toI64(q) {
  if (Number.isNaN(q)) return 0n;
  if (q >= 9223372036854775807) return I64_MAX;
  if (q <= -9223372036854775808) return I64_MIN;
  return BigInt(Math.floor(q));
}

class EnrichOrder {
  static config = { tax_rate: 0.2 };

  constructor(config) {
    this.rate = config.tax_rate;
  }

  reads() {
    return ["total_amount"];
  }

  process(batch) {
    const col = batch.column("total_amount");
    if (col.type !== FLOAT64) throw new InvalidInput(`total_amount is ${col.type}, expected Float64`);
    const amounts = col.float64Values();
    const n = amounts.length;
    const buckets = new BigInt64Array(n);
    // Written as two u32 halves: BigInt conversions are slow without a JIT.
    const halves = new Uint32Array(buckets.buffer);
    const tax = new Float64Array(n);
    const rejected = [];
    for (let i = 0; i < n; i++) {
      const a = amounts[i];
      const q = Math.floor(a / 100);
      if (q > -9007199254740992 && q < 9007199254740992) {
        const hi = Math.floor(q / 4294967296);
        halves[2 * i] = q - hi * 4294967296;
        halves[2 * i + 1] = hi >>> 0;
      } else {
        buckets[i] = toI64(a / 100); // NaN, infinities, beyond 2^53: Rust's saturating `as`
      }
      tax[i] = a * this.rate;
      if (a < 0 && col.isValid(i)) rejected.push({ row: i, reason: `negative total_amount: ${formatF64(a)}` });
    }
    const out = new Batch([
      [new Field("amount_bucket", INT64, true), Column.int64(buckets, col.validity)],
      [new Field("tax_amount", FLOAT64, true), Column.float64(tax, col.validity)],
    ]);
    return new MapOutput(out, rejected);
  }
}

export const map = mapOperator(EnrichOrder);
