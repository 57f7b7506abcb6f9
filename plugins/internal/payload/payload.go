// Package payload reads and writes message payloads for the shipped plugins,
// which take and give JSON objects. Fields a plugin does not touch are kept
// byte for byte; an encoded object has its keys sorted and HTML characters
// left as they are (a display shows "<", not "\u003c").
//
// It is compiled into WASM plugins as well as natively, so it depends on the
// standard library only.
package payload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Object is a decoded payload: each field with its raw JSON value.
type Object map[string]json.RawMessage

// Parse decodes a payload that must be one JSON object.
func Parse(b []byte) (Object, error) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("payload: want a JSON object, got %s", Kind(t))
	}
	var o Object
	if err := json.Unmarshal(t, &o); err != nil {
		return nil, fmt.Errorf("payload: not valid JSON: %w", err)
	}
	return o, nil
}

// Number returns field's value, which must be a JSON number.
func (o Object) Number(field string) (float64, error) {
	v, ok := o[field]
	if !ok {
		return 0, fmt.Errorf("field %q: missing", field)
	}
	if k := Kind(v); k != "number" {
		return 0, fmt.Errorf("field %q: want a number, got %s", field, k)
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, fmt.Errorf("field %q: number %s is out of range", field, v)
	}
	return f, nil
}

// Set sets field to v encoded as JSON.
func (o Object) Set(field string, v any) error {
	b, err := Marshal(v)
	if err != nil {
		return fmt.Errorf("field %q: %w", field, err)
	}
	o[field] = b
	return nil
}

// Scalar returns field's value as a float64, a string or a bool; any other
// JSON type, or a missing field, is an error.
func (o Object) Scalar(field string) (any, error) {
	v, ok := o[field]
	if !ok {
		return nil, fmt.Errorf("field %q: missing", field)
	}
	switch k := Kind(v); k {
	case "number":
		return o.Number(field)
	case "string":
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("field %q: %w", field, err)
		}
		return s, nil
	case "boolean":
		return string(v) == "true", nil
	default:
		return nil, fmt.Errorf("field %q: want a number, a string or true/false, got %s", field, k)
	}
}

// Encode returns o as compact JSON with its keys sorted.
func (o Object) Encode() ([]byte, error) { return Marshal(map[string]json.RawMessage(o)) }

// Marshal encodes v as compact JSON without escaping HTML characters.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Kind names the JSON type of a raw value by its first byte: string,
// object, array, boolean, null, number, or nothing for blank input.
func Kind(v []byte) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "number"
	default:
		return "invalid JSON"
	}
}
