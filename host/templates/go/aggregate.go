// Aggregate: running count per `key`; emits the keys each batch touched, in
// first-seen order, with their counts. Snapshot: the counts as JSON.
package main

import (
	"encoding/json"

	weir "weir/sdk"
)

type counter struct {
	Counts map[string]int64 `json:"counts"`
}

func (c *counter) Reads() []string { return []string{"key"} }

func (c *counter) Process(batch *weir.Batch, watermarkMs *int64) ([]*weir.Output, error) {
	key, err := batch.Column("key")
	if err != nil {
		return nil, err
	}
	if key.Type != weir.Utf8 {
		return nil, weir.InvalidInput("key is %s, expected Utf8", key.Type)
	}
	var touched []string
	seen := map[string]bool{}
	for row := 0; row < batch.NumRows; row++ {
		if !key.IsValid(row) {
			continue
		}
		k := key.Str(row)
		if !seen[k] {
			k = string([]byte(k)) // own the bytes: Str views the input buffer
			seen[k] = true
			touched = append(touched, k)
		}
		c.Counts[k]++
	}
	if len(touched) == 0 {
		return nil, nil
	}
	out := weir.NewOutput(len(touched))
	keys := out.Add("key", weir.Utf8, false)
	counts := out.Add("count", weir.Int64, false).Int64()
	for i, k := range touched {
		keys.Push(k)
		counts[i] = c.Counts[k]
	}
	return []*weir.Output{out}, nil
}

func (c *counter) Snapshot() ([]byte, error) { return json.Marshal(c) }

func (c *counter) Restore(state []byte) error {
	restored := &counter{}
	if err := json.Unmarshal(state, restored); err != nil || restored.Counts == nil {
		return weir.Failed("corrupt snapshot")
	}
	*c = *restored
	return nil
}

func init() {
	weir.ExportAggregate(func(config string) (weir.Aggregate, error) {
		if err := weir.DecodeConfig(config, &struct{}{}); err != nil { // no settings
			return nil, err
		}
		return &counter{Counts: map[string]int64{}}, nil
	})
}
