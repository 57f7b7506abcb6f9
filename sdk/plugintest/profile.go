package plugintest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ProfileFile is the name of a guest's profile in its folder.
const ProfileFile = "conformance.yaml"

// Case names, in the order the kit runs them and the table shows them.
const (
	CaseConfig  = "config"
	CaseZero    = "zero"
	CaseOne     = "one"
	CaseMany    = "many"
	CaseError   = "error"
	CaseState   = "state"
	CaseUnicode = "unicode"
	CaseEmpty   = "empty"
	CaseLarge   = "large"
)

// Cases are every case of the kit, in order.
var Cases = []string{CaseConfig, CaseZero, CaseOne, CaseMany, CaseError, CaseState, CaseUnicode, CaseEmpty, CaseLarge}

// stepCases are the cases a profile gives as steps (config is its own).
var stepCases = Cases[1:]

// Profile is a guest's conformance.yaml: the plugin its module implements,
// a configuration it accepts, and each case's steps.
type Profile struct {
	// Dir is the folder of the profile; Module is resolved against it.
	Dir      string
	Use      string
	Language string
	// Module is the module's path (absolute, or relative to Dir); empty:
	// the host's default for Use.
	Module string
	Config json.RawMessage
	Refuse []Refusal
	Cases  map[string]*Case
}

// Kind is "transforms" or "collectors".
func (p *Profile) Kind() string { k, _, _ := strings.Cut(p.Use, "."); return k }

// Collector reports whether the guest is a collector.
func (p *Profile) Collector() bool { return p.Kind() == "collectors" }

// Refusal is a configuration the guest must refuse, with words of its
// refusal.
type Refusal struct {
	Config json.RawMessage
	Error  string
}

// Case is one case of a profile: its steps on one instance, or a claim
// that it cannot happen (Never, the reason).
type Case struct {
	Config json.RawMessage // nil: the profile's
	Steps  []Step
	Never  string
}

// Step is one call.
type Step struct {
	Subject, Source string
	Time            time.Time // input_time; zero: none
	Payload         []byte
	Now             time.Time           // collectors: the call's time
	Serve           map[string]Response // collectors: what the kit's server answers
	Want            []Want              // outputs, in order (no Error)
	Error           string              // words of the reported error the call must fail with
}

// Response is one answer of the kit's HTTP server.
type Response struct {
	Status      int
	Body        string
	ContentType string
}

// Want is one wanted output: Payload is compared as a JSON value when JSON
// is set, as bytes otherwise.
type Want struct {
	Subject string
	Payload []byte
	JSON    bool
}

// The YAML shapes, decoded strictly (an unknown key is an error).
type (
	profileYAML struct {
		Use      string              `yaml:"use"`
		Language string              `yaml:"language"`
		Module   string              `yaml:"module"`
		Config   yaml.Node           `yaml:"config"`
		Refuse   []refusalYAML       `yaml:"refuse"`
		Cases    map[string]caseYAML `yaml:"cases"`
	}
	refusalYAML struct {
		Config yaml.Node `yaml:"config"`
		Error  string    `yaml:"error"`
	}
	caseYAML struct {
		Config yaml.Node  `yaml:"config"`
		Steps  []stepYAML `yaml:"steps"`
		Never  string     `yaml:"never"`
	}
	stepYAML struct {
		Subject     string                  `yaml:"subject"`
		Source      string                  `yaml:"source"`
		Time        time.Time               `yaml:"time"`
		Payload     yaml.Node               `yaml:"payload"`
		PayloadText *string                 `yaml:"payload_text"`
		Now         time.Time               `yaml:"now"`
		Serve       map[string]responseYAML `yaml:"serve"`
		Want        *[]wantYAML             `yaml:"want"`
		Error       string                  `yaml:"error"`
	}
	responseYAML struct {
		Status      int    `yaml:"status"`
		Body        string `yaml:"body"`
		ContentType string `yaml:"content_type"`
	}
	wantYAML struct {
		Subject     string    `yaml:"subject"`
		Payload     yaml.Node `yaml:"payload"`
		PayloadText *string   `yaml:"payload_text"`
	}
)

// LoadProfile reads and checks the profile at path (a conformance.yaml, or
// the folder holding one). Every problem is reported at once.
func LoadProfile(path string) (*Profile, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, ProfileFile)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := ParseProfile(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p.Dir = filepath.Dir(path)
	return p, nil
}

// ParseProfile decodes a profile's YAML and checks it.
func ParseProfile(raw []byte) (*Profile, error) {
	var y profileYAML
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&y); err != nil {
		return nil, err
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	p := &Profile{Use: y.Use, Language: y.Language, Module: y.Module, Cases: map[string]*Case{}}
	if k, name, _ := strings.Cut(y.Use, "."); name == "" || (k != "transforms" && k != "collectors") {
		bad("use: want transforms.<name> or collectors.<name>, got %q", y.Use)
	}
	if y.Language == "" {
		bad("language: missing")
	}
	var err error
	if p.Config, err = object(&y.Config); err != nil {
		bad("config: %v", err)
	}
	for i, r := range y.Refuse {
		c, err := object(&r.Config)
		switch {
		case err != nil:
			bad("refuse[%d].config: %v", i, err)
		case r.Error == "":
			bad("refuse[%d].error: missing: which words must the refusal contain?", i)
		}
		p.Refuse = append(p.Refuse, Refusal{Config: c, Error: r.Error})
	}
	for name := range y.Cases {
		if !slices.Contains(stepCases, name) {
			bad("cases.%s: not a case of the kit (%s)", name, strings.Join(stepCases, ", "))
		}
	}
	for _, name := range stepCases {
		cy, ok := y.Cases[name]
		if !ok {
			if name != CaseLarge {
				bad("cases.%s: missing", name)
			}
			continue
		}
		c := &Case{Never: cy.Never}
		if cy.Config.Kind != 0 {
			if c.Config, err = object(&cy.Config); err != nil {
				bad("cases.%s.config: %v", name, err)
			}
		}
		switch {
		case c.Never != "" && len(cy.Steps) > 0:
			bad("cases.%s: steps and never: a case is one or the other", name)
		case c.Never == "" && len(cy.Steps) == 0 && name != CaseLarge:
			bad("cases.%s: no steps", name)
		case c.Never != "" && !neverAllowed(name):
			bad("cases.%s: never is not allowed: every guest can emit one message", name)
		}
		for i, sy := range cy.Steps {
			s, err := p.step(sy)
			if err != nil {
				bad("cases.%s.steps[%d]: %v", name, i, err)
			}
			c.Steps = append(c.Steps, s)
		}
		p.Cases[name] = c
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

func neverAllowed(name string) bool { return name != CaseOne }

func (p *Profile) step(y stepYAML) (Step, error) {
	s := Step{Subject: y.Subject, Source: y.Source, Time: y.Time, Now: y.Now, Error: y.Error}
	var err error
	if s.Payload, _, err = payload(&y.Payload, y.PayloadText); err != nil {
		return s, err
	}
	if p.Collector() {
		if y.Subject != "" || y.Payload.Kind != 0 || y.PayloadText != nil {
			return s, errors.New("a collector's step has no input message: give now and serve")
		}
		if s.Now.IsZero() {
			return s, errors.New("now: missing (the time of the collect call)")
		}
	} else {
		if y.Subject == "" {
			return s, errors.New("subject: missing (the input message's subject)")
		}
		if y.Payload.Kind == 0 && y.PayloadText == nil {
			return s, errors.New(`payload: missing (give payload, or payload_text: "" for an empty one)`)
		}
		if len(y.Serve) > 0 {
			return s, errors.New("serve: only a collector's step fetches")
		}
	}
	if len(y.Serve) > 0 {
		s.Serve = map[string]Response{}
		for path, r := range y.Serve {
			if !strings.HasPrefix(path, "/") {
				return s, fmt.Errorf("serve: path %q must start with /", path)
			}
			if r.Status == 0 {
				r.Status = 200
			}
			s.Serve[path] = Response(r)
		}
	}
	switch {
	case (y.Want == nil) == (y.Error == ""):
		return s, errors.New("give want (every output, [] for none) or error (words of the reported error), not both")
	case y.Want != nil:
		for i, w := range *y.Want {
			pl, isJSON, err := payload(&w.Payload, w.PayloadText)
			switch {
			case err != nil:
				return s, fmt.Errorf("want[%d]: %w", i, err)
			case w.Subject == "":
				return s, fmt.Errorf("want[%d].subject: missing", i)
			case w.Payload.Kind == 0 && w.PayloadText == nil:
				return s, fmt.Errorf("want[%d]: give payload or payload_text", i)
			}
			s.Want = append(s.Want, Want{Subject: w.Subject, Payload: pl, JSON: isJSON})
		}
	}
	return s, nil
}

// payload is a step's payload: node as compact JSON, or text as bytes.
func payload(node *yaml.Node, text *string) ([]byte, bool, error) {
	switch {
	case node.Kind != 0 && text != nil:
		return nil, false, errors.New("payload and payload_text: give one")
	case text != nil:
		return []byte(*text), false, nil
	case node.Kind == 0:
		return nil, false, nil
	}
	b, err := compactJSON(node)
	return b, true, err
}

func compactJSON(node *yaml.Node) ([]byte, error) {
	var v any
	if err := node.Decode(&v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("line %d: not representable as JSON: %w", node.Line, err)
	}
	return b, nil
}

// object is a configuration node as a compact JSON object; absent is {}.
func object(node *yaml.Node) (json.RawMessage, error) {
	if node.Kind == 0 {
		return json.RawMessage(`{}`), nil
	}
	if node.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: want a mapping (the plugin's configuration object)", node.Line)
	}
	return compactJSON(node)
}
