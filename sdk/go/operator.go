package weir

import (
	"errors"
	"fmt"
	"unsafe"
)

// Filter keeps or drops rows (the filter-operator world).
type Filter interface {
	// Evaluate returns the rows to keep: a selection of batch.NumRows rows.
	Evaluate(batch *Batch) (Selection, error)
}

// Map derives columns row for row (the map-operator world).
type Map interface {
	// Process adds the output columns to out (batch.NumRows rows each) and
	// rejects rows with out.Reject. With Reads, only the added or replaced
	// columns: the host appends them to the input.
	Process(batch *Batch, out *Output) error
}

// Aggregate folds batches into state and emits result batches (the
// aggregate-operator world). The host snapshots the state with the offsets
// it covers and restores it into a fresh instance after a restart or a
// rebalance. An aggregate that is also Keyed (its state a KeyedMap or
// Windows) is checkpointed key by key when built for the
// keyed-aggregate-operator world (docs/sdk-go.md, "Keyed state").
type Aggregate interface {
	// Process folds batch into the state and returns zero or more result
	// batches (each built with NewOutput). watermarkMs is the event time
	// (ms since the epoch) before which no more input is expected, or nil
	// when the pipeline tracks no event time.
	Process(batch *Batch, watermarkMs *int64) ([]*Output, error)
	// Snapshot serialises the whole state.
	Snapshot() ([]byte, error)
	// Restore replaces the state with one Snapshot produced (possibly in
	// another instance or process). Return an error, not a panic, for
	// bytes it cannot read.
	Restore(state []byte) error
}

// Reader is implemented by operators that read only some columns: only
// those cross into the guest. Without it (or when Reads returns nil) the
// operator sees every column.
type Reader interface {
	Reads() []string
}

var (
	newFilter    func(config string) (Filter, error)
	newMap       func(config string) (Map, error)
	newAggregate func(config string) (Aggregate, error)
	instance     any
)

// ExportFilter registers the filter of this component: call it from an
// init function. newFilter gets the JSON config ("{}" when none).
func ExportFilter(newFilter_ func(config string) (Filter, error)) { newFilter = newFilter_ }

// ExportMap registers the map of this component: call it from an init function.
func ExportMap(newMap_ func(config string) (Map, error)) { newMap = newMap_ }

// ExportAggregate registers the aggregate of this component: call it from
// an init function.
func ExportAggregate(newAggregate_ func(config string) (Aggregate, error)) {
	newAggregate = newAggregate_
}

// asError turns any error into an *Error (KindFailed unless it is one).
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{KindFailed, err.Error()}
}

// Init runs the registered constructor. Called by the glue; not for
// operator authors. reads nil = every column.
func Init(config string) (reads []string, err *Error) {
	var op any
	var cerr error
	switch {
	case newFilter != nil:
		op, cerr = newFilter(config)
	case newMap != nil:
		op, cerr = newMap(config)
	case newAggregate != nil:
		op, cerr = newAggregate(config)
	case newSink != nil:
		op, cerr = newSink(config)
	default:
		return nil, &Error{KindFailed, "no operator registered: call weir.ExportFilter, ExportMap, ExportAggregate or ExportSink from an init function"}
	}
	if cerr != nil {
		return nil, asError(cerr)
	}
	instance = op
	if r, ok := op.(Reader); ok {
		reads = r.Reads()
	}
	return reads, nil
}

// Evaluate runs the filter. Called by the glue.
func Evaluate(batch *Batch) ([]byte, *Error) {
	f, ok := instance.(Filter)
	if !ok {
		return nil, &Error{KindFailed, "evaluate before a successful init"}
	}
	sel, err := f.Evaluate(batch)
	if err != nil {
		return nil, asError(err)
	}
	if sel.rows != batch.NumRows {
		return nil, &Error{KindFailed, fmt.Sprintf("the selection has %d rows, the batch %d", sel.rows, batch.NumRows)}
	}
	return sel.bits, nil
}

// Process runs the map. Called by the glue.
func Process(batch *Batch) (*Output, *Error) {
	m, ok := instance.(Map)
	if !ok {
		return nil, &Error{KindFailed, "process before a successful init"}
	}
	out := &Output{rows: batch.NumRows}
	if err := m.Process(batch, out); err != nil {
		return nil, asError(err)
	}
	return out, nil
}

// Fold runs the aggregate's Process. Called by the glue.
func Fold(batch *Batch, watermarkMs *int64) ([]*Output, *Error) {
	a, ok := instance.(Aggregate)
	if !ok {
		return nil, &Error{KindFailed, "process before a successful init"}
	}
	outs, err := a.Process(batch, watermarkMs)
	if err != nil {
		return nil, asError(err)
	}
	for i, o := range outs {
		for _, c := range o.Columns {
			if c.Type.width() == 0 && c.Type != Boolean && len(c.Offsets) != o.rows+1 {
				return nil, &Error{KindFailed, fmt.Sprintf("output batch %d: column %s has %d values, the batch %d rows", i, c.Name, len(c.Offsets)-1, o.rows)}
			}
		}
	}
	return outs, nil
}

// Snapshot runs the aggregate's Snapshot. Called by the glue.
func Snapshot() ([]byte, *Error) {
	a, ok := instance.(Aggregate)
	if !ok {
		return nil, &Error{KindFailed, "snapshot before a successful init"}
	}
	state, err := a.Snapshot()
	if err != nil {
		return nil, asError(err)
	}
	return state, nil
}

// Restore runs the aggregate's Restore. Called by the glue.
func Restore(state []byte) *Error {
	a, ok := instance.(Aggregate)
	if !ok {
		return &Error{KindFailed, "restore before a successful init"}
	}
	if err := a.Restore(state); err != nil {
		return asError(err)
	}
	return nil
}

// NewOutput starts a result batch of rows rows for an aggregate: add its
// columns with Add.
func NewOutput(rows int) *Output { return &Output{rows: rows} }

// Output is what a map returns: columns of NumRows rows, and rejections.
type Output struct {
	rows     int
	Columns  []*Builder
	Rejected []Rejection
}

// Rejection is one row sent to the dead-letter topic, with the reason.
type Rejection struct {
	Row    int
	Reason string
}

// Reject sends row to the dead-letter topic with a reason (fmt.Sprintf-style).
func (o *Output) Reject(row int, format string, args ...any) {
	o.Rejected = append(o.Rejected, Rejection{row, fmt.Sprintf(format, args...)})
}

// Rows is the number of rows every output column has.
func (o *Output) Rows() int { return o.rows }

// Builder is an output column. Fixed-width values are zeroed and written
// in place through Float64/Int64/...; booleans through SetBool; utf8 and
// binary are appended in row order with Push/PushNull.
type Builder struct {
	Name     string
	Type     DataType
	Nullable bool
	// Unit and Timezone of a timestamp column.
	Unit        TimeUnit
	Timezone    string
	HasTimezone bool
	// Validity: nil = no nulls.
	Validity []byte
	Offsets  []int32
	Values   []byte
	rows     int
}

// Add adds an output column of type t (not list-utf8).
func (o *Output) Add(name string, t DataType, nullable bool) *Builder {
	b := &Builder{Name: name, Type: t, Nullable: nullable, rows: o.rows}
	switch {
	case t.width() > 0:
		words := make([]uint64, (o.rows*t.width()+7)/8)
		b.Values = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), o.rows*t.width())
	case t == Boolean:
		b.Values = make([]byte, (o.rows+7)/8)
	case t == Utf8 || t == Binary:
		b.Offsets = make([]int32, 1, o.rows+1)
	default:
		panic("weir: list-utf8 output columns are not supported")
	}
	o.Columns = append(o.Columns, b)
	return b
}

// Float64 is the value buffer of a float64 column.
func (b *Builder) Float64() []float64 { return view[float64](b.Values) }

// Float32 is the value buffer of a float32 column.
func (b *Builder) Float32() []float32 { return view[float32](b.Values) }

// Int64 is the value buffer of an int64 or timestamp column.
func (b *Builder) Int64() []int64 { return view[int64](b.Values) }

// Int32 is the value buffer of an int32 column.
func (b *Builder) Int32() []int32 { return view[int32](b.Values) }

// SetBool sets the value of a boolean column at row.
func (b *Builder) SetBool(row int, v bool) {
	if v {
		b.Values[row>>3] |= 1 << (row & 7)
	} else {
		b.Values[row>>3] &^= 1 << (row & 7)
	}
}

// Push appends the next value of a utf8 or binary column.
func (b *Builder) Push(s string) {
	b.Values = append(b.Values, s...)
	b.Offsets = append(b.Offsets, int32(len(b.Values)))
}

// PushNull appends a null to a utf8 or binary column.
func (b *Builder) PushNull() {
	b.SetNull(len(b.Offsets) - 1)
	b.Push("")
}

// SetNull marks row null.
func (b *Builder) SetNull(row int) {
	if b.Validity == nil {
		b.Validity = make([]byte, (b.rows+7)/8)
		for i := 0; i < b.rows; i++ {
			b.Validity[i>>3] |= 1 << (i & 7)
		}
	}
	b.Validity[row>>3] &^= 1 << (row & 7)
}

// SetValidity copies a validity bitmap (nil = no nulls), e.g. an input
// column's: nulls in, nulls out.
func (b *Builder) SetValidity(bitmap []byte) {
	b.Validity = nil
	if bitmap != nil {
		b.Validity = append([]byte(nil), bitmap[:(b.rows+7)/8]...)
	}
}

// OffsetBytes is the raw `s32` offsets buffer (for the glue).
func (b *Builder) OffsetBytes() []byte {
	if b.Offsets == nil {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b.Offsets))), len(b.Offsets)*4)
}
