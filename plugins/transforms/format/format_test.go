package format

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
		{name: "value and unit", config: `{"template":"{{.value | printf \"%.1f\"}} {{.unit}}"}`, in: `{"value":21.46,"unit":"°C"}`, want: `{"text":"21.5 °C"}`},
		{name: "whole numbers print plainly", config: `{"template":"{{.count}} devices"}`, in: `{"count":12}`, want: `{"text":"12 devices"}`},
		{name: "another field", config: `{"template":"{{.state}}","field":"line1"}`, in: `{"state":"on"}`, want: `{"line1":"on"}`},
		{name: "keep the input", config: `{"template":"{{.value}}%","keep":true}`, in: `{"value":55,"unit":"%"}`, want: `{"text":"55%","unit":"%","value":55}`},
		{name: "keep overwrites the field", config: `{"template":"new","keep":true}`, in: `{"text":"old"}`, want: `{"text":"new"}`},
		{name: "conditions", config: `{"template":"{{if ge .value 30.0}}HOT{{else}}ok{{end}}"}`, in: `{"value":31}`, want: `{"text":"HOT"}`},
		{name: "nested fields", config: `{"template":"{{.room.name}}: {{index .readings 1}}"}`, in: `{"room":{"name":"hall"},"readings":[1,2.5]}`, want: `{"text":"hall: 2.5"}`},
		{name: "optional field guarded with index", config: `{"template":"{{.value}}{{with index . \"unit\"}} {{.}}{{end}}"}`, in: `{"value":3}`, want: `{"text":"3"}`},
		{name: "HTML characters stay", config: `{"template":"<{{.a}}> & more"}`, in: `{"a":"b"}`, want: `{"text":"<b> & more"}`},
		{name: "booleans", config: `{"template":"{{if .open}}open{{else}}shut{{end}}"}`, in: `{"open":false}`, want: `{"text":"shut"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New([]byte(tt.config))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			got, err := f.Apply([]byte(tt.in))
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
		{name: "missing field", config: `{"template":"{{.value}} {{.unit}}"}`, in: `{"value":1}`, err: `template: template:1:13: executing "template" at <.unit>: map has no entry for key "unit"`},
		{name: "wrong type for a function", config: `{"template":"{{if gt .value 20}}hot{{end}}"}`, in: `{"value":21}`, err: "incompatible types for comparison"},
		{name: "field of a number", config: `{"template":"{{.value.x}}"}`, in: `{"value":21}`, err: "can't evaluate field x"},
		{name: "not an object", config: `{"template":"x"}`, in: `[]`, err: "payload: want a JSON object, got array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New([]byte(tt.config))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			out, err := f.Apply([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Apply(%s) = %s, %v; want error containing %q", tt.in, out, err, tt.err)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ config, err string }{
		{`{}`, `template: required, e.g. "{{.value | printf \"%.1f\"}} {{.unit}}"`},
		{`{"template":""}`, "template: must not be empty"},
		{`{"template":"{{.value"}`, "template: template:1: unclosed action"},
		{`{"template":"{{round .value}}"}`, `template: template:1: function "round" not defined`},
		{`{"template":3}`, "template: want a string, got number 3"},
		{`{"template":"x","field":""}`, "field: must not be empty"},
		{`{"template":"x","keep":"yes"}`, `keep: want true or false, got string "yes"`},
		{`{"template":"x","fields":"a"}`, "fields: unknown key (known keys: field, keep, template)"},
	}
	for _, tt := range tests {
		if _, err := New([]byte(tt.config)); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("New(%s) error = %v, want it to contain %q", tt.config, err, tt.err)
		}
	}
}

func TestGolden(t *testing.T) {
	plugintest.Golden(t, Use, func(config []byte) (plugintest.Step, error) {
		f, err := New(config)
		return func(m plugintest.Message, _ plugintest.State) ([]plugintest.Message, error) {
			p, err := f.Apply(m.Payload)
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

func FuzzFormat(f *testing.F) {
	f.Add(`{"template":"{{.value | printf \"%.1f\"}} {{.unit}}"}`, `{"value":21.46,"unit":"°C"}`)
	f.Add(`{"template":"{{range .list}}{{.}},{{end}}","keep":true}`, `{"list":[1,"a",null,{"b":true}]}`)
	f.Fuzz(func(t *testing.T, config, in string) {
		fm, err := New([]byte(config))
		if err != nil {
			return
		}
		out, err := fm.Apply([]byte(in))
		if err != nil {
			return
		}
		obj, err := payload.Parse(out)
		if err != nil {
			t.Fatalf("output %s of %s: %v", out, in, err)
		}
		if v, err := obj.Scalar(fm.field); err != nil {
			t.Fatalf("output %s of %s: %v", out, in, err)
		} else if _, ok := v.(string); !ok {
			t.Fatalf("output %s of %s: field %q is not a string", out, in, fm.field)
		}
	})
}
