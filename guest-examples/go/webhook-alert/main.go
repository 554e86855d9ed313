// Sink: POSTs each batch to `url` as a JSON array of row objects
// (`Content-Type: application/json`, one request per non-empty batch).
// Values: numbers as JSON numbers (NaN/inf as null), timestamps as integers
// in the column's unit, binary as lowercase hex strings, list<utf8> as
// arrays, nulls as null. 2xx -> ok; 5xx, timeouts, connection errors ->
// retryable; 4xx and other statuses -> permanent; host refused the
// destination -> permanent ("... denied ..."). Same behaviour as
// guest-examples/rust/webhook-alert.
//
// Config (required): {"url": "http://host:port/path"}
// Build: scripts/build-polyglot-guests go (-> target/guests/polyglot/go-webhook-alert.wasm)
package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"

	weir "weir/sdk"
)

type webhookAlert struct{ URL string }

// jsonFloat marshals like serde_json: always a float literal, NaN/inf as null.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return []byte(s), nil
}

func cell(c *weir.Column, row int) any {
	if !c.IsValid(row) {
		return nil
	}
	switch c.Type {
	case weir.Boolean:
		return c.Bool(row)
	case weir.Int32:
		v, _ := c.Int32()
		return v[row]
	case weir.Int64, weir.Timestamp:
		v, _ := c.Int64()
		return v[row]
	case weir.Float32:
		v, _ := c.Float32()
		return jsonFloat(v[row])
	case weir.Float64:
		v, _ := c.Float64()
		return jsonFloat(v[row])
	case weir.Utf8:
		return c.Str(row)
	case weir.Binary:
		return hex.EncodeToString(c.Bytes(row))
	case weir.ListUtf8:
		items := make([]any, c.ListLen(row))
		for i := range items {
			if at := int(c.Offsets[row]) + i; c.Items.IsValid(at) {
				items[i] = c.Items.Str(at)
			}
		}
		return items
	}
	return nil
}

func (w *webhookAlert) Write(batch *weir.Batch) error {
	if batch.NumRows == 0 {
		return nil
	}
	rows := make([]map[string]any, batch.NumRows)
	for i := range rows {
		rows[i] = make(map[string]any, len(batch.Columns))
		for c := range batch.Columns {
			rows[i][batch.Columns[c].Name] = cell(&batch.Columns[c], i)
		}
	}
	body, err := json.Marshal(rows)
	if err != nil {
		return weir.Permanent("encoding JSON: %v", err)
	}
	resp, err := weir.HTTPPost(w.URL, "application/json", body)
	var herr *weir.HTTPError
	switch {
	case err == nil && resp.IsSuccess():
		return nil
	case err == nil && resp.Status >= 500:
		return weir.Retryable("%s answered HTTP %d", w.URL, resp.Status)
	case err == nil:
		return weir.Permanent("%s answered HTTP %d", w.URL, resp.Status)
	case errors.As(err, &herr) && herr.Retryable():
		return weir.Retryable("POST %s: %v", w.URL, err)
	}
	return weir.Permanent("POST %s: %v", w.URL, err) // denied, invalid request
}

func init() {
	weir.ExportSink(func(raw string) (weir.Sink, error) {
		var cfg struct {
			URL *string `json:"url"`
		}
		if err := weir.DecodeConfig(raw, &cfg); err != nil {
			return nil, err
		}
		if cfg.URL == nil {
			return nil, weir.InvalidConfig("missing field `url`")
		}
		return &webhookAlert{URL: *cfg.URL}, nil
	})
}
