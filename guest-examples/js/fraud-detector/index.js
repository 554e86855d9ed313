// Aggregate: per-user fraud detection, a port of guest-examples/rust/fraud-detector
// with the same config, output columns and emissions. Per `user_id`, 5-minute
// event-time windows sliding by 1 minute: transaction count, total amount,
// distinct merchants, locations and devices. A window alerts when
// tx_count > 10, total_amount > 5000, merchants > 5, locations > 3 or
// devices > 2 (thresholds configurable).
//
// Emission: an alert row as soon as a window crosses a threshold (once per
// window and user, `is_final = false`), and the final row of each window when
// the watermark passes its end (`emit = "all"`: every window; `"alerts"`:
// alerting ones). `result_key` (user/start) is the same for every emission of
// a window. Snapshots are the Rust guest's JSON (either restores the other's).
//
// State: checkpointed one entry per user (its open windows), only the users
// changed since the previous checkpoint (`"keyed": false`: the whole state per
// checkpoint, for comparisons).
//
// Config (all optional): {"key": "user_id", "time": "timestamp", "amount": "amount",
//   "merchant": "merchant_id", "location": "location", "device": "device_id",
//   "size_ms": 300000, "slide_ms": 60000, "emit": "alerts",
//   "max_tx_count": 10, "max_total_amount": 5000.0, "max_merchants": 5,
//   "max_locations": 3, "max_devices": 2, "keyed": true}
// Build: scripts/build-polyglot-guests js (-> target/guests/polyglot/js-fraud-detector.wasm,
//   world keyed-aggregate-operator)

import { BOOLEAN, Batch, Column, FLOAT64, Field, INT64, InvalidConfig, TIMESTAMP, UTF8, aggregateOperator } from "../../../sdk/js/weir.js";
import { hash64 } from "../../../sdk/js/sketch.js";
import { WindowSpec, Windows, eventTimesMs } from "../../../sdk/js/window.js";

/** One window of one user; distinct values as 64-bit hashes (BigInts). */
class Activity {
  constructor() {
    this.tx_count = 0;
    this.total_amount = 0;
    this.merchants = new Set();
    this.locations = new Set();
    this.devices = new Set();
    this.alerted = false; // whether the early alert went out
  }
  add([amount, merchant, location, device]) {
    this.tx_count += 1;
    this.total_amount += amount;
    this.merchants.add(merchant);
    this.locations.add(location);
    this.devices.add(device);
  }
  merge(other) {
    this.tx_count += other.tx_count;
    this.total_amount += other.total_amount;
    for (const name of ["merchants", "locations", "devices"]) for (const h of other[name]) this[name].add(h);
    this.alerted ||= other.alerted;
  }
  toJSON() {
    const sorted = (set) => [...set].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return { tx_count: this.tx_count, total_amount: this.total_amount, merchants: sorted(this.merchants),
      locations: sorted(this.locations), devices: sorted(this.devices), alerted: this.alerted };
  }
  static fromJSON(d) {
    const acc = new Activity();
    acc.tx_count = Number(d.tx_count);
    acc.total_amount = Number(d.total_amount);
    for (const name of ["merchants", "locations", "devices"]) acc[name] = new Set(d[name].map((h) => BigInt(h)));
    acc.alerted = Boolean(d.alerted);
    return acc;
  }
}

class FraudDetector {
  static config = { key: "user_id", time: "timestamp", amount: "amount", merchant: "merchant_id",
    location: "location", device: "device_id", size_ms: 300000, slide_ms: 60000, emit: "alerts",
    max_tx_count: 10, max_total_amount: 5000.0, max_merchants: 5, max_locations: 3, max_devices: 2, keyed: true };

  constructor(config) {
    if (config.emit !== "all" && config.emit !== "alerts") throw new InvalidConfig(`\`emit\`: expected \`all\` or \`alerts\`, got ${JSON.stringify(config.emit)}`);
    for (const name of ["size_ms", "slide_ms", "max_tx_count", "max_merchants", "max_locations", "max_devices"]) {
      if (!Number.isInteger(config[name])) throw new InvalidConfig(`\`${name}\`: expected an integer, got ${config[name]}`);
      if (name.startsWith("max_") && config[name] < 0) throw new InvalidConfig(`\`${name}\`: expected a non-negative integer`);
    }
    this.config = config;
    this.windows = new Windows(WindowSpec.hopping(config.size_ms, config.slide_ms).validate(), Activity);
  }

  reads() {
    const c = this.config;
    return [c.key, c.time, c.amount, c.merchant, c.location, c.device];
  }

  /** The thresholds an activity exceeds, comma-separated (empty: none). */
  reasons(a) {
    const c = this.config;
    const out = [];
    if (a.tx_count > c.max_tx_count) out.push("tx_count");
    if (a.total_amount > c.max_total_amount) out.push("total_amount");
    if (a.merchants.size > c.max_merchants) out.push("merchants");
    if (a.locations.size > c.max_locations) out.push("locations");
    if (a.devices.size > c.max_devices) out.push("devices");
    return out.join(",");
  }

  process(batch, watermark) {
    const c = this.config;
    const times = eventTimesMs(batch.column(c.time));
    const keys = batch.column(c.key);
    keys.strValues(); // InvalidInput unless utf8
    const amountCol = batch.column(c.amount);
    // Like the Rust guest: a null (or non-float64) amount counts as 0.
    const amounts = amountCol.type === FLOAT64 ? amountCol.toArray() : [];
    const hashed = ["merchant", "location", "device"].map((name) => {
      const col = batch.column(c[name]);
      col.strValues(); // InvalidInput unless utf8
      const memo = new Map();
      return col.toArray().map((v) => {
        let h = memo.get(v);
        if (h === undefined) memo.set(v, (h = hash64(v ?? "")));
        return h;
      });
    });
    const rows = [];
    const windows = this.windows;
    for (let i = 0; i < times.length; i++) {
      const t = times[i];
      const key = keys.value(i);
      if (t === null || key === null) continue;
      // No lateness check here: the host took out the rows behind the
      // previous watermark; the others still belong to open windows.
      windows.add(key, t, [amounts[i] ?? 0, hashed[0][i], hashed[1][i], hashed[2][i]]);
      // Early alerts: each window of this row that now crosses a threshold, once.
      for (const window of windows.spec.assign(t)) {
        const acc = windows.get(key, window);
        if (acc === undefined || acc.alerted) continue;
        const reasons = this.reasons(acc);
        if (reasons) {
          acc.alerted = true;
          rows.push(row(window, key, acc, reasons, false));
        }
      }
    }
    if (watermark !== undefined) {
      for (const [window, key, acc] of windows.close(watermark)) {
        const reasons = this.reasons(acc);
        if (c.emit === "all" || reasons) rows.push(row(window, key, acc, reasons, true));
      }
    }
    return rows.length ? [toBatch(rows, c.key)] : [];
  }

  snapshot() {
    return this.windows.snapshot();
  }

  restore(state) {
    this.windows.restore(state);
  }

  /** Checkpoints store one entry per user, and only the changed users. */
  keyedState() {
    return this.config.keyed ? this.windows : undefined;
  }
}

function row(window, key, a, reasons, isFinal) {
  return [window.startMs, window.endMs, key, a.tx_count, a.total_amount, a.merchants.size, a.locations.size,
    a.devices.size, reasons !== "", reasons, isFinal, `${key}/${window.startMs}`];
}

function toBatch(rows, keyName) {
  const col = (i) => rows.map((r) => r[i]);
  const ts = (name, i) => [new Field(name, TIMESTAMP, false, "millisecond", "UTC"), Column.timestamp(col(i), "millisecond", "UTC")];
  const int64 = (name, i) => [new Field(name, INT64, false), Column.int64(col(i))];
  return new Batch([
    ts("window_start", 0),
    ts("window_end", 1),
    [new Field(keyName, UTF8, false), Column.utf8(col(2))],
    int64("tx_count", 3),
    [new Field("total_amount", FLOAT64, false), Column.float64(col(4))],
    int64("distinct_merchants", 5),
    int64("distinct_locations", 6),
    int64("distinct_devices", 7),
    [new Field("alert", BOOLEAN, false), Column.boolean(col(8))],
    [new Field("reasons", UTF8, false), Column.utf8(col(9))],
    [new Field("is_final", BOOLEAN, false), Column.boolean(col(10))],
    [new Field("result_key", UTF8, false), Column.utf8(col(11))],
  ]);
}

export const aggregate = aggregateOperator(FraudDetector);
export const keyedState = aggregate.keyedState;
