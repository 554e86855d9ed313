// Filter: keeps rows whose `column` (float64, default `sentiment`, as added
// by the Python `sentiment` map) is below `threshold`; nulls are dropped.
//
// Config (optional): {"column": "sentiment", "threshold": 0}
// Build: scripts/build-polyglot-guests (-> target/guests/polyglot/js-negative-sentiment.wasm)

import { Selection, filterOperator } from "../../../sdk/js/weir.js";

class NegativeSentiment {
  static config = { column: "sentiment", threshold: 0 };

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
    return Selection.fromValues(col.asFloat64(), (v) => v < t).andValidity(col.validity);
  }
}

export const filter = filterOperator(NegativeSentiment);
