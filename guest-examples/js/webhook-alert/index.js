// Sink: POSTs each batch to `url` as a JSON array of row objects
// (`Content-Type: application/json`, one request per non-empty batch).
// Values: numbers as JSON numbers (NaN/inf as null), timestamps as integers
// in the column's unit, binary as lowercase hex strings, list<utf8> as
// arrays, nulls as null. 2xx -> ok; 5xx, timeouts, connection errors ->
// retryable; 4xx and other statuses -> permanent; host refused the
// destination -> permanent ("... denied ..."). Same behaviour as
// guest-examples/rust/webhook-alert. Uses fetch(), which componentize-js
// implements over wasi:http/outgoing-handler.
//
// Config (required): {"url": "http://host:port/path"}
// Build: scripts/build-polyglot-guests (-> target/guests/polyglot/js-webhook-alert.wasm)

import { BINARY, FLOAT32, FLOAT64, INT64, Permanent, Retryable, TIMESTAMP, required, sinkOperator } from "../../../sdk/js/weir.js";

/** JSON text of one cell; floats keep a fraction so they parse back as floats. */
function cell(type, v) {
  if (v === null || v === undefined) return "null";
  switch (type) {
    case FLOAT64:
    case FLOAT32:
      if (!Number.isFinite(v)) return "null";
      return Number.isInteger(v) && Math.abs(v) < 1e21 ? `${v}.0` : String(v);
    case INT64:
    case TIMESTAMP:
      return v.toString(); // BigInt: exact
    case BINARY:
      return JSON.stringify(Array.from(v, (b) => b.toString(16).padStart(2, "0")).join(""));
    default:
      return JSON.stringify(v);
  }
}

function toJson(batch) {
  const cols = batch.columns.map((c, i) => [JSON.stringify(batch.fields[i].name), c.type, c.toArray()]);
  const rows = new Array(batch.numRows);
  for (let r = 0; r < batch.numRows; r++) {
    rows[r] = "{" + cols.map(([name, type, values]) => `${name}:${cell(type, values[r])}`).join(",") + "}";
  }
  return "[" + rows.join(",") + "]";
}

class WebhookAlert {
  static config = { url: required("string") };

  constructor(config) {
    this.url = config.url;
  }

  async write(batch) {
    if (batch.numRows === 0) return;
    const url = this.url;
    let response;
    try {
      // A known length (not chunked): some webhook receivers refuse chunked uploads.
      const body = new TextEncoder().encode(toJson(batch));
      const headers = { "content-type": "application/json", "content-length": String(body.byteLength) };
      response = await fetch(url, { method: "POST", headers, body });
    } catch (e) {
      const message = `POST ${url}: ${e && e.message ? e.message : e}`;
      if (/denied|prohibited/i.test(message)) throw new Permanent(message);
      throw new Retryable(message);
    }
    if (response.ok) return;
    if (response.status >= 500) throw new Retryable(`${url} answered HTTP ${response.status}`);
    throw new Permanent(`${url} answered HTTP ${response.status}`);
  }
}

export const sink = sinkOperator(WebhookAlert);
