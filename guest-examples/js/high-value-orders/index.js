// Filter: keeps rows whose `column` (float64, int64 or int32) is greater than
// `threshold`; null values are dropped. Only that column crosses into the
// guest (`reads`). Same behaviour as guest-examples/rust/high-value-orders.
//
// Config (both optional): {"column": "total_amount", "threshold": 1000.0}
// Build: scripts/build-polyglot-guests (-> target/guests/polyglot/js-high-value-orders.wasm)

import { FLOAT64, INT32, INT64, InvalidInput, Selection, filterOperator } from "../../../sdk/js/weir.js";

const RUST_NAMES = { boolean: "Boolean", int32: "Int32", int64: "Int64", float32: "Float32", float64: "Float64", utf8: "Utf8", binary: "Binary", timestamp: "Timestamp", "list-utf8": "ListUtf8" };

class HighValueOrders {
  static config = { column: "total_amount", threshold: 1000.0 };

  constructor(config) {
    this.column = config.column;
    this.threshold = config.threshold;
  }

  reads() {
    return [this.column];
  }

  evaluate(batch) {
    const col = batch.column(this.column);
    const t = this.threshold;
    let keep;
    if (col.type === FLOAT64 || col.type === INT32) {
      keep = Selection.fromValues(col.view(), (v) => v > t);
    } else if (col.type === INT64) {
      keep = Selection.fromValues(col.view(), (v) => Number(v) > t);
    } else {
      throw new InvalidInput(`column \`${this.column}\` is ${RUST_NAMES[col.type] ?? col.type}, expected float64/int64/int32`);
    }
    return keep.andValidity(col.validity);
  }
}

export const filter = filterOperator(HighValueOrders);
