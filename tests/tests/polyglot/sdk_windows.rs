//! The Python and JavaScript SDKs' window helpers and sketches, run outside
//! a component: the Rust SDK's window semantics and HyperLogLog estimates.

use super::*;

/// The Rust SDK's sketch (sdk/rust/src/sketch.rs), restated: the reference
/// the Python and JavaScript sketches must reproduce bit for bit.
fn rust_hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn rust_hll_estimate(values: impl Iterator<Item = String>, precision: u32) -> u64 {
    let mut registers = vec![0u8; 1 << precision];
    for v in values {
        let hash = rust_hash64(v.as_bytes());
        let rest = (hash << precision) | (1 << (precision - 1));
        let r = &mut registers[(hash >> (64 - precision)) as usize];
        *r = (*r).max(rest.leading_zeros() as u8 + 1);
    }
    let m = registers.len() as f64;
    let alpha = match registers.len() {
        16 => 0.673,
        32 => 0.697,
        64 => 0.709,
        _ => 0.7213 / (1.0 + 1.079 / m),
    };
    let sum: f64 = registers.iter().map(|&r| 2f64.powi(-(r as i32))).sum();
    let raw = alpha * m * m / sum;
    let zeros = registers.iter().filter(|&&r| r == 0).count();
    (if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw }).round() as u64
}

/// Python: the SDK's window semantics (the Rust SDK's unit tests, restated)
/// and sketch numbers, one `name value` line each.
const PY_SDK_CHECK: &str = r#"
from weir_sdk.sketch import HyperLogLog, hash64
from weir_sdk.window import Accumulator, Window, WindowSpec, Windows
class Count(Accumulator):
    def __init__(self): self.n = 0
    def add(self, row): self.n += 1
    def merge(self, other): self.n += other.n
MIN = 60_000
assert WindowSpec.tumbling(60 * MIN).assign(-1) == [Window(-60 * MIN, 0)]
assert [w.start_ms // MIN for w in WindowSpec.hopping(5 * MIN, MIN).assign(7 * MIN + 30_000)] == [3, 4, 5, 6, 7]
w = Windows(WindowSpec.hopping(5 * MIN, MIN), Count)
w.add("u1", 30_000, None); w.add("u1", 4 * MIN, None); w.add("u2", 90_000, None)
assert w.close(MIN - 1) == []
assert [(c[0], c[1], c[2].n) for c in w.close(MIN)] == [(Window(-4 * MIN, MIN), "u1", 1)]
assert [(c[0].end_ms // MIN, c[1], c[2].n) for c in w.close(5 * MIN)] == [(2, "u1", 1), (2, "u2", 1), (3, "u1", 1), (3, "u2", 1), (4, "u1", 1), (4, "u2", 1), (5, "u1", 2), (5, "u2", 1)]
assert w.is_late(30_000, 5 * MIN) and not w.is_late(4 * MIN, 5 * MIN)
s = Windows(WindowSpec.session(10_000), Count)
s.add("k", 0, None); s.add("k", 18_000, None); s.add("j", 5_000, None)
assert s.len() == 3
s.add("k", 9_000, None)
assert s.len() == 2 and len(s.close(27_999)) == 1
assert [(c[0], c[1], c[2].n) for c in s.close(28_000)] == [(Window(0, 28_000), "k", 3)]
t = Windows(WindowSpec.tumbling(MIN), Count); t.add("a", 10, None); t.add("a", 20, None)
r = Windows(WindowSpec.tumbling(1), Count); r.restore(t.snapshot()); r.add("a", 30, None)
assert [(c[0], c[2].n) for c in r.close(MIN)] == [(Window(0, MIN), 3)]
n = Windows(WindowSpec.tumbling(MIN), Count)  # keyed state: tracking starts with the host's first call
for i in range(100): n.add("k%d" % i, 0, None)
n.close(MIN); n.add("late", MIN, None)
assert n.changed is None and [e.key for e in n.changes()] == [b'"late"']
k = Windows(WindowSpec.session(10_000), Count)  # then the keys touched since the last call
k.add("a", 0, None); k.add("b", 0, None)
assert sorted(e.key for e in k.changes()) == [b'"a"', b'"b"'] and k.changes() == []
k.add("a", 5_000, None)  # merges with a's session
assert [(e.key, e.value is not None) for e in k.changes()] == [(b'"a"', True)]
assert [c[1] for c in k.close(10_000)] == ["b"] and [(e.key, e.value) for e in k.changes()] == [(b'"b"', None)]
c = Windows(WindowSpec.session(10_000), Count); c.restore_entries(k.entries())
assert c.snapshot() == k.snapshot() and c.changes() == [] and k.changes() == []
assert c.get("a", Window(0, 15_000)).n == 2 and [e.key for e in c.changes()] == [b'"a"']
e = Windows(WindowSpec.tumbling(MIN), Count); e.add(("eu", 3), 0, None); e.add("z\u00fc", 0, None)
assert sorted(x.key for x in e.entries()) == ['"z\u00fc"'.encode(), b'["eu",3]']
f = Windows(WindowSpec.tumbling(MIN), Count); f.restore_entries(e.entries())
assert set(f.open) == {("eu", 3), "z\u00fc"}
for v in ["", "a", "customer-1", "h\u00e9llo w\u00f6rld \u2713 \U0001d11e"]:
    print("hash", hash64(v))
for n, p in [(10, 12), (1000, 12), (20000, 12), (5000, 4), (300, 5), (3000, 6), (100000, 14)]:
    h = HyperLogLog(p)
    for i in range(n): h.insert("customer-%d" % i)
    print("estimate", h.estimate())
a, b = HyperLogLog(), HyperLogLog()
for i in range(5000): a.insert("c-%d" % i)
for i in range(2500, 7500): b.insert("c-%d" % i)
a.merge(b)
assert HyperLogLog.from_json(a.to_json()) == a
print("union", a.estimate())
"#;

/// JavaScript: the same checks and numbers.
const JS_SDK_CHECK: &str = r#"
import assert from "node:assert/strict";
const { HyperLogLog, hash64 } = await import(process.env.WEIR_SDK_JS + "/sketch.js");
const { WindowSpec, Windows } = await import(process.env.WEIR_SDK_JS + "/window.js");
class Count { constructor() { this.n = 0; } add() { this.n++; } merge(o) { this.n += o.n; } }
const MIN = 60000;
const brief = (closed) => closed.map(([w, k, c]) => [w.startMs, w.endMs, k, c.n]);
assert.deepEqual(WindowSpec.tumbling(60 * MIN).assign(-1).map((w) => [w.startMs, w.endMs]), [[-60 * MIN, 0]]);
assert.deepEqual(WindowSpec.hopping(5 * MIN, MIN).assign(7 * MIN + 30000).map((w) => w.startMs / MIN), [3, 4, 5, 6, 7]);
const w = new Windows(WindowSpec.hopping(5 * MIN, MIN), Count);
w.add("u1", 30000); w.add("u1", 4 * MIN); w.add("u2", 90000);
assert.deepEqual(w.close(MIN - 1), []);
assert.deepEqual(brief(w.close(BigInt(MIN))), [[-4 * MIN, MIN, "u1", 1]]);
assert.deepEqual(w.close(5 * MIN).map(([win, k, c]) => `${win.endMs / MIN}:${k}:${c.n}`), ["2:u1:1", "2:u2:1", "3:u1:1", "3:u2:1", "4:u1:1", "4:u2:1", "5:u1:2", "5:u2:1"]);
assert.ok(w.isLate(30000, 5 * MIN) && !w.isLate(4 * MIN, 5 * MIN));
const s = new Windows(WindowSpec.session(10000), Count);
s.add("k", 0); s.add("k", 18000); s.add("j", 5000);
assert.equal(s.len(), 3);
s.add("k", 9000);
assert.ok(s.len() === 2 && s.close(27999).length === 1);
assert.deepEqual(brief(s.close(28000)), [[0, 28000, "k", 3]]);
const t = new Windows(WindowSpec.tumbling(MIN), Count); t.add("a", 10); t.add("a", 20);
const r = new Windows(WindowSpec.tumbling(1), Count); r.restore(t.snapshot()); r.add("a", 30);
assert.deepEqual(brief(r.close(MIN)), [[0, MIN, "a", 3]]);
const text = (entries) => entries.map((e) => [new TextDecoder().decode(e.key), e.value !== undefined]).sort();
const n = new Windows(WindowSpec.tumbling(MIN), Count); // keyed state: tracking starts with the host's first call
for (let i = 0; i < 100; i++) n.add(`k${i}`, 0);
n.close(MIN); n.add("late", MIN);
assert.equal(n.changed, null);
assert.deepEqual(text(n.changes()), [['"late"', true]]);
const k = new Windows(WindowSpec.session(10000), Count); // then the keys touched since the last call
k.add("a", 0); k.add("b", 0);
assert.deepEqual(text(k.changes()), [['"a"', true], ['"b"', true]]);
assert.deepEqual(k.changes(), []);
k.add("a", 5000); // merges with a's session
assert.deepEqual(text(k.changes()), [['"a"', true]]);
assert.deepEqual(k.close(10000).map((c) => c[1]), ["b"]);
assert.deepEqual(text(k.changes()), [['"b"', false]]);
const c = new Windows(WindowSpec.session(10000), Count); c.restoreEntries(k.entries());
assert.deepEqual([c.snapshot(), c.changes(), k.changes()], [k.snapshot(), [], []]);
assert.ok(c.get("a", c.openWindows("a")[0][0]).n === 2);
assert.deepEqual(text(c.changes()), [['"a"', true]]);
const e = new Windows(WindowSpec.tumbling(MIN), Count); e.add(7, 0); e.add("z\u00fc", 0);
const f = new Windows(WindowSpec.tumbling(MIN), Count); f.restoreEntries(e.entries());
assert.deepEqual([...f.open.keys()].sort(), [7, "z\u00fc"]);
const out = [];
for (const v of ["", "a", "customer-1", "h\u00e9llo w\u00f6rld \u2713 \u{1d11e}"]) out.push(`hash ${hash64(v)}`);
for (const [n, p] of [[10, 12], [1000, 12], [20000, 12], [5000, 4], [300, 5], [3000, 6], [100000, 14]]) {
  const h = new HyperLogLog(p);
  for (let i = 0; i < n; i++) h.insert(`customer-${i}`);
  out.push(`estimate ${h.estimate()}`);
}
const a = new HyperLogLog(), b = new HyperLogLog();
for (let i = 0; i < 5000; i++) a.insert(`c-${i}`);
for (let i = 2500; i < 7500; i++) b.insert(`c-${i}`);
a.merge(b);
assert.deepEqual(HyperLogLog.fromJSON(JSON.parse(JSON.stringify(a))).registers, a.registers);
out.push(`union ${a.estimate()}`);
console.log(out.join("\n"));
"#;

fn run_script(program: &str, args: &[&str], env: (&str, PathBuf)) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .env(env.0, env.1)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(out.status.success(), "{program} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn python_and_js_sdk_windows_follow_the_rust_semantics_and_sketches_match_rust_estimates() {
    let root = weir_tests::repo_root();
    let mut want: Vec<String> =
        ["", "a", "customer-1", "héllo wörld ✓ 𝄞"].iter().map(|v| format!("hash {}", rust_hash64(v.as_bytes()))).collect();
    for (n, p) in [(10, 12), (1000, 12), (20000, 12), (5000, 4), (300, 5), (3000, 6), (100000, 14)] {
        want.push(format!("estimate {}", rust_hll_estimate((0..n).map(|i| format!("customer-{i}")), p)));
    }
    let union = (0..7500).map(|i| format!("c-{i}"));
    want.push(format!("union {}", rust_hll_estimate(union, 12)));
    let venv = root.join("target/tools/py-venv/bin/python");
    let python = if venv.exists() { venv.to_string_lossy().into_owned() } else { "python3".to_owned() };
    let py = run_script(&python, &["-c", PY_SDK_CHECK], ("PYTHONPATH", root.join("sdk/python")));
    assert_eq!(py.lines().collect::<Vec<_>>(), want, "python");
    let js = run_script(
        "node",
        &["--experimental-default-type=module", "--input-type=module", "-e", JS_SDK_CHECK],
        ("WEIR_SDK_JS", root.join("sdk/js")),
    );
    assert_eq!(js.lines().collect::<Vec<_>>(), want, "javascript");
}
