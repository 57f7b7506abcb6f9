package graph

import (
	"errors"
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
	p := PluginInstance{Meta: Meta{ID: "p1"}, Use: "transforms.scale", Runtime: "wasm", Config: []byte(`{"factor":2}`)}
	if err := p.Validate(); err != nil {
		t.Fatalf("valid instance refused: %v", err)
	}
	for name, mutate := range map[string]func(*PluginInstance){
		"kind":    func(p *PluginInstance) { p.Use = "filters.x" },
		"runtime": func(p *PluginInstance) { p.Runtime = "docker" },
		"config":  func(p *PluginInstance) { p.Config = []byte(`[1,2]`) },
	} {
		q := p
		mutate(&q)
		if q.Validate() == nil {
			t.Errorf("%s: invalid instance accepted", name)
		}
	}
}

func TestErrTenantNotFoundIsNotFound(t *testing.T) {
	if !errors.Is(ErrTenantNotFound, ErrNotFound) {
		t.Fatal("ErrTenantNotFound must match ErrNotFound")
	}
}
