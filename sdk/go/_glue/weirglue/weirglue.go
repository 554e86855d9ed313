// Package weirglue converts between the WIT types of the generated bindings
// and package weir (shared by the export glue of every world).
package weirglue

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"wit_component/weir_operator_host"
	"wit_component/weir_operator_types"

	weir "weir/sdk"
)

type (
	wbatch = weir_operator_types.Batch
	werror = weir_operator_types.OperatorError
)

func init() {
	weir.SetHostLog(func(level weir.Level, message string) { weir_operator_host.Log(uint8(level), message) })
	// No collection inside an allocation: the canonical ABI allocates the
	// input through cabi_realloc, where a garbage collection that reaches
	// a WASI import (clocks, scheduling) traps with "cannot leave component
	// instance". Collect is called at the start of every export instead.
	debug.SetGCPercent(-1)
}

var heap = []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}

// Collect runs the garbage collector when the heap has grown past twice
// what was live after the last collection (plus 4 MiB). Call it from
// exports only, where WASI imports are allowed.
func Collect() {
	metrics.Read(heap)
	live, objects := heap[0].Value.Uint64(), heap[1].Value.Uint64()
	if objects > 2*live+4<<20 {
		runtime.GC()
	}
}

func optBytes(o witTypes.Option[[]uint8]) []byte {
	if o.Tag() == witTypes.OptionSome {
		if b := o.Some(); b != nil {
			return b
		}
		return []byte{}
	}
	return nil
}

// Batch views a WIT batch as a weir.Batch (no copy of aligned buffers).
func Batch(in wbatch) *weir.Batch {
	n := min(len(in.Schema), len(in.Columns))
	b := &weir.Batch{NumRows: int(in.NumRows), Columns: make([]weir.Column, n)}
	for i := 0; i < n; i++ {
		c := in.Columns[i]
		var items *[3][]byte
		if c.Items.Tag() == witTypes.OptionSome {
			it := c.Items.Some()
			items = &[3][]byte{optBytes(it.Validity), it.Offsets, it.Values}
		}
		b.Columns[i] = column(in.Schema[i], b.NumRows, optBytes(c.Validity), c.Offsets, c.Values, items)
	}
	return b
}

// column views one column's buffers under its field; items are a
// list-utf8 column's strings (validity, offsets, values).
func column(f weir_operator_types.Field, rows int, validity, offsets, values []byte, items *[3][]byte) weir.Column {
	t := weir.DataType(f.DataType.Tag())
	col := weir.NewColumn(f.Name, t, f.Nullable, rows, validity, offsets, values)
	if t == weir.Timestamp {
		ts := f.DataType.Timestamp()
		col.Unit = weir.TimeUnit(ts.Unit)
		if ts.Timezone.Tag() == witTypes.OptionSome {
			col.Timezone, col.HasTimezone = ts.Timezone.Some(), true
		}
	}
	if t == weir.ListUtf8 && items != nil {
		count := max(len(items[1])/4-1, 0)
		ic := weir.NewColumn("item", weir.Utf8, true, count, items[0], items[1], items[2])
		col.Items = &ic
	}
	return col
}

// Schemas the host declared (contract 0.1.2); a handle is an index.
var schemas [][]weir_operator_types.Field

// DeclareSchema keeps a schema for packed batches and returns its handle.
func DeclareSchema(fields []weir_operator_types.Field) uint32 {
	schemas = append(schemas, fields)
	return uint32(len(schemas) - 1)
}

// PackedBatch views a packed batch (contract 0.1.2) as a weir.Batch: the
// declared schema's fields, each buffer a (start, length) pair of Layout
// into the one list Buffers (no copy of aligned buffers).
func PackedBatch(in weir_operator_types.PackedBatch) (*weir.Batch, *weir.Error) {
	invalid := func(what string) *weir.Error {
		return &weir.Error{Kind: weir.KindInvalidInput, Message: "packed batch: " + what}
	}
	if int(in.Schema) >= len(schemas) {
		return nil, invalid("schema handle was never declared")
	}
	fields := schemas[in.Schema]
	next := 0
	take := func() ([]byte, bool) {
		if 2*next+1 >= len(in.Layout) {
			return nil, false
		}
		start, n := uint64(in.Layout[2*next]), uint64(in.Layout[2*next+1])
		next++
		if start+n > uint64(len(in.Buffers)) {
			return nil, false
		}
		return in.Buffers[start : start+n : start+n], true
	}
	b := &weir.Batch{NumRows: int(in.NumRows), Columns: make([]weir.Column, len(fields))}
	for i, f := range fields {
		var bufs [6][]byte
		want := 3
		if weir.DataType(f.DataType.Tag()) == weir.ListUtf8 {
			want = 6
		}
		for k := 0; k < want; k++ {
			buf, ok := take()
			if !ok {
				return nil, invalid("layout does not fit the schema or the buffers")
			}
			bufs[k] = buf
		}
		var items *[3][]byte
		if want == 6 {
			items = &[3][]byte{nonEmpty(bufs[3]), bufs[4], bufs[5]}
		}
		b.Columns[i] = column(f, b.NumRows, nonEmpty(bufs[0]), bufs[1], bufs[2], items)
	}
	return b, nil
}

// nonEmpty is nil for an empty validity buffer (no nulls).
func nonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Error converts a weir error to the WIT operator-error.
func Error(e *weir.Error) werror {
	switch e.Kind {
	case weir.KindInvalidConfig:
		return weir_operator_types.MakeOperatorErrorInvalidConfig(e.Message)
	case weir.KindInvalidInput:
		return weir_operator_types.MakeOperatorErrorInvalidInput(e.Message)
	}
	return weir_operator_types.MakeOperatorErrorFailed(e.Message)
}

// Init runs the registered operator's constructor.
func Init(config string) witTypes.Result[weir_operator_types.OperatorInfo, werror] {
	Collect()
	reads, err := weir.Init(config)
	if err != nil {
		return witTypes.Err[weir_operator_types.OperatorInfo](Error(err))
	}
	info := weir_operator_types.OperatorInfo{Reads: witTypes.None[[]string]()}
	if reads != nil {
		info.Reads = witTypes.Some(reads)
	}
	return witTypes.Ok[weir_operator_types.OperatorInfo, werror](info)
}

// Output converts a map's (or aggregate's) output columns to a WIT batch.
func Output(out *weir.Output) wbatch {
	b := wbatch{NumRows: uint32(out.Rows())}
	for _, c := range out.Columns {
		dt := weir_operator_types.MakeDataTypeBoolean()
		switch c.Type {
		case weir.Int32:
			dt = weir_operator_types.MakeDataTypeInt32()
		case weir.Int64:
			dt = weir_operator_types.MakeDataTypeInt64()
		case weir.Float32:
			dt = weir_operator_types.MakeDataTypeFloat32()
		case weir.Float64:
			dt = weir_operator_types.MakeDataTypeFloat64()
		case weir.Utf8:
			dt = weir_operator_types.MakeDataTypeUtf8()
		case weir.Binary:
			dt = weir_operator_types.MakeDataTypeBinary()
		case weir.Timestamp:
			tz := witTypes.None[string]()
			if c.HasTimezone {
				tz = witTypes.Some(c.Timezone)
			}
			dt = weir_operator_types.MakeDataTypeTimestamp(weir_operator_types.TimestampType{Unit: uint8(c.Unit), Timezone: tz})
		}
		b.Schema = append(b.Schema, weir_operator_types.Field{Name: c.Name, DataType: dt, Nullable: c.Nullable})
		validity := witTypes.None[[]uint8]()
		if c.Validity != nil {
			validity = witTypes.Some(c.Validity)
		}
		b.Columns = append(b.Columns, weir_operator_types.Column{
			Validity: validity,
			Offsets:  c.OffsetBytes(),
			Values:   c.Values,
			Items:    witTypes.None[weir_operator_types.ListItems](),
		})
	}
	return b
}
