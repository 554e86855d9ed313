"""Sink: POSTs each batch to `url` as a JSON array of row objects
(`Content-Type: application/json`, one request per non-empty batch).
Values: numbers as JSON numbers (NaN/inf as null), timestamps as integers in
the column's unit, binary as lowercase hex strings, list<utf8> as arrays,
nulls as null. 2xx -> ok; 5xx, timeouts, connection errors -> retryable;
4xx and other statuses -> permanent; host refused the destination ->
permanent ("... denied ..."). Same behaviour as guest-examples/rust/webhook-alert.

Config (required): {"url": "http://host:port/path"}
Build: scripts/build-polyglot-guests (-> target/guests/polyglot/python-webhook-alert.wasm;
built against the SDK's sink-operator-http world, which adds wasi:http)
"""

import json
import math

import weir_sdk as weir
from weir_sdk import http


def _cell_values(field, col):
    values = col.to_list()
    if field.type in (weir.FLOAT64, weir.FLOAT32):
        return [v if v is None or math.isfinite(v) else None for v in values]
    if field.type == weir.BINARY:
        return [None if v is None else v.hex() for v in values]
    return values


def to_json(batch) -> bytes:
    names = batch.names
    columns = [_cell_values(f, c) for f, c in batch]
    rows = [{name: col[i] for name, col in zip(names, columns)} for i in range(batch.num_rows)]
    return json.dumps(rows, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


@weir.export
class WebhookAlert(weir.SinkOperator):
    CONFIG = {"url": weir.required(str)}

    def write(self, batch):
        if batch.num_rows == 0:
            return
        url = self.config["url"]
        try:
            r = http.post(url, "application/json", to_json(batch))
        except http.HttpError as e:
            if e.kind == "denied" or not e.retryable:
                raise weir.Permanent("POST %s: %s" % (url, e))
            raise weir.Retryable("POST %s: %s" % (url, e))
        if r.is_success:
            return
        if r.status >= 500:
            raise weir.Retryable("%s answered HTTP %d" % (url, r.status))
        raise weir.Permanent("%s answered HTTP %d" % (url, r.status))
