// Package conf decodes a plugin instance's configuration strictly. The host
// hands a plugin its configuration as one JSON object (the instance's
// `config:` from plugins.yaml); an unknown key, a duplicate key, a value of
// the wrong type or a bad value is an error naming the key's path, e.g.
// `sensors[1].period: want a duration such as "30s", got number 30`, and every
// problem is reported at once.
//
// The package is used by plugin logic that is compiled to WASM as well as
// natively, so it depends on the standard library only and keeps no state
// between decodes.
package conf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/plugins/internal/payload"
)

// Object is one JSON object of a configuration being decoded. Each getter
// reads one key, records a problem when its value is unusable and reports
// whether the key was present; Err, called once on the top-level object after
// every key has been read, reports the problems and every unknown key.
type Object struct {
	path  string
	keys  []string // in document order
	vals  map[string]json.RawMessage
	known map[string]bool
	probs *[]string
	kids  []*Object
}

// Parse starts decoding data, which must be one JSON object. Empty data is
// read as the empty object. A syntax error, a value that is not an object or
// a duplicate key is an error.
func Parse(data []byte) (*Object, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	}
	var probs []string
	return parseObject("", data, &probs)
}

func parseObject(path string, data []byte, probs *[]string) (*Object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, problem(path, "not valid JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, problem(path, "want an object, got %s", payload.Kind(data))
	}
	o := &Object{path: path, vals: map[string]json.RawMessage{}, known: map[string]bool{}, probs: probs}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, problem(path, "not valid JSON: %v", err)
		}
		key := tok.(string) // inside an object the decoder yields only string keys
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, problem(join(path, key), "not valid JSON: %v", err)
		}
		if _, dup := o.vals[key]; dup {
			return nil, problem(join(path, key), "key appears twice")
		}
		o.keys = append(o.keys, key)
		o.vals[key] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, problem(path, "not valid JSON: %v", err)
	}
	if len(bytes.TrimSpace(data[dec.InputOffset():])) != 0 {
		return nil, problem(path, "not valid JSON: data after the object")
	}
	return o, nil
}

// Errorf records a problem with the value of key.
func (o *Object) Errorf(key, format string, args ...any) {
	*o.probs = append(*o.probs, problem(join(o.path, key), format, args...).Error())
}

// raw returns the value of key when present, marking the key known.
func (o *Object) raw(key string) (json.RawMessage, bool) {
	o.known[key] = true
	v, ok := o.vals[key]
	return v, ok
}

// String reads a string.
func (o *Object) String(key string, dst *string) bool {
	v, ok := o.raw(key)
	if !ok {
		return false
	}
	if payload.Kind(v) != "string" {
		o.Errorf(key, "want a string, got %s", describe(v))
		return true
	}
	_ = json.Unmarshal(v, dst) // a valid JSON string always decodes
	return true
}

// Float reads a finite number.
func (o *Object) Float(key string, dst *float64) bool {
	v, ok := o.raw(key)
	if !ok {
		return false
	}
	if payload.Kind(v) != "number" {
		o.Errorf(key, "want a number, got %s", describe(v))
		return true
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || math.IsInf(f, 0) {
		o.Errorf(key, "number %s is out of range", v)
		return true
	}
	*dst = f
	return true
}

// Int reads a whole number.
func (o *Object) Int(key string, dst *int) bool {
	v, ok := o.raw(key)
	if !ok {
		return false
	}
	if payload.Kind(v) != "number" {
		o.Errorf(key, "want a whole number, got %s", describe(v))
		return true
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		f, ferr := strconv.ParseFloat(string(v), 64)
		if ferr == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			n, err = int(f), nil // 2.0 or 1e3
		}
	}
	if err != nil {
		o.Errorf(key, "want a whole number, got %s", v)
		return true
	}
	*dst = n
	return true
}

// Bool reads true or false.
func (o *Object) Bool(key string, dst *bool) bool {
	v, ok := o.raw(key)
	if !ok {
		return false
	}
	switch string(v) {
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		o.Errorf(key, "want true or false, got %s", describe(v))
	}
	return true
}

// Duration reads a Go duration written as a string, e.g. "30s" or "1h30m".
func (o *Object) Duration(key string, dst *time.Duration) bool {
	v, ok := o.raw(key)
	if !ok {
		return false
	}
	var s string
	if payload.Kind(v) != "string" {
		o.Errorf(key, `want a duration such as "30s", "5m" or "1h30m", got %s`, describe(v))
		return true
	}
	_ = json.Unmarshal(v, &s)
	d, err := time.ParseDuration(s)
	if err != nil {
		o.Errorf(key, `want a duration such as "30s", "5m" or "1h30m", got %q`, s)
		return true
	}
	*dst = d
	return true
}

// Scalar reads a number (as float64), a string or a boolean.
func (o *Object) Scalar(key string, dst *any) bool {
	v, ok := o.raw(key)
	if !ok {
		return false
	}
	switch payload.Kind(v) {
	case "number":
		var f float64
		o.Float(key, &f)
		*dst = f
	case "string":
		var s string
		o.String(key, &s)
		*dst = s
	case "boolean":
		*dst = string(v) == "true"
	default:
		o.Errorf(key, "want a number, a string or true/false, got %s", describe(v))
	}
	return true
}

// Objects reads a list of objects; the problems of each are reported as
// key[i].subkey, and their unknown keys by the top-level Err.
func (o *Object) Objects(key string) []*Object {
	v, ok := o.raw(key)
	if !ok {
		return nil
	}
	var items []json.RawMessage
	if payload.Kind(v) != "array" || json.Unmarshal(v, &items) != nil {
		o.Errorf(key, "want a list, got %s", describe(v))
		return nil
	}
	out := make([]*Object, 0, len(items))
	for i, item := range items {
		path := fmt.Sprintf("%s[%d]", join(o.path, key), i)
		kid, err := parseObject(path, item, o.probs)
		if err != nil {
			*o.probs = append(*o.probs, err.Error())
			continue
		}
		o.kids = append(o.kids, kid)
		out = append(out, kid)
	}
	return out
}

// Err reports every problem recorded on o and the objects read from it,
// and every key nobody asked for, as one error; nil when there is none.
func (o *Object) Err() error {
	o.unknown()
	if len(*o.probs) == 0 {
		return nil
	}
	return errors.New(strings.Join(*o.probs, "; "))
}

func (o *Object) unknown() {
	var known []string
	for k := range o.known {
		known = append(known, k)
	}
	slices.Sort(known)
	for _, k := range o.keys {
		if !o.known[k] {
			o.Errorf(k, "unknown key (known keys: %s)", strings.Join(known, ", "))
		}
	}
	for _, kid := range o.kids {
		kid.unknown()
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func problem(path, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if path == "" {
		return errors.New(msg)
	}
	return errors.New(path + ": " + msg)
}

// describe names a value's type, with the value itself when it is short.
func describe(v []byte) string {
	k := payload.Kind(v)
	if k == "object" || k == "array" || k == "null" || len(v) > 40 {
		return k
	}
	return k + " " + string(v)
}
