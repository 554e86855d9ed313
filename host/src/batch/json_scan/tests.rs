//! Differential tests: the decoder with the scanner against arrow-json alone
//! (`JsonDecoder::arrow_json`, the decoder as configured before the scanner)
//! on generated records and a corpus of malformed ones. Same batch (and the
//! same JSON written from it, so -0.0 and 0.0 differ), same rows, same
//! rejected lines with the same reasons, same errors.

use crate::batch::{JsonDecoder, SchemaSpec, write_json_lines};
use arrow_schema::SchemaRef;
use std::fmt::Write as _;
use std::sync::Arc;

/// Every type a schema file can name, nullable and not.
const SCHEMA: &str = r#"{"fields":[
    {"name":"id","type":"utf8","nullable":false},
    {"name":"amount","type":"float64"},
    {"name":"qty","type":"int32"},
    {"name":"big","type":"int64"},
    {"name":"ratio","type":"float32"},
    {"name":"ok","type":"bool"},
    {"name":"at","type":"timestamp","unit":"ms","timezone":"UTC"},
    {"name":"secs","type":"timestamp","unit":"s"},
    {"name":"tags","type":"list<utf8>"},
    {"name":"note","type":"utf8"},
    {"name":"seq","type":"int64","nullable":false}
]}"#;

fn schema() -> SchemaRef {
    SchemaSpec::from_json(SCHEMA).unwrap().to_arrow().unwrap()
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const STRINGS: &[&str] = &[
    r#""plain""#,
    r#""""#,
    r#""esc \"q\" \\ \/ \b\f\n\r\t""#,
    r#""\u00e9t\u00E9""#,
    r#""pair \ud83d\ude00""#,
    "\"raw é ✓ 😀\"",
    "\"tab\there\"",
    r#""\u0000""#,
];
const NUMBERS: &[&str] = &[
    "0", "-0", "7", "-12", "1.5", "-0.0", "1e3", "2E-2", "1.25e+2", "123456789012", "2147483647", "2147483648",
    "-2147483648", "9223372036854775807", "9223372036854775808", "99999999999999999999", "1e400", "-1e400",
    "4.9e-324", "0.1", "3.4028235e38", "3.5e38", "1.7976931348623157e308", "12345678901234567890.5",
    "0.30000000000000004", "1.000000000000000000000000001",
];
/// Neither strict JSON nor always arrow-json's idea of a number.
const BAD_NUMBERS: &[&str] = &["01", "1.", ".5", "+1", "1e", "--1", "1.5.2", "0x10", "NaN", "Infinity", "1e+-2"];
const OTHERS: &[&str] = &["true", "false", "null", "[]", "{}", r#"["a",1]"#, r#"{"k":[1,{"x":null}]}"#, r#""2024-01-02T03:04:05Z""#, r#""12""#];

/// A random value, mostly of the field's type.
fn value(rng: &mut Rng, type_name: &str, out: &mut String) {
    if rng.chance(12) {
        out.push_str(rng.pick(OTHERS));
        return;
    }
    if rng.chance(4) {
        out.push_str(rng.pick(BAD_NUMBERS));
        return;
    }
    match type_name {
        "utf8" => out.push_str(if rng.chance(80) { STRINGS[0] } else { rng.pick(STRINGS) }),
        "bool" => out.push_str(if rng.chance(50) { "true" } else { "false" }),
        "list" => {
            out.push('[');
            for n in 0..rng.below(4) {
                if n > 0 {
                    out.push_str(if rng.chance(90) { "," } else { " , " });
                }
                out.push_str(if rng.chance(10) { "null" } else { rng.pick(STRINGS) });
            }
            out.push(']');
        }
        _ => {
            if rng.chance(50) {
                out.push_str(rng.pick(NUMBERS));
            } else if rng.chance(50) {
                let _ = write!(out, "{}", rng.next() as i64 >> rng.below(64));
            } else {
                let _ = write!(out, "{:?}", f64::from_bits(rng.next()) % 1e12);
            }
        }
    }
}

fn type_of(field: &str) -> &'static str {
    match field {
        "id" | "note" => "utf8",
        "ok" => "bool",
        "tags" => "list",
        _ => "number",
    }
}

const FIELDS: &[&str] = &["id", "amount", "qty", "big", "ratio", "ok", "at", "secs", "tags", "note", "seq"];

/// A random record: usually every field in schema order with a value of
/// its type, sometimes shuffled, missing, padded with unknown fields (nested
/// values included) or whitespace; a messy one also has values of other
/// types, malformed numbers and duplicate keys.
fn record(rng: &mut Rng) -> String {
    let messy = rng.chance(40);
    let mut fields: Vec<&str> = FIELDS.to_vec();
    if rng.chance(10) {
        for i in (1..fields.len()).rev() {
            fields.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    let mut out = String::from(if rng.chance(5) { " { " } else { "{" });
    let mut first = true;
    let mut member = |out: &mut String, key: &str, rng: &mut Rng, value_of: &dyn Fn(&mut Rng, &mut String)| {
        if !first {
            out.push_str(if rng.chance(95) { "," } else { " ,\n\t" });
        }
        first = false;
        let _ = write!(out, "\"{key}\"");
        out.push_str(if rng.chance(95) { ":" } else { " : " });
        value_of(rng, out);
    };
    for field in fields {
        if rng.chance(4) {
            continue;
        }
        if rng.chance(6) {
            member(&mut out, rng.pick(&["extra", "x\\u0041", "nested", "id2"]), rng, &|rng, out| {
                out.push_str(rng.pick(&[r#"{"a":[1,2,{"b":"c\n"}],"d":null}"#, "[[[]]]", r#""s\"""#, "-1.5e-3", "true", r#"{"":{}}"#]))
            });
        }
        let kind = type_of(field);
        let correct = !messy || rng.chance(85);
        member(&mut out, field, rng, &|rng, out| {
            if correct && kind == "number" {
                let _ = write!(out, "{}", rng.below(100_000));
            } else if correct && kind == "utf8" {
                let _ = write!(out, "\"v{}\"", rng.below(1000));
            } else {
                value(rng, kind, out);
            }
        });
        if messy && rng.chance(2) {
            member(&mut out, field, rng, &|rng, out| value(rng, kind, out));
        }
    }
    out.push_str(if rng.chance(5) { " }\r\n" } else { "}" });
    out
}

/// Records arrow-json and the scanner must both reject (or convert) alike.
fn malformed() -> Vec<Vec<u8>> {
    let good = r#"{"id":"a","amount":1.5,"qty":3,"big":4,"ratio":0.5,"ok":true,"at":1700000000000,"secs":1,"tags":["x"],"note":"n","seq":1}"#;
    let mut corpus: Vec<Vec<u8>> = (1..good.len()).step_by(7).map(|cut| good.as_bytes()[..cut].to_vec()).collect();
    let mut text = |s: &str| corpus.push(s.as_bytes().to_vec());
    text("");
    text("   ");
    text("null");
    text("[1,2]");
    text("42");
    text(r#""just a string""#);
    text(&format!("\u{feff}{good}"));
    text(&format!("{good}{good}"));
    text(&format!("{good} x"));
    text(r#"{"id":"a","seq":1,}"#);
    text(r#"{"id":"a" "seq":1}"#);
    text(r#"{,"id":"a","seq":1}"#);
    text(r#"{"id":"a","seq":1,"tags":["x",]}"#);
    text(r#"{"id":"a","seq":1,"tags":[,"x"]}"#);
    text(r#"{"id":"a","seq":1,"tags":"x"}"#);
    text(r#"{"id":"a","seq":1,"tags":[1]}"#);
    text(r#"{"id":"a","seq":1,"tags":[["x"]]}"#);
    text(r#"{"id":"a\x","seq":1}"#);
    text(r#"{"id":"\ud800","seq":1}"#);
    text(r#"{"id":"\udc00\ud800","seq":1}"#);
    text(r#"{"id":"\ud800\u0041","seq":1}"#);
    text(r#"{"id":"\u12G4","seq":1}"#);
    text("{\"id\":\"ctrl \u{1}\",\"seq\":1}");
    text(r#"{"id":1,"seq":1}"#);
    text(r#"{"id":null,"seq":1}"#);
    text(r#"{"seq":1}"#);
    text(r#"{"id":"a"}"#);
    text(r#"{"id":"a","seq":null}"#);
    text(r#"{"id":"a","seq":1,"id":"b"}"#);
    text(r#"{"id":"a","seq":1,"amount":"1.5"}"#);
    text(r#"{"id":"a","seq":1,"amount":"abc"}"#);
    text(r#"{"id":"a","seq":1,"qty":1.9}"#);
    text(r#"{"id":"a","seq":1,"qty":-1e2}"#);
    text(r#"{"id":"a","seq":1,"qty":"7"}"#);
    text(r#"{"id":"a","seq":1,"ok":"true"}"#);
    text(r#"{"id":"a","seq":1,"ok":1}"#);
    text(r#"{"id":"a","seq":1,"at":"2024-01-02T03:04:05Z"}"#);
    text(r#"{"id":"a","seq":1,"at":"yesterday"}"#);
    text(r#"{"id":"a","seq":1,"at":1.7e12}"#);
    text(r#"{"id":"a","seq":99999999999999999999}"#);
    text(r#"{"id":"a","seq":1,"amount":1e999}"#);
    text(r#"{"id":"a","seq":1,"nest":{"a":{"b":[1,{"c":[]}]}}}"#);
    text(r#"{"i\u0064":"escaped key","seq":1}"#);
    text(r#"{"id":"a","seq":1,"extra":nul}"#);
    text(r#"{"id":"a","seq":1,"extra":tru}"#);
    text(r#"{"id":"a","seq":1,"extra":-}"#);
    text(r#"{"id":"a","seq":1,"extra":1.2.3}"#);
    text(r#"{"id":"a","seq":1,"extra":01}"#);
    let deep = |depth: usize| format!(r#"{{"id":"a","seq":1,"deep":{}1{}}}"#, "[".repeat(depth), "]".repeat(depth));
    text(&deep(63));
    text(&deep(64));
    text(&deep(300));
    text(&format!(r#"{{"id":"a","seq":1,"deep":{}{}}}"#, r#"{"a":"#.repeat(200), "}".repeat(200)));
    corpus.push(b"{\"id\":\"\xff\",\"seq\":1}".to_vec());
    corpus.push(b"{\"id\":\"a\",\"seq\":1,\"extra\":\"\xc3\"}".to_vec());
    corpus.push(b"{\"id\":\"a\",\"seq\":1}\xa0".to_vec());
    corpus.push(b"{\"id\":\"a\xe2\x82\",\"seq\":1}".to_vec());
    corpus
}

/// Both decoders on `lines`: same outcome, or the test fails naming the lines.
/// Returns whether the scanner decided the batch alone.
fn same_decisions(schema: &SchemaRef, lines: &[&[u8]]) -> bool {
    same_as_reference(&JsonDecoder::new(schema.clone()), schema, None, lines)
}

/// `decoder` against arrow-json on the whole `schema` (its batch projected
/// to `kept` when given): same rows, same rejections with the same reasons,
/// same values (and the same JSON written from them, so -0.0 and 0.0
/// differ), same errors. Returns whether the scanner decided the batch alone.
fn same_as_reference(decoder: &JsonDecoder, schema: &SchemaRef, kept: Option<&[usize]>, lines: &[&[u8]]) -> bool {
    let reference = JsonDecoder::arrow_json(schema.clone());
    let show = || lines.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect::<Vec<_>>().join("\n");
    match (decoder.decode_lines(lines), reference.decode_lines(lines)) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.line_of_row, b.line_of_row, "rows differ for:\n{}", show());
            assert_eq!(a.rejected, b.rejected, "rejections differ for:\n{}", show());
            let expected = match kept {
                Some(kept) => b.batch.project(kept).unwrap(),
                None => b.batch,
            };
            assert_eq!(a.batch, expected, "batches differ for:\n{}", show());
            let (mut json_a, mut json_b) = (Vec::new(), Vec::new());
            write_json_lines(&a.batch, &mut json_a).unwrap();
            write_json_lines(&expected, &mut json_b).unwrap();
            assert_eq!(String::from_utf8(json_a).unwrap(), String::from_utf8(json_b).unwrap(), "values differ for:\n{}", show());
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "errors differ for:\n{}", show()),
        (a, b) => panic!("outcomes differ for:\n{}\nscanner: {a:?}\narrow-json: {b:?}", show()),
    }
    decoder.scanner.as_ref().and_then(|s| s.decode(lines)).is_some()
}

#[test]
fn generated_records_decode_exactly_like_arrow_json() {
    let schema = schema();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut scanned = 0;
    for _ in 0..3000 {
        let records: Vec<String> = (0..1 + rng.below(6)).map(|_| record(&mut rng)).collect();
        let lines: Vec<&[u8]> = records.iter().map(|r| r.as_bytes()).collect();
        if same_decisions(&schema, &lines) {
            scanned += 1;
        }
        for line in &lines {
            same_decisions(&schema, &[line]);
        }
    }
    // The generator must exercise the scanner, not only the fallback.
    assert!(scanned > 600, "the scanner decided only {scanned} of 3000 batches");
}

#[test]
fn projected_schemas_decode_exactly_like_arrow_json() {
    let full = schema();
    let mut rng = Rng(42);
    for projection in [vec![1], vec![0, 1], vec![8], vec![10, 6, 2], vec![9, 5]] {
        let schema = Arc::new(full.project(&projection).unwrap());
        let mut scanned = 0;
        for _ in 0..500 {
            let records: Vec<String> = (0..1 + rng.below(4)).map(|_| record(&mut rng)).collect();
            let lines: Vec<&[u8]> = records.iter().map(|r| r.as_bytes()).collect();
            scanned += usize::from(same_decisions(&schema, &lines));
        }
        assert!(scanned > 50, "projection {projection:?}: the scanner decided only {scanned} of 500 batches");
    }
}

#[test]
fn malformed_records_are_rejected_exactly_like_arrow_json() {
    let schema = schema();
    let good = br#"{"id":"g","seq":2,"amount":3.25,"tags":["p","q"]}"#.as_slice();
    for bad in malformed() {
        // Alone, and among good records (the scanner must give up on the batch).
        same_decisions(&schema, &[&bad]);
        same_decisions(&schema, &[good, &bad, good]);
        let projected = Arc::new(schema.project(&[1]).unwrap());
        same_decisions(&projected, &[good, &bad]);
    }
}

#[test]
fn rejection_reasons_name_the_field() {
    let decoder = JsonDecoder::new(schema());
    let lines: Vec<&[u8]> = vec![
        br#"{"id":"a","seq":1,"amount":"lots"}"#,
        br#"{"id":"a","seq":1,"ok":"yes"}"#,
        br#"{"id":"b","seq":2}"#,
    ];
    let decoded = decoder.decode_lines(&lines).unwrap();
    assert_eq!(decoded.line_of_row, vec![2]);
    assert!(decoded.rejected[0].reason.contains("'amount'"), "{}", decoded.rejected[0].reason);
    assert!(decoded.rejected[1].reason.contains("'ok'"), "{}", decoded.rejected[1].reason);
}

#[test]
fn the_scanner_decides_ordinary_batches_alone() {
    let decoder = JsonDecoder::new(schema());
    let lines: Vec<&[u8]> = vec![
        br#"{"id":"a","amount":1.5,"qty":3,"big":-4,"ratio":0.25,"ok":true,"at":1700000000000,"secs":1,"tags":["x","\u00e9"],"note":"n\"q","seq":1}"#,
        br#"{"seq":2,"id":"b","unknown":{"deep":[1,2,{"x":"y"}]},"tags":[],"note":null}"#,
    ];
    assert!(decoder.scanner.as_ref().unwrap().decode(&lines).is_some());
    same_decisions(decoder.schema(), &lines);
}

/// A decoder that checks the whole schema and builds `kept`, against
/// arrow-json on the whole schema followed by the projection (a record
/// that fails an unbuilt field is rejected too).
fn same_as_projected_reference(schema: &SchemaRef, kept: &[usize], lines: &[&[u8]]) -> bool {
    same_as_reference(&JsonDecoder::checking(schema.clone(), kept).unwrap(), schema, Some(kept), lines)
}

#[test]
fn checked_fields_reject_like_the_whole_schema_and_only_kept_columns_are_built() {
    let schema = schema();
    let mut rng = Rng(7);
    for kept in [vec![1], vec![0, 1], vec![8], vec![2, 6, 10], vec![5, 9]] {
        let mut scanned = 0;
        for _ in 0..500 {
            let records: Vec<String> = (0..1 + rng.below(4)).map(|_| record(&mut rng)).collect();
            let lines: Vec<&[u8]> = records.iter().map(|r| r.as_bytes()).collect();
            scanned += usize::from(same_as_projected_reference(&schema, &kept, &lines));
        }
        assert!(scanned > 50, "kept {kept:?}: the scanner decided only {scanned} of 500 batches");
    }
    let good = br#"{"id":"g","seq":2,"amount":3.25,"tags":["p","q"]}"#.as_slice();
    for bad in malformed() {
        same_as_projected_reference(&schema, &[1], &[good, &bad, good]);
        same_as_projected_reference(&schema, &[8, 10], &[&bad]);
    }
    // A wrong type in a field that is only checked rejects the record.
    let decoder = JsonDecoder::checking(schema.clone(), &[1]).unwrap();
    let lines: Vec<&[u8]> = vec![br#"{"id":"a","seq":1,"amount":2.5,"qty":"seven"}"#, good];
    let decoded = decoder.decode_lines(&lines).unwrap();
    assert_eq!(decoded.line_of_row, vec![1]);
    assert!(decoded.rejected[0].reason.contains("'qty'"), "{}", decoded.rejected[0].reason);
    assert_eq!(decoded.batch.num_columns(), 1);
    assert_eq!(decoded.batch.schema().field(0).name(), "amount");
}
