// Sink: accepts every batch (replace with your destination).
import { sinkOperator } from "./weir.js";

class Operator {
  static config = {};
  constructor() { this.rows = 0; }
  write(batch) { this.rows += batch.numRows; }
}

export const sink = sinkOperator(Operator);
