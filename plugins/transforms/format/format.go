// Package format is the transforms.format plugin: it renders a Go
// text/template over the fields of a JSON payload into the text a display
// shows, emitted as {"text": "…"} (or under another field, optionally next
// to the input's fields).
//
// The package holds the plugin's logic and configuration over plain bytes;
// wasm/ registers it with the Go guest kit. It never touches state, the
// clock or the network.
package format

import (
	_ "embed"
	"encoding/json"
	"strings"
	"text/template"

	"github.com/switchyard/switchyard/plugins/internal/conf"
	"github.com/switchyard/switchyard/plugins/internal/payload"
)

// Use is the plugin's kind.name in plugins.yaml.
const Use = "transforms.format"

// Sample is a plugins.yaml entry using the plugin, as shown in the README.
//
//go:embed sample.yaml
var Sample string

// Format is one configured instance.
type Format struct {
	tmpl  *template.Template
	field string
	keep  bool
}

// New decodes the instance's configuration (a JSON object) strictly and
// parses its template; a template that does not parse is refused.
func New(config []byte) (*Format, error) {
	o, err := conf.Parse(config)
	if err != nil {
		return nil, err
	}
	f := &Format{field: "text"}
	var text string
	switch {
	case !o.String("template", &text):
		o.Errorf("template", `required, e.g. "{{.value | printf \"%%.1f\"}} {{.unit}}"`)
	case text == "":
		o.Errorf("template", "must not be empty")
	default:
		// A field the template names but the payload lacks is an error,
		// not the text "<no value>" on a display.
		t, err := template.New("template").Option("missingkey=error").Parse(text)
		if err != nil {
			o.Errorf("template", "%s", strings.TrimPrefix(err.Error(), "template: "))
		}
		f.tmpl = t
	}
	if o.String("field", &f.field) && f.field == "" {
		o.Errorf("field", "must not be empty")
	}
	o.Bool("keep", &f.keep)
	if err := o.Err(); err != nil {
		return nil, err
	}
	return f, nil
}

// Apply renders the template over one payload's fields and returns the new
// payload. A payload that is not a JSON object, or a template that fails on
// it (a missing field, a function given the wrong type), is an error.
func (f *Format) Apply(in []byte) ([]byte, error) {
	obj, err := payload.Parse(in)
	if err != nil {
		return nil, err
	}
	data := make(map[string]any, len(obj))
	for k, raw := range obj {
		var v any
		_ = json.Unmarshal(raw, &v) // raw is a valid JSON value: Parse checked it
		data[k] = v
	}
	var text strings.Builder
	if err := f.tmpl.Execute(&text, data); err != nil {
		return nil, err
	}
	if !f.keep {
		obj = payload.Object{}
	}
	if err := obj.Set(f.field, text.String()); err != nil {
		return nil, err
	}
	return obj.Encode()
}
