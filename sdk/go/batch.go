package weir

import "unsafe"

// Column is a read-only view of one input column. Slices view the buffers
// the host copied into guest memory; they stay valid after the call (the Go
// garbage collector owns them) but must not be modified.
type Column struct {
	// Name is the column name, unique within the batch.
	Name string
	// Type is the logical type, and so which buffers are used.
	Type DataType
	// Nullable says whether the schema allows nulls.
	Nullable bool
	// Unit is the unit of a timestamp column.
	Unit TimeUnit
	// Timezone of a timestamp column; "" with HasTimezone false = naive.
	Timezone    string
	HasTimezone bool
	// Len is the number of rows.
	Len int
	// Validity has one bit per row (LSB first, 1 = valid); nil = no nulls.
	Validity []byte
	// Offsets (Len + 1 entries) index Values for utf8 and binary, and the
	// strings of Items for list-utf8.
	Offsets []int32
	// Values holds fixed-width values, bit-packed booleans, or the
	// concatenated bytes of utf8/binary.
	Values []byte
	// Items holds the strings of a list-utf8 column (a utf8 column).
	Items *Column
}

// NewColumn builds a column view from raw Arrow buffers (little-endian):
// what the glue does with the WIT `column`, and how tests build input.
// offsets is the raw `s32` buffer (empty for fixed-width types).
func NewColumn(name string, t DataType, nullable bool, rows int, validity, offsets, values []byte) Column {
	c := Column{Name: name, Type: t, Nullable: nullable, Len: rows, Validity: validity, Values: values}
	if w := t.width(); w > 0 {
		c.Values = aligned(values, w)
	}
	if len(offsets) >= 4 {
		c.Offsets = view[int32](aligned(offsets, 4))
	}
	return c
}

// aligned returns b, or a copy of it when it does not start at a multiple of align.
func aligned(b []byte, align int) []byte {
	if len(b) == 0 || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%uintptr(align) == 0 {
		return b
	}
	// make([]uint64) is 8-byte aligned.
	words := make([]uint64, (len(b)+7)/8)
	c := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), len(b))
	copy(c, b)
	return c
}

// view reinterprets aligned little-endian bytes as a slice of T (wasm is little-endian).
func view[T int32 | int64 | float32 | float64](b []byte) []T {
	var zero T
	n := len(b) / int(unsafe.Sizeof(zero))
	if n == 0 {
		return []T{}
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// wrongType is the Rust SDK's message for a typed view of another type.
func (c *Column) wrongType(want string) error {
	return InvalidInput("expected a %s column, found %s", want, c.Type)
}

// Float64 returns the values of a float64 column (Len entries; null slots hold any value).
func (c *Column) Float64() ([]float64, error) {
	if c.Type != Float64 {
		return nil, c.wrongType("Float64")
	}
	return view[float64](c.Values)[:c.Len], nil
}

// Float32 returns the values of a float32 column.
func (c *Column) Float32() ([]float32, error) {
	if c.Type != Float32 {
		return nil, c.wrongType("Float32")
	}
	return view[float32](c.Values)[:c.Len], nil
}

// Int64 returns the values of an int64 or timestamp column.
func (c *Column) Int64() ([]int64, error) {
	if c.Type != Int64 && c.Type != Timestamp {
		return nil, c.wrongType("Int64")
	}
	return view[int64](c.Values)[:c.Len], nil
}

// Int32 returns the values of an int32 column.
func (c *Column) Int32() ([]int32, error) {
	if c.Type != Int32 {
		return nil, c.wrongType("Int32")
	}
	return view[int32](c.Values)[:c.Len], nil
}

// IsValid says whether row is not null.
func (c *Column) IsValid(row int) bool {
	return c.Validity == nil || c.Validity[row>>3]>>(row&7)&1 == 1
}

// Bool is the value of a boolean column at row.
func (c *Column) Bool(row int) bool { return c.Values[row>>3]>>(row&7)&1 == 1 }

// Bytes is the value of a utf8 or binary column at row (a view).
func (c *Column) Bytes(row int) []byte { return c.Values[c.Offsets[row]:c.Offsets[row+1]] }

// Str is the value of a utf8 column at row (no copy).
func (c *Column) Str(row int) string {
	b := c.Bytes(row)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// ListLen is the number of strings in the list at row (list-utf8).
func (c *Column) ListLen(row int) int { return int(c.Offsets[row+1] - c.Offsets[row]) }

// ListItem is the i-th string of the list at row (list-utf8).
func (c *Column) ListItem(row, i int) string { return c.Items.Str(int(c.Offsets[row]) + i) }

// Batch is an input batch: the columns the operator reads, all NumRows long.
type Batch struct {
	NumRows int
	Columns []Column
}

// Find returns the column called name, or nil.
func (b *Batch) Find(name string) *Column {
	for i := range b.Columns {
		if b.Columns[i].Name == name {
			return &b.Columns[i]
		}
	}
	return nil
}

// Column returns the column called name, or an invalid-input error
// "missing column `name`" (as the Rust SDK says).
func (b *Batch) Column(name string) (*Column, error) {
	if c := b.Find(name); c != nil {
		return c, nil
	}
	return nil, InvalidInput("missing column `%s`", name)
}
