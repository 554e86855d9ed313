// Event-time windows for aggregate operators, so window bookkeeping is not
// rewritten per operator: the operator supplies the key and the fold (an
// accumulator class); `Windows` assigns rows to tumbling, hopping or session
// windows, keeps one accumulator per (window, key), and hands out the final
// results once the host's watermark has passed a window's end. Its state
// snapshots to JSON bytes for the host's checkpoints and hot swaps, and, as
// a keyed state, hands the host one entry per key with only the keys changed
// since the previous checkpoint (incremental checkpoints, contract 0.1.1:
// return it from the operator's `keyedState()`, see weir.js).
//
// Same semantics as the Rust SDK's `weir_sdk::window` (windows aligned to the
// epoch; a session ends `gapMs` after its last row and merges with the
// sessions a row bridges), and the same snapshot layout for string keys.
// Times are Numbers in Unix ms (BigInt watermarks are accepted).
//
//   import { WindowSpec, Windows } from "../../../sdk/js/window.js";
//   class Revenue {
//     constructor() { this.orders = 0; this.total = 0; }
//     add(amount) { this.orders += 1; this.total += amount; }
//     merge(other) { this.orders += other.orders; this.total += other.total; }
//   }
//   const windows = new Windows(WindowSpec.tumbling(3_600_000), Revenue);
//   windows.add("berlin", 1_000, 25.0);
//   windows.add("berlin", 3_599_999, 75.0);
//   windows.close(3_599_999); // [] (the hour is still open)
//   const [[window, key, acc]] = windows.close(3_600_000); // acc.orders === 2, acc.total === 100

import { INT64, TIMESTAMP, InvalidConfig, InvalidInput } from "./weir.js";

const decoder = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** Per timestamp unit: [multiply, divide] to reach ms (sub-ms units are floored). */
const SCALE = { second: [1000n, 1n], millisecond: [1n, 1n], microsecond: [1n, 1000n], nanosecond: [1n, 1000000n] };

function floorDiv(a, b) {
  const q = a / b;
  return a % b !== 0n && a < 0n ? q - 1n : q;
}

/**
 * Event time of each row in Unix ms as Numbers (null for nulls), from an
 * int64 column (already ms) or a timestamp column of any unit.
 */
export function eventTimesMs(column) {
  if (column.type !== INT64 && column.type !== TIMESTAMP) {
    throw new InvalidInput(`event-time column is ${column.type}; expected int64 (Unix ms) or timestamp`);
  }
  const [mul, div] = column.type === INT64 ? [1n, 1n] : SCALE[column.unit ?? "millisecond"] ?? [1n, 1n];
  const values = column.view();
  const out = new Array(column.length);
  for (let i = 0; i < column.length; i++) {
    out[i] = column.isValid(i) ? Number(div === 1n ? values[i] * mul : floorDiv(values[i], div)) : null;
  }
  return out;
}

/** A window: `[startMs, endMs)` in event time. */
export class Window {
  constructor(startMs, endMs) {
    this.startMs = startMs;
    this.endMs = endMs;
  }
  equals(other) {
    return this.startMs === other.startMs && this.endMs === other.endMs;
  }
  toJSON() {
    return { start_ms: this.startMs, end_ms: this.endMs };
  }
}

function compareWindows(a, b) {
  return a.startMs - b.startMs || a.endMs - b.endMs;
}

/** The multiple of `step` at or below `t` (exact for integers below 2^53, negatives included). */
function floorTo(t, step) {
  return t - (((t % step) + step) % step);
}

/** Which windows a row belongs to: `WindowSpec.tumbling(sizeMs)`, `.hopping(sizeMs, slideMs)` or `.session(gapMs)`. */
export class WindowSpec {
  constructor(type, { sizeMs = 0, slideMs = 0, gapMs = 0 } = {}) {
    if (!["tumbling", "hopping", "session"].includes(type)) throw new InvalidConfig(`unknown window type ${JSON.stringify(type)} (tumbling, hopping or session)`);
    this.type = type;
    this.sizeMs = Number(sizeMs);
    this.slideMs = Number(slideMs);
    this.gapMs = Number(gapMs);
  }
  /** Fixed, non-overlapping windows of `sizeMs`, aligned to the epoch. */
  static tumbling(sizeMs) { return new WindowSpec("tumbling", { sizeMs }); }
  /** Windows of `sizeMs` starting every `slideMs` (a row is in `sizeMs / slideMs` of them). */
  static hopping(sizeMs, slideMs) { return new WindowSpec("hopping", { sizeMs, slideMs }); }
  /** Per key, activity separated by gaps shorter than `gapMs`; a session ends `gapMs` after its last row. */
  static session(gapMs) { return new WindowSpec("session", { gapMs }); }

  /** The fixed (tumbling or hopping) windows containing `t`, oldest first; empty for sessions. */
  assign(t) {
    t = Number(t);
    if (this.type === "tumbling") {
      const start = floorTo(t, this.sizeMs);
      return [new Window(start, start + this.sizeMs)];
    }
    if (this.type === "hopping") {
      const out = [];
      for (let start = floorTo(t, this.slideMs); start > t - this.sizeMs; start -= this.slideMs) {
        out.push(new Window(start, start + this.sizeMs));
      }
      return out.reverse();
    }
    return [];
  }

  /** Checks the sizes (positive integers, a hop no longer than the window); throws InvalidConfig. */
  validate() {
    const pos = (v) => Number.isSafeInteger(v) && v > 0;
    const ok = this.type === "tumbling" ? pos(this.sizeMs)
      : this.type === "hopping" ? pos(this.sizeMs) && pos(this.slideMs) && this.slideMs <= this.sizeMs
      : pos(this.gapMs);
    if (!ok) throw new InvalidConfig(`invalid window ${JSON.stringify(this.toJSON())}: sizes must be positive and slide <= size`);
    return this;
  }

  /** The Rust SDK's serde form, e.g. `{"type": "hopping", "size_ms": 300000, "slide_ms": 60000}`. */
  toJSON() {
    if (this.type === "tumbling") return { type: "tumbling", size_ms: this.sizeMs };
    if (this.type === "hopping") return { type: "hopping", size_ms: this.sizeMs, slide_ms: this.slideMs };
    return { type: "session", gap_ms: this.gapMs };
  }
  static fromJSON(data) {
    return new WindowSpec(data.type, { sizeMs: data.size_ms ?? 0, slideMs: data.slide_ms ?? 0, gapMs: data.gap_ms ?? 0 });
  }
}

/** Orders keys like Rust's `Ord`: strings by code point (= UTF-8 bytes), numbers numerically. */
export function compareKeys(a, b) {
  if (typeof a === "string" && typeof b === "string") {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) {
      let x = a.charCodeAt(i);
      let y = b.charCodeAt(i);
      if (x === y) continue;
      // UTF-16 puts surrogates (astral code points) before U+E000..U+FFFF; code points do not.
      if (x >= 0xd800) x += x <= 0xdfff ? 0x2000 : -0x800;
      if (y >= 0xd800) y += y <= 0xdfff ? 0x2000 : -0x800;
      return x - y;
    }
    return a.length - b.length;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Index of `window` in the start-sorted list of [window, acc] pairs, or where to insert it. */
function find(windows, window) {
  let lo = 0;
  let hi = windows.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareWindows(windows[mid][0], window) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Open windows and their accumulators, by key. The accumulator is a class:
 * `new Acc()` starts an empty result, `add(row)` adds a row, `merge(other)`
 * adds another accumulator of the same key (sessions merge when a row
 * bridges them). Snapshots use `toJSON()` and `static fromJSON(data)` when
 * the class has them, else its own enumerable fields (plain JSON values;
 * BigInts are written as JSON integers, and integers beyond 2^53 read back
 * as BigInts).
 *
 * Keys are strings or numbers. As a keyed state (`changes()`, `entries()`,
 * `restoreEntries()`): one entry per key holding its open windows. From the
 * first of these calls on, the keys `add`, `get`, `touch` and `close`
 * touched since the last one are tracked; a key whose windows all closed is
 * removed (an entry without value).
 */
export class Windows {
  constructor(spec, Acc) {
    this.spec = spec;
    this.Acc = Acc;
    /** Per key, its open windows (sorted by start) as [Window, acc] pairs. */
    this.open = new Map();
    /**
     * Keys changed (or removed) since the last checkpoint; null until the
     * host first asks for entries (a pipeline without checkpoints never
     * does, so nothing accumulates there).
     */
    this.changed = null;
  }

  /** Adds `row` with event time `t` (ms) under `key`. */
  add(key, t, row) {
    t = Number(t);
    this.touch(key);
    let windows = this.open.get(key);
    if (!windows) this.open.set(key, (windows = []));
    if (this.spec.type === "session") {
      let start = t;
      let end = t + this.spec.gapMs;
      const acc = new this.Acc();
      acc.add(row);
      const kept = [];
      for (const [window, other] of windows) { // merge every open session this row touches
        if (window.startMs <= end && start <= window.endMs) {
          start = Math.min(start, window.startMs);
          end = Math.max(end, window.endMs);
          acc.merge(other);
        } else kept.push([window, other]);
      }
      kept.push([new Window(start, end), acc]);
      kept.sort((a, b) => compareWindows(a[0], b[0]));
      this.open.set(key, kept);
      return;
    }
    for (const window of this.spec.assign(t)) {
      const i = find(windows, window);
      if (i < windows.length && windows[i][0].equals(window)) windows[i][1].add(row);
      else {
        const acc = new this.Acc();
        acc.add(row);
        windows.splice(i, 0, [window, acc]);
      }
    }
  }

  /** Whether a row at `t` would only land in windows the `watermark` already closed (a late row). */
  isLate(t, watermark) {
    t = Number(t);
    watermark = Number(watermark);
    if (this.spec.type === "session") return t + this.spec.gapMs <= watermark;
    return this.spec.assign(t).every((w) => w.endMs <= watermark);
  }

  /** Removes and returns every window ending at or before `watermark`: [window, key, acc], by window end, then key. */
  close(watermark) {
    watermark = Number(watermark);
    const closed = [];
    for (const [key, windows] of this.open) {
      const still = [];
      for (const pair of windows) {
        if (pair[0].endMs <= watermark) closed.push([pair[0], key, pair[1]]);
        else still.push(pair);
      }
      if (still.length === windows.length) continue;
      this.touch(key);
      if (still.length) this.open.set(key, still);
      else this.open.delete(key);
    }
    closed.sort((a, b) => a[0].endMs - b[0].endMs || compareKeys(a[1], b[1]) || a[0].startMs - b[0].startMs);
    return closed;
  }

  /**
   * The accumulator of an open window of `key` (to read or flag it: early
   * updates, alerts sent once), or undefined. Marks the key changed (the
   * caller may change the accumulator), like the Rust `get_mut`.
   */
  get(key, window) {
    const windows = this.open.get(key);
    if (!windows) return undefined;
    const i = find(windows, window);
    if (i < windows.length && windows[i][0].equals(window)) {
      this.touch(key);
      return windows[i][1];
    }
    return undefined;
  }

  /** The open windows of `key` as [window, acc] pairs (sorted by start), to read; after changing one, call `touch(key)`. */
  openWindows(key) {
    return [...(this.open.get(key) ?? [])];
  }

  /** Marks `key` changed, so the next checkpoint writes it (once the host started asking for changes). */
  touch(key) {
    this.changed?.add(key);
  }

  /** Open (window, key) pairs: the state size to bound and report. */
  len() {
    let n = 0;
    for (const windows of this.open.values()) n += windows.length;
    return n;
  }

  /**
   * The state as JSON bytes, for an aggregate's `snapshot`. Same layout as
   * the Rust SDK's: `{"spec": ..., "open": {key: [[{"start_ms", "end_ms"}, acc], ...]}}`.
   */
  snapshot() {
    const keys = [...this.open.keys()].sort(compareKeys);
    const open = {};
    for (const key of keys) open[String(key)] = this.open.get(key);
    return encoder.encode(writeJson({ spec: this.spec, open }));
  }

  /** Replaces the state (and the spec) with `snapshot()` bytes; InvalidInput when they are not such a state. */
  restore(state) {
    let spec;
    const open = new Map();
    try {
      const data = readJson(decoder.decode(state));
      spec = WindowSpec.fromJSON(data.spec);
      const fromJSON = typeof this.Acc.fromJSON === "function" ? (d) => this.Acc.fromJSON(d) : (d) => Object.assign(new this.Acc(), d);
      for (const [key, windows] of Object.entries(data.open)) {
        const pairs = windows.map(([w, acc]) => [new Window(Number(w.start_ms), Number(w.end_ms)), fromJSON(acc)]);
        if (pairs.some(([w]) => !Number.isFinite(w.startMs) || !Number.isFinite(w.endMs))) throw new TypeError("bad window");
        pairs.sort((a, b) => compareWindows(a[0], b[0]));
        if (pairs.length) open.set(key, pairs);
      }
    } catch (e) {
      throw new InvalidInput(`window state: ${e.message ?? e}`);
    }
    this.spec = spec;
    this.open = open;
    this.changed = null; // the host takes every entry after a whole restore
  }

  // Keyed state: one entry `{key, value}` per key. The key is the key as
  // JSON (`"alice"`, `7`); the value is the key's open windows as JSON, the
  // list a whole snapshot holds under that key:
  // `[[{"start_ms": ..., "end_ms": ...}, acc], ...]`.

  /**
   * The keys changed (value: their open windows) or removed (value
   * undefined) since the last `changes()`, `entries()` or
   * `restoreEntries()`; every key present on the first call (tracking starts there).
   */
  changes() {
    const changed = this.changed;
    this.changed = new Set();
    return [...(changed ?? this.open.keys())].map((key) => entryOf(this.open, key));
  }

  /** Every key with its open windows; starts change tracking afresh. */
  entries() {
    this.changed = new Set();
    return [...this.open.keys()].map((key) => entryOf(this.open, key));
  }

  /** Replaces the open windows with `{key, value}` entries from `entries()` and `changes()` (the spec stays); InvalidInput when they are not such entries. */
  restoreEntries(entries) {
    const open = new Map();
    const fromJSON = typeof this.Acc.fromJSON === "function" ? (d) => this.Acc.fromJSON(d) : (d) => Object.assign(new this.Acc(), d);
    try {
      for (const { key, value } of entries) {
        if (value === undefined || value === null) continue;
        const pairs = readJson(decoder.decode(value)).map(([w, acc]) => [new Window(Number(w.start_ms), Number(w.end_ms)), fromJSON(acc)]);
        if (pairs.some(([w]) => !Number.isFinite(w.startMs) || !Number.isFinite(w.endMs))) throw new TypeError("bad window");
        pairs.sort((a, b) => compareWindows(a[0], b[0]));
        if (pairs.length) open.set(readJson(decoder.decode(key)), pairs);
      }
    } catch (e) {
      throw new InvalidInput(`window state entry: ${e.message ?? e}`);
    }
    this.open = open;
    this.changed = new Set();
  }
}

/** The keyed-state entry of `key`: its open windows, or no value when it has none. */
function entryOf(open, key) {
  const windows = open.get(key);
  return { key: encoder.encode(writeJson(key)), value: windows?.length ? encoder.encode(writeJson(windows)) : undefined };
}

const BIG = "\u0000weir-bigint:";

/**
 * JSON text of `value`, with BigInts written as JSON integers and Sets as
 * arrays (`toJSON()` honoured). The engine's JSON.stringify does the work
 * (a hand-written serialiser was ~10x slower in the component): BigInts
 * become marked strings, unquoted afterwards.
 */
export function writeJson(value) {
  let marked = false;
  const text = JSON.stringify(value, (_, v) => {
    if (typeof v === "bigint") {
      marked = true;
      return BIG + v.toString();
    }
    return v instanceof Set ? [...v] : v;
  });
  if (text === undefined) return "null";
  return marked ? text.replace(/"\\u0000weir-bigint:(-?\d+)"/g, "$1") : text;
}

/** JSON.parse, except that integers beyond 2^53 come back as BigInts (u64 hashes in Rust snapshots). */
export function readJson(text) {
  const marked = text.replace(/"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g, (token) =>
    token[0] !== '"' && /^-?\d+$/.test(token) && !Number.isSafeInteger(Number(token)) ? `"\\u0000weir-bigint:${token}"` : token);
  return JSON.parse(marked, (_, v) => (typeof v === "string" && v.startsWith(BIG) ? BigInt(v.slice(BIG.length)) : v));
}
