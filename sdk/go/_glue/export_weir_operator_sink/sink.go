// Package export_weir_operator_sink implements the sink export of the
// generated bindings with the operator registered by weir.ExportSink.
package export_weir_operator_sink

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"wit_component/weir_operator_sink_types"
	"wit_component/weir_operator_types"
	"wit_component/weirglue"
	_ "wit_component/weirhttp" // weir.HTTPPost over wasi:http

	weir "weir/sdk"
)

type sinkError = weir_operator_sink_types.SinkError

// Init is the WIT `init`.
func Init(config string) witTypes.Result[weir_operator_types.OperatorInfo, weir_operator_types.OperatorError] {
	return weirglue.Init(config)
}

// Write is the WIT `write`.
func Write(input weir_operator_types.Batch) witTypes.Result[witTypes.Unit, sinkError] {
	weirglue.Collect()
	err := weir.Write(weirglue.Batch(input))
	if err == nil {
		return witTypes.Ok[witTypes.Unit, sinkError](witTypes.Unit{})
	}
	switch err.Kind {
	case weir.SinkPermanent:
		return witTypes.Err[witTypes.Unit](weir_operator_sink_types.MakeSinkErrorPermanent(err.Message))
	case weir.SinkRejectedRows:
		rows := make([]weir_operator_types.RowRejection, 0, len(err.Rows))
		for _, r := range err.Rows {
			rows = append(rows, weir_operator_types.RowRejection{Row: uint32(r.Row), Reason: r.Reason})
		}
		return witTypes.Err[witTypes.Unit](weir_operator_sink_types.MakeSinkErrorRejectedRows(rows))
	}
	return witTypes.Err[witTypes.Unit](weir_operator_sink_types.MakeSinkErrorRetryable(err.Message))
}
