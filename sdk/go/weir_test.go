package weir

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"testing"
	"unsafe"
)

func f64Bytes(values ...float64) []byte {
	b := make([]byte, 8*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
	}
	return b
}

func TestFloat64ViewAndSelection(t *testing.T) {
	// Rows 1 and 3 are null; offset by one byte to force the aligned copy.
	raw := append([]byte{0}, f64Bytes(5, 2000, 1500, 3000, -1)...)
	col := NewColumn("total_amount", Float64, true, 5, []byte{0b10101}, nil, raw[1:])
	values, err := col.Float64()
	if err != nil || len(values) != 5 || values[2] != 1500 {
		t.Fatalf("values %v, %v", values, err)
	}
	sel := SelectWhere(values, func(v float64) bool { return v > 1000 }).AndValidity(&col)
	if got := sel.Bytes(); len(got) != 1 || got[0] != 0b00100 {
		t.Fatalf("selection %08b", got)
	}
	if _, err := col.Int64(); err == nil || err.Error() != "expected a Int64 column, found Float64" {
		t.Fatalf("wrong type: %v", err)
	}
}

func TestStringsAndMissingColumns(t *testing.T) {
	offsets := []byte{0, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0}
	batch := Batch{NumRows: 3, Columns: []Column{NewColumn("id", Utf8, false, 3, nil, offsets, []byte("o1abc"))}}
	col, err := batch.Column("id")
	if err != nil || col.Str(0) != "o1" || col.Str(1) != "" || col.Str(2) != "abc" {
		t.Fatalf("strings: %v", err)
	}
	if _, err := batch.Column("nope"); err == nil || err.(*Error).Kind != KindInvalidInput || err.Error() != "missing column `nope`" {
		t.Fatalf("missing column: %v", err)
	}
}

func TestDecodeConfigIsAsStrictAsSerde(t *testing.T) {
	type config struct {
		Column    string  `json:"column"`
		Threshold float64 `json:"threshold"`
	}
	cfg := config{Column: "total_amount", Threshold: 1000}
	if err := DecodeConfig(` {"threshold": -1.5e2} `, &cfg); err != nil || cfg.Threshold != -150 || cfg.Column != "total_amount" {
		t.Fatalf("%+v %v", cfg, err)
	}
	for _, bad := range []string{
		`{"threshold": "high"}`, `{"treshold": 5}`, `{"Threshold": 5}`, `{"threshold": null}`,
		`{"threshold": 1, "threshold": 2}`, `{"threshold": 5,}`, `{"threshold": 5} x`, `[1]`, `null`, ``, `not json`,
	} {
		err := DecodeConfig(bad, &config{})
		if e, ok := err.(*Error); !ok || e.Kind != KindInvalidConfig {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestOutputBuilders(t *testing.T) {
	out := &Output{rows: 3}
	f := out.Add("tax", Float64, true)
	f.Float64()[2] = 1.5
	f.SetNull(0)
	s := out.Add("label", Utf8, true)
	s.Push("a")
	s.PushNull()
	s.Push("ccc")
	out.Reject(1, "negative total_amount: %s", FormatFloat(-1e-7))
	if f.Validity[0] != 0b110 || s.Validity[0] != 0b101 {
		t.Fatalf("validity %08b %08b", f.Validity, s.Validity)
	}
	if want := []byte{0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0}; string(s.OffsetBytes()) != string(want) {
		t.Fatalf("offsets %v", s.OffsetBytes())
	}
	if out.Rejected[0].Reason != "negative total_amount: -0.0000001" {
		t.Fatal(out.Rejected[0].Reason)
	}
}

func TestRustNumberSemantics(t *testing.T) {
	for v, want := range map[float64]string{-5: "-5", -1.5e22: "-15000000000000000000000", math.Inf(-1): "-inf", math.NaN(): "NaN"} {
		if got := FormatFloat(v); got != want {
			t.Errorf("FormatFloat(%v) = %s, want %s", v, got, want)
		}
	}
	if FloatToInt64(math.NaN()) != 0 || FloatToInt64(1e300) != math.MaxInt64 || FloatToInt64(-1e300) != math.MinInt64 || FloatToInt64(-2.5) != -2 {
		t.Error("FloatToInt64 is not Rust's `as i64`")
	}
}

func TestParseURLSplitsLikeTheRustSDK(t *testing.T) {
	for url, want := range map[string]Request{
		"http://h:8080/a/b?x=1": {Authority: "h:8080", Path: "/a/b?x=1"},
		"https://h":             {HTTPS: true, Authority: "h", Path: "/"},
		"http://h?q":            {Authority: "h", Path: "?q"},
	} {
		got, err := ParseURL(url)
		if err != nil || got.HTTPS != want.HTTPS || got.Authority != want.Authority || got.Path != want.Path {
			t.Errorf("%s: %+v %v", url, got, err)
		}
	}
	for _, url := range []string{"ftp://h/", "http:///x", "h/x"} {
		if _, err := ParseURL(url); err == nil || err.Kind != HTTPInvalidRequest {
			t.Errorf("%s: %v", url, err)
		}
	}
}

func TestSinkErrorsAreClassifiedLikeTheRustSDK(t *testing.T) {
	for _, c := range []struct {
		err  error
		kind SinkErrorKind
		msg  string
	}{
		{Retryable("later %d", 1), SinkRetryable, "later 1"},
		{Permanent("never"), SinkPermanent, "never"},
		{Failed("boom"), SinkRetryable, "failed: boom"},
		{InvalidInput("no column"), SinkPermanent, "invalid input: no column"},
		{errors.New("plain"), SinkRetryable, "failed: plain"},
	} {
		if got := asSinkError(c.err); got.Kind != c.kind || got.Message != c.msg {
			t.Errorf("%v: %+v", c.err, got)
		}
	}
	if got := asSinkError(RejectRows([]Rejection{{Row: 2, Reason: "x"}})); got.Kind != SinkRejectedRows || len(got.Rows) != 1 {
		t.Errorf("%+v", got)
	}
}

func counts() *KeyedMap[int] {
	return NewKeyedMap(
		func(n int) []byte { return []byte(strconv.Itoa(n)) },
		func(b []byte) (int, error) { return strconv.Atoi(string(b)) },
	)
}

// brief renders entries as "key=value" or "key removed".
func brief(entries []StateEntry) []string {
	out := []string{}
	for _, e := range entries {
		if e.Removed {
			out = append(out, string(e.Key)+" removed")
		} else {
			out = append(out, string(e.Key)+"="+string(e.Value))
		}
	}
	return out
}

func TestKeyedMapChangesNameTheKeysPutTouchedAndRemovedSinceTheLastCheckpoint(t *testing.T) {
	m := counts()
	m.Put("b", 2)
	m.Put("a", 1)
	m.Put("c", 3)
	if got := brief(must(m.Changes())); !slices.Equal(got, []string{"a=1", "b=2", "c=3"}) {
		t.Fatalf("first changes %v", got)
	}
	if got := must(m.Changes()); len(got) != 0 {
		t.Fatalf("nothing changed since: %v", brief(got))
	}
	m.Put("d", 4)
	m.Remove("a")
	m.Remove("nope") // never existed: no entry
	m.Put("b", 20)
	m.Put("b", 21)
	if got := brief(must(m.Changes())); !slices.Equal(got, []string{"a removed", "b=21", "d=4"}) {
		t.Fatalf("changes %v", got)
	}
	m.Put("e", 5)
	if got := brief(must(m.Entries())); !slices.Equal(got, []string{"b=21", "c=3", "d=4", "e=5"}) {
		t.Fatalf("entries %v", got)
	}
	if got := must(m.Changes()); len(got) != 0 {
		t.Fatalf("Entries starts tracking afresh: %v", brief(got))
	}
	m.Clear()
	if got := brief(must(m.Changes())); !slices.Equal(got, []string{"b removed", "c removed", "d removed", "e removed"}) || m.Len() != 0 {
		t.Fatalf("clear %v", got)
	}
}

func TestKeyedMapTracksNothingUntilTheHostFirstAsks(t *testing.T) {
	m := counts()
	for i := range 1000 {
		m.Put(fmt.Sprint("k", i), i)
		m.Remove(fmt.Sprint("k", i))
	}
	m.Put("kept", 1)
	if m.changed != nil {
		t.Fatalf("a pipeline without checkpoints never asks: %d keys tracked", len(m.changed))
	}
	if got := brief(must(m.Changes())); !slices.Equal(got, []string{"kept=1"}) {
		t.Fatalf("first changes are the entries present: %v", got)
	}
	m.Remove("kept")
	if got := brief(must(m.Changes())); !slices.Equal(got, []string{"kept removed"}) {
		t.Fatalf("tracked from then on: %v", got)
	}
}

func TestKeyedMapRestoredFromEntriesAndChangesEqualsTheOriginal(t *testing.T) {
	m := counts()
	for i, k := range []string{"x", "y", "z"} {
		m.Put(k, i)
	}
	restored := counts()
	if err := restored.RestoreEntries(must(m.Entries())); err != nil {
		t.Fatal(err)
	}
	m.Put("w", 9)
	m.Remove("y")
	m.Put("x", 7)
	// Merge the changes into the entries the way the host does.
	if err := restored.RestoreEntries(mergedLikeTheHost(must(restored.Entries()), must(m.Changes()))); err != nil {
		t.Fatal(err)
	}
	if got, want := brief(must(restored.Entries())), brief(must(m.Entries())); !slices.Equal(got, want) {
		t.Fatalf("restored %v, original %v", got, want)
	}
	if got := must(restored.Changes()); len(got) != 0 {
		t.Fatalf("restore starts tracking afresh: %v", brief(got))
	}
	// A value decode refuses leaves the state alone.
	if err := restored.RestoreEntries([]StateEntry{{Key: []byte("x"), Value: []byte("seven")}}); err == nil || restored.Len() != 3 {
		t.Fatalf("bad entry: %v, %d keys", err, restored.Len())
	}
}

func TestKeyedMapCopiesKeysThatViewAnInputBuffer(t *testing.T) {
	buf := []byte("key1")
	view := unsafe.String(&buf[0], len(buf)) // what Column.Str returns
	m := counts()
	m.Put(view, 1)
	m.Touch(view)
	copy(buf, "XXXX")
	if v, ok := m.Get("key1"); !ok || v != 1 || !slices.Equal(brief(must(m.Changes())), []string{"key1=1"}) {
		t.Fatalf("the key changed with the buffer: %v %v", v, ok)
	}
}

// An aggregate that is not Keyed is one entry: its whole snapshot under the empty key.
type wholeAgg struct{ state []byte }

func (w *wholeAgg) Process(*Batch, *int64) ([]*Output, error) { return nil, nil }
func (w *wholeAgg) Snapshot() ([]byte, error)                 { return w.state, nil }
func (w *wholeAgg) Restore(b []byte) error                    { w.state = append([]byte(nil), b...); return nil }

func TestAnAggregateWithoutKeyedStateIsOneEntryHoldingItsSnapshot(t *testing.T) {
	defer func() { instance = nil }()
	instance = &wholeAgg{state: []byte("s1")}
	entries, err := SnapshotChanges()
	if err != nil || !slices.Equal(brief(entries), []string{"=s1"}) {
		t.Fatalf("%v %v", brief(entries), err)
	}
	if err := RestoreEntries([]StateEntry{{Key: []byte{}, Value: []byte("s2")}}); err != nil || string(instance.(*wholeAgg).state) != "s2" {
		t.Fatalf("restore: %v", err)
	}
	instance = &keyedAgg{counts()}
	instance.(*keyedAgg).Put("k", 1)
	if entries, err := SnapshotEntries(); err != nil || !slices.Equal(brief(entries), []string{"k=1"}) {
		t.Fatalf("an embedded KeyedMap is the state: %v %v", brief(entries), err)
	}
}

type keyedAgg struct{ *KeyedMap[int] }

func (k *keyedAgg) Process(*Batch, *int64) ([]*Output, error) { return nil, nil }
func (k *keyedAgg) Snapshot() ([]byte, error)                 { return nil, nil }
func (k *keyedAgg) Restore([]byte) error                      { return nil }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// mergedLikeTheHost applies changes to entries by key (the newest entry of
// a key wins, removed keys are dropped), as the host's compacted state topic.
func mergedLikeTheHost(entries, changes []StateEntry) []StateEntry {
	merged := map[string]StateEntry{}
	for _, e := range append(entries, changes...) {
		merged[string(e.Key)] = e
	}
	var out []StateEntry
	for _, e := range merged {
		if !e.Removed {
			out = append(out, e)
		}
	}
	return out
}
