//! `cargo run --release -p weir-bench --example per_call [-- RECORDS_PER_CALL CALLS]`:
//! where the time of one weir filter call goes (decode, chain, output), for
//! profiling the per-call overhead (run it under `perf record`).
//! `PER_CALL_GUEST=path.wasm` runs another build of the filter (for example
//! one built before contract 0.1.2, which takes no packed batches);
//! `PER_CALL_PACKED_MAX=<bytes>` sets `packed_batch_max_bytes` (0: every
//! batch column by column); `PER_CALL_MEMORY_MIB` sets the guest memory limit.

use std::time::Instant;

use weir::config::{DecodeScope, FormatConfig};
use weir::engine::{Engine, EngineConfig, HttpAllowlist};
use weir::operator::{Chain, Operator};
use weir::pipeline::decode::RecordDecoder;
use weir_bench::workload;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().collect();
    let per_call: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let calls: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let bytes = workload::order_lines(per_call.max(1) * 64, 0);
    let lines = workload::lines(&bytes);
    let dir = tempfile::tempdir()?;
    let schema = dir.path().join("orders.schema.json");
    std::fs::write(&schema, workload::schema_json(0))?;
    let mut config = EngineConfig::default();
    if let Some(mib) = std::env::var("PER_CALL_MEMORY_MIB").ok().and_then(|m| m.parse::<u64>().ok()) {
        config.limits.memory_limit_bytes = mib << 20;
    }
    if let Some(bytes) = std::env::var("PER_CALL_PACKED_MAX").ok().and_then(|b| b.parse().ok()) {
        config.limits.packed_batch_max_bytes = bytes;
    }
    let engine = Engine::new(config)?;
    let guest = std::env::var("PER_CALL_GUEST").unwrap_or_else(|_| weir_tests::guests::HIGH_VALUE_ORDERS.to_owned());
    let guest = std::path::Path::new(&guest);
    let operator = Operator::new(engine.load_file(guest)?, r#"{"threshold": 1000.0}"#, HttpAllowlist::default())?;
    let mut operators = vec![operator];
    let format = FormatConfig::Json { schema, decode: DecodeScope::Schema };
    let (RecordDecoder::Json(decoder), _emit) = RecordDecoder::for_chain(&format, Some(&weir_bench::contenders::json_output()), &mut operators, false, &[])? else {
        return Err("not a JSON decoder".into());
    };
    let mut chain = Chain::new(operators);
    let chunks: Vec<&[&[u8]]> = lines.chunks(per_call).collect();
    let decoded: Vec<_> = chunks.iter().map(|c| decoder.decode_lines(c).map(|d| d.batch)).collect::<Result<_, _>>()?;
    let (mut decode, mut run) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for round in 0..2 {
        let started = Instant::now();
        for i in 0..if std::env::var_os("CHAIN_ONLY").is_some() { 0 } else { calls } {
            std::hint::black_box(decoder.decode_lines(chunks[i % chunks.len()])?);
        }
        decode = started.elapsed();
        let started = Instant::now();
        for i in 0..if std::env::var_os("DECODE_ONLY").is_some() { 0 } else { calls } {
            std::hint::black_box(chain.run(decoded[i % decoded.len()].clone(), None)?);
        }
        run = started.elapsed();
        if round == 0 {
            eprintln!("warm-up done");
        }
    }
    if let Some(threads) = std::env::var("THREADS").ok().and_then(|t| t.parse::<usize>().ok()) {
        // Each thread: its own decoder and chain, the same calls.
        let run = |threads: usize| -> std::time::Duration {
            let barrier = std::sync::Barrier::new(threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| {
                        let barrier = &barrier;
                        let chunks = &chunks;
                        let engine = &engine;
                        let decoder = &decoder;
                        let guest = &guest;
                        scope.spawn(move || {
                            let operator = Operator::new(engine.load_file(guest).unwrap(), r#"{"threshold": 1000.0}"#, HttpAllowlist::default()).unwrap();
                            let mut chain = Chain::new(vec![operator]);
                            barrier.wait();
                            let started = Instant::now();
                            for i in 0..calls {
                                let decoded = decoder.decode_lines(chunks[i % chunks.len()]).unwrap();
                                std::hint::black_box(chain.run(decoded.batch, None).unwrap());
                            }
                            started.elapsed()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).max().unwrap()
            })
        };
        let one = run(1);
        let many = run(threads);
        let rate = |d: std::time::Duration, t: usize| (calls * per_call * t) as f64 / d.as_secs_f64();
        println!("decode+chain: 1 thread {:.0} rec/s, {threads} threads {:.0} rec/s, speed-up {:.2}x", rate(one, 1), rate(many, threads), rate(many, threads) / rate(one, 1));
    }
    let us = |d: std::time::Duration| d.as_secs_f64() * 1e6 / calls as f64;
    println!("{per_call} records per call, {calls} calls: decode {:.2} µs/call, chain.run {:.2} µs/call", us(decode), us(run));
    Ok(())
}
