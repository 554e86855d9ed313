// Aggregate: running count per `key`; emits the keys touched by each batch.
import { Batch, Column, Field, INT64, UTF8, aggregateOperator } from "./weir.js";

class Operator {
  static config = {};
  constructor() { this.counts = new Map(); }
  reads() { return ["key"]; }
  process(batch) {
    const keys = batch.column("key");
    const touched = [];
    for (let i = 0; i < batch.numRows; i++) {
      const key = keys.value(i);
      if (key === null || key === undefined) continue;
      this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
      if (!touched.includes(key)) touched.push(key);
    }
    if (touched.length === 0) return [];
    const counts = BigInt64Array.from(touched, (k) => BigInt(this.counts.get(k)));
    return [new Batch([[new Field("key", UTF8, false), Column.utf8(touched)], [new Field("count", INT64, false), Column.int64(counts)]])];
  }
  snapshot() { return new TextEncoder().encode(JSON.stringify([...this.counts])); }
  restore(state) { this.counts = new Map(JSON.parse(new TextDecoder().decode(state))); }
}

export const aggregate = aggregateOperator(Operator);
