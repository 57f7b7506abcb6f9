// Package filter is the transforms.filter plugin: it passes a message on
// unchanged only when a condition over one field of its JSON payload holds,
// and, with a deadband, only when that field moved by at least the deadband
// since the last message of the same subject that passed.
//
// The package holds the plugin's logic and configuration over plain bytes;
// wasm/ registers it with the Go guest kit. The last passed value of each
// subject is kept in the instance's state; nothing else is reached.
package filter

import (
	_ "embed"
	"fmt"
	"math"
	"strconv"

	"github.com/switchyard/switchyard/plugins/internal/conf"
	"github.com/switchyard/switchyard/plugins/internal/payload"
)

// Use is the plugin's kind.name in plugins.yaml.
const Use = "transforms.filter"

// Sample is a plugins.yaml entry using the plugin, as shown in the README.
//
//go:embed sample.yaml
var Sample string

// State is the instance's key/value state, which the host keeps.
type State interface {
	Get(key string) ([]byte, bool)
	Set(key string, val []byte) error
}

// StateKey returns the state key holding the last passed value of subject.
func StateKey(subject string) string { return "deadband." + subject }

// tolerance is how much less than the deadband a move may be and still count,
// relative to the deadband, so decimal steps such as 0.1 → 0.3 (0.19999999999999998
// in binary) meet a deadband of 0.2.
const tolerance = 1e-9

// ops holds the comparisons; eq and ne also compare strings and booleans.
var ops = map[string]func(c int) bool{
	"gt": func(c int) bool { return c > 0 },
	"ge": func(c int) bool { return c >= 0 },
	"lt": func(c int) bool { return c < 0 },
	"le": func(c int) bool { return c <= 0 },
	"eq": func(c int) bool { return c == 0 },
	"ne": func(c int) bool { return c != 0 },
}

// Filter is one configured instance.
type Filter struct {
	field    string
	holds    func(c int) bool // nil when there is no condition
	value    any              // float64, string or bool
	deadband float64
}

// New decodes the instance's configuration (a JSON object) strictly.
func New(config []byte) (*Filter, error) {
	o, err := conf.Parse(config)
	if err != nil {
		return nil, err
	}
	f := &Filter{field: "value"}
	if o.String("field", &f.field) && f.field == "" {
		o.Errorf("field", "must not be empty")
	}
	var op string
	hasOp := o.String("op", &op)
	hasValue := o.Scalar("value", &f.value)
	if hasOp {
		f.holds = ops[op]
		if f.holds == nil {
			o.Errorf("op", "want one of gt, ge, lt, le, eq, ne, got %q", op)
		}
	}
	switch {
	case hasOp && !hasValue:
		o.Errorf("value", "required with op")
	case hasValue && !hasOp:
		o.Errorf("op", "required with value")
	case f.value != nil && f.holds != nil:
		if _, isNum := f.value.(float64); !isNum && op != "eq" && op != "ne" {
			o.Errorf("value", "op %s compares numbers, got %s %v", op, typeName(f.value), quote(f.value))
		}
	}
	if o.Float("deadband", &f.deadband) {
		if f.deadband < 0 {
			o.Errorf("deadband", "must not be negative, got %v", f.deadband)
		}
		if _, isNum := f.value.(float64); f.deadband > 0 && f.value != nil && !isNum {
			o.Errorf("deadband", "needs a numeric field, but value is %s %v", typeName(f.value), quote(f.value))
		}
	}
	if !hasOp && !hasValue && f.deadband == 0 {
		o.Errorf("op", "set op and value, a deadband, or both: with neither every message would pass")
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	return f, nil
}

// Pass reports whether the message with this subject and payload passes,
// recording its value in st when a deadband is set and it does. A payload
// that is not a JSON object, or whose field is missing or of another type
// than the condition compares, is an error naming the field.
func (f *Filter) Pass(subject string, in []byte, st State) (bool, error) {
	obj, err := payload.Parse(in)
	if err != nil {
		return false, err
	}
	if f.holds != nil {
		c, err := f.compare(obj)
		if err != nil || !f.holds(c) {
			return false, err
		}
	}
	if f.deadband == 0 {
		return true, nil
	}
	v, err := obj.Number(f.field)
	if err != nil {
		return false, err
	}
	key := StateKey(subject)
	if b, ok := st.Get(key); ok {
		last, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return false, fmt.Errorf("state %q: not a number: %q", key, b)
		}
		if math.Abs(v-last) < f.deadband*(1-tolerance) {
			return false, nil
		}
	}
	if err := st.Set(key, strconv.AppendFloat(nil, v, 'g', -1, 64)); err != nil {
		return false, fmt.Errorf("state %q: %w", key, err)
	}
	return true, nil
}

// compare returns -1, 0 or +1 as the field is less than, equal to or greater
// than the configured value; strings and booleans compare 0 or 1 (unequal).
func (f *Filter) compare(obj payload.Object) (int, error) {
	switch want := f.value.(type) {
	case float64:
		v, err := obj.Number(f.field)
		if err != nil {
			return 0, err
		}
		switch {
		case v < want:
			return -1, nil
		case v > want:
			return 1, nil
		}
		return 0, nil
	default:
		v, err := obj.Scalar(f.field)
		if err != nil {
			return 0, err
		}
		if typeName(v) != typeName(want) {
			return 0, fmt.Errorf("field %q: want a %s to compare with %v, got a %s", f.field, typeName(want), quote(want), typeName(v))
		}
		if v == want {
			return 0, nil
		}
		return 1, nil
	}
}

func typeName(v any) string {
	switch v.(type) {
	case float64:
		return "number"
	case string:
		return "string"
	default:
		return "boolean"
	}
}

func quote(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}
