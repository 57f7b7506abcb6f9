package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
	anyType      = reflect.TypeFor[any]()
)

// keyOf returns the configuration key of a struct field (its koanf tag), or
// "" when the field is not a key.
func keyOf(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}

// fieldByKey finds the field of struct type t whose key is key.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); key != "" && keyOf(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// keysOf lists the keys of struct type t in declaration order.
func keysOf(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if k := keyOf(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// isSecret reports whether a field's value must never appear in a message.
func isSecret(f reflect.StructField) bool { return f.Tag.Get("secret") == "true" }

// leafPaths lists every key path of t that holds a single value (not a
// section, list or mapping): the keys the environment and flags may set.
func leafPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		k := keyOf(f)
		if k == "" {
			continue
		}
		p := joinPath(prefix, k)
		switch {
		case f.Type.Kind() == reflect.Struct:
			out = append(out, leafPaths(f.Type, p)...)
		case f.Type.Kind() != reflect.Slice && f.Type.Kind() != reflect.Map:
			out = append(out, p)
		}
	}
	return out
}

// settable returns why a single text value cannot be set at path (a dotted
// key path such as "gateway.listen"), or "" when it can.
func settable(path string) string {
	t := reflect.TypeFor[Config]()
	for _, seg := range strings.Split(path, ".") {
		if t.Kind() != reflect.Struct {
			return "unknown key"
		}
		f, ok := fieldByKey(t, seg)
		if !ok {
			return "unknown key"
		}
		t = f.Type
	}
	switch t.Kind() {
	case reflect.Struct:
		return "is a section, not a value; set one of its keys: " + strings.Join(keysOf(t), ", ")
	case reflect.Slice, reflect.Map:
		return "is a list or mapping; it can only be declared in the configuration file"
	}
	return ""
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// decoder sets the fields of a configuration struct from the nested map of
// one source (the file, the environment or the flags), strictly: an unknown
// key, a value of the wrong type or an unreadable value is a problem, and
// decoding goes on so that every problem of the source is reported.
type decoder struct {
	// where returns a Problem carrying the Source and Line for path.
	where func(path string) Problem
	// problems found so far.
	problems Problems
	// failed lists the problems of values that could not be decoded. What
	// Validate then finds at or under their paths follows from them.
	failed []Problem
}

func (d *decoder) problem(path, format string, args ...any) Problem {
	p := d.where(path)
	p.Path = path
	p.Message = fmt.Sprintf(format, args...)
	d.problems = append(d.problems, p)
	return p
}

func (d *decoder) report(path, format string, args ...any) {
	d.problem(path, format, args...)
}

func (d *decoder) fail(path, format string, args ...any) {
	d.failed = append(d.failed, d.problem(path, format, args...))
}

// decode stores in into out. Sections (structs) are merged key by key;
// lists and mappings are replaced as a whole.
func (d *decoder) decode(path string, in any, out reflect.Value, secret bool) {
	if in == nil {
		switch out.Kind() {
		case reflect.Struct:
			// An empty section keeps what it holds.
		case reflect.Slice, reflect.Map:
			out.SetZero()
		default:
			d.fail(path, "has no value; give one or remove the key to keep the default")
		}
		return
	}
	switch out.Type() {
	case durationType:
		d.duration(path, in, out, secret)
		return
	case byteSizeType:
		d.byteSize(path, in, out, secret)
		return
	}
	switch out.Kind() {
	case reflect.String:
		s, ok := in.(string)
		if !ok {
			d.fail(path, "expected a string, got %s%s", describe(in, secret), quoteHint(in))
			return
		}
		out.SetString(s)
	case reflect.Bool:
		d.boolean(path, in, out, secret)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		d.integer(path, in, out, secret)
	case reflect.Float64:
		d.float(path, in, out, secret)
	case reflect.Struct:
		m, ok := in.(map[string]any)
		if !ok {
			d.fail(path, "expected a mapping with the keys %s, got %s", strings.Join(keysOf(out.Type()), ", "), describe(in, secret))
			return
		}
		d.section(path, m, out, secret)
	case reflect.Slice:
		list, ok := in.([]any)
		if !ok {
			d.fail(path, "expected a list, got %s", describe(in, secret))
			return
		}
		if len(list) == 0 {
			out.SetZero() // an empty list is no list: configs compare equal
			return
		}
		s := reflect.MakeSlice(out.Type(), len(list), len(list))
		for i, v := range list {
			d.decode(fmt.Sprintf("%s[%d]", path, i), v, s.Index(i), secret)
		}
		out.Set(s)
	case reflect.Map:
		d.mapping(path, in, out, secret)
	default:
		d.fail(path, "cannot be decoded into unsupported type %s", out.Type())
	}
}

func (d *decoder) section(path string, m map[string]any, out reflect.Value, secret bool) {
	t := out.Type()
	for _, k := range slices.Sorted(maps.Keys(m)) {
		p := joinPath(path, k)
		f, ok := fieldByKey(t, k)
		if !ok {
			hint := "expected one of: " + strings.Join(keysOf(t), ", ")
			if strings.Contains(k, ".") {
				hint = "write nested keys as indented YAML sections, not as dotted names"
			}
			d.report(p, "unknown key (%s)", hint)
			continue
		}
		d.decode(p, m[k], out.FieldByIndex(f.Index), secret || isSecret(f))
	}
}

func (d *decoder) mapping(path string, in any, out reflect.Value, secret bool) {
	t := out.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(path, "cannot be decoded into unsupported type %s", t)
		return
	}
	m, ok := in.(map[string]any)
	if !ok {
		d.fail(path, "expected a mapping of names to values, got %s", describe(in, secret))
		return
	}
	if t.Elem() == anyType {
		// Free-form: the owner (a plugin) decodes it strictly later.
		out.Set(reflect.ValueOf(freeForm(m)).Convert(t))
		return
	}
	nm := reflect.MakeMapWithSize(t, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		elem := reflect.New(t.Elem()).Elem()
		d.decode(joinPath(path, k), m[k], elem, secret)
		nm.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), elem)
	}
	out.Set(nm)
}

func (d *decoder) boolean(path string, in any, out reflect.Value, secret bool) {
	switch v := in.(type) {
	case bool:
		out.SetBool(v)
		return
	case string:
		if b, err := strconv.ParseBool(v); err == nil {
			out.SetBool(b)
			return
		}
	}
	d.fail(path, "expected true or false, got %s", describe(in, secret))
}

func (d *decoder) integer(path string, in any, out reflect.Value, secret bool) {
	n, msg := asInt64(in, secret)
	if msg == "" && out.OverflowInt(n) {
		msg = describe(in, secret) + " is out of range"
	}
	if msg != "" {
		d.fail(path, "%s", msg)
		return
	}
	out.SetInt(n)
}

// float reads a number: a YAML int or float, or a decimal string (the
// environment and flags give strings). NaN and infinities are refused.
func (d *decoder) float(path string, in any, out reflect.Value, secret bool) {
	var f float64
	switch v := in.(type) {
	case int:
		f = float64(v)
	case int64:
		f = float64(v)
	case uint64:
		f = float64(v)
	case float64:
		f = v
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil {
			d.fail(path, "expected a number, got %s", describe(in, secret))
			return
		}
	default:
		d.fail(path, "expected a number, got %s", describe(in, secret))
		return
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		d.fail(path, "expected a finite number, got %s", describe(in, secret))
		return
	}
	out.SetFloat(f)
}

// asInt64 reads an integer from a YAML number or a decimal string (the
// environment and flags give strings); msg says what is wrong, "" if nothing.
func asInt64(in any, secret bool) (n int64, msg string) {
	switch v := in.(type) {
	case int:
		return int64(v), ""
	case int64:
		return v, ""
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v), ""
		}
		return 0, describe(in, secret) + " is out of range"
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err == nil {
			return n, ""
		}
		if errors.Is(err, strconv.ErrRange) {
			return 0, describe(in, secret) + " is out of range"
		}
	}
	return 0, "expected an integer, got " + describe(in, secret)
}

func (d *decoder) duration(path string, in any, out reflect.Value, secret bool) {
	s, ok := in.(string)
	if !ok {
		if isNumber(in) {
			d.fail(path, "a duration needs a unit, e.g. \"30s\", \"5m\" or \"1h30m\"; got %s", describe(in, secret))
			return
		}
		d.fail(path, "expected a duration such as \"30s\", got %s", describe(in, secret))
		return
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		if _, numErr := strconv.ParseFloat(strings.TrimSpace(s), 64); numErr == nil {
			d.fail(path, "a duration needs a unit, e.g. \"30s\", \"5m\" or \"1h30m\"; got %s", describe(in, secret))
			return
		}
		d.fail(path, "%s is not a duration; write a Go duration such as \"30s\", \"5m\" or \"1h30m\"", describe(in, secret))
		return
	}
	out.SetInt(int64(v))
}

func (d *decoder) byteSize(path string, in any, out reflect.Value, secret bool) {
	switch v := in.(type) {
	case string:
		n, err := ParseByteSize(v)
		if err != nil {
			if secret {
				d.fail(path, "is not a size such as \"64KiB\"")
			} else {
				d.fail(path, "%v", err)
			}
			return
		}
		out.SetInt(int64(n))
	case int, int64, uint64:
		// A plain number is a number of bytes.
		n, msg := asInt64(in, secret)
		if msg == "" && n < 0 {
			msg = "a size must not be negative, got " + describe(in, secret)
		}
		if msg != "" {
			d.fail(path, "%s", msg)
			return
		}
		out.SetInt(n)
	default:
		d.fail(path, "expected a size such as \"64KiB\", \"16MiB\" or a number of bytes, got %s", describe(in, secret))
	}
}

func isNumber(v any) bool {
	switch v.(type) {
	case int, int64, uint64, float64:
		return true
	}
	return false
}

// describe names a decoded YAML value for a message, without its content
// when secret.
func describe(v any, secret bool) string {
	switch t := v.(type) {
	case string:
		if secret {
			return "a string"
		}
		const max = 64
		if len(t) > max {
			return fmt.Sprintf("string %q…", t[:max])
		}
		return fmt.Sprintf("string %q", t)
	case bool:
		if secret {
			return "a boolean"
		}
		return fmt.Sprintf("boolean %t", t)
	case int, int64, uint64, float64:
		if secret {
			return "a number"
		}
		return fmt.Sprintf("number %v", t)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	case time.Time:
		return "a timestamp"
	default:
		return fmt.Sprintf("a value of type %T", v)
	}
}

// quoteHint suggests quoting a scalar YAML read as another type.
func quoteHint(v any) string {
	switch v.(type) {
	case bool, int, int64, uint64, float64, time.Time:
		return " (put it in quotes if it is meant as text)"
	}
	return ""
}

// freeForm copies a free-form value (a plugin's config) so that every
// mapping in it has string keys, as JSON and the plugin decoders expect.
func freeForm(v any) map[string]any {
	m, _ := freeFormValue(v).(map[string]any)
	return m
}

func freeFormValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = freeFormValue(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[fmt.Sprint(k)] = freeFormValue(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = freeFormValue(e)
		}
		return out
	default:
		return v
	}
}
