// weir SDK for JavaScript: write weir operators (filter, map, aggregate, sink)
// as WebAssembly components with jco / componentize-js.
//
//   import { Selection, filterOperator } from "weir-sdk";   // or a relative path
//   class Big {
//     static config = { threshold: 1000 };
//     constructor(config) { this.threshold = config.threshold; }
//     reads() { return ["total_amount"]; }
//     evaluate(batch) {
//       const col = batch.column("total_amount");
//       return Selection.fromValues(col.float64Values(), (v) => v > this.threshold).andValidity(col.validity);
//     }
//   }
//   export const filter = filterOperator(Big);
//
// Buffers arrive as Uint8Arrays (Arrow's layout, little-endian); numeric
// columns are viewed as typed arrays over the same memory when aligned
// (copied once otherwise), strings are decoded lazily. See docs/sdk-js.md.

export const BOOLEAN = "boolean";
export const INT32 = "int32";
export const INT64 = "int64";
export const FLOAT32 = "float32";
export const FLOAT64 = "float64";
export const UTF8 = "utf8";
export const BINARY = "binary";
export const TIMESTAMP = "timestamp";
export const LIST_UTF8 = "list-utf8";
export const TYPES = [BOOLEAN, INT32, INT64, FLOAT32, FLOAT64, UTF8, BINARY, TIMESTAMP, LIST_UTF8];

const FIXED = {
  [INT32]: Int32Array,
  [INT64]: BigInt64Array,
  [FLOAT32]: Float32Array,
  [FLOAT64]: Float64Array,
  [TIMESTAMP]: BigInt64Array,
};

const EMPTY = new Uint8Array(0);
const decoder = new TextDecoder("utf-8", { fatal: false });
const encoder = new TextEncoder();

// ---------------------------------------------------------------------------
// Errors

/** An error for a whole call; maps to the WIT `operator-error` variant. */
export class OperatorError extends Error {
  constructor(kind, message) {
    super(`${kind}: ${message}`);
    this.kind = kind;
    this.payload = { tag: kind, val: String(message) };
  }
}
/** The configuration given to `init` is unusable. */
export class InvalidConfig extends OperatorError {
  constructor(message) { super("invalid-config", message); }
}
/** The input batch lacks the columns or types the operator needs. */
export class InvalidInput extends OperatorError {
  constructor(message) { super("invalid-input", message); }
}
/** Any other failure; the host retries, then bisects the batch. */
export class Failed extends OperatorError {
  constructor(message) { super("failed", message); }
}

/** Sink outcomes other than success (WIT `sink-error`). */
export class SinkError extends Error {
  constructor(tag, val, message) {
    super(message);
    this.payload = { tag, val };
  }
}
/** Temporarily unavailable: the host retries the batch with backoff. */
export class Retryable extends SinkError {
  constructor(message) { super("retryable", String(message), message); }
}
/** Can never be written: every row is dead-lettered. */
export class Permanent extends SinkError {
  constructor(message) { super("permanent", String(message), message); }
}
/** Every row was written except these: `[{row, reason}]` or `[[row, reason]]`. */
export class RejectedRows extends SinkError {
  constructor(rows) {
    const list = rows.map(rejection);
    super("rejected-rows", list, `${list.length} rows rejected`);
  }
}

function rejection(r) {
  return Array.isArray(r) ? { row: r[0] >>> 0, reason: String(r[1]) } : { row: r.row >>> 0, reason: String(r.reason) };
}

// ---------------------------------------------------------------------------
// Bitmaps

/** Bytes of a bitmap of `n` bits. */
export function bitmapLen(n) {
  return (n + 7) >>> 3;
}

/** Packs truthy/falsy items into an LSB-first bitmap (Arrow's layout). */
export function packBits(items) {
  const arr = Array.isArray(items) || ArrayBuffer.isView(items) ? items : Array.from(items);
  const out = new Uint8Array(bitmapLen(arr.length));
  for (let i = 0; i < arr.length; i++) if (arr[i]) out[i >>> 3] |= 1 << (i & 7);
  return out;
}

/** The first `n` bits of a bitmap as booleans. */
export function unpackBits(bitmap, n) {
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = ((bitmap[i >>> 3] >>> (i & 7)) & 1) === 1;
  return out;
}

/** Set bits among the first `n` bits. */
export function countBits(bitmap, n) {
  let c = 0;
  for (let i = 0; i < n; i++) c += (bitmap[i >>> 3] >>> (i & 7)) & 1;
  return c;
}

// ---------------------------------------------------------------------------
// Schema, columns, batches

/** A column's name, logical type and nullability (plus unit/timezone for timestamps). */
export class Field {
  constructor(name, type, nullable = true, unit = undefined, timezone = undefined) {
    if (!TYPES.includes(type)) throw new TypeError(`unknown data type ${type}`);
    this.name = name;
    this.type = type;
    this.nullable = nullable;
    this.unit = type === TIMESTAMP ? unit ?? "millisecond" : undefined;
    this.timezone = type === TIMESTAMP ? timezone : undefined;
  }
}

/** A typed view over `bytes` (no copy when aligned, one copy otherwise). */
function typedView(Ctor, bytes, length) {
  const width = Ctor.BYTES_PER_ELEMENT;
  if (bytes.byteLength < length * width) {
    throw new Failed(`buffer of ${bytes.byteLength} bytes is too short for ${length} values`);
  }
  if (bytes.byteOffset % width === 0) return new Ctor(bytes.buffer, bytes.byteOffset, length);
  const copy = new Uint8Array(length * width);
  copy.set(bytes.subarray(0, length * width));
  return new Ctor(copy.buffer, 0, length);
}

/** The bytes of a typed array (no copy). */
function asBytes(a) {
  if (a === undefined || a === null) return EMPTY;
  if (a instanceof Uint8Array) return a;
  if (ArrayBuffer.isView(a)) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (a instanceof ArrayBuffer) return new Uint8Array(a);
  return Uint8Array.from(a);
}

/**
 * A lazy sequence over a utf8 / binary column: `get(i)` decodes one value;
 * iterable; `length`. Null rows read as "" (empty bytes for binary).
 */
export class Strings {
  constructor(offsets, data, length, binary = false) {
    this.offsets = offsets;
    this.data = data;
    this.length = length;
    this.binary = binary;
  }
  get(i) {
    const raw = this.data.subarray(this.offsets[i], this.offsets[i + 1]);
    return this.binary ? raw : decoder.decode(raw);
  }
  *[Symbol.iterator]() {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }
  toArray() {
    return Array.from(this);
  }
}

function splitNulls(values, validity) {
  if (ArrayBuffer.isView(values) || validity !== undefined && validity !== null) return [values, validity];
  const arr = Array.isArray(values) ? values : Array.from(values);
  if (!arr.some((v) => v === null || v === undefined)) return [arr, undefined];
  return [arr.map((v) => (v === null || v === undefined ? 0 : v)), packBits(arr.map((v) => v !== null && v !== undefined))];
}

function checkValidity(validity, n) {
  if (validity === undefined || validity === null) return undefined;
  const bits = ArrayBuffer.isView(validity) ? asBytes(validity) : packBits(validity);
  const need = bitmapLen(n);
  if (bits.length < need) throw new RangeError(`validity bitmap has ${bits.length} bytes, expected ${need}`);
  return bits.length === need ? bits : bits.subarray(0, need);
}

/**
 * One column: Arrow buffers (`values`, `offsets`, `validity`, `items`) and
 * typed views over them. Read with `float64Values()` etc., `value(i)`,
 * `toArray()` (null for nulls), `isValid(i)`; build with the static methods.
 */
export class Column {
  constructor(type, length, { values = EMPTY, offsets = EMPTY, validity, items, unit, timezone } = {}) {
    this.type = type;
    this.length = length;
    this.values = values;
    this.offsets = offsets;
    this.validity = validity ?? undefined;
    this.items = items;
    this.unit = unit;
    this.timezone = timezone;
    this._view = undefined;
  }

  get nullCount() {
    return this.validity === undefined ? 0 : this.length - countBits(this.validity, this.length);
  }
  isValid(i) {
    const v = this.validity;
    return v === undefined || ((v[i >>> 3] >>> (i & 7)) & 1) === 1;
  }
  isNull(i) {
    return !this.isValid(i);
  }
  /** One boolean per row, true = not null. */
  valid() {
    return this.validity === undefined ? new Array(this.length).fill(true) : unpackBits(this.validity, this.length);
  }

  /**
   * The values, ignoring nulls: a typed array for numbers (BigInt64Array for
   * int64/timestamp), booleans for boolean, a lazy `Strings` for utf8/binary,
   * arrays of strings for list-utf8.
   */
  view() {
    if (this._view !== undefined) return this._view;
    const t = this.type;
    let v;
    if (FIXED[t]) v = typedView(FIXED[t], this.values, this.length);
    else if (t === BOOLEAN) v = unpackBits(this.values, this.length);
    else if (t === UTF8 || t === BINARY) v = new Strings(this._offsets(), this.values, this.length, t === BINARY);
    else if (t === LIST_UTF8) {
      const offs = this._offsets();
      const items = this.items ? this.items.view() : new Strings(new Int32Array(1), EMPTY, 0);
      v = new Array(this.length);
      for (let i = 0; i < this.length; i++) {
        const row = [];
        for (let j = offs[i]; j < offs[i + 1]; j++) row.push(items.get(j));
        v[i] = row;
      }
    } else throw new InvalidInput(`unsupported data type ${t}`);
    this._view = v;
    return v;
  }
  _offsets() {
    return typedView(Int32Array, this.offsets, this.length + 1);
  }
  _expect(...types) {
    if (!types.includes(this.type)) throw new InvalidInput(`column is ${this.type}, expected ${types.join("/")}`);
    return this.view();
  }
  /** Float64Array view; InvalidInput for another type. */
  float64Values() { return this._expect(FLOAT64); }
  /** Float32Array view. */
  float32Values() { return this._expect(FLOAT32); }
  /** BigInt64Array view. */
  int64Values() { return this._expect(INT64); }
  /** Int32Array view. */
  int32Values() { return this._expect(INT32); }
  /** BigInt64Array of the timestamps in the column's `unit`. */
  timestampValues() { return this._expect(TIMESTAMP); }
  /** Booleans. */
  boolValues() { return this._expect(BOOLEAN); }
  /** Lazily decoded strings. */
  strValues() { return this._expect(UTF8); }
  /** Any numeric column as doubles: the Float64Array view itself for float64, a converted copy otherwise. */
  asFloat64() {
    const v = this._expect(FLOAT64, FLOAT32, INT32, INT64);
    if (v instanceof Float64Array) return v;
    const out = new Float64Array(v.length);
    for (let i = 0; i < v.length; i++) out[i] = Number(v[i]);
    return out;
  }
  /** Row `i` as a JS value (null when null). */
  value(i) {
    if (!this.isValid(i)) return null;
    const v = this.view();
    return v instanceof Strings ? v.get(i) : v[i];
  }
  /** All rows as JS values, null for nulls. */
  toArray() {
    const out = new Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.value(i);
    return out;
  }

  // -- builders ---------------------------------------------------------

  static _fixed(type, values, validity, extra = {}) {
    const Ctor = FIXED[type];
    [values, validity] = splitNulls(values, validity);
    let typed;
    if (values instanceof Ctor) typed = values;
    else if (Ctor === BigInt64Array) typed = BigInt64Array.from(values, (v) => (typeof v === "bigint" ? v : BigInt(Math.trunc(Number(v)))));
    else typed = Ctor.from(values, (v) => Number(v));
    return new Column(type, typed.length, { values: asBytes(typed), validity: checkValidity(validity, typed.length), ...extra });
  }
  /** float64 from numbers (null = null) or a Float64Array; `validity` = bitmap or booleans. */
  static float64(values, validity) { return Column._fixed(FLOAT64, values, validity); }
  static float32(values, validity) { return Column._fixed(FLOAT32, values, validity); }
  /** int64 from BigInts / numbers (null = null) or a BigInt64Array. */
  static int64(values, validity) { return Column._fixed(INT64, values, validity); }
  static int32(values, validity) { return Column._fixed(INT32, values, validity); }
  static timestamp(values, unit = "millisecond", timezone = undefined, validity = undefined) {
    return Column._fixed(TIMESTAMP, values, validity, { unit, timezone });
  }
  /** boolean from booleans (null = null). */
  static boolean(values, validity) {
    [values, validity] = splitNulls(values, validity);
    const arr = Array.from(values);
    return new Column(BOOLEAN, arr.length, { values: packBits(arr), validity: checkValidity(validity, arr.length) });
  }
  static _variable(type, values, validity) {
    const arr = Array.from(values);
    if ((validity === undefined || validity === null) && arr.some((v) => v === null || v === undefined)) {
      validity = arr.map((v) => v !== null && v !== undefined);
    }
    const parts = arr.map((v) => (v === null || v === undefined ? EMPTY : type === UTF8 ? encoder.encode(v) : asBytes(v)));
    const offsets = new Int32Array(arr.length + 1);
    let total = 0;
    parts.forEach((p, i) => { total += p.length; offsets[i + 1] = total; });
    const data = new Uint8Array(total);
    parts.forEach((p, i) => data.set(p, offsets[i]));
    return new Column(type, arr.length, { values: data, offsets: asBytes(offsets), validity: checkValidity(validity, arr.length) });
  }
  /** utf8 from strings (null = null). */
  static utf8(values, validity) { return Column._variable(UTF8, values, validity); }
  /** binary from Uint8Arrays (null = null). */
  static binary(values, validity) { return Column._variable(BINARY, values, validity); }
  /** list<utf8> from arrays of strings (null = null list). */
  static listUtf8(values, validity) {
    const arr = Array.from(values);
    if ((validity === undefined || validity === null) && arr.some((v) => v === null || v === undefined)) {
      validity = arr.map((v) => v !== null && v !== undefined);
    }
    const flat = [];
    const offsets = new Int32Array(arr.length + 1);
    arr.forEach((v, i) => { if (v) flat.push(...v); offsets[i + 1] = flat.length; });
    return new Column(LIST_UTF8, arr.length, { offsets: asBytes(offsets), items: Column.utf8(flat), validity: checkValidity(validity, arr.length) });
  }
}

/** Appends strings (or null) and produces a utf8 column. */
export class StringBuilder {
  constructor() { this.items = []; }
  append(v) { this.items.push(v); }
  get length() { return this.items.length; }
  finish() { return Column.utf8(this.items); }
}

/**
 * Named columns of equal length. Read: `batch.column(name)` (InvalidInput when
 * missing), `batch.get(name)`, `numRows`, `fields`, `names`. Build:
 * `new Batch({a: Column.int64([...])})` or `new Batch([[new Field(...), column], ...])`.
 */
export class Batch {
  constructor(columns = [], numRows = undefined) {
    const pairs = Array.isArray(columns) ? columns : columns instanceof Map ? [...columns] : Object.entries(columns);
    this.fields = [];
    this.columns = [];
    for (const [key, col] of pairs) {
      if (!(col instanceof Column)) throw new TypeError(`column ${key} is not a weir Column`);
      const field = key instanceof Field ? key : new Field(key, col.type, true, col.unit, col.timezone);
      if (field.type !== col.type) throw new TypeError(`field ${field.name} is ${field.type} but its column is ${col.type}`);
      this.fields.push(field);
      this.columns.push(col);
    }
    const lengths = new Set(this.columns.map((c) => c.length));
    if (lengths.size > 1) throw new RangeError(`columns have different lengths: ${[...lengths]}`);
    this.numRows = numRows ?? (lengths.size ? [...lengths][0] : 0);
    this._index = new Map(this.fields.map((f, i) => [f.name, i]));
  }
  get names() { return this.fields.map((f) => f.name); }
  has(name) { return this._index.has(name); }
  /** The column called `name`; throws InvalidInput when there is none. */
  column(name) {
    const i = this._index.get(name);
    if (i === undefined) throw new InvalidInput(`no column \`${name}\` in the batch (columns: ${this.names.join(", ")})`);
    return this.columns[i];
  }
  /** The column called `name`, or undefined. */
  get(name) {
    const i = this._index.get(name);
    return i === undefined ? undefined : this.columns[i];
  }
  field(name) {
    this.column(name);
    return this.fields[this._index.get(name)];
  }
  *[Symbol.iterator]() {
    for (let i = 0; i < this.fields.length; i++) yield [this.fields[i], this.columns[i]];
  }
  /** Rows as objects of JS values (slow; for sinks and debugging). */
  rows() {
    const lists = this.columns.map((c) => c.toArray());
    const names = this.names;
    const out = new Array(this.numRows);
    for (let r = 0; r < this.numRows; r++) {
      const row = {};
      names.forEach((n, c) => { row[n] = lists[c][r]; });
      out[r] = row;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------
// Selection

/** Which rows a filter keeps: an LSB-first bitmap, one bit per row, 1 = keep. */
export class Selection {
  constructor(length, bits = undefined) {
    this.length = length;
    this.bits = bits ? Uint8Array.from(bits) : new Uint8Array(bitmapLen(length));
    if (this.bits.length !== bitmapLen(length)) throw new RangeError(`selection of ${length} rows needs ${bitmapLen(length)} bytes`);
  }
  /** Keeps every row. */
  static all(length) {
    const s = new Selection(length);
    s.bits.fill(0xff);
    return s;
  }
  /** Keeps no row. */
  static none(length) { return new Selection(length); }
  /** Keeps row i when the i-th item is truthy. */
  static fromBools(items) { const arr = Array.isArray(items) || ArrayBuffer.isView(items) ? items : Array.from(items); const s = new Selection(arr.length); s.bits = packBits(arr); return s; }
  /** Keeps row i when `keep(values[i], i)`; combine with `andValidity` to drop nulls. */
  static fromValues(values, keep) {
    const n = values.length;
    const s = new Selection(n);
    const bits = s.bits;
    for (let i = 0; i < n; i++) if (keep(values[i], i)) bits[i >>> 3] |= 1 << (i & 7);
    return s;
  }
  /** Keeps row i when `keep(i)`. */
  static fromFn(length, keep) {
    const s = new Selection(length);
    for (let i = 0; i < length; i++) if (keep(i)) s.bits[i >>> 3] |= 1 << (i & 7);
    return s;
  }
  keep(i) { this.bits[i >>> 3] |= 1 << (i & 7); return this; }
  drop(i) { this.bits[i >>> 3] &= ~(1 << (i & 7)); return this; }
  isKept(i) { return ((this.bits[i >>> 3] >>> (i & 7)) & 1) === 1; }
  count() { return countBits(this.bits, this.length); }
  /** Drops rows that are null in `validity` (a column's bitmap; undefined = no nulls). */
  andValidity(validity) {
    if (validity) for (let i = 0; i < this.bits.length; i++) this.bits[i] &= validity[i];
    return this;
  }
  and(other) { for (let i = 0; i < this.bits.length; i++) this.bits[i] &= other.bits[i]; return this; }
  or(other) { for (let i = 0; i < this.bits.length; i++) this.bits[i] |= other.bits[i]; return this; }
  invert() { for (let i = 0; i < this.bits.length; i++) this.bits[i] = ~this.bits[i] & 0xff; return this; }
  /** The bitmap, bits past the last row cleared. */
  toBytes() {
    if (this.length % 8) this.bits[this.bits.length - 1] &= (1 << (this.length % 8)) - 1;
    return this.bits;
  }
}

// ---------------------------------------------------------------------------
// Config

/** Marks a config key as mandatory: `required("string" | "number" | "boolean" | "object")`. */
export function required(type) {
  return { __required: type };
}

/**
 * Parses the JSON config. With a schema (`{key: default}`), refuses unknown
 * keys and values whose type differs from the default's, and fills defaults.
 */
export function parseConfig(text, schema) {
  let config;
  try {
    config = text && text.trim() ? JSON.parse(text) : {};
  } catch (e) {
    throw new InvalidConfig(`config is not valid JSON: ${e.message}`);
  }
  if (config === null) config = {};
  if (typeof config !== "object" || Array.isArray(config)) throw new InvalidConfig(`config must be a JSON object, got ${JSON.stringify(config)}`);
  if (!schema) return config;
  for (const key of Object.keys(config)) {
    if (!Object.prototype.hasOwnProperty.call(schema, key)) {
      throw new InvalidConfig(`unknown field \`${key}\`, expected one of ${Object.keys(schema).map((k) => `\`${k}\``).join(", ")}`);
    }
  }
  const out = {};
  for (const [key, def] of Object.entries(schema)) {
    const req = def && typeof def === "object" && "__required" in def;
    if (!(key in config)) {
      if (req) throw new InvalidConfig(`missing field \`${key}\``);
      out[key] = def;
      continue;
    }
    const want = req ? def.__required : Array.isArray(def) ? "array" : def === null ? null : typeof def;
    const v = config[key];
    const got = Array.isArray(v) ? "array" : v === null ? "null" : typeof v;
    if (want !== null && got !== want) throw new InvalidConfig(`\`${key}\`: expected ${want}, got ${JSON.stringify(v)}`);
    out[key] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Formatting

/** Formats a number like Rust's `Display` for f64: `-5`, `0.25`, no exponent, `NaN`, `inf`. */
export function formatF64(x) {
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  if (Object.is(x, -0)) return "-0";
  const s = String(x);
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (!m) return s;
  const [, sign, lead, frac = "", expText] = m;
  const digits = lead + frac;
  const point = 1 + Number(expText); // position of the decimal point in `digits`
  if (point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`;
  if (point >= digits.length) return sign + digits + "0".repeat(point - digits.length);
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

// ---------------------------------------------------------------------------
// WIT conversion and the export helpers

/** The SDK view of a WIT batch (no buffer copied when aligned). */
export function batchFromWit(b) {
  const n = b.numRows;
  const pairs = [];
  for (let i = 0; i < b.schema.length; i++) {
    const f = b.schema[i];
    const c = b.columns[i];
    const t = f.dataType.tag;
    const unit = t === TIMESTAMP ? f.dataType.val.unit : undefined;
    const tz = t === TIMESTAMP ? f.dataType.val.timezone ?? undefined : undefined;
    let items;
    if (c.items) {
      const it = c.items;
      items = new Column(UTF8, Math.max((it.offsets.byteLength >>> 2) - 1, 0), { values: it.values, offsets: it.offsets, validity: it.validity ?? undefined });
    }
    const col = new Column(t, n, { values: c.values, offsets: c.offsets, validity: c.validity ?? undefined, items, unit, timezone: tz });
    pairs.push([new Field(f.name, t, f.nullable, unit, tz), col]);
  }
  return new Batch(pairs, n);
}

/** The WIT batch of an SDK batch. */
export function batchToWit(batch) {
  const schema = [];
  const columns = [];
  for (const [f, c] of batch) {
    const dataType = f.type === TIMESTAMP ? { tag: TIMESTAMP, val: { unit: f.unit ?? "millisecond", timezone: f.timezone ?? undefined } } : { tag: f.type };
    schema.push({ name: f.name, dataType, nullable: f.nullable });
    const it = c.items;
    columns.push({
      validity: c.validity === undefined ? undefined : asBytes(c.validity),
      offsets: asBytes(c.offsets),
      values: asBytes(c.values),
      items: it ? { validity: it.validity === undefined ? undefined : asBytes(it.validity), offsets: asBytes(it.offsets), values: asBytes(it.values) } : undefined,
    });
  }
  return { schema, columns, numRows: batch.numRows };
}

function asOperatorError(e) {
  if (e instanceof OperatorError) return e;
  throw e; // a bug: let it trap the instance (like a Rust panic)
}

function instantiate(Op, text) {
  const config = parseConfig(text, Op.config);
  let op;
  try {
    op = new Op(config);
  } catch (e) {
    if (e instanceof OperatorError) throw e;
    throw new InvalidConfig(`${e && e.name ? e.name + ": " : ""}${e && e.message ? e.message : e}`);
  }
  const reads = typeof op.reads === "function" ? op.reads() : undefined;
  return [op, { reads: reads === undefined || reads === null ? undefined : reads.map(String) }];
}

function selectionBytes(sel, n) {
  if (sel instanceof Selection) {
    if (sel.length !== n) throw new Failed(`selection has ${sel.length} rows, batch has ${n}`);
    return sel.toBytes();
  }
  if (sel instanceof Uint8Array) return sel;
  return packBits(sel);
}

/**
 * The `filter` export for an operator class: `constructor(config)`,
 * optional `reads()`, `evaluate(batch)` returning a Selection (or a bitmap /
 * booleans). Optional `static config = {key: default}` validates the config.
 */
export function filterOperator(Op) {
  let op;
  return {
    init(config) {
      const [o, info] = instantiate(Op, config);
      op = o;
      return info;
    },
    evaluate(input) {
      try {
        return selectionBytes(op.evaluate(batchFromWit(input)), input.numRows);
      } catch (e) {
        throw asOperatorError(e);
      }
    },
  };
}

/** A map's result: the output batch and the rejected rows (`{row, reason}` or `[row, reason]`). */
export class MapOutput {
  constructor(batch, rejected = []) {
    this.batch = batch;
    this.rejected = rejected;
  }
}

/**
 * The `map` export: `process(batch)` returns a Batch or a MapOutput. With
 * `reads()` declared, return only the columns you add or replace.
 */
export function mapOperator(Op) {
  let op;
  return {
    init(config) {
      const [o, info] = instantiate(Op, config);
      op = o;
      return info;
    },
    process(input) {
      let out;
      try {
        out = op.process(batchFromWit(input));
      } catch (e) {
        throw asOperatorError(e);
      }
      if (out instanceof Batch) out = new MapOutput(out);
      return { output: batchToWit(out.batch), rejected: out.rejected.map(rejection) };
    },
  };
}

/**
 * The `aggregate` export: `process(batch, watermark)` (watermark: BigInt ms
 * or undefined) returns a Batch, an array of Batches or nothing;
 * `snapshot()` returns a Uint8Array; `restore(bytes)`.
 *
 * Its `keyedState` property is the `keyed-state` export of the
 * `keyed-aggregate-operator` world (contract 0.1.1, incremental
 * checkpoints): `export const keyedState = aggregate.keyedState;`. It hands
 * the host the entries of what the operator's optional `keyedState()`
 * returns (the `Windows` holding its state, or any object with `changes()`,
 * `entries()` and `restoreEntries(entries)`), or its whole `snapshot()` as
 * the one entry (empty key) when there is no such method or it returns
 * nothing.
 */
export function aggregateOperator(Op) {
  let op;
  const aggregate = {
    init(config) {
      const [o, info] = instantiate(Op, config);
      op = o;
      return info;
    },
    process(input, watermark) {
      let out;
      try {
        out = op.process(batchFromWit(input), watermark ?? undefined);
      } catch (e) {
        throw asOperatorError(e);
      }
      if (out === undefined || out === null) return [];
      if (out instanceof Batch) out = [out];
      return out.map(batchToWit);
    },
    snapshot() {
      try {
        return asBytes(op.snapshot());
      } catch (e) {
        throw asOperatorError(e);
      }
    },
    restore(state) {
      try {
        op.restore(state);
      } catch (e) {
        throw asOperatorError(e);
      }
    },
  };
  aggregate.keyedState = keyedStateExport(() => op);
  return aggregate;
}

/** The `keyed-state` export over the aggregate `current()` returns. */
function keyedStateExport(current) {
  const keyed = (op) => (typeof op.keyedState === "function" ? op.keyedState() : undefined) ?? undefined;
  const entries = (changes) => {
    const op = current();
    try {
      const state = keyed(op);
      if (state === undefined) return [{ key: EMPTY, value: asBytes(op.snapshot()) }];
      return changes ? state.changes() : state.entries();
    } catch (e) {
      throw asOperatorError(e);
    }
  };
  return {
    snapshotEntries() {
      return entries(false);
    },
    snapshotChanges() {
      return entries(true);
    },
    restoreEntries(list) {
      const op = current();
      try {
        const state = keyed(op);
        if (state !== undefined) {
          state.restoreEntries(list);
          return;
        }
        const whole = list.find((e) => e.key.length === 0 && e.value !== undefined && e.value !== null);
        if (whole) op.restore(whole.value);
      } catch (e) {
        throw asOperatorError(e);
      }
    },
  };
}

/**
 * The `sink` export: `write(batch)`; throw Retryable, Permanent or
 * RejectedRows for failures (an OperatorError `failed` becomes retryable,
 * the others permanent).
 */
export function sinkOperator(Op) {
  let op;
  return {
    init(config) {
      const [o, info] = instantiate(Op, config);
      op = o;
      return info;
    },
    write(input) {
      const fail = (e) => {
        if (e instanceof SinkError) throw e;
        if (e instanceof OperatorError) {
          throw e.kind === "failed" ? new Retryable(e.message) : new Permanent(e.message);
        }
        throw e;
      };
      let result;
      try {
        result = op.write(batchFromWit(input));
      } catch (e) {
        fail(e);
      }
      // An async write (fetch): componentize-js runs the event loop until
      // the returned promise settles.
      if (result && typeof result.then === "function") return result.then(() => undefined, fail);
    },
  };
}
