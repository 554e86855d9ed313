package weir

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
)

// DecodeConfig parses the operator's JSON config into the struct v points
// to, as strictly as the Rust SDK's serde (`deny_unknown_fields`): the
// config must be an object whose keys are exactly (case-sensitively) the
// `json` names of v's fields, each at most once and not null, with values
// of the fields' types, and nothing after it. Keys absent from the config
// keep the values v already holds (the defaults). Errors are invalid-config.
func DecodeConfig(config string, v any) error {
	known := fieldNames(v)
	dec := json.NewDecoder(strings.NewReader(config))
	if tok, err := dec.Token(); err != nil {
		return InvalidConfig("invalid config: %v", err)
	} else if tok != json.Delim('{') {
		return InvalidConfig("invalid config: expected a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return InvalidConfig("invalid config: %v", err)
		}
		key, _ := tok.(string)
		if !known[key] {
			return InvalidConfig("unknown field `%s`, expected one of %s", key, names(known))
		}
		if seen[key] {
			return InvalidConfig("duplicate field `%s`", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return InvalidConfig("invalid config: %v", err)
		}
		if bytes.Equal(raw, []byte("null")) {
			return InvalidConfig("invalid type: null for field `%s`", key)
		}
	}
	if _, err := dec.Token(); err != nil {
		return InvalidConfig("invalid config: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return InvalidConfig("invalid config: trailing characters")
	}
	if err := json.Unmarshal([]byte(config), v); err != nil {
		return InvalidConfig("invalid config: %v", err)
	}
	return nil
}

// fieldNames are the JSON names of the exported fields of the struct v points to.
func fieldNames(v any) map[string]bool {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	known := map[string]bool{}
	if t.Kind() != reflect.Struct {
		return known
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		known[name] = true
	}
	return known
}

func names(known map[string]bool) string {
	var list []string
	for k := range known {
		list = append(list, "`"+k+"`")
	}
	// Stable order for messages.
	for i := 1; i < len(list); i++ {
		for j := i; j > 0 && list[j] < list[j-1]; j-- {
			list[j], list[j-1] = list[j-1], list[j]
		}
	}
	return strings.Join(list, ", ")
}
