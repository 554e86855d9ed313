//! Property-based fuzzing of what the host reads from outside: JSON and
//! Avro record values, and batches a guest returns (the checks after
//! Wasmtime lifted them). Deterministic (seeded xorshift), no extra crates.
//! Not run by CI (`#[ignore]`); run with `scripts/fuzz`, which sets a memory
//! ulimit so an allocation a hostile input asks for shows up as a failure.
//! Findings are recorded in `fuzz/FINDINGS.md`.

use arrow_array::Array;
use weir::batch::{AvroDecoder, JsonDecoder, SchemaSpec, batch_from_guest, guest_batch_bytes, selection_to_mask};
use weir::bindings::weir::operator::types as wit;

/// Iterations per target (`WEIR_FUZZ_ITERATIONS`, default 20 000).
fn iterations() -> u64 {
    std::env::var("WEIR_FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

/// xorshift64*: small, seeded, good enough to explore.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max as u64 + 1) as usize;
        (0..len).map(|_| self.next() as u8).collect()
    }
    /// A length near an interesting boundary.
    fn length(&mut self, rows: usize) -> usize {
        match self.below(6) {
            0 => 0,
            1 => rows,
            2 => rows + 1,
            3 => rows.saturating_sub(1),
            4 => (rows + 1) * 4,
            _ => self.below(64) as usize,
        }
    }
}

/// Flips, truncates, duplicates or splices bytes of `input`.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len() as u64) as usize;
                out[i] ^= 1 << rng.below(8);
            }
            1 => out.truncate(rng.below(out.len() as u64 + 1) as usize),
            2 if !out.is_empty() => {
                let i = rng.below(out.len() as u64) as usize;
                out.insert(i, [0xff, 0x80, 0x7f, 0x00, b'"', b'{', b'['][rng.below(7) as usize]);
            }
            3 => out.extend(rng.bytes(8)),
            _ => {
                // A large Avro length or count (2^16 .. 2^40, zig-zag
                // varint) at a random place: below and above the 512 MiB
                // that apache-avro checks lengths against.
                let value: u64 = (1 << (16 + rng.below(25))) + rng.below(1 << 16);
                let mut zigzag = value << 1;
                let i = rng.below(out.len() as u64 + 1) as usize;
                let mut varint = Vec::new();
                while zigzag >= 0x80 {
                    varint.push((zigzag as u8) | 0x80);
                    zigzag >>= 7;
                }
                varint.push(zigzag as u8);
                out.splice(i..i, varint);
            }
        }
    }
    out
}

const JSON_SCHEMA: &str = r#"{"fields":[
    {"name":"id","type":"utf8","nullable":false},
    {"name":"amount","type":"float64"},
    {"name":"n","type":"int64"},
    {"name":"ok","type":"bool"},
    {"name":"tags","type":"list<utf8>"},
    {"name":"ts","type":"timestamp","unit":"ms"}]}"#;

#[test]
#[ignore = "fuzzing: run with scripts/fuzz"]
fn json_decoding_never_panics() {
    let schema = SchemaSpec::from_json(JSON_SCHEMA).unwrap().to_arrow().unwrap();
    let decoder = JsonDecoder::new(schema);
    let seeds: [&[u8]; 3] = [
        br#"{"id":"a","amount":1.5,"n":3,"ok":true,"tags":["x","y"],"ts":1700000000000}"#,
        br#"{"id":"b","amount":null,"tags":[]}"#,
        br#"{"id":"c","n":9223372036854775807,"ok":false,"extra":{"deep":[[[[1]]]]}}"#,
    ];
    let mut rng = Rng(0x5eed_0001);
    for _ in 0..iterations() {
        let lines: Vec<Vec<u8>> = (0..=rng.below(8))
            .map(|_| {
                let seed = seeds[rng.below(3) as usize];
                mutate(&mut rng, seed)
            })
            .collect();
        let slices: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        if let Ok(decoded) = decoder.decode_lines(&slices) {
            assert_eq!(decoded.batch.num_rows() + decoded.rejected.len(), slices.len(), "every line accounted for");
        }
    }
}

const AVRO_SCHEMA: &str = r#"{"type":"record","name":"Order","fields":[
    {"name":"order_id","type":"string"},
    {"name":"total_amount","type":["null","double"]},
    {"name":"items","type":{"type":"array","items":"string"}},
    {"name":"payload","type":"bytes"},
    {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;

#[test]
#[ignore = "fuzzing: run with scripts/fuzz"]
fn avro_decoding_never_panics_nor_allocates_past_the_datum() {
    let plain = AvroDecoder::new(AVRO_SCHEMA, false).unwrap();
    let framed = AvroDecoder::new(AVRO_SCHEMA, true).unwrap().with_schema_id(Some(7));
    // order_id "abc", amount 2.5, items ["x"], payload 00 01, ts 1.
    let mut seed = vec![6, b'a', b'b', b'c', 2];
    seed.extend(2.5f64.to_le_bytes());
    seed.extend([2, 2, b'x', 0, 4, 0, 1, 2]);
    let mut rng = Rng(0x5eed_0002);
    for _ in 0..iterations() {
        let value = match rng.below(3) {
            0 => rng.bytes(32),
            _ => mutate(&mut rng, &seed),
        };
        let _ = plain.to_json_line(&value);
        let mut wire = vec![0, 0, 0, 0, if rng.below(2) == 0 { 7 } else { 8 }];
        wire.extend(&value);
        let _ = framed.to_json_line(&wire);
    }
}

fn data_type(rng: &mut Rng) -> wit::DataTypeResult {
    match rng.below(9) {
        0 => wit::DataTypeResult::Boolean,
        1 => wit::DataTypeResult::Int32,
        2 => wit::DataTypeResult::Int64,
        3 => wit::DataTypeResult::Float32,
        4 => wit::DataTypeResult::Float64,
        5 => wit::DataTypeResult::Utf8,
        6 => wit::DataTypeResult::Binary,
        7 => wit::DataTypeResult::Timestamp(wit::TimestampTypeResult { unit: wit::TimeUnit::Millisecond, timezone: Some("UTC".into()) }),
        _ => wit::DataTypeResult::ListUtf8,
    }
}

/// Offsets: mostly valid (increasing from 0 within `values`), sometimes not.
fn offsets(rng: &mut Rng, rows: usize, values: usize) -> Vec<u8> {
    let count = if rng.below(4) == 0 { rng.length(rows) / 4 } else { rows + 1 };
    let mut at = 0i32;
    let mut out = Vec::with_capacity(count * 4);
    for i in 0..count {
        let value = match rng.below(12) {
            0 => rng.next() as i32,
            1 => -1,
            _ if i == 0 => 0,
            _ => {
                at = (at + rng.below(4) as i32).min(values as i32);
                at
            }
        };
        out.extend(value.to_le_bytes());
    }
    out
}

fn column(rng: &mut Rng, data_type: &wit::DataTypeResult, rows: usize) -> wit::ColumnResult {
    let validity = (rng.below(3) == 0).then(|| {
        let len = if rng.below(4) == 0 { rng.length(rows) } else { rows.div_ceil(8) };
        (0..len).map(|_| rng.next() as u8).collect()
    });
    let width = match data_type {
        wit::DataTypeResult::Int32 | wit::DataTypeResult::Float32 => 4,
        wit::DataTypeResult::Boolean => 0,
        wit::DataTypeResult::Utf8 | wit::DataTypeResult::Binary | wit::DataTypeResult::ListUtf8 => 0,
        _ => 8,
    };
    let values_len = match data_type {
        wit::DataTypeResult::Boolean => rows.div_ceil(8),
        wit::DataTypeResult::Utf8 | wit::DataTypeResult::Binary => rng.below(64) as usize,
        wit::DataTypeResult::ListUtf8 => 0,
        _ => rows * width,
    };
    let values_len = if rng.below(5) == 0 { rng.length(values_len) } else { values_len };
    let mut values: Vec<u8> = (0..values_len).map(|_| if rng.below(8) == 0 { 0xff } else { b'a' + rng.below(26) as u8 }).collect();
    if rng.below(10) == 0 && !values.is_empty() {
        values[0] = 0xc3; // broken UTF-8
    }
    let (offsets, items) = match data_type {
        wit::DataTypeResult::Utf8 | wit::DataTypeResult::Binary => (offsets(rng, rows, values.len()), None),
        wit::DataTypeResult::ListUtf8 => {
            let item_count = rng.below(16) as usize;
            let list_offsets = offsets(rng, rows, item_count);
            let item_values: Vec<u8> = (0..rng.below(40)).map(|_| b'a' + rng.below(26) as u8).collect();
            let items = (rng.below(8) != 0).then(|| wit::ListItemsResult {
                validity: None,
                offsets: offsets(rng, item_count, item_values.len()),
                values: item_values,
            });
            (list_offsets, items)
        }
        _ => (if rng.below(10) == 0 { rng.bytes(8) } else { Vec::new() }, None),
    };
    wit::ColumnResult { validity, offsets, values, items }
}

#[test]
#[ignore = "fuzzing: run with scripts/fuzz"]
fn guest_batches_are_validated_or_refused_never_trusted() {
    let mut rng = Rng(0x5eed_0003);
    for _ in 0..iterations() {
        let rows = match rng.below(10) {
            0 => u32::MAX as usize,
            1 => 0,
            _ => rng.below(20) as usize,
        };
        let fields = rng.below(4) as usize;
        let mut schema = Vec::new();
        let mut columns = Vec::new();
        for i in 0..fields {
            let data_type = data_type(&mut rng);
            // A u32::MAX-row batch with columns: keep the buffers small (as a
            // guest's memory would), so only the claimed count is huge.
            let buffer_rows = if rows > 1 << 20 { rng.below(20) as usize } else { rows };
            let column = column(&mut rng, &data_type, buffer_rows);
            schema.push(wit::FieldResult { name: format!("c{i}"), data_type, nullable: rng.below(2) == 0 });
            columns.push(column);
        }
        if rng.below(10) == 0 {
            columns.pop();
        }
        let batch = wit::BatchResult { schema, columns, num_rows: rows as u32 };
        let bytes = guest_batch_bytes(&batch);
        match batch_from_guest(batch) {
            Ok(record_batch) => {
                assert_eq!(record_batch.num_rows(), rows);
                for column in record_batch.columns() {
                    assert_eq!(column.len(), rows);
                    column.to_data().validate_full().expect("accepted columns are fully valid");
                }
                assert!(record_batch.get_array_memory_size() as u64 <= bytes + 4096 * (fields as u64 + 1), "no allocation beyond the returned buffers");
            }
            Err(error) => assert!(!error.to_string().is_empty()),
        }
        let selection = rng.bytes(8);
        let rows = rng.below(70) as usize;
        if let Ok(mask) = selection_to_mask(selection.clone(), rows) {
            assert_eq!((mask.len(), selection.len()), (rows, rows.div_ceil(8)));
        }
    }
}
