//! The alternatives weir's JSON decoder was chosen against (BENCHMARKS.md,
//! "JSON decoder"), on the peer suite's order records (same generator, same
//! bytes): arrow-json, weir's scanner (its source, included by path), and
//! serde_json / sonic-rs / simd-json per record into Arrow builders, for the
//! whole schema and for one field. Prints a markdown table.
//!
//! `cargo run --release --manifest-path bench/decoders/Cargo.toml [-- RECORDS]`
#![allow(dead_code, reason = "the scanner's module is shared with weir; only its decode is used here")]

#[path = "../../../host/src/batch/json_scan/mod.rs"]
mod json_scan;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder};
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
const CENTERS: [&str; 6] = ["berlin", "chicago", "singapore", "sao-paulo", "lagos", "sydney"];
const ITEMS: [&str; 8] = ["book", "lamp", "phone", "desk", "chair", "cable", "mug", "bag"];

fn order_lines(records: usize) -> Vec<u8> {
    let mut rng = Rng(0x5eed_0de5);
    let mut out = String::new();
    for i in 0..records {
        let customer = rng.next_u64() % 20_000;
        let center = CENTERS[(rng.next_u64() % CENTERS.len() as u64) as usize];
        let amount = if rng.next_u64() % 50 == 0 { None } else { Some((rng.unit() * 2000.0 * 100.0).round() / 100.0) };
        let _ = write!(out, r#"{{"order_id":"o-{i:08}","customer_id":"c-{customer:05}","processing_center":"{center}","total_amount":"#);
        match amount {
            Some(amount) => { let _ = write!(out, "{amount:?}"); }
            None => out.push_str("null"),
        }
        let _ = write!(out, r#","quantity":{},"express":{},"timestamp":{},"items":["#, rng.next_u64() % 9 + 1, rng.next_u64() % 4 == 0, 1_732_000_000_000i64 + i as i64 * 37);
        for n in 0..rng.next_u64() % 4 {
            if n > 0 { out.push(','); }
            let _ = write!(out, "\"{}\"", ITEMS[(rng.next_u64() % ITEMS.len() as u64) as usize]);
        }
        out.push_str("]}\n");
    }
    out.into_bytes()
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("processing_center", DataType::Utf8, true),
        Field::new("total_amount", DataType::Float64, true),
        Field::new("quantity", DataType::Int32, true),
        Field::new("express", DataType::Boolean, true),
        Field::new("timestamp", DataType::Int64, false),
        Field::new("items", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), true),
    ]))
}

fn arrow_json(schema: &SchemaRef, lines: &[&[u8]]) -> usize {
    let mut d = arrow_json::ReaderBuilder::new(schema.clone()).with_batch_size(lines.len()).build_decoder().unwrap();
    for l in lines { d.decode(l).unwrap(); }
    d.flush().unwrap().unwrap().num_rows()
}

#[derive(Deserialize)]
struct Amount { total_amount: Option<f64> }

#[derive(Deserialize)]
struct Order<'a> {
    #[serde(borrow)] order_id: Cow<'a, str>,
    #[serde(borrow)] customer_id: Cow<'a, str>,
    #[serde(borrow)] processing_center: Option<Cow<'a, str>>,
    total_amount: Option<f64>,
    quantity: Option<i32>,
    express: Option<bool>,
    timestamp: i64,
    #[serde(borrow)] items: Option<Vec<Option<Cow<'a, str>>>>,
}

struct Full { a: StringBuilder, b: StringBuilder, c: StringBuilder, d: Float64Builder, e: Int32Builder, f: BooleanBuilder, g: Int64Builder, h: ListBuilder<StringBuilder> }
impl Full {
    fn new() -> Full { Full { a: StringBuilder::new(), b: StringBuilder::new(), c: StringBuilder::new(), d: Float64Builder::new(), e: Int32Builder::new(), f: BooleanBuilder::new(), g: Int64Builder::new(), h: ListBuilder::new(StringBuilder::new()) } }
    fn push(&mut self, o: Order) {
        self.a.append_value(&o.order_id); self.b.append_value(&o.customer_id); self.c.append_option(o.processing_center.as_deref());
        self.d.append_option(o.total_amount); self.e.append_option(o.quantity); self.f.append_option(o.express); self.g.append_value(o.timestamp);
        match o.items { Some(items) => { for i in items { self.h.values().append_option(i.as_deref()); } self.h.append(true) } None => self.h.append_null() }
    }
    fn finish(mut self, schema: &SchemaRef) -> usize {
        RecordBatch::try_new(schema.clone(), vec![Arc::new(self.a.finish()), Arc::new(self.b.finish()), Arc::new(self.c.finish()), Arc::new(self.d.finish()), Arc::new(self.e.finish()), Arc::new(self.f.finish()), Arc::new(self.g.finish()), Arc::new(self.h.finish())]).unwrap().num_rows()
    }
}

/// A decoder under test: one call per batch, returns the rows decoded.
type Decode<'a> = Box<dyn Fn(&[&[u8]]) -> usize + 'a>;

/// Runs every decoder once per round over all lines, 10,000 per call
/// (interleaved, so a busy spell of a shared machine hits all alike); one
/// warm-up round, then the median of `rounds`.
fn measure(decoders: &[(&str, Decode)], lines: &[&[u8]], rounds: usize) -> Vec<Duration> {
    let mut times = vec![Vec::new(); decoders.len()];
    for round in 0..=rounds {
        for ((name, decode), times) in decoders.iter().zip(&mut times) {
            let start = Instant::now();
            let rows: usize = lines.chunks(10_000).map(|c| decode(c)).sum();
            assert_eq!(rows, lines.len(), "{name}");
            if round > 0 {
                times.push(start.elapsed());
            }
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect()
}

fn main() {
    let records: usize = std::env::args().nth(1).map_or(1_000_000, |a| a.parse().unwrap());
    let bytes = order_lines(records);
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let full = schema();
    let amount = Arc::new(full.project(&[3]).unwrap());
    let scan_full = json_scan::Scanner::new(&full).unwrap();
    let scan_amount = json_scan::Scanner::new(&amount).unwrap();
    let decoders: Vec<(&str, Decode)> = vec![
        ("arrow-json, whole schema", Box::new(|c| arrow_json(&full, c))),
        ("weir scanner, whole schema", Box::new(|c| scan_full.decode(c).unwrap().num_rows())),
        ("serde_json per record (typed struct), whole schema", Box::new(|c| { let mut b = Full::new(); for l in c { b.push(serde_json::from_slice(l).unwrap()); } b.finish(&full) })),
        ("sonic-rs per record (typed struct), whole schema", Box::new(|c| { let mut b = Full::new(); for l in c { b.push(sonic_rs::from_slice(l).unwrap()); } b.finish(&full) })),
        ("simd-json per record (typed struct, on a copy), whole schema", Box::new(|c| { let mut b = Full::new(); let mut buf = Vec::new(); for l in c { buf.clear(); buf.extend_from_slice(l); let o: Order = simd_json::serde::from_slice(&mut buf).unwrap(); b.push(o); } b.finish(&full) })),
        ("arrow-json, total_amount only", Box::new(|c| arrow_json(&amount, c))),
        ("weir scanner, total_amount only", Box::new(|c| scan_amount.decode(c).unwrap().num_rows())),
        ("serde_json per record (typed), total_amount only", Box::new(|c| { let mut b = Float64Builder::new(); for l in c { b.append_option(serde_json::from_slice::<Amount>(l).unwrap().total_amount); } b.finish().len() })),
        ("sonic-rs per record (typed), total_amount only", Box::new(|c| { let mut b = Float64Builder::new(); for l in c { b.append_option(sonic_rs::from_slice::<Amount>(l).unwrap().total_amount); } b.finish().len() })),
        ("sonic-rs `get` (lazy skip), total_amount only", Box::new(|c| { let mut b = Float64Builder::new(); for l in c { let v = sonic_rs::get(*l, &["total_amount"]).unwrap(); b.append_option(sonic_rs::from_str::<Option<f64>>(v.as_raw_str()).unwrap()); } b.finish().len() })),
        ("simd-json per record (typed, on a copy), total_amount only", Box::new(|c| { let mut b = Float64Builder::new(); let mut buf = Vec::new(); for l in c { buf.clear(); buf.extend_from_slice(l); b.append_option(simd_json::serde::from_slice::<Amount>(&mut buf).unwrap().total_amount); } b.finish().len() })),
    ];
    let times = measure(&decoders, &lines, 7);
    println!("| decoder | records/s | vs arrow-json (same fields) |\n|---|---|---|");
    for (index, ((name, _), time)) in decoders.iter().zip(&times).enumerate() {
        let arrow = if index < 5 { times[0] } else { times[5] };
        println!("| {name} | {:.2}M/s | {:.2}x |", lines.len() as f64 / time.as_secs_f64() / 1e6, arrow.as_secs_f64() / time.as_secs_f64());
    }
}
