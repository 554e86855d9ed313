//! Informational timings (ignored tests): per-batch cost of each
//! implementation, checkpoint cost of the keyed C and Go count-by-key.

use super::*;

/// Per-batch cost of each implementation (8192-row batches). Informational:
/// `cargo test -p weir-tests --test polyglot -- --ignored --nocapture`.
#[test]
#[ignore]
fn per_batch_timings() {
    let batch = orders(8192);
    let mut rows = Vec::new();
    for (name, rust_path, config) in [
        ("high-value-orders", guests::HIGH_VALUE_ORDERS, "{}"),
        ("enrich-order", guests::ENRICH_ORDER, "{}"),
        ("count-by-key", guests::COUNT_BY_KEY, "{}"),
    ] {
        let mut ops = vec![("rust".to_string(), rust(rust_path, config))];
        for lang in LANGS {
            ops.push((lang.to_string(), guest(lang, name, config)));
        }
        for (lang, mut op) in ops {
            let run = |op: &mut Operator| match name {
                "high-value-orders" => drop(op.filter(&batch).unwrap()),
                "enrich-order" => drop(op.map(&batch).unwrap()),
                _ => drop(op.aggregate(&batch, None).unwrap()),
            };
            run(&mut op);
            let n = 20;
            let start = Instant::now();
            for _ in 0..n {
                run(&mut op);
            }
            rows.push(format!("{name:<18} {lang:<7} {:>9.3} ms/batch", start.elapsed().as_secs_f64() * 1e3 / n as f64));
        }
    }
    println!("8192-row batches:\n{}", rows.join("\n"));
}

/// Checkpoint cost of the keyed C and Go count-by-key: the whole snapshot
/// against `snapshot-changes` after a batch touched 1% or 10% of 20,000
/// keys (Rust: whole snapshot only). Informational:
/// `cargo test -p weir-tests --test polyglot keyed_checkpoint_timings -- --ignored --nocapture`.
#[test]
#[ignore]
fn keyed_checkpoint_timings() {
    let keys = 20_000i64;
    let batch = |ids: Vec<i64>| {
        let n = ids.len();
        RecordBatch::try_from_iter([
            ("k", Arc::new(Int64Array::from(ids)) as ArrayRef),
            ("v", Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64)))),
        ])
        .unwrap()
    };
    let config = r#"{"key": "k", "value": "v"}"#;
    let mut rows = Vec::new();
    let mut ops = vec![("rust", rust(guests::COUNT_BY_KEY, config))];
    ops.push(("c", open(&c_component("count-by-key"), config)));
    ops.push(("go", open(&go_component("count-by-key"), config)));
    for (lang, mut op) in ops {
        op.aggregate(&batch((0..keys).collect()), None).unwrap();
        let n = 20;
        let start = Instant::now();
        let mut bytes = 0;
        for _ in 0..n {
            bytes = op.snapshot().unwrap().len();
        }
        rows.push(format!("{lang:<5} whole snapshot      {:>8.3} ms {bytes:>8} bytes", start.elapsed().as_secs_f64() * 1e3 / n as f64));
        if !op.keyed_state() {
            continue;
        }
        op.snapshot_entries().unwrap();
        for touched in [keys / 100, keys / 10] {
            let (mut elapsed, mut bytes) = (Duration::ZERO, 0);
            for round in 0..n as i64 {
                op.aggregate(&batch((0..touched).map(|i| (i * 7919 + round) % keys).collect()), None).unwrap();
                let start = Instant::now();
                let changes = op.snapshot_changes().unwrap();
                elapsed += start.elapsed();
                bytes = changes.iter().map(|e| e.key.len() + e.value.as_ref().map_or(0, Vec::len)).sum();
            }
            rows.push(format!("{lang:<5} changes, {:>5} keys {:>8.3} ms {bytes:>8} bytes", touched, elapsed.as_secs_f64() * 1e3 / n as f64));
        }
    }
    println!("checkpoints of count-by-key over {keys} keys:\n{}", rows.join("\n"));
}
