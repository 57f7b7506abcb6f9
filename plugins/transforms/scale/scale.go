// Package scale is the transforms.scale plugin: unit conversion on one
// numeric field of a JSON payload, value*multiply+offset or a named preset,
// optionally renamed, rounded and labelled with a unit.
//
// The package holds the plugin's logic and configuration over plain bytes;
// wasm/ registers it with the Go guest kit. It never touches state, the
// clock or the network.
package scale

import (
	_ "embed"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/plugins/internal/conf"
	"github.com/switchyard/switchyard/plugins/internal/payload"
)

// Use is the plugin's kind.name in plugins.yaml.
const Use = "transforms.scale"

// Sample is a plugins.yaml entry using the plugin, as shown in the README.
//
//go:embed sample.yaml
var Sample string

// maxRound is the most decimals round accepts: float64 holds 15 to 17
// significant digits, so more would round nothing.
const maxRound = 15

// preset is a named conversion and the unit it converts to.
type preset struct {
	convert func(float64) float64
	unit    string
}

// The explicit float64 conversions around products that are then added keep
// the compiler from fusing them into one FMA instruction where the CPU has one
// (the Go spec allows it), so results computed natively match the WASM
// module's bit for bit.
var presets = map[string]preset{
	"c_to_f":     {func(v float64) float64 { return float64(v*9/5) + 32 }, "°F"},
	"f_to_c":     {func(v float64) float64 { return (v - 32) * 5 / 9 }, "°C"},
	"kpa_to_psi": {func(v float64) float64 { return v / 6.894757293168361 }, "psi"}, // 1 psi = 6894.757293168361 Pa
}

// Scale is one configured instance.
type Scale struct {
	field   string
	convert func(float64) float64
	rename  string // "" keeps the field's name
	unit    string
	setUnit bool
	round   int // decimals; -1 for no rounding
}

// New decodes the instance's configuration (a JSON object) strictly.
func New(config []byte) (*Scale, error) {
	o, err := conf.Parse(config)
	if err != nil {
		return nil, err
	}
	s := &Scale{field: "value", round: -1}
	if o.String("field", &s.field) && s.field == "" {
		o.Errorf("field", "must not be empty")
	}
	multiply, offset := 1.0, 0.0
	hasMultiply := o.Float("multiply", &multiply)
	hasOffset := o.Float("offset", &offset)
	var name string
	if o.String("preset", &name) {
		p, ok := presets[name]
		switch {
		case !ok:
			o.Errorf("preset", "want one of %s, got %q", presetNames(), name)
		case hasMultiply || hasOffset:
			o.Errorf("preset", "cannot be combined with multiply or offset")
		default:
			s.convert, s.unit, s.setUnit = p.convert, p.unit, true
		}
	}
	if s.convert == nil {
		s.convert = func(v float64) float64 { return float64(v*multiply) + offset }
	}
	if o.String("rename", &s.rename) && s.rename == "" {
		o.Errorf("rename", "must not be empty (leave it out to keep the field's name)")
	}
	if o.String("unit", &s.unit) {
		s.setUnit = true
	}
	if o.Int("round", &s.round) && (s.round < 0 || s.round > maxRound) {
		o.Errorf("round", "want 0 to %d decimals, got %d", maxRound, s.round)
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

// Apply converts the field of one payload and returns the new payload.
// A payload that is not a JSON object, or whose field is missing or not a
// number, is an error naming the field.
func (s *Scale) Apply(in []byte) ([]byte, error) {
	obj, err := payload.Parse(in)
	if err != nil {
		return nil, err
	}
	v, err := obj.Number(s.field)
	if err != nil {
		return nil, err
	}
	r := s.convert(v)
	if s.round >= 0 {
		r = roundTo(r, s.round)
	}
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return nil, fmt.Errorf("field %q: %v scales to %v, which JSON cannot hold", s.field, v, r)
	}
	key := s.field
	if s.rename != "" {
		delete(obj, s.field)
		key = s.rename
	}
	if err := obj.Set(key, r); err != nil {
		return nil, err
	}
	if s.setUnit {
		if err := obj.Set("unit", s.unit); err != nil {
			return nil, err
		}
	}
	return obj.Encode()
}

// roundTo rounds v to n decimals: to the nearest, on v's exact binary value,
// and an exact tie to even (2.5 → 2, like Python's round).
func roundTo(v float64, n int) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', n, 64), 64) // FormatFloat's output always parses, NaN and ±Inf included
	return r
}

func presetNames() string {
	return strings.Join(slices.Sorted(maps.Keys(presets)), ", ")
}
