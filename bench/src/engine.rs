//! Engine benchmarks for the operator contract (issue: operator contract and
//! engine): Wasm vs native filter and map, the Arrow-buffer layout vs Arrow
//! IPC bytes, per-batch crossing cost, compile vs cached load, guest size,
//! memory per instance, and the cost of the epoch deadline.

use crate::orders::order_batches;
use crate::report::{Table, median, micros, rate, ratio};
use arrow_array::{Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, RecordBatch};
use arrow_buffer::{BooleanBuffer, Buffer};
use arrow_schema::{DataType, Field, Schema};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::engine::{Engine, EngineConfig, HttpAllowlist, Instance, Plugin, SandboxLimits};
use weir::operator::Operator;
use weir_tests::guests;

type Error = Box<dyn std::error::Error>;

/// Runs the suite; `quick` uses small inputs (CI keeps the code from rotting).
pub fn run(quick: bool) -> Result<(), Error> {
    let total = if quick { 70_000 } else { 1_000_000 };
    let runs = if quick { 1 } else { 5 };
    let mut tables = Vec::new();
    let engine = engine(SandboxLimits::default())?;
    tables.push(filter_and_map(&engine, total, runs)?);
    tables.push(crossing_cost(&engine, quick, runs)?);
    tables.push(layout_vs_ipc(&engine, total, runs)?);
    tables.push(epoch_cost(total, runs)?);
    tables.push(load_times()?);
    tables.push(memory_per_instance(&engine, if quick { 50 } else { 1000 })?);

    let heading = format!("Engine benchmarks ({total} rows of the order schema{})", if quick { ", quick mode" } else { "" });
    crate::report::publish("engine", &heading, &tables, serde_json::json!({"total_rows": total, "quick": quick}), "")?;
    Ok(())
}

fn engine(limits: SandboxLimits) -> Result<Engine, Error> {
    Ok(Engine::new(EngineConfig { limits, cache_dir: None })?)
}

fn load(engine: &Engine, path: &str) -> Result<Plugin, Error> {
    Ok(engine.load_file(std::path::Path::new(path))?)
}

fn instance(engine: &Engine, path: &str, config: &str) -> Result<Instance, Error> {
    Ok(load(engine, path)?.instantiate(config, &HttpAllowlist::default())?)
}

fn amounts(batch: &RecordBatch) -> &Float64Array {
    batch.column_by_name("total_amount").unwrap().as_any().downcast_ref().unwrap()
}

fn native_predicate(batch: &RecordBatch) -> BooleanArray {
    let mask = crate::contenders::greater_than(amounts(batch), 1000.0);
    // Nulls are dropped, as the guest does.
    arrow_array::BooleanArray::new(mask.values() & &null_mask(&mask), None)
}

fn null_mask(array: &BooleanArray) -> BooleanBuffer {
    match array.nulls() {
        Some(nulls) => nulls.inner().clone(),
        None => BooleanBuffer::new_set(array.len()),
    }
}

pub(crate) fn native_filter(batch: &RecordBatch) -> RecordBatch {
    arrow_select::filter::filter_record_batch(batch, &native_predicate(batch)).unwrap()
}

/// Native equivalent of enrich-order: two derived columns, negatives rejected.
pub(crate) fn native_map(batch: &RecordBatch) -> RecordBatch {
    let amount = amounts(batch);
    let bucket: Int64Array = amount.unary(|v| (v / 100.0).floor() as i64);
    let tax: Float64Array = amount.unary(|v| v * 0.2);
    let rejected = amount.values().iter().any(|v| *v < 0.0);
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new("amount_bucket", DataType::Int64, true)));
    fields.push(Arc::new(Field::new("tax_amount", DataType::Float64, true)));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(bucket));
    columns.push(Arc::new(tax));
    let out = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    if rejected {
        let keep = BooleanArray::from_iter(amount.iter().map(|v| Some(!v.is_some_and(|v| v < 0.0))));
        arrow_select::filter::filter_record_batch(&out, &keep).unwrap()
    } else {
        out
    }
}

fn filter_and_map(engine: &Engine, total: usize, runs: usize) -> Result<Table, Error> {
    let batches = order_batches(total, 65_536);
    let mut predicate = instance(engine, guests::HIGH_VALUE_ORDERS, "{}")?;
    let mut filter = Operator::new(load(engine, guests::HIGH_VALUE_ORDERS)?, "{}", HttpAllowlist::default())?;
    let mut map = Operator::new(load(engine, guests::ENRICH_ORDER)?, "{}", HttpAllowlist::default())?;
    let mut identity = Operator::new(load(engine, guests::IDENTITY)?, "{}", HttpAllowlist::default())?;

    // Same answers first: the comparison is only meaningful if they agree.
    for batch in &batches {
        let wasm = filter.filter(batch)?.batch;
        assert_eq!(wasm, native_filter(batch), "wasm and native filters disagree");
        assert_eq!(map.map(batch)?.batch, native_map(batch), "wasm and native maps disagree");
    }

    let native_pred = median(runs, || batches.iter().map(|b| native_predicate(b).len()).sum::<usize>());
    let wasm_pred = median(runs, || {
        batches.iter().map(|b| predicate.evaluate(&predicate.prepare(b).unwrap()).unwrap().len()).sum::<usize>()
    });
    let native_filt = median(runs, || batches.iter().map(|b| native_filter(b).num_rows()).sum::<usize>());
    let wasm_filt = median(runs, || batches.iter().map(|b| filter.filter(b).unwrap().batch.num_rows()).sum::<usize>());
    let native_m = median(runs, || batches.iter().map(|b| native_map(b).num_rows()).sum::<usize>());
    let wasm_m = median(runs, || batches.iter().map(|b| map.map(b).unwrap().batch.num_rows()).sum::<usize>());
    let wasm_id = median(runs, || batches.iter().map(|b| identity.map(b).unwrap().batch.num_rows()).sum::<usize>());

    let mut table = Table::new(
        "Filter and map, 64k-row batches: Wasm (Rust guest) vs native Rust (arrow kernels)",
        &["workload", "native", "wasm", "wasm / native"],
    );
    let mut row = |name: &str, native: Duration, wasm: Duration| {
        table.row(vec![
            name.into(),
            format!("{} ({})", micros(native / batches.len() as u32), rate(total, native)),
            format!("{} ({})", micros(wasm / batches.len() as u32), rate(total, wasm)),
            ratio(wasm, native),
        ]);
    };
    row("predicate call `total_amount > 1000` (mask only)", native_pred, wasm_pred);
    row("filter (predicate + filter kernel, all 8 columns out)", native_filt, wasm_filt);
    row("map enrich-order (2 derived columns, rejects negatives)", native_m, wasm_m);
    row("map identity, all 8 columns cross both ways (no `reads`)", native_m, wasm_id);
    Ok(table)
}

fn crossing_cost(engine: &Engine, quick: bool, runs: usize) -> Result<Table, Error> {
    let mut predicate = instance(engine, guests::HIGH_VALUE_ORDERS, "{}")?;
    let mut table = Table::new(
        "Per-batch crossing cost: filter predicate call by batch size",
        &["rows/batch", "native per batch", "wasm per batch", "wasm - native", "wasm per row", "wasm / native"],
    );
    for size in [1usize, 64, 1024, 65_536] {
        let calls = if quick { 200 } else { (2_000_000 / size).clamp(20, 20_000) };
        let batches = order_batches(size * calls, size);
        let native = median(runs, || batches.iter().map(|b| native_predicate(b).len()).sum::<usize>());
        let wasm = median(runs, || {
            batches.iter().map(|b| predicate.evaluate(&predicate.prepare(b).unwrap()).unwrap().len()).sum::<usize>()
        });
        let n = batches.len() as u32;
        table.row(vec![
            size.to_string(),
            micros(native / n),
            micros(wasm / n),
            micros((wasm.saturating_sub(native)) / n),
            format!("{:.1} ns", wasm.as_secs_f64() * 1e9 / (size * calls) as f64),
            ratio(wasm, native),
        ]);
    }
    Ok(table)
}

fn ipc_bytes(batch: &RecordBatch) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema()).unwrap();
    writer.write(batch).unwrap();
    writer.finish().unwrap();
    drop(writer);
    out
}

fn ipc_call(op: &mut Operator, batch: &RecordBatch) -> Vec<u8> {
    let projected = batch.project(&[batch.schema().index_of("total_amount").unwrap()]).unwrap();
    let bytes = ipc_bytes(&projected);
    let input = RecordBatch::try_from_iter([("ipc", Arc::new(BinaryArray::from(vec![bytes.as_slice()])) as ArrayRef)]).unwrap();
    let out = op.map(&input).unwrap().batch;
    let column = out.column(0).as_any().downcast_ref::<BinaryArray>().unwrap();
    column.value(0).to_vec()
}

fn ipc_filter(op: &mut Operator, batch: &RecordBatch) -> RecordBatch {
    let selection = ipc_call(op, batch);
    let mask = BooleanArray::new(BooleanBuffer::new(Buffer::from_vec(selection), 0, batch.num_rows()), None);
    arrow_select::filter::filter_record_batch(batch, &mask).unwrap()
}

fn ipc_map(op: &mut Operator, batch: &RecordBatch) -> RecordBatch {
    let bytes = ipc_call(op, batch);
    let mut reader = arrow_ipc::reader::StreamReader::try_new(bytes.as_slice(), None).unwrap();
    let derived = reader.next().unwrap().unwrap();
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    fields.extend(derived.schema().fields().iter().cloned());
    let mut columns = batch.columns().to_vec();
    columns.extend(derived.columns().iter().cloned());
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn layout_vs_ipc(engine: &Engine, total: usize, runs: usize) -> Result<Table, Error> {
    let batches = order_batches(total, 65_536);
    let mut filter = Operator::new(load(engine, guests::HIGH_VALUE_ORDERS)?, "{}", HttpAllowlist::default())?;
    let mut map = Operator::new(load(engine, guests::ENRICH_ORDER)?, "{}", HttpAllowlist::default())?;
    let mut ipc_filter_op = Operator::new(load(engine, guests::IPC_BENCH)?, r#"{"op":"filter"}"#, HttpAllowlist::default())?;
    let mut ipc_map_op = Operator::new(load(engine, guests::IPC_BENCH)?, r#"{"op":"map"}"#, HttpAllowlist::default())?;
    for batch in &batches {
        assert_eq!(ipc_filter(&mut ipc_filter_op, batch), native_filter(batch), "IPC filter disagrees");
    }
    let layout_f = median(runs, || batches.iter().map(|b| filter.filter(b).unwrap().batch.num_rows()).sum::<usize>());
    let ipc_f = median(runs, || batches.iter().map(|b| ipc_filter(&mut ipc_filter_op, b).num_rows()).sum::<usize>());
    let layout_m = median(runs, || batches.iter().map(|b| map.map(b).unwrap().batch.num_rows()).sum::<usize>());
    let ipc_m = median(runs, || batches.iter().map(|b| ipc_map(&mut ipc_map_op, b).num_rows()).sum::<usize>());
    let size = |p: &str| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut table = Table::new(
        "Boundary layout: Arrow buffers as list<u8> (weir) vs Arrow IPC bytes (arrow-rs in the guest), 64k-row batches",
        &["workload", "weir layout", "Arrow IPC", "IPC / layout", "guest size layout / IPC"],
    );
    let sizes = format!("{} KiB / {} KiB", size(guests::HIGH_VALUE_ORDERS) / 1024, size(guests::IPC_BENCH) / 1024);
    table.row(vec!["filter `total_amount > 1000`".into(), rate(total, layout_f), rate(total, ipc_f), ratio(ipc_f, layout_f), sizes]);
    let sizes = format!("{} KiB / {} KiB", size(guests::ENRICH_ORDER) / 1024, size(guests::IPC_BENCH) / 1024);
    table.row(vec!["map (2 derived columns)".into(), rate(total, layout_m), rate(total, ipc_m), ratio(ipc_m, layout_m), sizes]);
    Ok(table)
}

fn epoch_cost(total: usize, runs: usize) -> Result<Table, Error> {
    let batches = order_batches(total, 65_536);
    let with = engine(SandboxLimits::default())?;
    let without = engine(SandboxLimits { call_deadline_ms: 0, ..SandboxLimits::default() })?;
    let mut table = Table::new(
        "Cost of the per-call deadline (epoch interruption), 64k-row batches",
        &["workload", "no deadline", "1 s deadline", "deadline / none"],
    );
    for (name, path) in [("filter high-value-orders", guests::HIGH_VALUE_ORDERS), ("map enrich-order", guests::ENRICH_ORDER)] {
        let mut a = Operator::new(load(&with, path)?, "{}", HttpAllowlist::default())?;
        let mut b = Operator::new(load(&without, path)?, "{}", HttpAllowlist::default())?;
        let step = |op: &mut Operator, batch: &RecordBatch| {
            if name.starts_with("filter") { op.filter(batch).unwrap().batch.num_rows() } else { op.map(batch).unwrap().batch.num_rows() }
        };
        // Interleave the two so machine noise hits both alike.
        let mut t_with = Vec::new();
        let mut t_without = Vec::new();
        for _ in 0..runs.max(3) {
            t_without.push(median(1, || batches.iter().map(|x| step(&mut b, x)).sum::<usize>()));
            t_with.push(median(1, || batches.iter().map(|x| step(&mut a, x)).sum::<usize>()));
        }
        t_with.sort();
        t_without.sort();
        let (w, wo) = (t_with[t_with.len() / 2], t_without[t_without.len() / 2]);
        table.row(vec![name.into(), rate(total, wo), rate(total, w), ratio(w, wo)]);
    }
    Ok(table)
}

fn load_times() -> Result<Table, Error> {
    let mut table = Table::new(
        "Load time: cold compile (Cranelift) vs compiled-artifact cache hit, and guest size",
        &["guest", "size", "cold compile", "cache hit", "speed-up"],
    );
    for path in [
        guests::HIGH_VALUE_ORDERS,
        guests::ENRICH_ORDER,
        guests::COUNT_BY_KEY,
        guests::WEBHOOK_ALERT,
        guests::IDENTITY,
        guests::IPC_BENCH,
    ] {
        let bytes = std::fs::read(path)?;
        let dir = tempfile::tempdir()?;
        let config = EngineConfig { cache_dir: Some(dir.path().to_owned()), ..EngineConfig::default() };
        let cold_engine = Engine::new(config.clone())?;
        let started = Instant::now();
        cold_engine.load("bench", &bytes)?;
        let cold = started.elapsed();
        let warm_engine = Engine::new(config)?;
        let warm = median(5, || warm_engine.load("bench", &bytes).unwrap());
        let name = std::path::Path::new(path).file_stem().unwrap().to_string_lossy().into_owned();
        table.row(vec![name, format!("{} KiB", bytes.len() / 1024), micros(cold), micros(warm), ratio(cold, warm)]);
    }
    Ok(table)
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// RSS and linear memory per idle instance, instance creation time.
pub(crate) fn memory_per_instance(engine: &Engine, count: usize) -> Result<Table, Error> {
    let mut table = Table::new(
        "Memory per idle instance (after init)",
        &["guest", "instances", "RSS per instance", "linear memory per instance", "instance creation"],
    );
    for path in [guests::HIGH_VALUE_ORDERS, guests::ENRICH_ORDER, guests::IDENTITY] {
        let plugin = load(engine, path)?;
        let before = rss_bytes();
        let started = Instant::now();
        let instances: Vec<Instance> = (0..count).map(|_| plugin.instantiate("{}", &HttpAllowlist::default()).unwrap()).collect();
        let creation = started.elapsed() / count as u32;
        let after = rss_bytes();
        let linear = instances.iter().map(|i| i.peak_memory_bytes()).max().unwrap_or(0);
        let name = std::path::Path::new(path).file_stem().unwrap().to_string_lossy().into_owned();
        table.row(vec![
            name,
            count.to_string(),
            format!("{:.0} KiB", (after.saturating_sub(before)) as f64 / count as f64 / 1024.0),
            format!("{} KiB", linear / 1024),
            micros(creation),
        ]);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    /// The suite in quick mode: keeps it from rotting (no timing assertions).
    #[test]
    fn quick_suite_runs() {
        super::run(true).unwrap();
    }
}
