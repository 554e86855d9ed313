package weir

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
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
