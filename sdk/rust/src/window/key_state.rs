//! The state of one key in [`Windows`](super::Windows): windows kept whole,
//! hopping-window panes, marks, and how a key's state is written to a
//! checkpoint entry.
//!
//! Hopping windows are kept as panes: slices of `gcd(size, slide)` event
//! time, each folding the rows that fall in it. A row then updates one pane
//! instead of `size / slide` windows, and a key's state holds each row once
//! (a 5-minute window sliding by 1 minute held every row five times). A
//! window's accumulator is the merge of its panes, built when it is read or
//! closed. A pane is dropped when the last window containing it closes.

use super::{Accumulator, Window};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// What one key holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "A: DeserializeOwned"))]
pub(crate) struct KeyState<A> {
    /// Windows kept whole, sorted: tumbling and session windows, and
    /// hopping windows restored from a state written before panes.
    pub(crate) whole: Vec<(Window, A)>,
    /// Hopping-window panes by start, sorted.
    pub(crate) panes: Vec<(i64, A)>,
    /// Windows the operator marked ([`Windows::mark`](super::Windows::mark)), sorted.
    pub(crate) marked: Vec<Window>,
    /// Hopping windows ending at or before this were closed already: a
    /// pane outlives the first windows it is in.
    pub(crate) closed_until: Option<i64>,
    /// Changed since the last checkpoint (listed in `Windows::changed`).
    #[serde(skip)]
    pub(crate) dirty: bool,
}

impl<A> Default for KeyState<A> {
    fn default() -> Self {
        KeyState { whole: Vec::new(), panes: Vec::new(), marked: Vec::new(), closed_until: None, dirty: false }
    }
}

/// First byte of an entry value in the full layout. A plain list of whole
/// windows is never empty (an empty key is removed), so its postcard
/// length prefix never starts with 0.
const FULL_LAYOUT: u8 = 0;

/// The hopping window geometry, in milliseconds.
#[derive(Clone, Copy)]
pub(crate) struct Hops {
    /// Window length.
    pub(crate) size: i64,
    /// Distance between window starts.
    pub(crate) slide: i64,
    /// Pane length: the greatest common divisor of both.
    pub(crate) pane: i64,
}

impl Hops {
    /// The geometry of windows of `size` starting every `slide`.
    pub(crate) fn new(size: i64, slide: i64) -> Hops {
        let (mut a, mut b) = (size, slide);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        Hops { size, slide, pane: a }
    }

    /// Start of the pane holding `t`.
    pub(crate) fn pane_of(&self, t: i64) -> i64 {
        t.div_euclid(self.pane) * self.pane
    }

    /// First window start containing the pane starting at `pane`.
    fn first_start(&self, pane: i64) -> i64 {
        (pane - self.size).div_euclid(self.slide) * self.slide + self.slide
    }

    /// Last window start containing the pane starting at `pane`.
    fn last_start(&self, pane: i64) -> i64 {
        pane.div_euclid(self.slide) * self.slide
    }

    /// The window starting at `start`.
    fn window(&self, start: i64) -> Window {
        Window { start_ms: start, end_ms: start + self.size }
    }
}

impl<A: Accumulator> KeyState<A> {
    /// Nothing left: the key can go.
    pub(crate) fn is_empty(&self) -> bool {
        self.whole.is_empty() && self.panes.is_empty() && self.marked.is_empty()
    }

    /// Folds `row` into the pane starting at `pane`.
    pub(crate) fn add_to_pane(&mut self, pane: i64, row: &A::Row) {
        match self.panes.binary_search_by_key(&pane, |(p, _)| *p) {
            Ok(i) => self.panes[i].1.add(row),
            Err(i) => {
                let mut acc = A::default();
                acc.add(row);
                self.panes.insert(i, (pane, acc));
            }
        }
    }

    /// Whether `window` closed already. A closed window stays closed: a row
    /// behind the watermark (which the host takes out) would otherwise show
    /// in it through a shared pane.
    fn is_closed(&self, window: &Window) -> bool {
        self.closed_until.is_some_and(|closed| window.end_ms <= closed)
    }

    /// The panes inside `window`.
    fn panes_in(&self, window: &Window) -> &[(i64, A)] {
        let from = self.panes.partition_point(|(p, _)| *p < window.start_ms);
        let to = from + self.panes[from..].partition_point(|(p, _)| *p < window.end_ms);
        &self.panes[from..to]
    }

    /// The accumulator of `window`: the whole window, merged with its
    /// panes when there are any. `None` when nothing fell in it or it closed.
    pub(crate) fn get(&self, window: &Window) -> Option<Cow<'_, A>> {
        if self.is_closed(window) {
            return None;
        }
        let whole = self.whole.binary_search_by_key(window, |(w, _)| *w).ok().map(|i| &self.whole[i].1);
        let panes = self.panes_in(window);
        match (whole, panes) {
            (None, []) => None,
            (Some(acc), []) => Some(Cow::Borrowed(acc)),
            (None, [(_, acc)]) => Some(Cow::Borrowed(acc)),
            _ => {
                let mut merged = whole.cloned().unwrap_or_default();
                for (_, acc) in panes {
                    merged.merge(acc);
                }
                Some(Cow::Owned(merged))
            }
        }
    }

    /// The starts of the hopping windows that hold a pane or a whole
    /// window, end after `closed_until` and at or before `until`, in order.
    fn hopping_starts(&self, hops: &Hops, until: i64) -> Vec<i64> {
        let mut starts = Vec::new();
        // The first start whose window ends after `closed_until`.
        let mut next = self.closed_until.map_or(i64::MIN, |c| hops.first_start(c));
        for (pane, _) in &self.panes {
            let mut start = next.max(hops.first_start(*pane));
            let last = hops.last_start(*pane);
            while start <= last {
                if start.saturating_add(hops.size) > until {
                    return merge_sorted(starts, &self.whole, until);
                }
                starts.push(start);
                start += hops.slide;
            }
            next = next.max(start);
        }
        merge_sorted(starts, &self.whole, until)
    }

    /// Hopping: removes and returns the windows whose end is at or before
    /// `watermark` (oldest first), and drops the panes and marks no open
    /// window needs. Empty when nothing closed.
    pub(crate) fn close_hopping(&mut self, hops: &Hops, watermark: i64) -> Vec<(Window, A)> {
        let closed = self.hopping_windows(hops, watermark);
        if closed.is_empty() {
            return closed;
        }
        self.whole.retain(|(w, _)| w.end_ms > watermark);
        self.panes.retain(|(p, _)| hops.last_start(*p).saturating_add(hops.size) > watermark);
        self.marked.retain(|w| w.end_ms > watermark);
        self.closed_until = Some(watermark);
        closed
    }

    /// Hopping: the windows not closed yet that end at or before `until`,
    /// with their accumulators, oldest first.
    fn hopping_windows(&self, hops: &Hops, until: i64) -> Vec<(Window, A)> {
        self.hopping_starts(hops, until)
            .into_iter()
            .filter_map(|start| {
                let window = hops.window(start);
                self.get(&window).map(|acc| (window, acc.into_owned()))
            })
            .collect()
    }

    /// The open windows that hold rows (sorted by start): merged from their
    /// panes with `hops` (hopping windows), else the whole windows.
    pub(crate) fn open_windows(&self, hops: Option<&Hops>) -> Vec<(Window, A)> {
        match hops {
            Some(hops) => self.hopping_windows(hops, i64::MAX),
            None => self.whole.clone(),
        }
    }

    /// [`KeyState::open_windows`], each marked window's accumulator given
    /// [`Accumulator::marked`]: the layout of whole snapshots.
    pub(crate) fn whole_windows(&self, hops: Option<&Hops>) -> Vec<(Window, A)> {
        let mut windows = self.open_windows(hops);
        if !self.marked.is_empty() {
            for (window, acc) in &mut windows {
                if self.is_marked(window) {
                    acc.marked();
                }
            }
        }
        windows
    }

    /// Whether rows fell in `window` (a whole window or a pane in it) and it
    /// is still open.
    pub(crate) fn holds(&self, window: &Window) -> bool {
        !self.is_closed(window) && (!self.panes_in(window).is_empty() || self.whole.binary_search_by_key(window, |(w, _)| *w).is_ok())
    }

    /// Marks `window`; true when it was not marked before.
    pub(crate) fn mark(&mut self, window: Window) -> bool {
        match self.marked.binary_search(&window) {
            Ok(_) => false,
            Err(i) => {
                self.marked.insert(i, window);
                true
            }
        }
    }

    /// Whether `window` is marked.
    pub(crate) fn is_marked(&self, window: &Window) -> bool {
        self.marked.binary_search(window).is_ok()
    }

    /// The state as an entry value: postcard, in the plain layout when
    /// there are only whole windows.
    pub(crate) fn to_entry_value(&self) -> Vec<u8> {
        if self.panes.is_empty() && self.marked.is_empty() {
            return postcard::to_stdvec(&self.whole).expect("window state serialises");
        }
        let mut value = vec![FULL_LAYOUT];
        postcard::to_io(self, &mut value).expect("window state serialises");
        value
    }

    /// The state from [`KeyState::to_entry_value`] bytes, either layout.
    pub(crate) fn from_entry_value(value: &[u8]) -> Result<KeyState<A>, postcard::Error> {
        match value.split_first() {
            Some((&FULL_LAYOUT, rest)) => postcard::from_bytes(rest),
            _ => Ok(KeyState { whole: postcard::from_bytes(value)?, ..KeyState::default() }),
        }
    }
}

/// `starts` (sorted) with the starts of the `whole` windows ending at or
/// before `until`, sorted and without repeats.
fn merge_sorted<A>(mut starts: Vec<i64>, whole: &[(Window, A)], until: i64) -> Vec<i64> {
    let before = starts.len();
    starts.extend(whole.iter().filter(|(w, _)| w.end_ms <= until).map(|(w, _)| w.start_ms));
    if starts.len() > before {
        starts.sort_unstable();
        starts.dedup();
    }
    starts
}
