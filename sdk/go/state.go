package weir

import (
	"slices"
	"strings"
)

// StateEntry is one key of an aggregate's keyed state (the WIT
// `keyed-state.state-entry`): the key's serialised value, or Removed.
type StateEntry struct {
	// Key is unique within the operator.
	Key []byte
	// Value is the key's serialised state (nil when Removed).
	Value []byte
	// Removed: the key no longer exists (a closed window, an evicted key).
	Removed bool
}

// KeyedState is state that tracks which keys changed, so the host's
// checkpoints write only those (contract 0.1.1, `weir:operator/keyed-state`;
// the Rust SDK's `KeyedState` trait). KeyedMap implements it.
type KeyedState interface {
	// Changes returns the keys changed or removed since the last call of
	// Changes, Entries or RestoreEntries.
	Changes() ([]StateEntry, error)
	// Entries returns every key (none Removed) and starts tracking afresh.
	Entries() ([]StateEntry, error)
	// RestoreEntries replaces the state with entries (from Entries and
	// Changes of an earlier instance, merged by the host).
	RestoreEntries(entries []StateEntry) error
}

// Keyed is implemented by an aggregate whose state is keyed: return the
// KeyedMap holding it (`func (a *agg) KeyedState() weir.KeyedState { return
// a.totals }`, or embed the *KeyedMap, which has this method). Build the
// component for the `keyed-aggregate-operator` world (docs/sdk-go.md) and
// checkpoints write only the keys changed since the previous one. An
// aggregate without it is checkpointed as one entry holding its Snapshot.
type Keyed interface {
	KeyedState() KeyedState
}

// KeyedMap is an aggregate's per-key state, a map from string keys to
// values of type V that records which keys Put, Touch and Remove changed
// since the last checkpoint. Each key is one entry of the state topic: the
// key's bytes, and its value serialised by the encode function given to
// NewKeyedMap. Keys are copied when first stored, so a key may view an
// input buffer (Column.Str).
type KeyedMap[V any] struct {
	values map[string]V
	// changed is nil until the host first asks for entries: a pipeline
	// without checkpoints never does, so nothing accumulates there.
	changed map[string]struct{}
	encode  func(V) []byte
	decode  func([]byte) (V, error)
}

// NewKeyedMap returns an empty map whose values serialise with encode and
// deserialise with decode (return an error, not a panic, for bad bytes).
func NewKeyedMap[V any](encode func(V) []byte, decode func([]byte) (V, error)) *KeyedMap[V] {
	return &KeyedMap[V]{values: map[string]V{}, encode: encode, decode: decode}
}

// Get returns the value of key (does not mark it changed).
func (m *KeyedMap[V]) Get(key string) (V, bool) {
	v, ok := m.values[key]
	return v, ok
}

// Put sets the value of key and marks it changed.
func (m *KeyedMap[V]) Put(key string, value V) {
	if _, ok := m.values[key]; !ok {
		key = strings.Clone(key)
	}
	m.values[key] = value
	m.Touch(key)
}

// Touch marks key changed, for a value changed in place (a pointer V).
func (m *KeyedMap[V]) Touch(key string) {
	if m.changed == nil {
		return
	}
	if _, ok := m.changed[key]; !ok {
		m.changed[strings.Clone(key)] = struct{}{}
	}
}

// Remove deletes key (the next checkpoint removes its entry).
func (m *KeyedMap[V]) Remove(key string) {
	if _, ok := m.values[key]; ok {
		delete(m.values, key)
		m.Touch(key)
	}
}

// Clear removes every key.
func (m *KeyedMap[V]) Clear() {
	for key := range m.values {
		m.Touch(key)
	}
	clear(m.values)
}

// Len is the number of keys.
func (m *KeyedMap[V]) Len() int { return len(m.values) }

// Keys returns the keys in byte order.
func (m *KeyedMap[V]) Keys() []string {
	keys := make([]string, 0, len(m.values))
	for key := range m.values {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	return keys
}

// KeyedState returns m: an aggregate that embeds a *KeyedMap is Keyed.
func (m *KeyedMap[V]) KeyedState() KeyedState { return m }

// entry is the entry of key: its bytes and encoded value, or Removed.
func (m *KeyedMap[V]) entry(key string) StateEntry {
	e := StateEntry{Key: []byte(key)}
	if v, ok := m.values[key]; ok {
		e.Value = m.encode(v)
		if e.Value == nil {
			e.Value = []byte{}
		}
	} else {
		e.Removed = true
	}
	return e
}

// Changes returns the keys changed or removed since the last checkpoint,
// in byte order. Before the first Entries, Changes or RestoreEntries it
// returns every entry (each changed since the start).
func (m *KeyedMap[V]) Changes() ([]StateEntry, error) {
	if m.changed == nil {
		return m.Entries()
	}
	keys := make([]string, 0, len(m.changed))
	for key := range m.changed {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	clear(m.changed)
	entries := make([]StateEntry, len(keys))
	for i, key := range keys {
		entries[i] = m.entry(key)
	}
	return entries, nil
}

// Entries returns every key in byte order and starts tracking afresh.
func (m *KeyedMap[V]) Entries() ([]StateEntry, error) {
	m.changed = map[string]struct{}{}
	keys := m.Keys()
	entries := make([]StateEntry, len(keys))
	for i, key := range keys {
		entries[i] = m.entry(key)
	}
	return entries, nil
}

// RestoreEntries replaces the state with entries (Removed ones are
// skipped); on a value decode refuses, the state is left unchanged.
func (m *KeyedMap[V]) RestoreEntries(entries []StateEntry) error {
	values := make(map[string]V, len(entries))
	for _, e := range entries {
		if e.Removed {
			continue
		}
		v, err := m.decode(e.Value)
		if err != nil {
			return err
		}
		values[string(e.Key)] = v
	}
	m.values = values
	m.changed = map[string]struct{}{}
	return nil
}

// keyedCall runs f on the aggregate's KeyedState, or on whole (its Snapshot
// and Restore as the one entry with an empty key) when it is not Keyed.
func keyedCall(what string, f func(KeyedState) ([]StateEntry, error)) ([]StateEntry, *Error) {
	a, ok := instance.(Aggregate)
	if !ok {
		return nil, &Error{KindFailed, what + " before a successful init"}
	}
	var state KeyedState = wholeState{a}
	if k, ok := a.(Keyed); ok {
		state = k.KeyedState()
	}
	entries, err := f(state)
	if err != nil {
		return nil, asError(err)
	}
	return entries, nil
}

// SnapshotChanges runs the aggregate's KeyedState.Changes. Called by the glue.
func SnapshotChanges() ([]StateEntry, *Error) {
	return keyedCall("snapshot-changes", KeyedState.Changes)
}

// SnapshotEntries runs the aggregate's KeyedState.Entries. Called by the glue.
func SnapshotEntries() ([]StateEntry, *Error) {
	return keyedCall("snapshot-entries", KeyedState.Entries)
}

// RestoreEntries runs the aggregate's KeyedState.RestoreEntries. Called by the glue.
func RestoreEntries(entries []StateEntry) *Error {
	_, err := keyedCall("restore-entries", func(k KeyedState) ([]StateEntry, error) { return nil, k.RestoreEntries(entries) })
	return err
}

// wholeState is an aggregate that is not Keyed, as one entry (empty key)
// holding its whole Snapshot, as the Rust SDK does.
type wholeState struct{ a Aggregate }

func (w wholeState) Changes() ([]StateEntry, error) { return w.Entries() }

func (w wholeState) Entries() ([]StateEntry, error) {
	state, err := w.a.Snapshot()
	if err != nil {
		return nil, err
	}
	if state == nil {
		state = []byte{}
	}
	return []StateEntry{{Key: []byte{}, Value: state}}, nil
}

func (w wholeState) RestoreEntries(entries []StateEntry) error {
	for _, e := range entries {
		if len(e.Key) == 0 && !e.Removed {
			return w.a.Restore(e.Value)
		}
	}
	return nil
}
