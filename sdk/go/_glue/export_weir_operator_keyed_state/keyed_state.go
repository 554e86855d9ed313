// Package export_weir_operator_keyed_state implements the keyed-state export
// of the keyed-aggregate-operator world (contract 0.1.1) with the aggregate
// registered by weir.ExportAggregate: its weir.KeyedState when it is
// weir.Keyed, otherwise its whole snapshot as one entry.
package export_weir_operator_keyed_state

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"wit_component/weir_operator_keyed_state"
	"wit_component/weir_operator_types"
	"wit_component/weirglue"

	weir "weir/sdk"
)

type (
	operatorError = weir_operator_types.OperatorError
	stateEntry    = weir_operator_keyed_state.StateEntry
)

// toWit converts entries to the WIT records (keys and values never nil:
// the bindings pin their data pointers).
func toWit(entries []weir.StateEntry) []stateEntry {
	out := make([]stateEntry, len(entries))
	for i, e := range entries {
		key := e.Key
		if key == nil {
			key = []byte{}
		}
		value := witTypes.None[[]uint8]()
		if !e.Removed {
			v := e.Value
			if v == nil {
				v = []byte{}
			}
			value = witTypes.Some(v)
		}
		out[i] = stateEntry{Key: key, Value: value}
	}
	return out
}

func result(entries []weir.StateEntry, err *weir.Error) witTypes.Result[[]stateEntry, operatorError] {
	if err != nil {
		return witTypes.Err[[]stateEntry](weirglue.Error(err))
	}
	return witTypes.Ok[[]stateEntry, operatorError](toWit(entries))
}

// SnapshotEntries is the WIT `snapshot-entries`.
func SnapshotEntries() witTypes.Result[[]stateEntry, operatorError] {
	weirglue.Collect()
	return result(weir.SnapshotEntries())
}

// SnapshotChanges is the WIT `snapshot-changes`.
func SnapshotChanges() witTypes.Result[[]stateEntry, operatorError] {
	weirglue.Collect()
	return result(weir.SnapshotChanges())
}

// RestoreEntries is the WIT `restore-entries`.
func RestoreEntries(entries []stateEntry) witTypes.Result[witTypes.Unit, operatorError] {
	weirglue.Collect()
	in := make([]weir.StateEntry, len(entries))
	for i, e := range entries {
		in[i] = weir.StateEntry{Key: e.Key, Removed: e.Value.Tag() == witTypes.OptionNone}
		if !in[i].Removed {
			in[i].Value = e.Value.Some()
		}
	}
	if err := weir.RestoreEntries(in); err != nil {
		return witTypes.Err[witTypes.Unit](weirglue.Error(err))
	}
	return witTypes.Ok[witTypes.Unit, operatorError](witTypes.Unit{})
}
