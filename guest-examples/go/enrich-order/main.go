// Map: adds `amount_bucket` (int64 = floor(total_amount / 100), saturating
// like Rust's `as i64`) and `tax_amount` (float64 = total_amount * tax_rate).
// A null total_amount gives nulls; a negative one rejects the row
// ("negative total_amount: <value>", formatted like Rust's f64 Display).
// Reads only total_amount, so only the two new columns cross out. Same
// behaviour as guest-examples/rust/enrich-order.
//
// Config (optional): {"tax_rate": 0.2}
// Build: scripts/build-polyglot-guests go (-> target/guests/polyglot/go-enrich-order.wasm)
package main

import (
	"math"

	weir "weir/sdk"
)

type enrichOrder struct {
	TaxRate float64 `json:"tax_rate"`
}

func (e *enrichOrder) Reads() []string { return []string{"total_amount"} }

func (e *enrichOrder) Process(batch *weir.Batch, out *weir.Output) error {
	col, err := batch.Column("total_amount")
	if err != nil {
		return err
	}
	if col.Type != weir.Float64 {
		return weir.InvalidInput("total_amount is %s, expected Float64", col.Type)
	}
	amounts, _ := col.Float64()
	bucket := out.Add("amount_bucket", weir.Int64, true)
	tax := out.Add("tax_amount", weir.Float64, true)
	buckets, taxes := bucket.Int64(), tax.Float64()
	for i, a := range amounts {
		buckets[i] = weir.FloatToInt64(math.Floor(a / 100))
		taxes[i] = a * e.TaxRate
		if a < 0 && col.IsValid(i) {
			out.Reject(i, "negative total_amount: %s", weir.FormatFloat(a))
		}
	}
	bucket.SetValidity(col.Validity) // nulls in -> nulls out
	tax.SetValidity(col.Validity)
	return nil
}

func init() {
	weir.ExportMap(func(raw string) (weir.Map, error) {
		e := &enrichOrder{TaxRate: 0.2}
		if err := weir.DecodeConfig(raw, e); err != nil {
			return nil, err
		}
		return e, nil
	})
}
