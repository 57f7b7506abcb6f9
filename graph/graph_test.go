package graph

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestMatchSubject(t *testing.T) {
	cases := []struct {
		pattern, subject string
		want             bool
	}{
		{"device.d1.temp", "device.d1.temp", true},
		{"device.d1.temp", "device.d1.hum", false},
		{"device.*.temp", "device.d2.temp", true},
		{"device.*.temp", "device.d2.temp.x", false},
		{"device.*", "device", false},
		{"device.>", "device.d1", true},
		{"device.>", "device.d1.temp.raw", true},
		{"device.>", "device", false},
		{">", "anything.at.all", true},
		{"*", "one", true},
		{"*", "one.two", false},
		{"a.b", "a", false},
		{"a", "a.b", false},
	}
	for _, c := range cases {
		if got := MatchSubject(c.pattern, c.subject); got != c.want {
			t.Errorf("MatchSubject(%q, %q) = %v, want %v", c.pattern, c.subject, got, c.want)
		}
	}
}

func TestSubjectValidation(t *testing.T) {
	for _, p := range []string{"", "a..b", ".a", "a.", "a.>.b"} {
		if ValidSubjectPattern(p) == nil {
			t.Errorf("pattern %q accepted", p)
		}
	}
	for _, s := range []string{"a.*", "a.>", "*"} {
		if ValidSubjectPattern(s) != nil {
			t.Errorf("pattern %q refused", s)
		}
		if ValidSubject(s) == nil {
			t.Errorf("subject %q with a wildcard accepted", s)
		}
	}
}

func TestJunctionValidate(t *testing.T) {
	ok := Junction{Meta: Meta{ID: "j1"}, Source: "device.*.temp", Targets: []Target{{Selector: map[string]string{"role": "display"}}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid junction refused: %v", err)
	}
	cases := map[string]struct {
		mutate func(j *Junction)
		field  string
	}{
		"no id":         {func(j *Junction) { j.ID = "" }, "id"},
		"bad source":    {func(j *Junction) { j.Source = "a..b" }, "source"},
		"no targets":    {func(j *Junction) { j.Targets = nil }, "targets"},
		"two in one":    {func(j *Junction) { j.Targets = []Target{{Device: "d1", Broker: "b1"}} }, "targets[0]"},
		"empty target":  {func(j *Junction) { j.Targets = []Target{{}} }, "targets[0]"},
		"empty labels":  {func(j *Junction) { j.Targets = []Target{{Selector: map[string]string{}}} }, "targets[0].selector"},
		"bad transform": {func(j *Junction) { j.Transforms = []string{"Bad Id"} }, "transforms[0]"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			j := ok
			j.Targets = append([]Target(nil), ok.Targets...)
			c.mutate(&j)
			var inv *InvalidError
			if err := j.Validate(); !errors.As(err, &inv) || inv.Field != c.field {
				t.Fatalf("Validate() = %v, want an InvalidError on %q", err, c.field)
			}
		})
	}
}

func TestPluginInstanceValidate(t *testing.T) {
	sum := strings.Repeat("0f", 32)
	p := PluginInstance{Meta: Meta{ID: "p1"}, Use: "transforms.scale", Runtime: "wasm", Module: sum, Config: []byte(`{"factor":2}`),
		Limits: &PluginLimits{Memory: "16MiB"}, HTTPFetch: &PluginHTTPFetch{Hosts: []string{"api.example"}}}
	if err := p.Validate(); err != nil {
		t.Fatalf("valid instance refused: %v", err)
	}
	for name, mutate := range map[string]func(*PluginInstance){
		"no module yet":    func(p *PluginInstance) { p.Module = "" },
		"process":          func(p *PluginInstance) { p.Runtime = "process" },
		"builtin, no text": func(p *PluginInstance) { p.Runtime, p.Module = "builtin", "" },
	} {
		q := p
		mutate(&q)
		if err := q.Validate(); err != nil {
			t.Errorf("%s: valid instance refused: %v", name, err)
		}
	}
	tests := []struct {
		name   string
		mutate func(*PluginInstance)
		field  string
	}{
		{"kind", func(p *PluginInstance) { p.Use = "filters.x" }, "use"},
		{"runtime", func(p *PluginInstance) { p.Runtime = "docker" }, "runtime"},
		{"config", func(p *PluginInstance) { p.Config = []byte(`[1,2]`) }, "config"},
		{"module not a sum", func(p *PluginInstance) { p.Module = "scale.wasm" }, "module"},
		{"module upper case", func(p *PluginInstance) { p.Module = strings.ToUpper(sum) }, "module"},
		{"module short", func(p *PluginInstance) { p.Runtime, p.Module = "process", sum[:62] }, "module"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := p
			tt.mutate(&q)
			var inv *InvalidError
			if err := q.Validate(); !errors.As(err, &inv) || inv.Field != tt.field {
				t.Fatalf("Validate() = %v, want an InvalidError on %q", err, tt.field)
			}
		})
	}
}

// A declaration travels through the API and the store as JSON, in the
// textual forms of plugins.yaml.
func TestPluginInstanceJSON(t *testing.T) {
	p := PluginInstance{Meta: Meta{Tenant: "acme", ID: "weather"}, Use: "collectors.weather", Runtime: "wasm",
		Module: strings.Repeat("ab", 32), Config: json.RawMessage(`{"city":"Oslo"}`), Interval: "1m",
		Limits:    &PluginLimits{Memory: "16MiB", CallTimeout: "500ms", PoolSize: 2},
		HTTPFetch: &PluginHTTPFetch{Hosts: []string{"api.example"}, Timeout: "2s", MaxResponse: "64KiB", MaxRequest: "4KiB"}}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"interval":"1m"`, `"limits":{"memory":"16MiB","call_timeout":"500ms","pool_size":2}`,
		`"http_fetch":{"hosts":["api.example"],"timeout":"2s","max_response":"64KiB","max_request":"4KiB"}`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("%s lacks %s", data, want)
		}
	}
	var back PluginInstance
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, p) {
		t.Errorf("round trip: got %+v, want %+v", back, p)
	}
	bare, err := json.Marshal(PluginInstance{Meta: Meta{ID: "b"}, Use: "brokers.mqtt", Runtime: "builtin"})
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"interval", "limits", "http_fetch", "env", "module", "config"} {
		if strings.Contains(string(bare), `"`+absent+`"`) {
			t.Errorf("%s shows unset %s", bare, absent)
		}
	}
}

func TestErrTenantNotFoundIsNotFound(t *testing.T) {
	if !errors.Is(ErrTenantNotFound, ErrNotFound) {
		t.Fatal("ErrTenantNotFound must match ErrNotFound")
	}
}
