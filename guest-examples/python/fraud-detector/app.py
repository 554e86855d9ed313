"""Aggregate: per-user fraud detection, a port of guest-examples/rust/fraud-detector
with the same config, output columns and emissions. Per `user_id`, 5-minute
event-time windows sliding by 1 minute: transaction count, total amount,
distinct merchants, locations and devices. A window alerts when
tx_count > 10, total_amount > 5000, merchants > 5, locations > 3 or
devices > 2 (thresholds configurable).

Emission: an alert row as soon as a window crosses a threshold (once per
window and user, `is_final = false`), and the final row of each window when
the watermark passes its end (`emit = "all"`: every window; `"alerts"`:
alerting ones). `result_key` (user/start) is the same for every emission of
a window. Snapshots are the Rust guest's JSON (either restores the other's).

State: checkpointed one entry per user (its open windows), only the users
changed since the previous checkpoint (`"keyed": false`: the whole state per
checkpoint, for comparisons).

Config (all optional): {"key": "user_id", "time": "timestamp", "amount": "amount",
  "merchant": "merchant_id", "location": "location", "device": "device_id",
  "size_ms": 300000, "slide_ms": 60000, "emit": "alerts",
  "max_tx_count": 10, "max_total_amount": 5000.0, "max_merchants": 5,
  "max_locations": 3, "max_devices": 2, "keyed": true}
Build: scripts/build-polyglot-guests python (-> target/guests/polyglot/python-fraud-detector.wasm,
  world keyed-aggregate-operator)
"""

import weir_sdk as weir
from weir_sdk.sketch import hash64
from weir_sdk.window import Accumulator, WindowSpec, Windows, event_times_ms

_COUNTS = ("size_ms", "slide_ms", "max_tx_count", "max_merchants", "max_locations", "max_devices")


class Activity(Accumulator):
    """One window of one user. Distinct values are kept as 64-bit hashes
    (exact for the handful a user has in 5 minutes)."""

    def __init__(self):
        self.tx_count = 0
        self.total_amount = 0.0
        self.merchants, self.locations, self.devices = set(), set(), set()
        self.alerted = False  # whether the early alert went out

    def add(self, row):
        amount, merchant, location, device = row
        self.tx_count += 1
        self.total_amount += amount
        self.merchants.add(merchant)
        self.locations.add(location)
        self.devices.add(device)

    def merge(self, other):
        self.tx_count += other.tx_count
        self.total_amount += other.total_amount
        self.merchants |= other.merchants
        self.locations |= other.locations
        self.devices |= other.devices
        self.alerted |= other.alerted

    def to_json(self):
        return {"tx_count": self.tx_count, "total_amount": self.total_amount, "merchants": sorted(self.merchants),
                "locations": sorted(self.locations), "devices": sorted(self.devices), "alerted": self.alerted}

    @classmethod
    def from_json(cls, data):
        acc = cls()
        acc.tx_count, acc.total_amount, acc.alerted = int(data["tx_count"]), float(data["total_amount"]), bool(data["alerted"])
        acc.merchants, acc.locations, acc.devices = set(data["merchants"]), set(data["locations"]), set(data["devices"])
        return acc


@weir.export
class FraudDetector(weir.AggregateOperator):
    CONFIG = {"key": "user_id", "time": "timestamp", "amount": "amount", "merchant": "merchant_id",
              "location": "location", "device": "device_id", "size_ms": 300_000, "slide_ms": 60_000,
              "emit": "alerts", "max_tx_count": 10, "max_total_amount": 5000.0, "max_merchants": 5,
              "max_locations": 3, "max_devices": 2, "keyed": True}

    def __init__(self, config):
        super().__init__(config)
        if config["emit"] not in ("all", "alerts"):
            raise weir.InvalidConfig("`emit`: expected `all` or `alerts`, got %r" % config["emit"])
        for name in _COUNTS[2:]:
            if config[name] < 0:
                raise weir.InvalidConfig("`%s`: expected a non-negative integer" % name)
        self.windows = Windows(WindowSpec.hopping(config["size_ms"], config["slide_ms"]).validate(), Activity)

    def reads(self):
        c = self.config
        return [c["key"], c["time"], c["amount"], c["merchant"], c["location"], c["device"]]

    def reasons(self, a):
        """The thresholds an activity exceeds, comma-separated (empty: none)."""
        c = self.config
        checks = (("tx_count", a.tx_count > c["max_tx_count"]),
                  ("total_amount", a.total_amount > c["max_total_amount"]),
                  ("merchants", len(a.merchants) > c["max_merchants"]),
                  ("locations", len(a.locations) > c["max_locations"]),
                  ("devices", len(a.devices) > c["max_devices"]))
        return ",".join(name for name, hit in checks if hit)

    def process(self, batch, watermark):
        c = self.config
        times = event_times_ms(batch.column(c["time"]))
        keys = batch.column(c["key"]).str_values()
        key_valid = batch.column(c["key"]).valid()
        amount_col = batch.column(c["amount"])
        # Like the Rust guest: a null (or non-float64) amount counts as 0.
        amounts = amount_col.to_list() if amount_col.type == weir.FLOAT64 else [None] * batch.num_rows
        hashed = []  # merchant, location and device hashes per row (null: the hash of "")
        for name in ("merchant", "location", "device"):
            col = batch.column(c[name])
            col.str_values()  # InvalidInput unless utf8
            values = col.to_list()
            memo = {v: hash64(v or "") for v in set(values)}
            hashed.append([memo[v] for v in values])
        rows = []
        windows = self.windows
        for i, t in enumerate(times):
            if t is None or not key_valid[i]:
                continue
            # No lateness check here: the host took out the rows behind the
            # previous watermark; the others still belong to open windows.
            key = keys[i]
            amount = amounts[i]
            windows.add(key, t, (0.0 if amount is None else amount, hashed[0][i], hashed[1][i], hashed[2][i]))
            # Early alerts: each window of this row that now crosses a threshold, once.
            for window in windows.spec.assign(t):
                acc = windows.get(key, window)
                if acc is None or acc.alerted:
                    continue
                reasons = self.reasons(acc)
                if reasons:
                    acc.alerted = True
                    rows.append(_row(window, key, acc, reasons, False))
        if watermark is not None:
            for window, key, acc in windows.close(watermark):
                reasons = self.reasons(acc)
                if c["emit"] == "all" or reasons:
                    rows.append(_row(window, key, acc, reasons, True))
        if not rows:
            return []
        return [_batch(rows, c["key"])]

    def snapshot(self):
        return self.windows.snapshot()

    def restore(self, state):
        self.windows.restore(state)

    def keyed_state(self):
        """Checkpoints store one entry per user, and only the changed users."""
        return self.windows if self.config["keyed"] else None


def _row(window, key, a, reasons, is_final):
    return (window.start_ms, window.end_ms, key, a.tx_count, a.total_amount, len(a.merchants), len(a.locations),
            len(a.devices), bool(reasons), reasons, is_final, "%s/%d" % (key, window.start_ms))


def _batch(rows, key_name):
    cols = list(zip(*rows))
    ts = lambda name, values: (weir.Field(name, weir.TIMESTAMP, False, "millisecond", "UTC"),
                               weir.Column.timestamp(values, "millisecond", "UTC"))
    int64 = lambda name, values: (weir.Field(name, weir.INT64, False), weir.Column.int64(values))
    return weir.Batch([
        ts("window_start", cols[0]),
        ts("window_end", cols[1]),
        (weir.Field(key_name, weir.UTF8, False), weir.Column.utf8(cols[2])),
        int64("tx_count", cols[3]),
        (weir.Field("total_amount", weir.FLOAT64, False), weir.Column.float64(cols[4])),
        int64("distinct_merchants", cols[5]),
        int64("distinct_locations", cols[6]),
        int64("distinct_devices", cols[7]),
        (weir.Field("alert", weir.BOOLEAN, False), weir.Column.boolean(cols[8])),
        (weir.Field("reasons", weir.UTF8, False), weir.Column.utf8(cols[9])),
        (weir.Field("is_final", weir.BOOLEAN, False), weir.Column.boolean(cols[10])),
        (weir.Field("result_key", weir.UTF8, False), weir.Column.utf8(cols[11])),
    ])
