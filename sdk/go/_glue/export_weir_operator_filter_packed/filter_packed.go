// Package export_weir_operator_filter_packed implements the filter-packed
// export (contract 0.1.2: small batches in one list against a schema the
// host declared once) with the operator registered by weir.ExportFilter.
package export_weir_operator_filter_packed

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"wit_component/weir_operator_types"
	"wit_component/weirglue"

	weir "weir/sdk"
)

// DeclareSchema is the WIT `declare-schema`.
func DeclareSchema(schema []weir_operator_types.Field) uint32 {
	return weirglue.DeclareSchema(schema)
}

// EvaluatePacked is the WIT `evaluate-packed`.
func EvaluatePacked(input weir_operator_types.PackedBatch) witTypes.Result[[]uint8, weir_operator_types.OperatorError] {
	weirglue.Collect()
	batch, err := weirglue.PackedBatch(input)
	if err != nil {
		return witTypes.Err[[]uint8](weirglue.Error(err))
	}
	bits, err := weir.Evaluate(batch)
	if err != nil {
		return witTypes.Err[[]uint8](weirglue.Error(err))
	}
	return witTypes.Ok[[]uint8, weir_operator_types.OperatorError](bits)
}
