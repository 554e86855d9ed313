package weir

// Selection is a filter's result: one bit per row, LSB first (Arrow's
// boolean layout), 1 = keep. A new selection drops every row.
type Selection struct {
	bits []byte
	rows int
}

// NewSelection returns a selection of rows rows, all dropped.
func NewSelection(rows int) Selection {
	return Selection{bits: make([]byte, (rows+7)/8), rows: rows}
}

// SelectWhere keeps the rows whose value satisfies keep.
func SelectWhere[T any](values []T, keep func(T) bool) Selection {
	s := NewSelection(len(values))
	for i, v := range values {
		if keep(v) {
			s.bits[i>>3] |= 1 << (i & 7)
		}
	}
	return s
}

// Keep sets whether row is kept.
func (s *Selection) Keep(row int, keep bool) {
	if keep {
		s.bits[row>>3] |= 1 << (row & 7)
	} else {
		s.bits[row>>3] &^= 1 << (row & 7)
	}
}

// Kept says whether row is kept.
func (s *Selection) Kept(row int) bool { return s.bits[row>>3]>>(row&7)&1 == 1 }

// Len is the number of rows.
func (s *Selection) Len() int { return s.rows }

// AndValidity drops the rows where col is null, and returns the selection.
func (s Selection) AndValidity(col *Column) Selection {
	if col.Validity != nil {
		for i := range s.bits {
			s.bits[i] &= col.Validity[i]
		}
	}
	return s
}

// Bytes is the bitmap the host receives (ceil(rows / 8) bytes).
func (s *Selection) Bytes() []byte { return s.bits }
