// Map: adds `amount_doubled` (float64) and rejects negative amounts.
import { Batch, Column, FLOAT64, Field, MapOutput, formatF64, mapOperator } from "./weir.js";

class Operator {
  static config = {};
  constructor() {}
  reads() { return ["amount"]; }
  process(batch) {
    const amount = batch.column("amount");
    const values = amount.float64Values();
    const doubled = new Float64Array(values.length);
    const rejected = [];
    for (let i = 0; i < values.length; i++) {
      doubled[i] = values[i] * 2;
      if (values[i] < 0 && amount.isValid(i)) rejected.push({ row: i, reason: `negative amount: ${formatF64(values[i])}` });
    }
    const out = new Batch([[new Field("amount_doubled", FLOAT64, true), Column.float64(doubled, amount.validity)]]);
    return new MapOutput(out, rejected);
  }
}

export const map = mapOperator(Operator);
