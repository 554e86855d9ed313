// Package export_weir_operator_filter implements the filter export of the
// generated bindings with the operator registered by weir.ExportFilter.
package export_weir_operator_filter

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"wit_component/weir_operator_types"
	"wit_component/weirglue"

	weir "weir/sdk"
)

// Init is the WIT `init`.
func Init(config string) witTypes.Result[weir_operator_types.OperatorInfo, weir_operator_types.OperatorError] {
	return weirglue.Init(config)
}

// Evaluate is the WIT `evaluate`.
func Evaluate(input weir_operator_types.Batch) witTypes.Result[[]uint8, weir_operator_types.OperatorError] {
	weirglue.Collect()
	bits, err := weir.Evaluate(weirglue.Batch(input))
	if err != nil {
		return witTypes.Err[[]uint8](weirglue.Error(err))
	}
	return witTypes.Ok[[]uint8, weir_operator_types.OperatorError](bits)
}
