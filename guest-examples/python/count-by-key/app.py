"""Aggregate: running count and sum of `value` per `key`. Each call emits one
batch (`key` utf8, `count` int64, `sum` float64) with the keys it touched, in
first-seen order, and their running totals. Null keys are skipped; a null
value counts but adds 0. Key columns may be utf8, int32 or int64
(stringified); the value column must be float64. Same behaviour (and the same
snapshot bytes) as guest-examples/rust/count-by-key.

Config (optional): {"key": "customer_id", "value": "total_amount"}
Snapshot: u64 n, then n x (u32 len, key bytes, i64 count, f64 sum),
little-endian, keys in sorted (byte) order.
Build: scripts/build-polyglot-guests (-> target/guests/polyglot/python-count-by-key.wasm)
"""

import struct

import weir_sdk as weir


@weir.export
class CountByKey(weir.AggregateOperator):
    CONFIG = {"key": "customer_id", "value": "total_amount"}

    def __init__(self, config):
        super().__init__(config)
        self.totals = {}  # key -> [count, sum]

    def reads(self):
        return [self.config["key"], self.config["value"]]

    def process(self, batch, watermark):
        kcol = batch.column(self.config["key"])
        vcol = batch.column(self.config["value"])
        if kcol.type == weir.UTF8:
            keys = kcol.to_list()
        elif kcol.type in (weir.INT32, weir.INT64):
            keys = [None if k is None else str(k) for k in kcol.to_list()]
        else:
            raise weir.InvalidInput("key column is %s, expected utf8/int32/int64" % kcol.type)
        values = vcol.float64_values()
        valid = vcol.valid()
        totals = self.totals
        touched = {}  # insertion-ordered set
        for i, key in enumerate(keys):
            if key is None:
                continue
            entry = totals.get(key)
            if entry is None:
                entry = totals[key] = [0, 0.0]
            entry[0] += 1
            entry[1] += values[i] if valid[i] else 0.0
            touched[key] = None
        if not touched:
            return []
        return [weir.Batch([
            (weir.Field("key", weir.UTF8, False), weir.Column.utf8(list(touched))),
            (weir.Field("count", weir.INT64, False), weir.Column.int64([totals[k][0] for k in touched])),
            (weir.Field("sum", weir.FLOAT64, False), weir.Column.float64([totals[k][1] for k in touched])),
        ])]

    def snapshot(self):
        parts = [struct.pack("<Q", len(self.totals))]
        for key in sorted(self.totals, key=lambda k: k.encode("utf-8")):
            raw = key.encode("utf-8")
            count, total = self.totals[key]
            parts.append(struct.pack("<I", len(raw)))
            parts.append(raw)
            parts.append(struct.pack("<qd", count, total))
        return b"".join(parts)

    def restore(self, state):
        try:
            state = bytes(state)
            (n,), pos = struct.unpack_from("<Q", state, 0), 8
            totals = {}
            for _ in range(n):
                (size,) = struct.unpack_from("<I", state, pos)
                pos += 4
                if pos + size > len(state):
                    raise ValueError("truncated key")
                key = state[pos:pos + size].decode("utf-8")
                pos += size
                count, total = struct.unpack_from("<qd", state, pos)
                pos += 16
                totals[key] = [count, total]
        except (struct.error, ValueError, UnicodeDecodeError):
            raise weir.Failed("corrupt count-by-key snapshot") from None
        self.totals = totals
