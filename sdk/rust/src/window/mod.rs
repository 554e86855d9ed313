//! Event-time windows for aggregate operators, so window bookkeeping is not
//! rewritten per operator: the operator supplies the key and the fold
//! ([`Accumulator`]); [`Windows`] assigns rows to tumbling, hopping or session
//! windows, keeps their accumulators per key (hopping windows as panes, so
//! a row is folded once, not once per window), and hands out the final
//! results once the host's watermark has passed a window's end. Its state
//! snapshots to bytes for the host's checkpoints and hot swaps, whole or
//! key by key.
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

mod key_state;
#[cfg(test)]
mod tests;

use crate::state::{KeyedState, StateEntry};
use crate::{Column, DataType, Error, TimeUnit};
use key_state::{Hops, KeyState};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

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
    /// Called on a marked window's accumulator ([`Windows::mark`]) when the
    /// state is written as a whole snapshot, whose layout every SDK reads:
    /// set the flag the mark stands for (an alert sent) if the accumulator
    /// has one, so an operator in another language sees it. Default: nothing.
    fn marked(&mut self) {}
}

/// Open windows and their accumulators, by key. Hopping windows are kept as
/// panes (see [`Windows::get`]). As [`KeyedState`], one entry per key holding
/// its open windows; the keys changed since the last checkpoint are tracked,
/// and a key whose windows all closed is removed.
pub struct Windows<K, A> {
    spec: WindowSpec,
    /// The hopping geometry, for hopping windows.
    hops: Option<Hops>,
    /// Per key, what it holds.
    open: BTreeMap<K, KeyState<A>>,
    /// Keys changed (or removed) since the last checkpoint, each listed
    /// when its state's `dirty` flag goes up (a key removed and added again
    /// is listed twice); `None` until the host first asks for entries (a
    /// pipeline without checkpoints never does, so nothing accumulates).
    changed: Option<Vec<K>>,
}

impl<K: Ord + Clone + Serialize + DeserializeOwned, A: Accumulator> Windows<K, A> {
    /// No open windows yet.
    pub fn new(spec: WindowSpec) -> Windows<K, A> {
        let hops = match spec {
            WindowSpec::Hopping { size_ms, slide_ms } if slide_ms < size_ms => Some(Hops::new(size_ms, slide_ms)),
            _ => None,
        };
        Windows { spec, hops, open: BTreeMap::new(), changed: None }
    }

    /// Marks `key` changed (a flag on its state; the key is cloned once per
    /// checkpoint), once tracking started.
    fn touch(changed: &mut Option<Vec<K>>, key: &K, state: &mut KeyState<A>) {
        if let Some(changed) = changed
            && !state.dirty
        {
            state.dirty = true;
            changed.push(key.clone());
        }
    }

    /// The window kind.
    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    /// Adds `row` with event time `t` under `key`.
    pub fn add(&mut self, key: K, t: i64, row: &A::Row) {
        let changed = &mut self.changed;
        let state = match self.open.entry(key) {
            Entry::Occupied(mut entry) => {
                if let Some(changed) = changed
                    && !entry.get().dirty
                {
                    entry.get_mut().dirty = true;
                    changed.push(entry.key().clone());
                }
                entry.into_mut()
            }
            Entry::Vacant(entry) => {
                if let Some(changed) = changed {
                    changed.push(entry.key().clone());
                }
                let dirty = changed.is_some();
                entry.insert(KeyState { dirty, ..KeyState::default() })
            }
        };
        if let Some(hops) = &self.hops {
            state.add_to_pane(hops.pane_of(t), row);
            return;
        }
        let windows = &mut state.whole;
        match self.spec {
            WindowSpec::Session { gap_ms } => {
                let mut session = Window { start_ms: t, end_ms: t + gap_ms };
                let mut acc = A::default();
                acc.add(row);
                // Merge every open session this row touches; a mark on any
                // of them moves to the merged session.
                let mut kept = Vec::with_capacity(windows.len());
                let mut merged_marked = false;
                for (window, other) in windows.drain(..) {
                    if window.start_ms <= session.end_ms && session.start_ms <= window.end_ms {
                        session.start_ms = session.start_ms.min(window.start_ms);
                        session.end_ms = session.end_ms.max(window.end_ms);
                        acc.merge(&other);
                        if let Ok(i) = state.marked.binary_search(&window) {
                            state.marked.remove(i);
                            merged_marked = true;
                        }
                    } else {
                        kept.push((window, other));
                    }
                }
                kept.push((session, acc));
                kept.sort_by_key(|(w, _)| *w);
                *windows = kept;
                if merged_marked {
                    state.mark(session);
                }
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
        let (changed, hops) = (&mut self.changed, &self.hops);
        self.open.retain(|key, state| {
            let before = closed.len();
            if let Some(hops) = hops {
                closed.extend(state.close_hopping(hops, watermark).into_iter().map(|(window, acc)| (window, key.clone(), acc)));
            } else if state.whole.iter().any(|(w, _)| w.end_ms <= watermark) {
                state.whole.retain(|(window, acc)| {
                    let done = window.end_ms <= watermark;
                    if done {
                        closed.push((*window, key.clone(), acc.clone()));
                    }
                    !done
                });
                state.marked.retain(|w| w.end_ms > watermark);
            }
            if closed.len() > before {
                Self::touch(changed, key, state);
            }
            !state.is_empty()
        });
        closed.sort_by(|a, b| (a.0.end_ms, &a.1, a.0.start_ms).cmp(&(b.0.end_ms, &b.1, b.0.start_ms)));
        closed
    }

    /// The accumulator of an open window of `key`, read only (does not mark
    /// the key changed). A hopping window's is the merge of its panes, built
    /// here (owned); a window kept whole is borrowed.
    pub fn get(&self, key: &K, window: &Window) -> Option<Cow<'_, A>> {
        self.open.get(key)?.get(window)
    }

    /// The accumulator of an open tumbling or session window of `key`, to
    /// update it. `None` for hopping windows, which exist only as the merge
    /// of their panes: flag those with [`Windows::mark`].
    pub fn get_mut(&mut self, key: &K, window: &Window) -> Option<&mut A> {
        let state = self.open.get_mut(key)?;
        if self.hops.is_some() {
            return None;
        }
        let i = state.whole.binary_search_by_key(window, |(w, _)| *w).ok()?;
        Self::touch(&mut self.changed, key, state);
        Some(&mut state.whole[i].1)
    }

    /// Marks an open window of `key` that holds rows (an early result sent,
    /// an alert raised once); true when it was not marked before. The mark is part of the
    /// state and goes when the window closes (a session's mark moves to the
    /// session it merges into).
    pub fn mark(&mut self, key: &K, window: &Window) -> bool {
        let Some(state) = self.open.get_mut(key) else { return false };
        let new = state.holds(window) && state.mark(*window);
        if new {
            Self::touch(&mut self.changed, key, state);
        }
        new
    }

    /// Whether [`Windows::mark`] marked this window of `key`.
    pub fn is_marked(&self, key: &K, window: &Window) -> bool {
        self.open.get(key).is_some_and(|state| state.is_marked(window))
    }

    /// The open windows of `key` that hold rows (sorted by start).
    pub fn open_windows(&self, key: &K) -> Vec<(Window, A)> {
        self.open.get(key).map(|state| state.open_windows(self.hops.as_ref())).unwrap_or_default()
    }

    /// Open windows kept whole plus hopping-window panes: the state size to
    /// bound and report.
    pub fn len(&self) -> usize {
        self.open.values().map(|state| state.whole.len() + state.panes.len()).sum()
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

    /// The entry of `key`: the key as JSON, its state in postcard (compact
    /// binary serde: about half the bytes of JSON, faster both ways).
    fn entry(key: &K, state: Option<&KeyState<A>>) -> StateEntry {
        StateEntry { key: serde_json::to_vec(key).expect("window keys serialise"), value: state.map(KeyState::to_entry_value) }
    }
}

/// JSON snapshot layout, shared by the SDKs of every language (hot swaps
/// across languages read it): `{"spec": ..., "open": {key: [[window, acc],
/// ...]}}`, every open window whole (hopping windows merged from their
/// panes, each marked one's accumulator given [`Accumulator::marked`]),
/// plus `"marked": {key: [window, ...]}` when there are marks.
impl<K: Ord + Clone + Serialize + DeserializeOwned, A: Accumulator> Serialize for Windows<K, A> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// Every key's open windows, whole.
        struct Open<'a, K, A>(&'a Windows<K, A>);
        impl<K: Ord + Clone + Serialize + DeserializeOwned, A: Accumulator> Serialize for Open<'_, K, A> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.open.iter().map(|(key, state)| (key, state.whole_windows(self.0.hops.as_ref()))))
            }
        }
        /// The marks of the keys that have some.
        struct Marked<'a, K, A>(&'a BTreeMap<K, KeyState<A>>);
        impl<K: Serialize, A> Serialize for Marked<'_, K, A> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.iter().filter(|(_, state)| !state.marked.is_empty()).map(|(key, state)| (key, &state.marked)))
            }
        }
        #[derive(Serialize)]
        struct Layout<'a, K: Ord + Clone + Serialize + DeserializeOwned, A: Accumulator> {
            spec: WindowSpec,
            open: Open<'a, K, A>,
            #[serde(skip_serializing_if = "Option::is_none")]
            marked: Option<Marked<'a, K, A>>,
        }
        let any_marks = self.open.values().any(|state| !state.marked.is_empty());
        Layout { spec: self.spec, open: Open(self), marked: any_marks.then_some(Marked(&self.open)) }.serialize(serializer)
    }
}

impl<'de, K: DeserializeOwned + Ord + Clone + Serialize, A: Accumulator> Deserialize<'de> for Windows<K, A> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(bound(deserialize = "K: DeserializeOwned + Ord, A: DeserializeOwned"))]
        struct Layout<K, A> {
            spec: WindowSpec,
            open: BTreeMap<K, Vec<(Window, A)>>,
            #[serde(default = "BTreeMap::new")]
            marked: BTreeMap<K, Vec<Window>>,
        }
        let mut layout = Layout::<K, A>::deserialize(deserializer)?;
        let mut windows = Windows::new(layout.spec);
        // Hopping windows come back whole; rows from here on go to panes,
        // and each window merges both until it closes.
        windows.open = layout
            .open
            .into_iter()
            .map(|(key, whole)| {
                let mut marked = layout.marked.remove(&key).unwrap_or_default();
                marked.sort_unstable();
                (key, KeyState { whole, marked, ..KeyState::default() })
            })
            .collect();
        Ok(windows)
    }
}

/// One entry per key: the key as JSON, its state in postcard. A checkpoint
/// writes the keys that got a row, a mark or a closed window since the
/// previous one; a key with nothing open is removed.
impl<K: Ord + Clone + Serialize + DeserializeOwned, A: Accumulator> KeyedState for Windows<K, A> {
    fn changes(&mut self) -> Result<Vec<StateEntry>, Error> {
        match self.changed.replace(Vec::new()) {
            Some(mut changed) => {
                changed.sort_unstable();
                changed.dedup();
                Ok(changed
                    .iter()
                    .map(|key| {
                        let state = self.open.get_mut(key);
                        Self::entry(key, state.map(|state| {
                            state.dirty = false;
                            &*state
                        }))
                    })
                    .collect())
            }
            // Not tracked yet: every key present changed since `init` (keys
            // added and removed since are unknown to the host anyway).
            None => self.entries(),
        }
    }

    fn entries(&mut self) -> Result<Vec<StateEntry>, Error> {
        self.changed = Some(Vec::new());
        self.open.values_mut().for_each(|state| state.dirty = false);
        Ok(self.open.iter().map(|(key, state)| Self::entry(key, Some(state))).collect())
    }

    fn restore_entries(&mut self, entries: Vec<StateEntry>) -> Result<(), Error> {
        let mut open = BTreeMap::new();
        for StateEntry { key, value } in entries {
            let key: K = serde_json::from_slice(&key).map_err(|e| Error::InvalidInput(format!("window state key: {e}")))?;
            if let Some(value) = value {
                let state = KeyState::from_entry_value(&value).map_err(|e| Error::InvalidInput(format!("window state entry: {e}")))?;
                open.insert(key, state);
            }
        }
        self.open = open;
        self.changed = Some(Vec::new());
        Ok(())
    }
}
