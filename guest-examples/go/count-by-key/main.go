// Aggregate: running count and sum of `value` per `key`. Each call emits
// one batch (`key` utf8, `count` int64, `sum` float64) with the keys it
// touched, in first-seen order, and their running totals. Null keys are
// skipped; a null value counts but adds 0. Key columns may be utf8, int32
// or int64 (stringified); the value column must be float64. Snapshots are
// byte for byte the Rust original's: `u64 n` then n x (`u32 len`, key
// bytes, `i64 count`, `f64 sum`), little-endian, keys in sorted order.
// Same behaviour as guest-examples/rust/count-by-key.
//
// The totals live in a weir.KeyedMap, so checkpoints are incremental: one
// state entry per key (key bytes -> `i64 count`, `f64 sum`), and only the
// keys a batch touched are written at the next checkpoint.
//
// Config (optional): {"key": "customer_id", "value": "total_amount"}
// Build: scripts/build-polyglot-guests go (-> target/guests/polyglot/go-count-by-key.wasm,
// world keyed-aggregate-operator)
package main

import (
	"encoding/binary"
	"math"
	"strconv"
	"unicode/utf8"

	weir "weir/sdk"
)

type total struct {
	count, call int64 // call: the last Process call that touched the key
	sum         float64
}

type countByKey struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	totals *weir.KeyedMap[*total]
	calls  int64
}

// KeyedState opts in to incremental checkpoints: the totals are the state.
func (c *countByKey) KeyedState() weir.KeyedState { return c.totals }

// encodeTotal is a key's entry value: `i64 count`, `f64 sum`, little-endian.
func encodeTotal(t *total) []byte {
	out := binary.LittleEndian.AppendUint64(make([]byte, 0, 16), uint64(t.count))
	return binary.LittleEndian.AppendUint64(out, math.Float64bits(t.sum))
}

func decodeTotal(b []byte) (*total, error) {
	if len(b) != 16 {
		return nil, weir.Failed("corrupt count-by-key state entry")
	}
	return &total{count: int64(binary.LittleEndian.Uint64(b)), sum: math.Float64frombits(binary.LittleEndian.Uint64(b[8:]))}, nil
}

func (c *countByKey) Reads() []string { return []string{c.Key, c.Value} }

func (c *countByKey) Process(batch *weir.Batch, _ *int64) ([]*weir.Output, error) {
	kcol, err := batch.Column(c.Key)
	if err != nil {
		return nil, err
	}
	vcol, err := batch.Column(c.Value)
	if err != nil {
		return nil, err
	}
	var key func(row int) string
	switch kcol.Type {
	case weir.Utf8:
		key = kcol.Str
	case weir.Int32:
		ints, _ := kcol.Int32()
		key = func(row int) string { return strconv.FormatInt(int64(ints[row]), 10) }
	case weir.Int64:
		ints, _ := kcol.Int64()
		key = func(row int) string { return strconv.FormatInt(ints[row], 10) }
	default:
		return nil, weir.InvalidInput("key column is %s, expected utf8/int32/int64", kcol.Type)
	}
	values, err := vcol.Float64()
	if err != nil {
		return nil, err
	}
	c.calls++
	var touched []string
	for row := 0; row < batch.NumRows; row++ {
		if !kcol.IsValid(row) {
			continue
		}
		k := key(row)
		t, ok := c.totals.Get(k)
		if !ok {
			t = &total{}
			c.totals.Put(k, t) // copies k: Str views the input buffer
		}
		if t.call != c.calls {
			t.call = c.calls
			touched = append(touched, k)
			c.totals.Touch(k)
		}
		add := 0.0 // a null value counts but adds 0 (-0.0 + 0.0 = 0.0, as in Rust)
		if vcol.IsValid(row) {
			add = values[row]
		}
		t.count++
		t.sum += add
	}
	if len(touched) == 0 {
		return nil, nil
	}
	out := weir.NewOutput(len(touched))
	keys := out.Add("key", weir.Utf8, false)
	counts := out.Add("count", weir.Int64, false).Int64()
	sums := out.Add("sum", weir.Float64, false).Float64()
	for i, k := range touched {
		t, _ := c.totals.Get(k)
		keys.Push(k)
		counts[i], sums[i] = t.count, t.sum
	}
	return []*weir.Output{out}, nil
}

func (c *countByKey) Snapshot() ([]byte, error) {
	keys := c.totals.Keys() // byte order, like Rust's sorted keys
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(keys)))
	for _, k := range keys {
		t, _ := c.totals.Get(k)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(k)))
		out = append(out, k...)
		out = append(out, encodeTotal(t)...)
	}
	return out, nil
}

func (c *countByKey) Restore(state []byte) error {
	corrupt := weir.Failed("corrupt count-by-key snapshot")
	take := func(n uint64) ([]byte, bool) {
		if n > uint64(len(state)) {
			return nil, false
		}
		head := state[:n]
		state = state[n:]
		return head, true
	}
	head, ok := take(8)
	if !ok {
		return corrupt
	}
	var keys []string
	var totals []*total
	for n := binary.LittleEndian.Uint64(head); n > 0; n-- {
		head, ok := take(4)
		if !ok {
			return corrupt
		}
		k, ok := take(uint64(binary.LittleEndian.Uint32(head)))
		if !ok || !utf8.Valid(k) {
			return corrupt
		}
		nums, ok := take(16)
		if !ok {
			return corrupt
		}
		t, _ := decodeTotal(nums)
		keys, totals = append(keys, string(k)), append(totals, t)
	}
	c.totals.Clear() // the next snapshot-changes names every key, old and new
	for i, k := range keys {
		c.totals.Put(k, totals[i])
	}
	return nil
}

func init() {
	weir.ExportAggregate(func(raw string) (weir.Aggregate, error) {
		c := &countByKey{Key: "customer_id", Value: "total_amount", totals: weir.NewKeyedMap(encodeTotal, decodeTotal)}
		if err := weir.DecodeConfig(raw, c); err != nil {
			return nil, err
		}
		return c, nil
	})
}
