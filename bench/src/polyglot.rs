//! Languages x operator kinds (issue: polyglot guests): the Rust, C, Go, Python
//! and JavaScript versions of the same operators on the same order batches:
//! per-batch time at 1k and 64k rows, records/s, component size, cold
//! compile time, cached load time and memory per instance, with a native
//! (host Rust, arrow-rs kernels) baseline for the filter and the map.

use crate::report::Table;
use arrow_array::RecordBatch;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use weir::engine::{Engine, EngineConfig, HttpAllowlist, OperatorKind, SandboxLimits};
use weir::operator::Operator;
use weir_tests::guests;

type Error = Box<dyn std::error::Error>;

struct Subject {
    lang: &'static str,
    name: &'static str,
    path: PathBuf,
    config: &'static str,
}

fn subjects(quick: bool) -> Vec<Subject> {
    let polyglot = weir_tests::repo_root().join("target/guests/polyglot");
    let count = r#"{"key": "customer_id", "value": "total_amount"}"#;
    let mut list = vec![
        Subject { lang: "Rust", name: "high-value-orders", path: guests::HIGH_VALUE_ORDERS.into(), config: "{}" },
        Subject { lang: "Rust", name: "enrich-order", path: guests::ENRICH_ORDER.into(), config: "{}" },
        Subject { lang: "Rust", name: "count-by-key", path: guests::COUNT_BY_KEY.into(), config: count },
    ];
    if !quick {
        for (lang, prefix) in [("C", "c"), ("Go", "go"), ("Python", "python"), ("JS", "js")] {
            for (name, config) in [("high-value-orders", "{}"), ("enrich-order", "{}"), ("count-by-key", count)] {
                let path = polyglot.join(format!("{prefix}-{name}.wasm"));
                if path.exists() {
                    list.push(Subject { lang, name, path, config });
                }
            }
        }
    }
    list
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// Median time of one call of `f` over `runs` runs (after a warm-up).
fn per_call(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn run_op(op: &mut Operator, batch: &RecordBatch) {
    match op.kind() {
        OperatorKind::Filter => drop(op.filter(batch).expect("filter")),
        OperatorKind::Map => drop(op.map(batch).expect("map")),
        OperatorKind::Aggregate => drop(op.aggregate(batch, None).unwrap_or_else(|e| panic!("{}: {e}", op.plugin().name()))),
        OperatorKind::Sink => unreachable!("sinks are not benchmarked here"),
    }
}

/// Runs the suite; returns the markdown.
pub fn run(quick: bool) -> Result<String, Error> {
    let small = crate::orders::order_batch(0, 1_024, 7);
    let large = crate::orders::order_batch(0, 65_536, 7);
    let runs = if quick { 3 } else { 7 };
    let cache = tempfile::tempdir()?;
    // 64k-row batches through an interpreter's per-row objects need more than
    // the default 64 MiB per instance.
    let limits = SandboxLimits { memory_limit_bytes: 512 << 20, ..SandboxLimits::default() };
    let cold_engine = Engine::new(EngineConfig { limits: limits.clone(), cache_dir: None })?;
    let warm_engine = Engine::new(EngineConfig { limits: limits.clone(), cache_dir: Some(cache.path().to_owned()) })?;
    let mut table = Table::new(
        "Languages x operators, order batches (same engine, 1 s deadline, 512 MiB memory limit)",
        &["operator", "language", "1k rows / batch", "64k rows / batch", "records/s (64k)", "vs native", "size", "cold compile", "cached load", "memory / instance"],
    );
    let native_filter = per_call(runs, || drop(crate::engine::native_filter(&large)));
    let native_map = per_call(runs, || drop(crate::engine::native_map(&large)));
    for subject in subjects(quick) {
        let bytes = std::fs::read(&subject.path)?;
        let started = Instant::now();
        let plugin = cold_engine.load(subject.name, &bytes)?;
        let cold = started.elapsed();
        warm_engine.load(subject.name, &bytes)?; // fills the cache
        let reload = Engine::new(EngineConfig { limits: limits.clone(), cache_dir: Some(cache.path().to_owned()) })?;
        let started = Instant::now();
        reload.load(subject.name, &bytes)?;
        let cached = started.elapsed();

        let mut op = Operator::new(plugin.clone(), subject.config, HttpAllowlist::default())?;
        let t_small = per_call(runs, || run_op(&mut op, &small));
        let t_large = per_call(runs.min(5), || run_op(&mut op, &large));
        let before = rss_kib();
        let instances: Vec<Operator> =
            (0..10).map(|_| Operator::new(plugin.clone(), subject.config, HttpAllowlist::default())).collect::<Result<_, _>>()?;
        let memory = rss_kib().saturating_sub(before) / instances.len() as u64;
        drop(instances);
        let native = match plugin.kind() {
            OperatorKind::Filter => Some(native_filter),
            OperatorKind::Map => Some(native_map),
            _ => None,
        };
        table.row(vec![
            subject.name.into(),
            subject.lang.into(),
            format!("{:.3} ms", t_small.as_secs_f64() * 1e3),
            format!("{:.2} ms", t_large.as_secs_f64() * 1e3),
            crate::report::rate(large.num_rows(), t_large),
            native.map_or("-".into(), |n| crate::report::ratio(t_large, n)),
            format!("{:.1} MiB", bytes.len() as f64 / (1024.0 * 1024.0)),
            format!("{:.0} ms", cold.as_secs_f64() * 1e3),
            format!("{:.1} ms", cached.as_secs_f64() * 1e3),
            format!("{} KiB", memory),
        ]);
    }
    let heading = format!("Polyglot operators{}", if quick { " (quick mode: Rust only)" } else { "" });
    let footer = format!(
        "Native baseline (host Rust, arrow-rs kernels) on the 64k-row batch: filter {:.2} ms, map {:.2} ms.\n",
        native_filter.as_secs_f64() * 1e3,
        native_map.as_secs_f64() * 1e3
    );
    Ok(crate::report::publish("polyglot", &heading, std::slice::from_ref(&table), serde_json::json!({"quick": quick}), &footer)?)
}

#[cfg(test)]
mod tests {
    /// The suite in quick mode (Rust components only; no timing assertions).
    #[test]
    fn quick_polyglot_suite_runs() {
        super::run(true).unwrap();
    }
}
