// Filter: keeps rows whose `column` (float64, int64 or int32) is greater
// than `threshold`; null values are dropped. Only that column crosses into
// the guest (Reads). Same behaviour as guest-examples/rust/high-value-orders.
//
// Config (both optional): {"column": "total_amount", "threshold": 1000.0}
// Build: scripts/build-polyglot-guests go (-> target/guests/polyglot/go-high-value-orders.wasm)
package main

import weir "weir/sdk"

type config struct {
	Column    string  `json:"column"`
	Threshold float64 `json:"threshold"`
}

type highValueOrders struct{ config }

func (h *highValueOrders) Reads() []string { return []string{h.Column} }

func (h *highValueOrders) Evaluate(batch *weir.Batch) (weir.Selection, error) {
	col, err := batch.Column(h.Column)
	if err != nil {
		return weir.Selection{}, err
	}
	t := h.Threshold
	var keep weir.Selection
	switch col.Type {
	case weir.Float64:
		values, _ := col.Float64()
		keep = weir.SelectWhere(values, func(v float64) bool { return v > t })
	case weir.Int64:
		values, _ := col.Int64()
		keep = weir.SelectWhere(values, func(v int64) bool { return float64(v) > t })
	case weir.Int32:
		values, _ := col.Int32()
		keep = weir.SelectWhere(values, func(v int32) bool { return float64(v) > t })
	default:
		return weir.Selection{}, weir.InvalidInput("column `%s` is %s, expected float64/int64/int32", h.Column, col.Type)
	}
	return keep.AndValidity(col), nil
}

func init() {
	weir.ExportFilter(func(raw string) (weir.Filter, error) {
		cfg := config{Column: "total_amount", Threshold: 1000}
		if err := weir.DecodeConfig(raw, &cfg); err != nil {
			return nil, err
		}
		return &highValueOrders{cfg}, nil
	})
}
