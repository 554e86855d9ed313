// Aggregate: running count and sum of `value` per `key`. Each call emits one
// batch (`key` utf8, `count` int64, `sum` float64) with the keys it touched,
// in first-seen order, and their running totals. Null keys are skipped; a
// null value counts but adds 0. Key columns may be utf8, int32 or int64
// (stringified); the value column must be float64. Same behaviour (and the
// same snapshot bytes) as guest-examples/rust/count-by-key.
//
// Config (optional): {"key": "customer_id", "value": "total_amount"}
// Snapshot: u64 n, then n x (u32 len, key bytes, i64 count, f64 sum),
// little-endian, keys in sorted (byte) order.
// Build: scripts/build-polyglot-guests (-> target/guests/polyglot/js-count-by-key.wasm)

import { Batch, Column, FLOAT64, Failed, Field, INT32, INT64, InvalidInput, UTF8, aggregateOperator } from "../../../sdk/js/weir.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

class CountByKey {
  static config = { key: "customer_id", value: "total_amount" };

  constructor(config) {
    this.key = config.key;
    this.value = config.value;
    this.totals = new Map(); // key -> {count: BigInt, sum: number}
  }

  reads() {
    return [this.key, this.value];
  }

  process(batch) {
    const kcol = batch.column(this.key);
    const vcol = batch.column(this.value);
    let keys;
    if (kcol.type === UTF8) keys = kcol.toArray();
    else if (kcol.type === INT32 || kcol.type === INT64) keys = kcol.toArray().map((k) => (k === null ? null : String(k)));
    else throw new InvalidInput(`key column is ${kcol.type}, expected utf8/int32/int64`);
    const values = vcol.float64Values();
    const touched = new Set();
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      if (key === null) continue;
      let entry = this.totals.get(key);
      if (!entry) {
        entry = { count: 0n, sum: 0 };
        this.totals.set(key, entry);
      }
      entry.count += 1n;
      entry.sum += vcol.isValid(i) ? values[i] : 0;
      touched.add(key);
    }
    if (touched.size === 0) return [];
    const out = [...touched];
    return [
      new Batch([
        [new Field("key", UTF8, false), Column.utf8(out)],
        [new Field("count", INT64, false), Column.int64(out.map((k) => this.totals.get(k).count))],
        [new Field("sum", FLOAT64, false), Column.float64(out.map((k) => this.totals.get(k).sum))],
      ]),
    ];
  }

  snapshot() {
    const entries = [...this.totals].map(([k, v]) => [encoder.encode(k), v]);
    entries.sort((a, b) => compareBytes(a[0], b[0]));
    const size = 8 + entries.reduce((s, [k]) => s + 4 + k.length + 16, 0);
    const out = new Uint8Array(size);
    const dv = new DataView(out.buffer);
    dv.setBigUint64(0, BigInt(entries.length), true);
    let pos = 8;
    for (const [k, v] of entries) {
      dv.setUint32(pos, k.length, true);
      out.set(k, pos + 4);
      pos += 4 + k.length;
      dv.setBigInt64(pos, v.count, true);
      dv.setFloat64(pos + 8, v.sum, true);
      pos += 16;
    }
    return out;
  }

  restore(state) {
    const corrupt = () => new Failed("corrupt count-by-key snapshot");
    const dv = new DataView(state.buffer, state.byteOffset, state.byteLength);
    const totals = new Map();
    try {
      const n = dv.getBigUint64(0, true);
      let pos = 8;
      for (let i = 0n; i < n; i++) {
        const len = dv.getUint32(pos, true);
        pos += 4;
        if (pos + len > state.byteLength) throw corrupt();
        const key = decoder.decode(state.subarray(pos, pos + len));
        pos += len;
        totals.set(key, { count: dv.getBigInt64(pos, true), sum: dv.getFloat64(pos + 8, true) });
        pos += 16;
      }
    } catch (e) {
      throw corrupt();
    }
    this.totals = totals;
  }
}

export const aggregate = aggregateOperator(CountByKey);
