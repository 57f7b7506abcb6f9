package plugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// checkKeys walks raw alongside the Go type t before encoding/json decodes it, for what
// encoding/json lets through or words without the key: an object key that matches a field
// only in another case (encoding/json matches keys case-insensitively), a key given twice
// (encoding/json keeps the last), and the error of a field's own UnmarshalJSON (encoding/json
// does not say which key it was). path is the dotted path of raw ("" at the top). Syntax and
// type errors are left to encoding/json, which reports them.
func checkKeys(raw []byte, t reflect.Type, path string) error {
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(raw)
		if err != nil && path != "" {
			return &ConfigError{Field: path, Msg: fmt.Sprintf("field %q: %v", path, err), err: err}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return checkKeys(raw, t.Elem(), path)
	case reflect.Slice, reflect.Array:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return nil
		}
		for i, item := range items {
			if err := checkKeys(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		keys, values, ok := objectMembers(raw)
		if !ok {
			return nil
		}
		for i, k := range keys {
			if err := checkKeys(values[i], t.Elem(), join(path, k)); err != nil {
				return err
			}
		}
	case reflect.Struct:
		return checkStruct(raw, t, path)
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func checkStruct(raw []byte, t reflect.Type, path string) error {
	keys, values, ok := objectMembers(raw)
	if !ok {
		return nil
	}
	fields := map[string]reflect.Type{}
	collectFields(t, fields)
	seen := map[string]bool{}
	for i, k := range keys {
		at := join(path, k)
		if seen[k] {
			return &ConfigError{Field: at, Msg: fmt.Sprintf("field %q is given twice", at)}
		}
		seen[k] = true
		ft, ok := fields[k]
		if !ok {
			for name := range fields {
				if strings.EqualFold(name, k) {
					return &ConfigError{Field: at, Msg: fmt.Sprintf("unknown field %q: keys are case-sensitive, did you mean %q?", at, join(path, name))}
				}
			}
			continue // encoding/json reports the unknown field
		}
		if err := checkKeys(values[i], ft, at); err != nil {
			return err
		}
	}
	return nil
}

// collectFields maps the JSON names of t's fields, those of embedded structs included, to
// their types.
func collectFields(t reflect.Type, into map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				collectFields(ft, into)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		into[name] = f.Type
	}
}

// objectMembers returns the keys and values of a JSON object in order, duplicates included;
// ok is false when raw is not one.
func objectMembers(raw []byte) (keys []string, values []json.RawMessage, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, false
		}
		k, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, false
		}
		keys, values = append(keys, k), append(values, v)
	}
	return keys, values, true
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
