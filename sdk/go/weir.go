// Package weir writes weir operators (filter, map, aggregate, sink) in Go.
//
// An operator registers itself from an init function with ExportFilter,
// ExportMap, ExportAggregate or ExportSink; the glue in _glue/ (compiled
// next to the bindings that wit-bindgen-go writes for the operator world)
// converts the WIT values to the plain types of this package and back. Input columns are Go slices
// viewing the Arrow buffers the host copied into guest memory (no per-value
// conversion; copied once only when a buffer is misaligned).
//
// This package imports no generated code, so operator logic unit-tests on
// the host with `go test` (build a Batch with NewColumn).
//
// Build and toolchain: docs/sdk-go.md.
package weir

import (
	"fmt"
	"math"
	"strconv"
)

// DataType is the logical type of a column (the WIT `data-type` variant).
type DataType uint8

// The column types, in the order of the WIT variant.
const (
	Boolean DataType = iota
	Int32
	Int64
	Float32
	Float64
	Utf8
	Binary
	Timestamp
	ListUtf8
)

var typeNames = [...]string{"Boolean", "Int32", "Int64", "Float32", "Float64", "Utf8", "Binary", "Timestamp", "ListUtf8"}

// String names the type as the Rust SDK prints it ("Float64", "Utf8", ...).
func (t DataType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "Unknown"
}

// width is the byte size of one value of a fixed-width type, 0 otherwise.
func (t DataType) width() int {
	switch t {
	case Int32, Float32:
		return 4
	case Int64, Float64, Timestamp:
		return 8
	}
	return 0
}

// TimeUnit is the resolution of a timestamp column.
type TimeUnit uint8

// Timestamp units, in the order of the WIT enum.
const (
	Second TimeUnit = iota
	Millisecond
	Microsecond
	Nanosecond
)

// ErrorKind says which WIT `operator-error` case an Error becomes.
type ErrorKind uint8

const (
	// KindInvalidConfig: the configuration given to init is unusable.
	KindInvalidConfig ErrorKind = iota
	// KindInvalidInput: the batch lacks the columns or types the operator needs.
	KindInvalidInput
	// KindFailed: any other failure; the host retries, then bisects the batch.
	KindFailed
)

// Error is an error for a whole call (not a trap: the instance survives).
// Any other error returned by an operator becomes KindFailed.
type Error struct {
	Kind    ErrorKind
	Message string
}

func (e *Error) Error() string { return e.Message }

// InvalidConfig returns a KindInvalidConfig error (fmt.Sprintf-style).
func InvalidConfig(format string, args ...any) error {
	return &Error{KindInvalidConfig, fmt.Sprintf(format, args...)}
}

// InvalidInput returns a KindInvalidInput error (fmt.Sprintf-style).
func InvalidInput(format string, args ...any) error {
	return &Error{KindInvalidInput, fmt.Sprintf(format, args...)}
}

// Failed returns a KindFailed error (fmt.Sprintf-style).
func Failed(format string, args ...any) error {
	return &Error{KindFailed, fmt.Sprintf(format, args...)}
}

// Level is the severity of a log line.
type Level uint8

// Log levels, in the order of the WIT enum.
const (
	Trace Level = iota
	Debug
	Info
	Warn
	ErrorLevel
)

var hostLog = func(level Level, message string) {}

// Log writes a line to the host's log (fmt.Sprintf-style). Standard output
// and standard error also reach the host log.
func Log(level Level, format string, args ...any) {
	hostLog(level, fmt.Sprintf(format, args...))
}

// SetHostLog is called by the glue with the host's `log` import.
// Not for operator authors.
func SetHostLog(log func(level Level, message string)) { hostLog = log }

// FormatFloat formats like Rust's `format!("{}", v)`: shortest round-trip
// digits in plain decimal (`-5`, `-1.5`, `0.0000001`), `NaN`, `inf`, `-inf`.
func FormatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// FloatToInt64 is Rust's `v as i64`: saturating, NaN gives 0.
func FloatToInt64(v float64) int64 {
	switch {
	case math.IsNaN(v):
		return 0
	case v >= 9223372036854775807.0:
		return math.MaxInt64
	case v <= -9223372036854775808.0:
		return math.MinInt64
	}
	return int64(v)
}
