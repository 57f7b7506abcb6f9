package conf

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// sample is what a test decodes: one getter of each kind, and a list.
type sample struct {
	S     string
	F     float64
	I     int
	B     bool
	D     time.Duration
	V     any
	Items []string
	Seen  []string // keys the getters reported present
}

func decode(data string) (sample, error) {
	var s sample
	o, err := Parse([]byte(data))
	if err != nil {
		return s, err
	}
	mark := func(key string, present bool) {
		if present {
			s.Seen = append(s.Seen, key)
		}
	}
	mark("s", o.String("s", &s.S))
	mark("f", o.Float("f", &s.F))
	mark("i", o.Int("i", &s.I))
	mark("b", o.Bool("b", &s.B))
	mark("d", o.Duration("d", &s.D))
	mark("v", o.Scalar("v", &s.V))
	for _, it := range o.Objects("items") {
		var name string
		if !it.String("name", &name) {
			it.Errorf("name", "required")
		}
		s.Items = append(s.Items, name)
	}
	return s, o.Err()
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want sample
		err  string // substring of the error; "" for none
	}{
		{name: "empty is the empty object", in: "  ", want: sample{}},
		{name: "every kind", in: `{"s":"x","f":1.5,"i":3,"b":true,"d":"1m30s","v":"on","items":[{"name":"a"},{"name":"b"}]}`,
			want: sample{S: "x", F: 1.5, I: 3, B: true, D: 90 * time.Second, V: "on", Items: []string{"a", "b"}, Seen: []string{"s", "f", "i", "b", "d", "v"}}},
		{name: "whole number written as float", in: `{"i":2.0}`, want: sample{I: 2, Seen: []string{"i"}}},
		{name: "scalar number", in: `{"v":7}`, want: sample{V: 7.0, Seen: []string{"v"}}},
		{name: "scalar bool", in: `{"v":false}`, want: sample{V: false, Seen: []string{"v"}}},
		{name: "not an object", in: `[1]`, err: "want an object, got array"},
		{name: "not JSON", in: `{"s":`, err: "not valid JSON"},
		{name: "trailing data", in: `{} x`, err: "data after the object"},
		{name: "duplicate key", in: `{"s":"a","s":"b"}`, err: "s: key appears twice"},
		{name: "unknown key names known keys", in: `{"sz":"a"}`, err: "sz: unknown key (known keys: b, d, f, i, items, s, v)"},
		{name: "wrong type string", in: `{"s":1}`, err: "s: want a string, got number 1"},
		{name: "wrong type number", in: `{"f":"1"}`, err: `f: want a number, got string "1"`},
		{name: "number out of range", in: `{"f":1e999}`, err: "f: number 1e999 is out of range"},
		{name: "fraction for int", in: `{"i":1.5}`, err: "i: want a whole number, got 1.5"},
		{name: "bool", in: `{"b":"yes"}`, err: `b: want true or false, got string "yes"`},
		{name: "duration without unit", in: `{"d":30}`, err: `d: want a duration such as "30s", "5m" or "1h30m", got number 30`},
		{name: "bad duration", in: `{"d":"soon"}`, err: `d: want a duration such as "30s", "5m" or "1h30m", got "soon"`},
		{name: "null is a wrong type", in: `{"s":null}`, err: "s: want a string, got null"},
		{name: "scalar object", in: `{"v":{}}`, err: "v: want a number, a string or true/false, got object"},
		{name: "list not a list", in: `{"items":{}}`, err: "items: want a list, got object"},
		{name: "item not an object", in: `{"items":[1]}`, err: "items[0]: want an object, got number"},
		{name: "item problem has its path", in: `{"items":[{"name":"a"},{}]}`, err: "items[1].name: required"},
		{name: "item unknown key", in: `{"items":[{"name":"a","nmae":"b"}]}`, err: "items[0].nmae: unknown key (known keys: name)"},
		{name: "item duplicate key", in: `{"items":[{"name":"a","name":"b"}]}`, err: "items[0].name: key appears twice"},
		{name: "every problem at once", in: `{"s":1,"f":"x","zz":0}`, err: `s: want a string, got number 1; f: want a number, got string "x"; zz: unknown key`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !equal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func equal(a, b sample) bool {
	return a.S == b.S && a.F == b.F && a.I == b.I && a.B == b.B && a.D == b.D && a.V == b.V &&
		strings.Join(a.Items, ",") == strings.Join(b.Items, ",") && strings.Join(a.Seen, ",") == strings.Join(b.Seen, ",")
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`{}`, `{"s":"x","items":[{"name":"a"}]}`, `{"d":"1s","i":1e3}`, `[`, `{"a":1,"a":2}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if _, err := decode(in); err == nil && strings.TrimSpace(in) != "" && !json.Valid([]byte(in)) {
			t.Fatalf("accepted invalid JSON %q", in)
		}
	})
}
