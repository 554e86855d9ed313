//! Keyed (incremental) state of the fraud-detector ports (contract 0.1.1,
//! `keyed-aggregate-operator`): one entry per user, only the changed users.

use super::*;

/// A keyed-state call's entries as (key text, whether a value is present).
fn entry_keys(entries: &[StateChange]) -> BTreeSet<(String, bool)> {
    entries.iter().map(|e| (String::from_utf8(e.key.clone()).unwrap(), e.value.is_some())).collect()
}

/// What the host keeps of a keyed operator: entries, then the changes after
/// them (a removed key is dropped).
fn apply(stored: &mut BTreeMap<Vec<u8>, Vec<u8>>, changes: Vec<StateChange>) {
    for StateChange { key, value } in changes {
        match value {
            Some(value) => stored.insert(key, value),
            None => stored.remove(&key),
        };
    }
}

/// A fresh instance of `make()` restored from `stored` with `restore-entries`.
fn restored(mut op: Operator, stored: &BTreeMap<Vec<u8>, Vec<u8>>, context: &str) -> Operator {
    let entries: Vec<(&[u8], &[u8])> = stored.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    op.restore_entries(&entries).unwrap_or_else(|e| panic!("{context}: restore-entries: {e}"));
    assert!(op.snapshot_changes().unwrap().is_empty(), "{context}: restore-entries starts change tracking afresh");
    op
}

/// The users with a row the detector counts (key and time present), as JSON keys.
fn users_with_rows(chunk: &RecordBatch) -> BTreeSet<String> {
    use arrow_array::cast::AsArray;
    let (users, times) = (chunk.column_by_name("user_id").unwrap().as_string::<i32>(), chunk.column_by_name("timestamp").unwrap());
    (0..chunk.num_rows()).filter(|&i| users.is_valid(i) && times.is_valid(i)).map(|i| serde_json::to_string(users.value(i)).unwrap()).collect()
}

#[test]
fn fraud_detector_ports_checkpoint_only_the_changed_users_and_restore_from_their_entries() {
    let data = transactions(600);
    let config = r#"{"emit": "all"}"#;
    let mut want = rust(guests::FRAUD_DETECTOR, config);
    assert!(want.keyed_state(), "the Rust fraud detector is keyed");
    let mut ops: Vec<(&str, Operator)> = LANGS.iter().map(|l| (*l, guest(l, "fraud-detector", config))).collect();
    for (lang, op) in &mut ops {
        assert!(op.keyed_state(), "{lang}: the fraud detector exports weir:operator/keyed-state");
        assert!(op.snapshot_entries().unwrap().is_empty(), "{lang}: no state yet");
    }
    let mut stored: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = vec![BTreeMap::new(); ops.len()];
    // Instances restored mid-stream, fed the rest: (label, instance).
    let mut resumed: Vec<(String, Operator)> = Vec::new();
    let times = data.column_by_name("timestamp").unwrap().as_any().downcast_ref::<TimestampMillisecondArray>().unwrap().clone();
    let (step, mut max_seen) = (90, i64::MIN);
    let mut starts: Vec<usize> = (0..data.num_rows()).step_by(step).collect();
    starts.push(data.num_rows()); // a last, empty batch whose watermark closes every window
    let mut previous = None;
    for start in starts {
        let len = step.min(data.num_rows() - start);
        let chunk = on_time(&data.slice(start, len), previous);
        max_seen = (start..start + len).filter(|i| times.is_valid(*i)).map(|i| times.value(i)).fold(max_seen, i64::max);
        let watermark = Some(if len == 0 { i64::MAX / 2 } else { max_seen - 20_000 });
        previous = watermark;
        let expected = want.aggregate(&chunk, watermark).unwrap();
        let rust_changes = entry_keys(&want.snapshot_changes().unwrap());
        let touched = users_with_rows(&chunk);
        for ((lang, op), stored) in ops.iter_mut().zip(&mut stored) {
            let context = format!("{lang}: batch at {start}");
            let got = op.aggregate(&chunk, watermark).unwrap_or_else(|e| panic!("{context}: {e}"));
            assert_same_rows(&got, &expected, &context);
            let changes = op.snapshot_changes().unwrap();
            let keys = entry_keys(&changes);
            assert_eq!(keys, rust_changes, "{context}: changed (true) and removed (false) users, as the Rust detector reports them");
            let reported: BTreeSet<String> = keys.iter().map(|(k, _)| k.clone()).collect();
            assert!(touched.is_subset(&reported), "{context}: every user with a row is reported: {touched:?} vs {reported:?}");
            assert!(op.snapshot_changes().unwrap().is_empty(), "{context}: a second call reports nothing new");
            apply(stored, changes);
            // The stored entries (merged changes) are the whole state.
            let entries: BTreeMap<Vec<u8>, Vec<u8>> = op.snapshot_entries().unwrap().into_iter().map(|e| (e.key, e.value.unwrap())).collect();
            assert_eq!(&entries, stored, "{context}: snapshot-entries equals the entries merged with the changes since");
        }
        for (label, op) in &mut resumed {
            let got = op.aggregate(&chunk, watermark).unwrap_or_else(|e| panic!("{label} at {start}: {e}"));
            assert_same_rows(&got, &expected, &format!("{label}: batch at {start}"));
        }
        if start == 270 {
            for (i, lang) in LANGS.iter().enumerate() {
                assert!(stored[i].len() > 3, "{lang}: users with open windows: {}", stored[i].len());
                resumed.push((format!("{lang} restored from its entries"), restored(guest(lang, "fraud-detector", config), &stored[i], lang)));
                // Same entry layout in both languages: each restores the other's.
                let other = LANGS[1 - i];
                resumed.push((format!("{other} restored from {lang}'s entries"), restored(guest(other, "fraud-detector", config), &stored[i], other)));
                // The whole snapshot (hot swaps) still restores.
                let mut whole = guest(lang, "fraud-detector", config);
                whole.restore(&ops[i].1.snapshot().unwrap()).unwrap();
                resumed.push((format!("{lang} restored from its whole snapshot"), whole));
            }
        }
    }
    for ((lang, op), stored) in ops.iter_mut().zip(&stored) {
        assert!(stored.is_empty() && op.snapshot_entries().unwrap().is_empty(), "{lang}: every window closed, every user removed");
    }
}

#[test]
fn fraud_detector_ports_checkpoint_one_user_after_a_batch_of_that_users_rows() {
    use arrow_array::cast::AsArray;
    let data = transactions(300);
    let users = data.column_by_name("user_id").unwrap().as_string::<i32>();
    let one_user = BooleanArray::from_iter((0..data.num_rows()).map(|i| Some(users.is_valid(i) && users.value(i) == "user-3")));
    let batch = arrow_select::filter::filter_record_batch(&data, &one_user).unwrap();
    assert!(batch.num_rows() > 5);
    for lang in LANGS {
        let mut op = guest(lang, "fraud-detector", "{}");
        // No window closes: the watermark is far behind the data.
        op.aggregate(&data, Some(0)).unwrap();
        let all = op.snapshot_changes().unwrap();
        assert!(all.len() > 5 && all.iter().all(|e| e.value.is_some()), "{lang}: every user changed: {:?}", entry_keys(&all));
        op.aggregate(&batch, Some(0)).unwrap();
        let changes = op.snapshot_changes().unwrap();
        assert_eq!(entry_keys(&changes), BTreeSet::from([("\"user-3\"".to_owned(), true)]), "{lang}: only the user with rows");
        let entries = op.snapshot_entries().unwrap();
        assert_eq!(entries.len(), all.len(), "{lang}: the whole state still holds every user");
        assert_eq!(entries.iter().find(|e| e.key == changes[0].key).unwrap().value, changes[0].value, "{lang}: the change is the user's current entry");
    }
}

#[test]
fn fraud_detector_ports_without_keyed_state_checkpoint_their_snapshot_as_one_entry() {
    let data = transactions(200);
    let config = r#"{"keyed": false}"#;
    for lang in LANGS {
        let mut op = guest(lang, "fraud-detector", config);
        op.aggregate(&data, Some(0)).unwrap();
        let snapshot = op.snapshot().unwrap();
        for changes in [op.snapshot_changes().unwrap(), op.snapshot_entries().unwrap()] {
            assert_eq!(changes.len(), 1, "{lang}: one entry");
            assert!(changes[0].key.is_empty() && changes[0].value.as_deref() == Some(snapshot.as_slice()), "{lang}: the whole snapshot under the empty key");
        }
        let mut fresh = guest(lang, "fraud-detector", config);
        fresh.restore_entries(&[(b"", &snapshot)]).unwrap();
        assert_eq!(fresh.snapshot().unwrap(), snapshot, "{lang}: restore-entries restores the snapshot");
        // Garbage entries are refused by a keyed instance, which keeps working.
        let mut keyed = guest(lang, "fraud-detector", "{}");
        let error = keyed.restore_entries(&[(b"\"u\"", b"not windows")]).unwrap_err();
        assert!(error.to_string().contains("window state entry"), "{lang}: {error}");
        assert!(keyed.aggregate(&data, Some(0)).is_ok(), "{lang}: still works");
    }
}

/// `users` users paying every 2 minutes for 40 minutes (a batch), and one
/// later payment of each user `touched` selects (another batch).
fn user_payments(users: usize, touched: impl Fn(usize) -> bool) -> (RecordBatch, RecordBatch) {
    const T0: i64 = 1_700_000_000_000;
    let batch = |rows: Vec<(usize, i64)>| {
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("user_id", Arc::new(StringArray::from_iter_values(rows.iter().map(|(u, _)| format!("u-{u:05}"))))),
            ("timestamp", Arc::new(TimestampMillisecondArray::from_iter_values(rows.iter().map(|(_, t)| *t)).with_timezone("UTC"))),
            ("amount", Arc::new(Float64Array::from_iter_values(rows.iter().map(|(u, t)| (*u as i64 + t / 1000) as f64 % 300.0)))),
            ("merchant_id", Arc::new(StringArray::from_iter_values(rows.iter().map(|(u, t)| format!("m-{}", (u + *t as usize / 120_000) % 3))))),
            ("location", Arc::new(StringArray::from_iter_values(rows.iter().map(|(u, _)| format!("loc-{}", u % 200))))),
            ("device_id", Arc::new(StringArray::from_iter_values(rows.iter().map(|(u, _)| format!("d-{u}"))))),
        ];
        RecordBatch::try_from_iter(columns).unwrap()
    };
    let history = (0..20).flat_map(|k| (0..users).map(move |u| (u, T0 + k * 120_000 + u as i64 * 37))).collect();
    let later = (0..users).filter(|u| touched(*u)).map(|u| (u, T0 + 40 * 60_000 + 1_000)).collect();
    (batch(history), batch(later))
}

/// Guest-side cost of a checkpoint of the fraud detectors with 1,000 users
/// (whole snapshot against keyed changes, by share of users touched since
/// the last checkpoint) and of a restore. Informational:
/// `cargo test -p weir-tests --test polyglot fraud_detector_keyed_checkpoint_timings -- --ignored --nocapture`.
#[test]
#[ignore]
fn fraud_detector_keyed_checkpoint_timings() {
    // The JavaScript detector traps (`unreachable` in `process`) near 28k
    // open windows, e.g. with 2,000 users (the old build too).
    let users = 1000;
    let mut rows = vec!["| guest | users touched | whole: time | whole: bytes | keyed: time | keyed: entries | keyed: bytes |".to_owned(), "|---|---|---|---|---|---|---|".to_owned()];
    // The whole state outgrows the default memory limit.
    let limits = weir::engine::SandboxLimits { memory_limit_bytes: 1 << 30, call_deadline_ms: 600_000, ..Default::default() };
    let cache = weir_tests::repo_root().join("target/tmp/polyglot-artifact-cache");
    let engine = Engine::new(EngineConfig { limits, cache_dir: Some(cache) }).unwrap();
    let make = |lang: &str| {
        let path = if lang == "rust" { PathBuf::from(guests::FRAUD_DETECTOR) } else { polyglot(&format!("{lang}-fraud-detector")) };
        Operator::new(engine.load_file(&path).unwrap(), "{}", HttpAllowlist::default()).unwrap()
    };
    let ms = |start: Instant| format!("{:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    let mib = |bytes: usize| format!("{:.2} MiB", bytes as f64 / (1 << 20) as f64);
    for lang in ["rust", "python", "js"] {
        for percent in [1, 10, 100] {
            let (history, later) = user_payments(users, |u| u * 100 / users < percent);
            let mut op = make(lang);
            for start in (0..history.num_rows()).step_by(2000) {
                op.aggregate(&history.slice(start, 2000.min(history.num_rows() - start)), None).unwrap();
            }
            op.snapshot_entries().unwrap();
            op.aggregate(&later, None).unwrap();
            let start = Instant::now();
            let whole = op.snapshot().unwrap().len();
            let whole_time = ms(start);
            let start = Instant::now();
            let changes = op.snapshot_changes().unwrap();
            let keyed_time = ms(start);
            let bytes: usize = changes.iter().map(|c| c.key.len() + c.value.as_ref().map_or(0, Vec::len)).sum();
            rows.push(format!("| {lang} | {percent}% ({}) | {whole_time} | {} | {keyed_time} | {} | {} |", later.num_rows(), mib(whole), changes.len(), mib(bytes)));
            if percent == 100 {
                let snapshot = op.snapshot().unwrap();
                let entries: Vec<(Vec<u8>, Vec<u8>)> = op.snapshot_entries().unwrap().into_iter().map(|e| (e.key, e.value.unwrap())).collect();
                let entries: Vec<(&[u8], &[u8])> = entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
                let (mut a, mut b) = (make(lang), make(lang));
                // Reported, not asserted: the JavaScript detector runs out of memory reading large whole snapshots.
                let timed = |result: Result<(), weir::engine::Error>, start: Instant| result.map_or_else(|e| format!("fails: {e}"), |()| ms(start));
                let start = Instant::now();
                let whole_time = timed(a.restore(&snapshot), start);
                let start = Instant::now();
                let keyed_time = timed(b.restore_entries(&entries), start);
                rows.push(format!("| {lang} | restore into a fresh instance | {whole_time} | {} | {keyed_time} | {} | |", mib(snapshot.len()), entries.len()));
            }
        }
    }
    println!("{}", rows.join("\n"));
}
