// Filter: keeps rows whose `amount` is above `threshold` (config, default 100).
package main

import weir "weir/sdk"

type filter struct {
	Threshold float64 `json:"threshold"`
}

func (f *filter) Reads() []string { return []string{"amount"} } // only this column crosses in

func (f *filter) Evaluate(batch *weir.Batch) (weir.Selection, error) {
	amount, err := batch.Column("amount")
	if err != nil {
		return weir.Selection{}, err
	}
	values, err := amount.Float64()
	if err != nil {
		return weir.Selection{}, err
	}
	return weir.SelectWhere(values, func(v float64) bool { return v > f.Threshold }).AndValidity(amount), nil
}

func init() {
	weir.ExportFilter(func(config string) (weir.Filter, error) {
		f := &filter{Threshold: 100} // defaults
		if err := weir.DecodeConfig(config, f); err != nil {
			return nil, err
		}
		return f, nil
	})
}
