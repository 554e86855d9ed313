// Package export_weir_operator_map implements the map export of the
// generated bindings with the operator registered by weir.ExportMap.
package export_weir_operator_map

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"wit_component/weir_operator_map_types"
	"wit_component/weir_operator_types"
	"wit_component/weirglue"

	weir "weir/sdk"
)

// Init is the WIT `init`.
func Init(config string) witTypes.Result[weir_operator_types.OperatorInfo, weir_operator_types.OperatorError] {
	return weirglue.Init(config)
}

// Process is the WIT `process`.
func Process(input weir_operator_types.Batch) witTypes.Result[weir_operator_map_types.MapOutput, weir_operator_types.OperatorError] {
	weirglue.Collect()
	return Run(weirglue.Batch(input))
}

// Run runs the registered map on a batch view and converts its output
// (also for `map-packed`'s `process-packed`).
func Run(batch *weir.Batch) witTypes.Result[weir_operator_map_types.MapOutput, weir_operator_types.OperatorError] {
	out, err := weir.Process(batch)
	if err != nil {
		return witTypes.Err[weir_operator_map_types.MapOutput](weirglue.Error(err))
	}
	result := weir_operator_map_types.MapOutput{Output: weirglue.Output(out)}
	for _, r := range out.Rejected {
		result.Rejected = append(result.Rejected, weir_operator_types.RowRejection{Row: uint32(r.Row), Reason: r.Reason})
	}
	return witTypes.Ok[weir_operator_map_types.MapOutput, weir_operator_types.OperatorError](result)
}
