// Package export_weir_operator_aggregate implements the aggregate export of
// the generated bindings with the operator registered by weir.ExportAggregate.
package export_weir_operator_aggregate

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"wit_component/weir_operator_types"
	"wit_component/weirglue"

	weir "weir/sdk"
)

type operatorError = weir_operator_types.OperatorError

// Init is the WIT `init`.
func Init(config string) witTypes.Result[weir_operator_types.OperatorInfo, operatorError] {
	return weirglue.Init(config)
}

// Process is the WIT `process`.
func Process(input weir_operator_types.Batch, watermark witTypes.Option[int64]) witTypes.Result[[]weir_operator_types.Batch, operatorError] {
	weirglue.Collect()
	var wm *int64
	if watermark.Tag() == witTypes.OptionSome {
		v := watermark.Some()
		wm = &v
	}
	outs, err := weir.Fold(weirglue.Batch(input), wm)
	if err != nil {
		return witTypes.Err[[]weir_operator_types.Batch](weirglue.Error(err))
	}
	batches := make([]weir_operator_types.Batch, 0, len(outs))
	for _, o := range outs {
		batches = append(batches, weirglue.Output(o))
	}
	return witTypes.Ok[[]weir_operator_types.Batch, operatorError](batches)
}

// Snapshot is the WIT `snapshot`.
func Snapshot() witTypes.Result[[]uint8, operatorError] {
	weirglue.Collect()
	state, err := weir.Snapshot()
	if err != nil {
		return witTypes.Err[[]uint8](weirglue.Error(err))
	}
	if state == nil {
		state = []byte{}
	}
	return witTypes.Ok[[]uint8, operatorError](state)
}

// Restore is the WIT `restore`.
func Restore(state []uint8) witTypes.Result[witTypes.Unit, operatorError] {
	weirglue.Collect()
	if err := weir.Restore(state); err != nil {
		return witTypes.Err[witTypes.Unit](weirglue.Error(err))
	}
	return witTypes.Ok[witTypes.Unit, operatorError](witTypes.Unit{})
}
