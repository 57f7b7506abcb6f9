package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"text/template"

	"sigs.k8s.io/yaml"
)

// AdapterConfig mirrors the rules of prometheus-adapter's configuration
// (sigs.k8s.io/prometheus-adapter pkg/config: MetricsDiscoveryConfig), so
// that the example rule decodes strictly without the adapter's module and
// its dependencies.
type AdapterConfig struct {
	Rules         []AdapterRule `json:"rules"`
	ExternalRules []AdapterRule `json:"externalRules,omitempty"`
}

// AdapterRule is a DiscoveryRule.
type AdapterRule struct {
	SeriesQuery   string `json:"seriesQuery"`
	SeriesFilters []struct {
		Is    string `json:"is,omitempty"`
		IsNot string `json:"isNot,omitempty"`
	} `json:"seriesFilters,omitempty"`
	Resources struct {
		Template  string `json:"template,omitempty"`
		Overrides map[string]struct {
			Group    string `json:"group,omitempty"`
			Resource string `json:"resource"`
		} `json:"overrides,omitempty"`
	} `json:"resources"`
	Name struct {
		Matches string `json:"matches"`
		As      string `json:"as"`
	} `json:"name"`
	MetricsQuery           string `json:"metricsQuery,omitempty"`
	LabelValueReplacements []struct {
		Find    string `json:"find,omitempty"`
		Replace string `json:"replace,omitempty"`
	} `json:"labelValueReplacements,omitempty"`
}

// LoadAdapter reads and strictly decodes an adapter configuration.
func LoadAdapter(file string) (*AdapterConfig, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var c AdapterConfig
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &c, nil
}

// Serves says why no rule serves the Pods metric name (the series of that
// name, per pod and namespace), or nil when one does.
func (c *AdapterConfig) Serves(name string) error {
	var why []string
	for i, r := range c.Rules {
		if err := r.serves(name); err != nil {
			why = append(why, fmt.Sprintf("rule %d: %v", i, err))
			continue
		}
		return nil
	}
	if len(why) == 0 {
		return fmt.Errorf("no rules")
	}
	return fmt.Errorf("no rule serves it (%s)", strings.Join(why, "; "))
}

func (r AdapterRule) serves(name string) error {
	if !regexp.MustCompile(`(^|[^a-zA-Z0-9_:])` + regexp.QuoteMeta(name) + `($|[^a-zA-Z0-9_:])`).MatchString(r.SeriesQuery) {
		return fmt.Errorf("seriesQuery %q does not select the series %s", r.SeriesQuery, name)
	}
	match := r.Name.Matches
	if match == "" {
		match = ".*"
	}
	re, err := regexp.Compile(match)
	if err != nil {
		return fmt.Errorf("name.matches: %w", err)
	}
	m := re.FindStringSubmatchIndex(name)
	if m == nil {
		return fmt.Errorf("name.matches %q does not match %s", match, name)
	}
	as := r.Name.As
	if as == "" {
		switch re.NumSubexp() {
		case 0:
			as = "$0"
		case 1:
			as = "$1"
		default:
			return fmt.Errorf("name.as is empty and name.matches has several groups")
		}
	}
	if got := string(re.ExpandString(nil, as, name, m)); got != name {
		return fmt.Errorf("serves %s as %q, not %q", name, got, name)
	}
	pod, ns := false, false
	for _, gr := range r.Resources.Overrides {
		switch strings.TrimSuffix(gr.Resource, "s") {
		case "pod":
			pod = pod || gr.Group == ""
		case "namespace":
			ns = ns || gr.Group == ""
		}
	}
	if !(pod && ns) && r.Resources.Template == "" {
		return fmt.Errorf("resources map no labels to pod and namespace")
	}
	if r.MetricsQuery == "" {
		return nil
	}
	t, err := template.New("metricsQuery").Delims("<<", ">>").Parse(r.MetricsQuery)
	if err != nil {
		return fmt.Errorf("metricsQuery: %w", err)
	}
	var out bytes.Buffer
	err = t.Execute(&out, map[string]any{
		"Series": name, "LabelMatchers": `namespace="switchyard",pod=~"a|b"`, "GroupBy": "pod",
		"LabelValuesByName": map[string][]string{}, "GroupBySlice": []string{"pod"},
	})
	if err != nil {
		return fmt.Errorf("metricsQuery: %w", err)
	}
	if strings.Contains(out.String(), "rate(") || strings.Contains(out.String(), "increase(") {
		return fmt.Errorf("metricsQuery %q takes a rate of a gauge", out.String())
	}
	return nil
}
