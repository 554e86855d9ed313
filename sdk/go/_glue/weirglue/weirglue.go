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
		f, c := in.Schema[i], in.Columns[i]
		t := weir.DataType(f.DataType.Tag())
		col := weir.NewColumn(f.Name, t, f.Nullable, b.NumRows, optBytes(c.Validity), c.Offsets, c.Values)
		if t == weir.Timestamp {
			ts := f.DataType.Timestamp()
			col.Unit = weir.TimeUnit(ts.Unit)
			if ts.Timezone.Tag() == witTypes.OptionSome {
				col.Timezone, col.HasTimezone = ts.Timezone.Some(), true
			}
		}
		if t == weir.ListUtf8 && c.Items.Tag() == witTypes.OptionSome {
			it := c.Items.Some()
			items := max(len(it.Offsets)/4-1, 0)
			ic := weir.NewColumn("item", weir.Utf8, true, items, optBytes(it.Validity), it.Offsets, it.Values)
			col.Items = &ic
		}
		b.Columns[i] = col
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
