// Package export_weir_operator_map_packed implements the map-packed export
// (contract 0.1.2: small batches in one list against a schema the host
// declared once) with the operator registered by weir.ExportMap.
package export_weir_operator_map_packed

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"wit_component/export_weir_operator_map"
	"wit_component/weir_operator_map_types"
	"wit_component/weir_operator_types"
	"wit_component/weirglue"
)

// DeclareSchema is the WIT `declare-schema`.
func DeclareSchema(schema []weir_operator_types.Field) uint32 {
	return weirglue.DeclareSchema(schema)
}

// ProcessPacked is the WIT `process-packed`.
func ProcessPacked(input weir_operator_types.PackedBatch) witTypes.Result[weir_operator_map_types.MapOutput, weir_operator_types.OperatorError] {
	weirglue.Collect()
	batch, err := weirglue.PackedBatch(input)
	if err != nil {
		return witTypes.Err[weir_operator_map_types.MapOutput](weirglue.Error(err))
	}
	return export_weir_operator_map.Run(batch)
}
