//! Checkpoint cost by the fraction of keys touched between two checkpoints
//! (issue 20), at the operator level: the fraud-detector guest holds the
//! windows of `users` users (40 minutes of payments, about 44 open windows
//! each, no watermark), then a batch pays once for a fraction of them; the
//! checkpoint is timed as the guest call plus the host's record encoding
//! (whole: `snapshot`; keyed: `snapshot-changes` plus the entry records of
//! [`weir::pipeline::changelog`]), without Kafka. Restore is timed into a
//! fresh instance (`restore` vs `restore-entries`).

use crate::report::Table;
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::engine::{Engine, EngineConfig, HttpAllowlist, SandboxLimits};
use weir::operator::Operator;
use weir::pipeline::changelog::KeyedLog;
use weir_tests::guests;

type Error = Box<dyn std::error::Error>;

const START_MS: i64 = 1_700_000_000_000;

/// One payment per `(user, minute)`, as the fraud detector reads them.
fn payments(rows: &[(u64, i64)]) -> RecordBatch {
    let text = |f: &dyn Fn(u64, i64) -> String| Arc::new(StringArray::from_iter_values(rows.iter().map(|&(u, t)| f(u, t)))) as ArrayRef;
    RecordBatch::try_from_iter([
        ("user_id", text(&|u, _| format!("user-{u}"))),
        ("timestamp", Arc::new(Int64Array::from_iter_values(rows.iter().map(|&(_, t)| t))) as ArrayRef),
        ("amount", Arc::new(Float64Array::from_iter_values(rows.iter().map(|&(u, t)| ((u * 7 + t as u64 / 1000) % 400) as f64))) as ArrayRef),
        ("merchant_id", text(&|u, t| format!("m-{}", (u + t as u64 / 120_000) % 4))),
        ("location", text(&|u, _| format!("l-{}", u % 3))),
        ("device_id", text(&|u, _| format!("d-{}", u % 2))),
    ])
    .expect("payments batch")
}

fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let started = Instant::now();
    let out = f();
    (out, started.elapsed())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1 << 20) as f64)
}

/// The table: checkpoint time and bytes, whole vs keyed, by fraction touched.
pub fn touched(users: u64) -> Result<Table, Error> {
    let limits = SandboxLimits { memory_limit_bytes: 1 << 30, call_deadline_ms: 30_000, ..SandboxLimits::default() };
    let engine = Engine::new(EngineConfig { limits, ..EngineConfig::default() })?;
    let plugin = engine.load_file(std::path::Path::new(guests::FRAUD_DETECTOR))?;
    let mut whole = Operator::new(plugin.clone(), r#"{"keyed": false}"#, HttpAllowlist::default())?;
    let mut keyed = Operator::new(plugin, "{}", HttpAllowlist::default())?;
    // 40 minutes: every user pays every 2 minutes.
    let history: Vec<(u64, i64)> = (0..20).flat_map(|m| (0..users).map(move |u| (u, START_MS + m * 120_000 + (u as i64 % 60) * 1000))).collect();
    for chunk in history.chunks(20_000) {
        let batch = payments(chunk);
        whole.aggregate(&batch, None)?;
        keyed.aggregate(&batch, None)?;
    }
    let mut log = KeyedLog::default();
    let baseline = log.plan(0, "fraud", 1, keyed.snapshot_entries()?, true);
    log.apply(baseline);
    let mut table = Table::new(
        &format!("Checkpoint cost by keys touched ({users} users with 40 min of payments; guest call + record encoding, no Kafka)"),
        &["users paying since the last checkpoint", "whole: time", "whole: bytes", "keyed: time", "keyed: entries written", "keyed: bytes", "keyed vs whole (time)"],
    );
    for (n, fraction) in [0.01, 0.1, 0.5, 1.0].into_iter().enumerate() {
        let paying = ((users as f64 * fraction) as u64).max(1);
        let batch = payments(&(0..paying).map(|u| (u, START_MS + 40 * 60_000 + n as i64 * 1000)).collect::<Vec<_>>());
        whole.aggregate(&batch, None)?;
        keyed.aggregate(&batch, None)?;
        let (snapshot, whole_time) = timed(|| whole.snapshot());
        let snapshot = snapshot?;
        let (write, keyed_time) = timed(|| keyed.snapshot_changes().map(|changes| log.plan(0, "fraud", n as u64 + 2, changes, false)));
        let write = write?;
        let (changed, bytes) = (write.changed, write.bytes());
        log.apply(write);
        table.row(vec![
            format!("{:.0}% ({paying})", fraction * 100.0),
            ms(whole_time),
            mib(snapshot.len() as u64),
            ms(keyed_time),
            changed.to_string(),
            mib(bytes),
            format!("{:.2}x", keyed_time.as_secs_f64() / whole_time.as_secs_f64()),
        ]);
    }
    // Restore into fresh instances.
    let snapshot = whole.snapshot()?;
    let mut fresh = whole.fresh()?;
    let (restored, whole_restore) = timed(|| fresh.restore(&snapshot));
    restored?;
    let mut fresh = keyed.fresh()?;
    let entries = log.entries();
    let (restored, keyed_restore) = timed(|| fresh.restore_entries(&entries));
    restored?;
    table.row(vec!["restore into a fresh instance".into(), ms(whole_restore), mib(snapshot.len() as u64), ms(keyed_restore), log.len().to_string(), mib(log.bytes()), format!("{:.2}x", keyed_restore.as_secs_f64() / whole_restore.as_secs_f64())]);
    Ok(table)
}
