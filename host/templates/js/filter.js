// Filter: keeps rows whose `amount` is above `threshold` (config, default 100).
import { Selection, filterOperator } from "./weir.js";

class Operator {
  static config = { threshold: 100 };
  constructor(config) { this.threshold = config.threshold; }
  reads() { return ["amount"]; }
  evaluate(batch) {
    const amount = batch.column("amount");
    return Selection.fromValues(amount.float64Values(), (v) => v > this.threshold).andValidity(amount.validity);
  }
}

export const filter = filterOperator(Operator);
