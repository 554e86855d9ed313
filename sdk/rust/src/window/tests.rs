use super::*;
use std::collections::BTreeSet;

#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Count(u64);

impl Accumulator for Count {
    type Row = ();
    fn add(&mut self, _: &()) {
        self.0 += 1;
    }
    fn merge(&mut self, other: &Self) {
        self.0 += other.0;
    }
}

const MIN: i64 = 60_000;

#[test]
fn changes_are_tracked_only_once_the_host_asks_for_entries() {
    let mut w: Windows<String, Count> = Windows::new(WindowSpec::Tumbling { size_ms: MIN });
    for key in 0..1000 {
        w.add(format!("k{key}"), 0, &());
    }
    w.close(MIN);
    w.add("late".to_owned(), MIN, &());
    // A pipeline without checkpoints never asks: nothing accumulates.
    assert!(w.changed.is_none());
    let first = w.changes().unwrap();
    assert_eq!(first.len(), 1, "the keys present: only `late` (the others closed)");
    w.add("k1".to_owned(), MIN, &());
    w.close(2 * MIN);
    let keys: Vec<_> = w.changes().unwrap().into_iter().map(|e| (String::from_utf8(e.key).unwrap(), e.value.is_some())).collect();
    assert_eq!(keys, [("\"k1\"".to_owned(), false), ("\"late\"".to_owned(), false)], "both closed since the last call: removed");
}

#[test]
fn tumbling_and_hopping_windows_contain_the_row() {
    let hour = WindowSpec::Tumbling { size_ms: 60 * MIN };
    assert_eq!(hour.assign(61 * MIN), vec![Window { start_ms: 60 * MIN, end_ms: 120 * MIN }]);
    assert_eq!(hour.assign(-1), vec![Window { start_ms: -60 * MIN, end_ms: 0 }]);
    let sliding = WindowSpec::Hopping { size_ms: 5 * MIN, slide_ms: MIN };
    let windows = sliding.assign(7 * MIN + 30_000);
    assert_eq!(windows.len(), 5);
    assert_eq!(windows[0], Window { start_ms: 3 * MIN, end_ms: 8 * MIN });
    assert_eq!(windows[4], Window { start_ms: 7 * MIN, end_ms: 12 * MIN });
    assert!(windows.iter().all(|w| w.start_ms <= 7 * MIN + 30_000 && 7 * MIN + 30_000 < w.end_ms));
    assert!(WindowSpec::Hopping { size_ms: MIN, slide_ms: 2 * MIN }.validate().is_err());
}

#[test]
fn windows_close_when_the_watermark_passes_their_end() {
    let mut windows: Windows<String, Count> = Windows::new(WindowSpec::Hopping { size_ms: 5 * MIN, slide_ms: MIN });
    windows.add("u1".into(), 30_000, &());
    windows.add("u1".into(), 4 * MIN, &());
    windows.add("u2".into(), 90_000, &());
    assert!(windows.close(MIN - 1).is_empty());
    let closed = windows.close(MIN);
    assert_eq!(closed, vec![(Window { start_ms: -4 * MIN, end_ms: MIN }, "u1".to_owned(), Count(1))]);
    let closed = windows.close(5 * MIN);
    assert_eq!(closed.iter().map(|(w, k, c)| (w.end_ms / MIN, k.as_str(), c.0)).collect::<Vec<_>>(), [(2, "u1", 1), (2, "u2", 1), (3, "u1", 1), (3, "u2", 1), (4, "u1", 1), (4, "u2", 1), (5, "u1", 2), (5, "u2", 1)]);
    assert!(windows.is_late(30_000, 5 * MIN) && !windows.is_late(4 * MIN, 5 * MIN));
}

#[test]
fn a_late_row_that_bridges_two_sessions_merges_them() {
    let mut windows: Windows<String, Count> = Windows::new(WindowSpec::Session { gap_ms: 10_000 });
    windows.add("k".into(), 0, &());
    windows.add("k".into(), 18_000, &());
    windows.add("j".into(), 5_000, &());
    assert_eq!(windows.len(), 3, "18 s apart with a 10 s gap: two sessions for k");
    windows.add("k".into(), 9_000, &()); // within 10 s of both: [0, 10 s) ~ [9 s, 19 s) ~ [18 s, 28 s)
    assert_eq!(windows.len(), 2);
    assert_eq!(windows.close(27_999).len(), 1, "only j's session [5 s, 15 s) has ended");
    let closed = windows.close(28_000);
    assert_eq!(closed, vec![(Window { start_ms: 0, end_ms: 28_000 }, "k".to_owned(), Count(3))]);
}

#[test]
fn state_survives_snapshot_and_restore() {
    let mut windows: Windows<String, Count> = Windows::new(WindowSpec::Tumbling { size_ms: MIN });
    windows.add("a".into(), 10, &());
    windows.add("a".into(), 20, &());
    let mut restored: Windows<String, Count> = Windows::restore(&windows.snapshot()).unwrap();
    restored.add("a".into(), 30, &());
    assert_eq!(restored.close(MIN), vec![(Window { start_ms: 0, end_ms: MIN }, "a".to_owned(), Count(3))]);
    assert!(Windows::<String, Count>::restore(b"nonsense").is_err());
}

#[test]
fn changes_name_the_keys_added_to_and_remove_the_keys_whose_windows_all_closed() {
    let mut windows: Windows<String, Count> = Windows::new(WindowSpec::Tumbling { size_ms: MIN });
    windows.add("a".into(), 10, &());
    windows.add("b".into(), 20, &());
    windows.add("b".into(), MIN + 5, &());
    let mut copy: Windows<String, Count> = Windows::new(windows.spec());
    copy.restore_entries(windows.entries().unwrap()).unwrap();
    assert!(windows.changes().unwrap().is_empty(), "entries() starts tracking afresh");
    windows.add("c".into(), MIN + 30, &());
    windows.close(MIN); // a's only window and b's first close
    let changes = windows.changes().unwrap();
    let keys: Vec<&[u8]> = changes.iter().map(|e| e.key.as_slice()).collect();
    assert_eq!(keys, [&br#""a""#[..], br#""b""#, br#""c""#]);
    assert_eq!(changes[0].value, None, "a has no open window left: removed");
    assert!(changes[1].value.is_some() && changes[2].value.is_some(), "b keeps its second window");
    assert!(windows.changes().unwrap().is_empty());
    // The copy, given the changes the way the host merges them, equals the original.
    let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = copy.entries().unwrap().into_iter().map(|e| (e.key, e.value.unwrap())).collect();
    for StateEntry { key, value } in changes {
        match value {
            Some(value) => merged.insert(key, value),
            None => merged.remove(&key),
        };
    }
    let mut restored: Windows<String, Count> = Windows::new(windows.spec());
    restored.restore_entries(merged.into_iter().map(|(key, value)| StateEntry { key, value: Some(value) }).collect()).unwrap();
    assert_eq!(restored.snapshot(), windows.snapshot());
}

#[test]
fn a_session_merge_is_a_change_of_its_key() {
    let mut windows: Windows<String, Count> = Windows::new(WindowSpec::Session { gap_ms: 10_000 });
    windows.add("k".into(), 0, &());
    windows.add("k".into(), 18_000, &());
    let mut stored: BTreeMap<Vec<u8>, Vec<u8>> = windows.entries().unwrap().into_iter().map(|e| (e.key, e.value.unwrap())).collect();
    windows.add("k".into(), 9_000, &());
    for StateEntry { key, value } in windows.changes().unwrap() {
        match value {
            Some(value) => stored.insert(key, value),
            None => stored.remove(&key),
        };
    }
    assert_eq!(stored.keys().collect::<Vec<_>>(), [&br#""k""#.to_vec()]);
    let mut restored: Windows<String, Count> = Windows::new(windows.spec());
    restored.restore_entries(stored.into_iter().map(|(key, value)| StateEntry { key, value: Some(value) }).collect()).unwrap();
    assert_eq!(restored.snapshot(), windows.snapshot());
}

/// Which rows a window folded, and how many times: a row counted twice or
/// missed shows in either field.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Seen {
    rows: u64,
    ids: BTreeSet<u64>,
}

impl Accumulator for Seen {
    type Row = u64;
    fn add(&mut self, id: &u64) {
        self.rows += 1;
        self.ids.insert(*id);
    }
    fn merge(&mut self, other: &Self) {
        self.rows += other.rows;
        self.ids.extend(&other.ids);
    }
}

/// Hopping windows the way the SDK kept them before panes: one accumulator
/// per (window, key), every row added to each of its windows.
#[derive(Default)]
struct Reference {
    open: BTreeMap<(u8, Window), Seen>,
}

impl Reference {
    fn add(&mut self, spec: WindowSpec, key: u8, t: i64, id: u64) {
        for window in spec.assign(t) {
            self.open.entry((key, window)).or_default().add(&id);
        }
    }

    fn close(&mut self, watermark: i64) -> Vec<(Window, u8, Seen)> {
        let mut closed: Vec<_> = self.open.iter().filter(|((_, w), _)| w.end_ms <= watermark).map(|((k, w), acc)| (*w, *k, acc.clone())).collect();
        self.open.retain(|(_, w), _| w.end_ms > watermark);
        closed.sort_by(|a, b| (a.0.end_ms, &a.1, a.0.start_ms).cmp(&(b.0.end_ms, &b.1, b.0.start_ms)));
        closed
    }

    /// The state in the layout before panes: per key, its windows.
    fn entries(&self) -> Vec<StateEntry> {
        let mut per_key: BTreeMap<u8, Vec<(Window, Seen)>> = BTreeMap::new();
        for ((key, window), acc) in &self.open {
            per_key.entry(*key).or_default().push((*window, acc.clone()));
        }
        per_key.into_iter().map(|(key, windows)| StateEntry { key: serde_json::to_vec(&key).unwrap(), value: Some(postcard::to_stdvec(&windows).unwrap()) }).collect()
    }
}

/// A small deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Rows of 5 keys arriving out of order behind a watermark that advances
/// in steps, closing windows as it goes; every few steps the state goes
/// through a keyed checkpoint (changes merged the way the host merges them)
/// or a JSON snapshot into a fresh instance, the way a restart or swap does.
fn pane_run(spec: WindowSpec, seed: u64, from_legacy: bool) {
    let mut rng = Rng(seed);
    let mut reference = Reference::default();
    let mut windows: Windows<u8, Seen> = Windows::new(spec);
    let mut stored: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut watermark = -3 * MIN;
    let mut id = 0;
    for step in 0..60 {
        for _ in 0..rng.below(40) {
            // Rows are never behind the watermark: the host drops those.
            let t = watermark + rng.below(12 * MIN as u64) as i64;
            let key = rng.below(5) as u8;
            id += 1;
            reference.add(spec, key, t, id);
            windows.add(key, t, &id);
            // Reads match at every row, for each window the row is in.
            for window in spec.assign(t) {
                let expected = reference.open.get(&(key, window));
                assert_eq!(windows.get(&key, &window).as_deref(), expected, "window {window:?} of key {key} (seed {seed}, step {step})");
            }
        }
        if from_legacy && step == 10 {
            // A swap from a guest built before panes: the stored entries hold whole windows.
            stored = reference.entries().into_iter().map(|e| (e.key, e.value.unwrap())).collect();
            windows = Windows::new(spec);
            windows.restore_entries(reference.entries()).unwrap();
        }
        watermark += rng.below(3 * MIN as u64) as i64;
        assert_eq!(windows.close(watermark), reference.close(watermark), "close at {watermark} (seed {seed}, step {step})");
        match step % 7 {
            3 => {
                for StateEntry { key, value } in windows.changes().unwrap() {
                    match value {
                        Some(value) => stored.insert(key, value),
                        None => stored.remove(&key),
                    };
                }
                let mut restored: Windows<u8, Seen> = Windows::new(spec);
                restored.restore_entries(stored.iter().map(|(key, value)| StateEntry { key: key.clone(), value: Some(value.clone()) }).collect()).unwrap();
                windows = restored;
                windows.entries().unwrap();
            }
            5 => {
                // A hot swap: a whole snapshot, then the host stores the new
                // instance's entries and tracks changes from there.
                windows = Windows::restore(&windows.snapshot()).unwrap();
                stored = windows.entries().unwrap().into_iter().map(|e| (e.key, e.value.unwrap())).collect();
            }
            _ => {}
        }
        for key in 0..5 {
            let expected: Vec<(Window, Seen)> = reference.open.iter().filter(|((k, _), _)| *k == key).map(|((_, w), acc)| (*w, acc.clone())).collect();
            assert_eq!(windows.open_windows(&key), expected, "open windows of {key} (seed {seed}, step {step})");
        }
    }
    assert_eq!(windows.close(i64::MAX), reference.close(i64::MAX));
    assert!(windows.is_empty());
}

#[test]
fn hopping_windows_kept_as_panes_close_like_whole_windows() {
    for seed in 1..40 {
        pane_run(WindowSpec::Hopping { size_ms: 5 * MIN, slide_ms: MIN }, seed, false);
        // Panes of gcd(size, slide) = 30 s.
        pane_run(WindowSpec::Hopping { size_ms: 5 * MIN, slide_ms: 90_000 }, seed, false);
    }
}

#[test]
fn a_state_of_whole_hopping_windows_restores_into_panes_and_goes_on() {
    for seed in 1..40 {
        pane_run(WindowSpec::Hopping { size_ms: 5 * MIN, slide_ms: MIN }, seed, true);
    }
}

#[test]
fn a_row_is_kept_once_in_panes_not_once_per_window() {
    let spec = WindowSpec::Hopping { size_ms: 5 * MIN, slide_ms: MIN };
    let mut windows: Windows<u8, Seen> = Windows::new(spec);
    let mut whole = Reference::default();
    for id in 0..20 {
        windows.add(1, id as i64 * 2 * MIN, &id);
        whole.add(spec, 1, id as i64 * 2 * MIN, id);
    }
    assert_eq!(windows.len(), 20, "one pane per row");
    let panes = windows.entries().unwrap().remove(0).value.unwrap().len();
    let before = whole.entries().remove(0).value.unwrap().len();
    assert!(panes * 3 < before, "a pane state of {panes} B against {before} B of whole windows");
}

#[test]
fn marks_are_state_and_go_with_their_window() {
    let spec = WindowSpec::Hopping { size_ms: 5 * MIN, slide_ms: MIN };
    let mut windows: Windows<u8, Seen> = Windows::new(spec);
    let window = Window { start_ms: 0, end_ms: 5 * MIN };
    assert!(!windows.mark(&1, &window), "no such key yet");
    windows.add(1, 30_000, &1);
    windows.entries().unwrap();
    assert!(windows.mark(&1, &window) && !windows.mark(&1, &window));
    let changes = windows.changes().unwrap();
    assert_eq!(changes.len(), 1, "a mark is a change of its key");
    let mut restored: Windows<u8, Seen> = Windows::new(spec);
    restored.restore_entries(changes).unwrap();
    assert!(restored.is_marked(&1, &window) && !restored.is_marked(&1, &Window { start_ms: -MIN, end_ms: 4 * MIN }));
    assert!(Windows::<u8, Seen>::restore(&restored.snapshot()).unwrap().is_marked(&1, &window));
    restored.close(5 * MIN);
    assert!(!restored.is_marked(&1, &window), "closed with its window");
    assert!(restored.get_mut(&1, &window).is_none(), "hopping windows are merged on read, not updated in place");
    // A session's mark moves to the session it merges into.
    let mut sessions: Windows<u8, Count> = Windows::new(WindowSpec::Session { gap_ms: 10_000 });
    sessions.add(1, 0, &());
    sessions.add(1, 18_000, &());
    assert!(sessions.mark(&1, &Window { start_ms: 0, end_ms: 10_000 }));
    sessions.add(1, 9_000, &());
    assert!(sessions.is_marked(&1, &Window { start_ms: 0, end_ms: 28_000 }));
}

#[test]
fn whole_windows_without_marks_keep_the_layout_older_sdks_read() {
    let mut windows: Windows<String, Count> = Windows::new(WindowSpec::Tumbling { size_ms: MIN });
    windows.add("a".into(), 10, &());
    let value = windows.entries().unwrap().remove(0).value.unwrap();
    let plain: Vec<(Window, Count)> = postcard::from_bytes(&value).unwrap();
    assert_eq!(plain, [(Window { start_ms: 0, end_ms: MIN }, Count(1))]);
    assert_eq!(String::from_utf8(windows.snapshot()).unwrap(), r#"{"spec":{"type":"tumbling","size_ms":60000},"open":{"a":[[{"start_ms":0,"end_ms":60000},1]]}}"#);
}

/// A count with the flag an operator keeps for "alert sent".
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Flagged {
    n: u64,
    alerted: bool,
}

impl Accumulator for Flagged {
    type Row = ();
    fn add(&mut self, _: &()) {
        self.n += 1;
    }
    fn merge(&mut self, other: &Self) {
        self.n += other.n;
        self.alerted |= other.alerted;
    }
    fn marked(&mut self) {
        self.alerted = true;
    }
}

#[test]
fn a_whole_snapshot_of_panes_holds_whole_windows_in_the_layout_every_sdk_reads() {
    let spec = WindowSpec::Hopping { size_ms: 2 * MIN, slide_ms: MIN };
    let mut windows: Windows<String, Flagged> = Windows::new(spec);
    windows.add("u".into(), 30_000, &());
    windows.add("u".into(), 90_000, &());
    assert!(windows.mark(&"u".to_owned(), &Window { start_ms: 0, end_ms: 2 * MIN }));
    let json: serde_json::Value = serde_json::from_slice(&windows.snapshot()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "spec": {"type": "hopping", "size_ms": 120000, "slide_ms": 60000},
            "open": {"u": [
                [{"start_ms": -60000, "end_ms": 60000}, {"n": 1, "alerted": false}],
                [{"start_ms": 0, "end_ms": 120000}, {"n": 2, "alerted": true}],
                [{"start_ms": 60000, "end_ms": 180000}, {"n": 1, "alerted": false}],
            ]},
            "marked": {"u": [{"start_ms": 0, "end_ms": 120000}]},
        })
    );
    let mut restored: Windows<String, Flagged> = Windows::restore(&windows.snapshot()).unwrap();
    assert!(restored.is_marked(&"u".to_owned(), &Window { start_ms: 0, end_ms: 2 * MIN }));
    restored.add("u".into(), 100_000, &());
    assert_eq!(restored.close(3 * MIN).iter().map(|(w, _, acc)| (w.start_ms, acc.n)).collect::<Vec<_>>(), [(-MIN, 1), (0, 3), (MIN, 2)]);
}

#[test]
fn a_row_behind_the_watermark_does_not_reopen_a_closed_hopping_window() {
    let spec = WindowSpec::Hopping { size_ms: 2 * MIN, slide_ms: MIN };
    let mut windows: Windows<u8, Seen> = Windows::new(spec);
    windows.add(1, 90_000, &1);
    assert_eq!(windows.close(2 * MIN).len(), 1, "[0, 2) minutes");
    // The host takes such rows out; the SDK still keeps closed windows closed.
    windows.add(1, 70_000, &2);
    let closed = Window { start_ms: 0, end_ms: 2 * MIN };
    assert!(windows.get(&1, &closed).is_none() && !windows.mark(&1, &closed));
    let open = windows.get(&1, &Window { start_ms: MIN, end_ms: 3 * MIN }).unwrap();
    assert_eq!(open.ids, BTreeSet::from([1, 2]), "the row counts in the windows still open");
    let rest: Vec<_> = windows.close(i64::MAX).into_iter().map(|(w, _, acc)| (w.start_ms, acc.rows)).collect();
    assert_eq!(rest, [(MIN, 2)], "the closed window is not emitted again");
}
