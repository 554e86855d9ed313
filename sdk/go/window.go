package weir

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
)

// WindowSpec says which event-time windows a row belongs to (the Rust SDK's
// `WindowSpec`; same JSON: {"type": "tumbling", "size_ms": ...}).
type WindowSpec struct {
	// Type is "tumbling", "hopping" or "session".
	Type string `json:"type"`
	// SizeMs is the window length (tumbling, hopping).
	SizeMs int64 `json:"size_ms,omitempty"`
	// SlideMs is the distance between window starts (hopping).
	SlideMs int64 `json:"slide_ms,omitempty"`
	// GapMs is the inactivity that ends a session.
	GapMs int64 `json:"gap_ms,omitempty"`
}

// Tumbling is fixed, non-overlapping windows of sizeMs, aligned to the epoch.
func Tumbling(sizeMs int64) WindowSpec { return WindowSpec{Type: "tumbling", SizeMs: sizeMs} }

// Hopping is windows of sizeMs starting every slideMs.
func Hopping(sizeMs, slideMs int64) WindowSpec {
	return WindowSpec{Type: "hopping", SizeMs: sizeMs, SlideMs: slideMs}
}

// Session is, per key, activity separated by gaps shorter than gapMs.
func Session(gapMs int64) WindowSpec { return WindowSpec{Type: "session", GapMs: gapMs} }

// Window is [StartMs, EndMs) in event time.
type Window struct {
	StartMs int64 `json:"start_ms"`
	EndMs   int64 `json:"end_ms"`
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Assign returns the fixed (tumbling or hopping) windows that contain t,
// oldest first; none for sessions, which depend on the key's other rows.
func (s WindowSpec) Assign(t int64) []Window {
	switch s.Type {
	case "tumbling":
		start := floorDiv(t, s.SizeMs) * s.SizeMs
		return []Window{{start, start + s.SizeMs}}
	case "hopping":
		var windows []Window
		for start := floorDiv(t, s.SlideMs) * s.SlideMs; start > t-s.SizeMs; start -= s.SlideMs {
			windows = append(windows, Window{start, start + s.SizeMs})
		}
		slices.Reverse(windows)
		return windows
	}
	return nil
}

// Validate checks the kind and sizes: positive, a hop no longer than the window.
func (s WindowSpec) Validate() error {
	ok := false
	switch s.Type {
	case "tumbling":
		ok = s.SizeMs > 0
	case "hopping":
		ok = s.SizeMs > 0 && s.SlideMs > 0 && s.SlideMs <= s.SizeMs
	case "session":
		ok = s.GapMs > 0
	}
	if !ok {
		return InvalidConfig("invalid window %+v: sizes must be positive and slide <= size", s)
	}
	return nil
}

// Accumulator is the operator's fold over a window's rows: a pointer type
// whose Merge adds another accumulator of the same key (sessions merge when
// a late row bridges them). Its exported fields are its state (JSON).
type Accumulator[A any] interface {
	Merge(other A)
}

// OpenWindow is an open window of a key and its accumulator.
type OpenWindow[A any] struct {
	Window Window `json:"window"`
	Acc    A      `json:"acc"`
}

// Closed is a window the watermark passed: its key and final accumulator.
type Closed[K any, A any] struct {
	Window Window
	Key    K
	Acc    A
}

// Windows keeps open windows and their accumulators by key (the Rust SDK's
// `Windows`): Add assigns rows to windows, Close hands out the windows the
// watermark passed. It is a KeyedState with one entry per key (key and open
// windows as JSON) and tracks the keys Add, GetMut and Close changed; a key
// whose windows all closed is removed. Return it from KeyedState() and
// checkpoints write only those keys.
type Windows[K cmp.Ordered, A Accumulator[A]] struct {
	spec WindowSpec
	open map[K][]OpenWindow[A]
	// changed is nil until the host first asks for entries (a pipeline
	// without checkpoints never does, so nothing accumulates there).
	changed map[K]struct{}
	newAcc  func() A
}

// NewWindows returns windows of spec with no open window; newAcc returns an
// empty accumulator.
func NewWindows[K cmp.Ordered, A Accumulator[A]](spec WindowSpec, newAcc func() A) *Windows[K, A] {
	return &Windows[K, A]{spec: spec, open: map[K][]OpenWindow[A]{}, newAcc: newAcc}
}

// Spec is the window kind.
func (w *Windows[K, A]) Spec() WindowSpec { return w.spec }

// own copies a string key (it may view an input buffer).
func own[K any](key K) K {
	if s, ok := any(key).(string); ok {
		return any(strings.Clone(s)).(K)
	}
	return key
}

func (w *Windows[K, A]) touch(key K) {
	if w.changed == nil {
		return
	}
	if _, ok := w.changed[key]; !ok {
		w.changed[own(key)] = struct{}{}
	}
}

func byStart[A any](o OpenWindow[A], start Window) int {
	return cmp.Or(cmp.Compare(o.Window.StartMs, start.StartMs), cmp.Compare(o.Window.EndMs, start.EndMs))
}

// Add adds a row with event time t under key: add folds it into the
// accumulator of each window the row belongs to.
func (w *Windows[K, A]) Add(key K, t int64, add func(acc A)) {
	w.touch(key)
	windows, ok := w.open[key]
	if !ok {
		key = own(key)
	}
	if w.spec.Type == "session" {
		session := Window{t, t + w.spec.GapMs}
		acc := w.newAcc()
		add(acc)
		kept := windows[:0:0]
		for _, o := range windows {
			if o.Window.StartMs <= session.EndMs && session.StartMs <= o.Window.EndMs {
				session.StartMs = min(session.StartMs, o.Window.StartMs)
				session.EndMs = max(session.EndMs, o.Window.EndMs)
				acc.Merge(o.Acc)
			} else {
				kept = append(kept, o)
			}
		}
		kept = append(kept, OpenWindow[A]{session, acc})
		slices.SortFunc(kept, func(a, b OpenWindow[A]) int { return byStart(a, b.Window) })
		w.open[key] = kept
		return
	}
	for _, window := range w.spec.Assign(t) {
		i, found := slices.BinarySearchFunc(windows, window, byStart[A])
		if !found {
			windows = slices.Insert(windows, i, OpenWindow[A]{window, w.newAcc()})
		}
		add(windows[i].Acc)
	}
	w.open[key] = windows
}

// IsLate says whether a row at t would only land in windows the watermark
// already closed (drop, dead-letter or side-output it).
func (w *Windows[K, A]) IsLate(t, watermark int64) bool {
	if w.spec.Type == "session" {
		return t+w.spec.GapMs <= watermark
	}
	for _, window := range w.spec.Assign(t) {
		if window.EndMs > watermark {
			return false
		}
	}
	return true
}

// Close removes and returns every window whose end is at or before
// watermark, by window end, then key, then start.
func (w *Windows[K, A]) Close(watermark int64) []Closed[K, A] {
	var closed []Closed[K, A]
	for key, windows := range w.open {
		kept := windows[:0]
		for _, o := range windows {
			if o.Window.EndMs <= watermark {
				closed = append(closed, Closed[K, A]{o.Window, key, o.Acc})
			} else {
				kept = append(kept, o)
			}
		}
		if len(kept) == len(windows) {
			continue
		}
		w.touch(key)
		if len(kept) == 0 {
			delete(w.open, key)
		} else {
			w.open[key] = kept
		}
	}
	slices.SortFunc(closed, func(a, b Closed[K, A]) int {
		return cmp.Or(cmp.Compare(a.Window.EndMs, b.Window.EndMs), cmp.Compare(a.Key, b.Key), cmp.Compare(a.Window.StartMs, b.Window.StartMs))
	})
	return closed
}

// GetMut returns the accumulator of an open window of key to change it
// (early updates, alerts sent once), marking the key changed.
func (w *Windows[K, A]) GetMut(key K, window Window) (A, bool) {
	acc, ok := w.Get(key, window)
	if ok {
		w.touch(key)
	}
	return acc, ok
}

// Get returns the accumulator of an open window of key, to read only (does
// not mark the key changed, unlike GetMut).
func (w *Windows[K, A]) Get(key K, window Window) (A, bool) {
	windows := w.open[key]
	if i, ok := slices.BinarySearchFunc(windows, window, byStart[A]); ok {
		return windows[i].Acc, true
	}
	var none A
	return none, false
}

// OpenWindows returns the open windows of key, sorted by start (read only).
func (w *Windows[K, A]) OpenWindows(key K) []OpenWindow[A] { return w.open[key] }

// Len is the number of open (window, key) pairs.
func (w *Windows[K, A]) Len() int {
	n := 0
	for _, windows := range w.open {
		n += len(windows)
	}
	return n
}

// snapshot is the whole state as JSON.
type windowsSnapshot[K comparable, A any] struct {
	Spec WindowSpec            `json:"spec"`
	Open map[K][]OpenWindow[A] `json:"open"`
}

// Snapshot returns the state as JSON bytes, for Aggregate.Snapshot.
func (w *Windows[K, A]) Snapshot() ([]byte, error) {
	return json.Marshal(windowsSnapshot[K, A]{w.spec, w.open})
}

// Restore replaces the state with Snapshot bytes, for Aggregate.Restore;
// the next Changes names every key of the old and the new state.
func (w *Windows[K, A]) Restore(state []byte) error {
	var s windowsSnapshot[K, A]
	if err := json.Unmarshal(state, &s); err != nil {
		return Failed("window state: %v", err)
	}
	for key := range w.open {
		w.touch(key)
	}
	for key := range s.Open {
		w.touch(key)
	}
	w.spec, w.open = s.Spec, s.Open
	if w.open == nil {
		w.open = map[K][]OpenWindow[A]{}
	}
	return nil
}

// KeyedState returns w (implements Keyed for an aggregate that embeds it).
func (w *Windows[K, A]) KeyedState() KeyedState { return w }

func (w *Windows[K, A]) entry(key K) (StateEntry, error) {
	k, err := json.Marshal(key)
	if err != nil {
		return StateEntry{}, err
	}
	windows, ok := w.open[key]
	if !ok {
		return StateEntry{Key: k, Removed: true}, nil
	}
	v, err := json.Marshal(windows)
	return StateEntry{Key: k, Value: v}, err
}

func (w *Windows[K, A]) entries(keys []K) ([]StateEntry, error) {
	slices.Sort(keys)
	out := make([]StateEntry, len(keys))
	for i, key := range keys {
		e, err := w.entry(key)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// Changes returns the keys that got a row or closed a window since the
// last checkpoint (a key without open windows as Removed), in key order.
// Before the first Entries, Changes or RestoreEntries it returns every
// entry (each changed since the start).
func (w *Windows[K, A]) Changes() ([]StateEntry, error) {
	if w.changed == nil {
		return w.Entries()
	}
	keys := make([]K, 0, len(w.changed))
	for key := range w.changed {
		keys = append(keys, key)
	}
	clear(w.changed)
	return w.entries(keys)
}

// Entries returns every key and starts tracking afresh.
func (w *Windows[K, A]) Entries() ([]StateEntry, error) {
	w.changed = map[K]struct{}{}
	keys := make([]K, 0, len(w.open))
	for key := range w.open {
		keys = append(keys, key)
	}
	return w.entries(keys)
}

// RestoreEntries replaces the open windows with entries (key JSON ->
// windows JSON); refused entries leave the state unchanged.
func (w *Windows[K, A]) RestoreEntries(entries []StateEntry) error {
	open := make(map[K][]OpenWindow[A], len(entries))
	for _, e := range entries {
		if e.Removed {
			continue
		}
		var key K
		var windows []OpenWindow[A]
		if err := json.Unmarshal(e.Key, &key); err != nil {
			return Failed("window state key: %v", err)
		}
		if err := json.Unmarshal(e.Value, &windows); err != nil {
			return Failed("window state entry %s: %v", e.Key, err)
		}
		open[key] = windows
	}
	w.open = open
	w.changed = map[K]struct{}{}
	return nil
}
