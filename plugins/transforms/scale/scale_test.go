package scale

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/plugins/internal/payload"
	"github.com/switchyard/switchyard/plugins/internal/plugintest"
)

func TestApply(t *testing.T) {
	tests := []struct {
		name, config, in, want string
	}{
		{name: "defaults change nothing but the encoding", config: `{}`, in: `{"value": 3, "unit": "V"}`, want: `{"unit":"V","value":3}`},
		{name: "multiply and offset", config: `{"multiply": 2, "offset": -1}`, in: `{"value": 2.5}`, want: `{"value":4}`},
		{name: "another field, other fields kept", config: `{"field": "temp", "multiply": 10}`, in: `{"temp": 1.5, "room": "hall", "raw": [1, {"a": null}]}`, want: `{"raw":[1,{"a":null}],"room":"hall","temp":15}`},
		{name: "rename", config: `{"multiply": 0.001, "rename": "kw"}`, in: `{"value": 1500}`, want: `{"kw":1.5}`},
		{name: "rename overwrites an existing field", config: `{"rename": "old"}`, in: `{"value": 1, "old": "x"}`, want: `{"old":1}`},
		{name: "unit", config: `{"multiply": 1000, "unit": "mV"}`, in: `{"value": 1.2, "unit": "V"}`, want: `{"unit":"mV","value":1200}`},
		{name: "round", config: `{"multiply": 3, "round": 2}`, in: `{"value": 0.1}`, want: `{"value":0.3}`},
		{name: "round zero decimals, ties to even", config: `{"round": 0}`, in: `{"value": 2.5}`, want: `{"value":2}`},
		{name: "round to nearest", config: `{"round": 0}`, in: `{"value": -2.51}`, want: `{"value":-3}`},
		{name: "c_to_f", config: `{"preset": "c_to_f"}`, in: `{"value": 100, "unit": "°C"}`, want: `{"unit":"°F","value":212}`},
		{name: "c_to_f below zero", config: `{"preset": "c_to_f", "round": 1}`, in: `{"value": -40}`, want: `{"unit":"°F","value":-40}`},
		{name: "f_to_c", config: `{"preset": "f_to_c"}`, in: `{"value": 212}`, want: `{"unit":"°C","value":100}`},
		{name: "f_to_c rounded", config: `{"preset": "f_to_c", "round": 2}`, in: `{"value": 70}`, want: `{"unit":"°C","value":21.11}`},
		{name: "kpa_to_psi", config: `{"preset": "kpa_to_psi", "round": 3}`, in: `{"value": 101.325}`, want: `{"unit":"psi","value":14.696}`},
		{name: "preset with its unit replaced", config: `{"preset": "c_to_f", "unit": "F"}`, in: `{"value": 0}`, want: `{"unit":"F","value":32}`},
		{name: "the README's example", config: `{"field": "value", "preset": "c_to_f", "rename": "fahrenheit", "round": 1}`, in: `{"value": 21.5, "unit": "°C", "battery": 87}`, want: `{"battery":87,"fahrenheit":70.7,"unit":"°F"}`},
		{name: "HTML characters stay", config: `{"unit": "<b>"}`, in: `{"value": 1, "note": "a&b"}`, want: `{"note":"a&b","unit":"<b>","value":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New([]byte(tt.config))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			got, err := s.Apply([]byte(tt.in))
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("Apply(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestApplyErrors(t *testing.T) {
	tests := []struct {
		name, config, in, err string
	}{
		{name: "missing field", config: `{"field": "temp"}`, in: `{"value": 1}`, err: `field "temp": missing`},
		{name: "string field", config: `{}`, in: `{"value": "21.5"}`, err: `field "value": want a number, got string`},
		{name: "null field", config: `{}`, in: `{"value": null}`, err: `field "value": want a number, got null`},
		{name: "not an object", config: `{}`, in: `[21.5]`, err: "payload: want a JSON object, got array"},
		{name: "not JSON", config: `{}`, in: `{"value": 1`, err: "payload: not valid JSON"},
		{name: "overflow", config: `{"multiply": 1e308}`, in: `{"value": 1e10}`, err: `field "value": 1e+10 scales to +Inf, which JSON cannot hold`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New([]byte(tt.config))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			out, err := s.Apply([]byte(tt.in))
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Fatalf("Apply(%s) = %s, %v; want error %q", tt.in, out, err, tt.err)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		config, err string
	}{
		{`{"multiply": "2"}`, `multiply: want a number, got string "2"`},
		{`{"offset": true}`, "offset: want a number, got boolean true"},
		{`{"field": ""}`, "field: must not be empty"},
		{`{"field": 1}`, "field: want a string, got number 1"},
		{`{"preset": "c_to_k"}`, `preset: want one of c_to_f, f_to_c, kpa_to_psi, got "c_to_k"`},
		{`{"preset": "c_to_f", "offset": 1}`, "preset: cannot be combined with multiply or offset"},
		{`{"preset": "c_to_f", "multiply": 1}`, "preset: cannot be combined with multiply or offset"},
		{`{"rename": ""}`, "rename: must not be empty"},
		{`{"round": 1.5}`, "round: want a whole number, got 1.5"},
		{`{"round": -1}`, "round: want 0 to 15 decimals, got -1"},
		{`{"round": 16}`, "round: want 0 to 15 decimals, got 16"},
		{`{"unit": null}`, "unit: want a string, got null"},
		{`{"factor": 2}`, "factor: unknown key (known keys: field, multiply, offset, preset, rename, round, unit)"},
		{`[]`, "want an object, got array"},
	}
	for _, tt := range tests {
		if _, err := New([]byte(tt.config)); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("New(%s) error = %v, want it to contain %q", tt.config, err, tt.err)
		}
	}
}

func TestGolden(t *testing.T) {
	plugintest.Golden(t, Use, func(config []byte) (plugintest.Step, error) {
		s, err := New(config)
		return func(m plugintest.Message, _ plugintest.State) ([]plugintest.Message, error) {
			p, err := s.Apply(m.Payload)
			return []plugintest.Message{{Subject: m.Subject, Payload: p}}, err
		}, err
	})
}

func TestSample(t *testing.T) {
	plugintest.Sample(t, Sample, Use, func(config []byte) error {
		_, err := New(config)
		return err
	})
}

func FuzzScale(f *testing.F) {
	f.Add(`{"preset": "c_to_f", "round": 1}`, `{"value": 21.5}`)
	f.Add(`{"multiply": 2, "offset": 1, "rename": "x", "unit": "u"}`, `{"value": -1e300, "other": [1]}`)
	f.Add(`{"field": "v"}`, `{"v": "x"}`)
	f.Fuzz(func(t *testing.T, config, in string) {
		s, err := New([]byte(config))
		if err != nil {
			return
		}
		out, err := s.Apply([]byte(in))
		if err != nil {
			return
		}
		obj, err := payload.Parse(out)
		if err != nil {
			t.Fatalf("output %s of %s: %v", out, in, err)
		}
		key := s.field
		if s.rename != "" {
			key = s.rename
		}
		if _, err := obj.Number(key); err != nil {
			t.Fatalf("output %s of %s: %v", out, in, err)
		}
	})
}
