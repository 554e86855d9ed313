// Map: adds `amount_doubled` (float64) and rejects negative amounts.
package main

import weir "weir/sdk"

type doubler struct{}

func (doubler) Reads() []string { return []string{"amount"} } // only amount_doubled crosses out

func (doubler) Process(batch *weir.Batch, out *weir.Output) error {
	amount, err := batch.Column("amount")
	if err != nil {
		return err
	}
	values, err := amount.Float64()
	if err != nil {
		return err
	}
	doubled := out.Add("amount_doubled", weir.Float64, true)
	result := doubled.Float64()
	for i, v := range values {
		result[i] = v * 2
		if v < 0 && amount.IsValid(i) {
			out.Reject(i, "negative amount: %s", weir.FormatFloat(v))
		}
	}
	doubled.SetValidity(amount.Validity) // nulls in, nulls out
	return nil
}

func init() {
	weir.ExportMap(func(config string) (weir.Map, error) {
		if err := weir.DecodeConfig(config, &struct{}{}); err != nil { // no settings
			return nil, err
		}
		return doubler{}, nil
	})
}
