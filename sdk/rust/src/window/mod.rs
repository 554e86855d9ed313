//! Event-time windows for aggregate operators, so window bookkeeping is not
//! rewritten per operator: the operator supplies the key and the fold
//! ([`Accumulator`]); [`Windows`] assigns rows to tumbling, hopping or session
//! windows, keeps one accumulator per (window, key), and hands out the final
//! results once the host's watermark has passed a window's end. Its state
//! snapshots to bytes for the host's checkpoints and hot swaps.
//!
//! ```
//! use weir_sdk::window::{Accumulator, WindowSpec, Windows};
//!
//! #[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
//! struct Revenue { orders: u64, total: f64 }
//! impl Accumulator for Revenue {
//!     type Row = f64;
//!     fn add(&mut self, amount: &f64) { self.orders += 1; self.total += amount; }
//!     fn merge(&mut self, other: &Self) { self.orders += other.orders; self.total += other.total; }
//! }
//!
//! let mut windows: Windows<String, Revenue> = Windows::new(WindowSpec::Tumbling { size_ms: 3_600_000 });
//! windows.add("berlin".into(), 1_000, &25.0);
//! windows.add("berlin".into(), 3_599_999, &75.0);
//! assert!(windows.close(3_599_999).is_empty()); // the hour is still open
//! let closed = windows.close(3_600_000);
//! assert_eq!((closed[0].2.orders, closed[0].2.total), (2, 100.0));
//! ```

use crate::state::{KeyedState, StateEntry};
use crate::{Column, DataType, Error, TimeUnit};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Event time of each row in Unix milliseconds (None for nulls), from an
/// `Int64` column (already ms) or a `Timestamp` column of any unit.
pub fn event_times_ms(column: &Column) -> Result<Vec<Option<i64>>, Error> {
    let scale: fn(i64) -> i64 = match column.data_type() {
        DataType::Int64 => |v| v,
        DataType::Timestamp { unit: TimeUnit::Second, .. } => |v| v.saturating_mul(1000),
        DataType::Timestamp { unit: TimeUnit::Millisecond, .. } => |v| v,
        DataType::Timestamp { unit: TimeUnit::Microsecond, .. } => |v| v.div_euclid(1000),
        DataType::Timestamp { unit: TimeUnit::Nanosecond, .. } => |v| v.div_euclid(1_000_000),
        other => return Err(Error::InvalidInput(format!("event-time column is {other:?}; expected int64 (Unix ms) or timestamp"))),
    };
    Ok((0..column.len()).map(|i| column.value::<i64>(i).map(scale)).collect())
}

/// Which windows a row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum WindowSpec {
    /// Fixed, non-overlapping windows of `size_ms`, aligned to the epoch.
    Tumbling {
        /// Window length.
        size_ms: i64,
    },
    /// Windows of `size_ms` starting every `slide_ms` (a row is in
    /// `size_ms / slide_ms` of them).
    Hopping {
        /// Window length.
        size_ms: i64,
        /// Distance between window starts.
        slide_ms: i64,
    },
    /// Per key, activity separated by gaps shorter than `gap_ms`; a session
    /// ends `gap_ms` after its last row.
    Session {
        /// Inactivity that ends a session.
        gap_ms: i64,
    },
}

/// A window: `[start_ms, end_ms)` in event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    /// First millisecond in the window.
    pub start_ms: i64,
    /// First millisecond after the window.
    pub end_ms: i64,
}

impl WindowSpec {
    /// The fixed (tumbling or hopping) windows that contain `t`, oldest first;
    /// empty for sessions, which depend on the other rows of the key.
    pub fn assign(&self, t: i64) -> Vec<Window> {
        match *self {
            WindowSpec::Tumbling { size_ms } => {
                let start = t.div_euclid(size_ms) * size_ms;
                vec![Window { start_ms: start, end_ms: start + size_ms }]
            }
            WindowSpec::Hopping { size_ms, slide_ms } => {
                let last_start = t.div_euclid(slide_ms) * slide_ms;
                let mut windows = Vec::new();
                let mut start = last_start;
                while start > t - size_ms {
                    windows.push(Window { start_ms: start, end_ms: start + size_ms });
                    start -= slide_ms;
                }
                windows.reverse();
                windows
            }
            WindowSpec::Session { .. } => Vec::new(),
        }
    }

    /// Checks the sizes: positive, and a hop no longer than the window.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            WindowSpec::Tumbling { size_ms } if size_ms > 0 => Ok(()),
            WindowSpec::Hopping { size_ms, slide_ms } if size_ms > 0 && slide_ms > 0 && slide_ms <= size_ms => Ok(()),
            WindowSpec::Session { gap_ms } if gap_ms > 0 => Ok(()),
            other => Err(format!("invalid window {other:?}: sizes must be positive and slide <= size")),
        }
    }
}

/// The operator's fold: start (`Default`), add a row, merge two partial
/// results (sessions merge when a late row bridges them).
pub trait Accumulator: Default + Clone + Serialize + DeserializeOwned {
    /// What one row contributes.
    type Row;
    /// Adds a row.
    fn add(&mut self, row: &Self::Row);
    /// Adds another accumulator of the same key.
    fn merge(&mut self, other: &Self);
}

/// Open windows and their accumulators, by key. As [`KeyedState`], one
/// entry per key holding its open windows; the keys changed since the last
/// checkpoint are tracked, and a key whose windows all closed is removed.
#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "K: Serialize, A: Serialize", deserialize = "K: DeserializeOwned + Ord, A: DeserializeOwned"))]
pub struct Windows<K, A> {
    spec: WindowSpec,
    /// Per key, its open windows (sorted by start) with their accumulators.
    open: BTreeMap<K, Vec<(Window, A)>>,
    /// Keys changed (or removed) since the last checkpoint; `None` until
    /// the host first asks for entries (a pipeline without checkpoints
    /// never does, so nothing accumulates there).
    #[serde(skip)]
    changed: Option<BTreeSet<K>>,
}

impl<K: Ord + Clone + Serialize + DeserializeOwned, A: Accumulator> Windows<K, A> {
    /// No open windows yet.
    pub fn new(spec: WindowSpec) -> Windows<K, A> {
        Windows { spec, open: BTreeMap::new(), changed: None }
    }

    /// Marks `key` changed (clones it only when new), once tracking started.
    fn touch(changed: &mut Option<BTreeSet<K>>, key: &K) {
        if let Some(changed) = changed
            && !changed.contains(key)
        {
            changed.insert(key.clone());
        }
    }

    /// The window kind.
    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    /// Adds `row` with event time `t` under `key`.
    pub fn add(&mut self, key: K, t: i64, row: &A::Row) {
        Self::touch(&mut self.changed, &key);
        let windows = self.open.entry(key).or_default();
        match self.spec {
            WindowSpec::Session { gap_ms } => {
                let mut session = Window { start_ms: t, end_ms: t + gap_ms };
                let mut acc = A::default();
                acc.add(row);
                // Merge every open session this row touches.
                let mut kept = Vec::with_capacity(windows.len());
                for (window, other) in windows.drain(..) {
                    if window.start_ms <= session.end_ms && session.start_ms <= window.end_ms {
                        session.start_ms = session.start_ms.min(window.start_ms);
                        session.end_ms = session.end_ms.max(window.end_ms);
                        acc.merge(&other);
                    } else {
                        kept.push((window, other));
                    }
                }
                kept.push((session, acc));
                kept.sort_by_key(|(w, _)| *w);
                *windows = kept;
            }
            _ => {
                for window in self.spec.assign(t) {
                    match windows.binary_search_by_key(&window, |(w, _)| *w) {
                        Ok(i) => windows[i].1.add(row),
                        Err(i) => {
                            let mut acc = A::default();
                            acc.add(row);
                            windows.insert(i, (window, acc));
                        }
                    }
                }
            }
        }
    }

    /// Whether a row at `t` would only land in windows the `watermark`
    /// already closed (a late row: drop, dead-letter or side-output it).
    pub fn is_late(&self, t: i64, watermark: i64) -> bool {
        match self.spec {
            WindowSpec::Session { gap_ms } => t + gap_ms <= watermark,
            _ => self.spec.assign(t).iter().all(|w| w.end_ms <= watermark),
        }
    }

    /// Removes and returns every window whose end is at or before
    /// `watermark`: `(window, key, accumulator)`, by window end then key.
    pub fn close(&mut self, watermark: i64) -> Vec<(Window, K, A)> {
        let mut closed = Vec::new();
        let changed = &mut self.changed;
        self.open.retain(|key, windows| {
            let before = closed.len();
            windows.retain(|(window, acc)| {
                let done = window.end_ms <= watermark;
                if done {
                    closed.push((*window, key.clone(), acc.clone()));
                }
                !done
            });
            if closed.len() > before {
                Self::touch(changed, key);
            }
            !windows.is_empty()
        });
        closed.sort_by(|a, b| (a.0.end_ms, &a.1, a.0.start_ms).cmp(&(b.0.end_ms, &b.1, b.0.start_ms)));
        closed
    }

    /// The accumulator of an open window of `key`, to read or flag it
    /// (early updates, alerts sent once).
    pub fn get_mut(&mut self, key: &K, window: &Window) -> Option<&mut A> {
        let i = self.open.get(key)?.binary_search_by_key(window, |(w, _)| *w).ok()?;
        Self::touch(&mut self.changed, key);
        Some(&mut self.open.get_mut(key).expect("found above")[i].1)
    }

    /// The accumulator of an open window of `key`, read only (does not mark
    /// the key changed, unlike [`Windows::get_mut`]).
    pub fn get(&self, key: &K, window: &Window) -> Option<&A> {
        let windows = self.open.get(key)?;
        let i = windows.binary_search_by_key(window, |(w, _)| *w).ok()?;
        Some(&windows[i].1)
    }

    /// The open windows of `key` (sorted by start).
    pub fn open_windows(&self, key: &K) -> &[(Window, A)] {
        self.open.get(key).map(Vec::as_slice).unwrap_or_default()
    }

    /// Open (window, key) pairs: the state size to bound and report.
    pub fn len(&self) -> usize {
        self.open.values().map(Vec::len).sum()
    }

    /// Whether nothing is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// The state as bytes (JSON), for `snapshot`.
    pub fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("window state serialises")
    }

    /// State from [`Windows::snapshot`] bytes, for `restore`.
    pub fn restore(bytes: &[u8]) -> Result<Windows<K, A>, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("window state: {e}"))
    }

    /// The entry of `key`: the key as JSON, its open windows in postcard
    /// (compact binary serde: about half the bytes of JSON, faster both ways).
    fn entry(key: &K, windows: Option<&Vec<(Window, A)>>) -> StateEntry {
        StateEntry {
            key: serde_json::to_vec(key).expect("window keys serialise"),
            value: windows.map(|w| postcard::to_stdvec(w).expect("window state serialises")),
        }
    }
}

/// One entry per key: the key as JSON, its open windows in postcard. A
/// checkpoint writes the keys that got a row or closed a window since the
/// previous one; a key without open windows is removed.
impl<K: Ord + Clone + Serialize + DeserializeOwned, A: Accumulator> KeyedState for Windows<K, A> {
    fn changes(&mut self) -> Result<Vec<StateEntry>, Error> {
        match self.changed.replace(BTreeSet::new()) {
            Some(changed) => Ok(changed.iter().map(|key| Self::entry(key, self.open.get(key))).collect()),
            // Not tracked yet: every key present changed since `init` (keys
            // added and removed since are unknown to the host anyway).
            None => self.entries(),
        }
    }

    fn entries(&mut self) -> Result<Vec<StateEntry>, Error> {
        self.changed = Some(BTreeSet::new());
        Ok(self.open.iter().map(|(key, windows)| Self::entry(key, Some(windows))).collect())
    }

    fn restore_entries(&mut self, entries: Vec<StateEntry>) -> Result<(), Error> {
        let mut open = BTreeMap::new();
        for StateEntry { key, value } in entries {
            let key: K = serde_json::from_slice(&key).map_err(|e| Error::InvalidInput(format!("window state key: {e}")))?;
            if let Some(value) = value {
                let windows = postcard::from_bytes(&value).map_err(|e| Error::InvalidInput(format!("window state entry: {e}")))?;
                open.insert(key, windows);
            }
        }
        self.open = open;
        self.changed = Some(BTreeSet::new());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
