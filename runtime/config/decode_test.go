package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// Every key of Config is tagged, and every value key can be set from a
// string (as the environment and flags do) and reads back its default.
func TestSchemaRoundTrip(t *testing.T) {
	var walk func(t reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if f.IsExported() && keyOf(f) == "" && f.Tag.Get("koanf") != "-" {
				t.Errorf("%s.%s has no koanf tag", path, f.Name)
			}
			if keyOf(f) == "" {
				continue
			}
			switch f.Type.Kind() {
			case reflect.Struct:
				walk(f.Type, joinPath(path, keyOf(f)))
			case reflect.Slice:
				if f.Type.Elem().Kind() == reflect.Struct {
					walk(f.Type.Elem(), joinPath(path, keyOf(f))+"[]")
				}
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")

	def := Default()
	paths := leafPaths(reflect.TypeFor[Config](), "")
	overrides := map[string]string{}
	var environ []string
	for _, p := range paths {
		if msg := settable(p); msg != "" {
			t.Errorf("settable(%s) = %q", p, msg)
		}
		v := reflect.ValueOf(def)
		for _, seg := range strings.Split(p, ".") {
			f, _ := fieldByKey(v.Type(), seg)
			v = v.FieldByIndex(f.Index)
		}
		text := fmt.Sprint(v.Interface()) // Duration and ByteSize print as they are written
		overrides[p] = text
		environ = append(environ, EnvPrefix+strings.ToUpper(strings.ReplaceAll(p, ".", "__"))+"="+text)
	}
	if len(paths) < 19 {
		t.Fatalf("only %d value keys found: %v", len(paths), paths)
	}
	for name, src := range map[string]Source{"flags": {Overrides: overrides}, "env": {Environ: environ}} {
		cfg := mustLoad(t, src)
		if !reflect.DeepEqual(*cfg, def) {
			t.Errorf("%s: setting every key to its default gives %+v", name, *cfg)
		}
	}
}

// The decoder handles the kinds a new key may bring, and says which it cannot.
func TestDecodeKinds(t *testing.T) {
	type sample struct {
		On    bool           `koanf:"on"`
		Small int8           `koanf:"small"`
		Ratio float64        `koanf:"ratio"`
		ByInt map[int]string `koanf:"by_int"`
		Names []string       `koanf:"names"`
		Free  map[string]any `koanf:"free"`
		Skip  string         `koanf:"-"`
	}
	tests := []struct {
		name string
		in   map[string]any
		want sample
		errs []string
	}{
		{"values", map[string]any{
			"on": "true", "small": -128, "ratio": 2, "names": []any{"a", "b"},
			"free": map[string]any{"deep": []any{map[any]any{1: "x"}}},
		}, sample{On: true, Small: -128, Ratio: 2, Names: []string{"a", "b"},
			Free: map[string]any{"deep": []any{map[string]any{"1": "x"}}}}, nil},
		{"bool from YAML", map[string]any{"on": true}, sample{On: true}, nil},
		{"float from YAML and env", map[string]any{"ratio": 0.25}, sample{Ratio: 0.25}, nil},
		{"float from a string", map[string]any{"ratio": " 1.5 "}, sample{Ratio: 1.5}, nil},
		{"wrong kinds", map[string]any{
			"on": "yes please", "small": 128, "ratio": "fast", "by_int": map[string]any{"1": "a"},
			"names": []any{"a", 2}, "-": "x",
		}, sample{}, []string{
			`-: unknown key (expected one of: on, small, ratio, by_int, names, free)`,
			`by_int: cannot be decoded into unsupported type map[int]string`,
			`names[1]: expected a string, got number 2 (put it in quotes if it is meant as text)`,
			`on: expected true or false, got string "yes please"`,
			`ratio: expected a number, got string "fast"`,
			`small: number 128 is out of range`,
		}},
		{"long string", map[string]any{"small": strings.Repeat("x", 100)}, sample{}, []string{
			`small: expected an integer, got string "` + strings.Repeat("x", 64) + `"…`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got sample
			d := decoder{where: func(string) Problem { return Problem{} }}
			d.section("", tt.in, reflect.ValueOf(&got).Elem(), false)
			var errs []string
			if len(d.problems) > 0 {
				errs = strings.Split(d.problems.Error(), "\n")
			}
			assertLines(t, errs, tt.errs)
			if tt.errs == nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
