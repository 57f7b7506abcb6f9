// Package plugintest checks a shipped plugin natively: its golden testcases
// (testcases/<case>/{plugins.yaml,input.jsonl,expected.jsonl}) and its
// sample.yaml, both loaded with the runtime's own configuration loader so
// that what a test decodes is what the host hands the plugin.
//
// A testcase's plugins.yaml declares exactly one instance of the plugin,
// `runtime: wasm`, `module: bin/plugins/<kind>.<name>.wasm`, so the same
// folders can be run through the WASM host. input.jsonl holds one message
// per line for a transform ({"subject","source","time","payload"}) or one
// call time per line for a collector ({"now": RFC 3339}); expected.jsonl
// holds every message emitted, in order ({"subject","payload"}). Payloads are
// compared as JSON values, subjects exactly.
package plugintest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/runtime/config"
)

// Message is one line of input.jsonl (transforms) or expected.jsonl.
type Message struct {
	Subject string          `json:"subject"`
	Source  string          `json:"source,omitempty"`
	Time    time.Time       `json:"time,omitzero"`
	Payload json.RawMessage `json:"payload"`
}

// Case is one golden testcase folder.
type Case struct {
	Name string
	Dir  string
	// Config is the plugin instance's configuration as the host passes it: JSON.
	Config []byte
}

// Cases returns the testcases of the plugin use ("transforms.scale") found
// under ./testcases; there must be at least one.
func Cases(t *testing.T, use string) []Case {
	t.Helper()
	return CasesIn(t, ".", use)
}

// CasesIn is Cases for the plugin in folder dir.
func CasesIn(t *testing.T, dir, use string) []Case {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(dir, "testcases", "*", "plugins.yaml"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no %s/testcases/*/plugins.yaml (err %v)", dir, err)
	}
	var cases []Case
	for _, p := range dirs {
		dir := filepath.Dir(p)
		cases = append(cases, Case{Name: filepath.Base(dir), Dir: dir, Config: Instance(t, p, use)})
	}
	return cases
}

// Instance loads the plugins.yaml at path with the runtime's loader and
// returns the configuration, as JSON, of its one plugin instance, which must
// use the plugin use and run it as WASM from bin/plugins/<use>.wasm (which
// the loader resolves against the file's folder).
func Instance(t *testing.T, path, use string) []byte {
	t.Helper()
	cfg, err := config.Load(config.Source{Path: path})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(cfg.Plugins) != 1 {
		t.Fatalf("%s: declares %d plugin instances, want 1", path, len(cfg.Plugins))
	}
	p := cfg.Plugins[0]
	if want := filepath.Join(filepath.Dir(path), "bin", "plugins", use+".wasm"); p.Use != use || p.Runtime != "wasm" || p.Module != want {
		t.Fatalf("%s: instance %q is use %q runtime %q module %q, want use %q runtime wasm module %q",
			path, p.ID, p.Use, p.Runtime, p.Module, use, want)
	}
	if p.Config == nil {
		return []byte("{}")
	}
	b, err := json.Marshal(p.Config)
	if err != nil {
		t.Fatalf("%s: config as JSON: %v", path, err)
	}
	return b
}

// Messages reads the case's input.jsonl as messages (a transform's input).
func (c Case) Messages(t *testing.T) []Message {
	t.Helper()
	var out []Message
	for i, line := range lines(t, filepath.Join(c.Dir, "input.jsonl")) {
		var m Message
		if err := strict(line, &m); err != nil {
			t.Fatalf("%s/input.jsonl:%d: %v", c.Dir, i+1, err)
		}
		out = append(out, m)
	}
	return out
}

// Ticks reads the case's input.jsonl as call times (a collector's input).
func (c Case) Ticks(t *testing.T) []time.Time {
	t.Helper()
	var out []time.Time
	for i, line := range lines(t, filepath.Join(c.Dir, "input.jsonl")) {
		var tick struct {
			Now time.Time `json:"now"`
		}
		if err := strict(line, &tick); err != nil || tick.Now.IsZero() {
			t.Fatalf(`%s/input.jsonl:%d: want {"now": "<RFC 3339 time>"}, got %s (%v)`, c.Dir, i+1, line, err)
		}
		out = append(out, tick.Now)
	}
	return out
}

// Expect compares got with the case's expected.jsonl.
func (c Case) Expect(t *testing.T, got []Message) {
	t.Helper()
	path := filepath.Join(c.Dir, "expected.jsonl")
	want := lines(t, path)
	for i := range max(len(want), len(got)) {
		switch {
		case i >= len(got):
			t.Errorf("%s:%d: missing output %s", path, i+1, want[i])
			continue
		case i >= len(want):
			t.Errorf("%s: unexpected output %d: subject %q payload %s", path, i+1, got[i].Subject, got[i].Payload)
			continue
		}
		var w Message
		if err := strict(want[i], &w); err != nil {
			t.Fatalf("%s:%d: %v", path, i+1, err)
		}
		if w.Subject != got[i].Subject || !sameJSON(t, w.Payload, got[i].Payload) {
			t.Errorf("%s:%d: got subject %q payload %s\nwant subject %q payload %s",
				path, i+1, got[i].Subject, got[i].Payload, w.Subject, w.Payload)
		}
	}
}

// Step is a transform's logic for one input message: its outputs (none, one
// or many) given the message and the instance's state.
type Step func(m Message, st State) ([]Message, error)

// Golden runs every testcase of the transform use through the logic newStep
// makes from the case's configuration, a fresh state a case, and compares
// the outputs with expected.jsonl.
func Golden(t *testing.T, use string, newStep func(config []byte) (Step, error)) {
	t.Helper()
	for _, c := range Cases(t, use) {
		t.Run(c.Name, func(t *testing.T) {
			step, err := newStep(c.Config)
			if err != nil {
				t.Fatalf("config: %v", err)
			}
			st := State{}
			var got []Message
			for _, m := range c.Messages(t) {
				out, err := step(m, st)
				if err != nil {
					t.Fatalf("%s: %v", m.Payload, err)
				}
				got = append(got, out...)
			}
			c.Expect(t, got)
		})
	}
}

// Sample checks a plugin's sample.yaml: the runtime loads it, it declares
// one instance of use, decode accepts its configuration, and README.md in
// the plugin's folder shows it verbatim.
func Sample(t *testing.T, sample, use string, decode func(config []byte) error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sample.yaml")
	if err := os.WriteFile(path, []byte(sample), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := decode(Instance(t, path, use)); err != nil {
		t.Fatalf("sample.yaml: config refused: %v", err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), sample) {
		t.Error("README.md does not show sample.yaml verbatim")
	}
}

// BuiltinSample is Sample for a built-in plugin: sample (sample.yaml) must
// load with the runtime's own loader as one instance of use with runtime
// builtin and no module, and README.md must show it verbatim. It returns the
// instance's config as JSON, for the plugin's own check.
func BuiltinSample(t *testing.T, sample, use string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sample.yaml")
	if err := os.WriteFile(path, []byte(sample), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Source{Path: path})
	if err != nil {
		t.Fatalf("sample.yaml: %v", err)
	}
	if len(cfg.Plugins) != 1 {
		t.Fatalf("sample.yaml declares %d plugin instances, want 1", len(cfg.Plugins))
	}
	p := cfg.Plugins[0]
	if p.Use != use || p.Runtime != "builtin" || p.Module != "" {
		t.Fatalf("sample.yaml: use %q runtime %q module %q, want %s, builtin, no module", p.Use, p.Runtime, p.Module, use)
	}
	raw, err := json.Marshal(p.Config)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), sample) {
		t.Error("README.md does not show sample.yaml verbatim")
	}
	return raw
}

// State is an in-memory plugin state, as the host keeps per instance.
type State map[string][]byte

// Get returns the value of key.
func (s State) Get(key string) ([]byte, bool) {
	v, ok := s[key]
	return v, ok
}

// Set stores a copy of val under key.
func (s State) Set(key string, val []byte) error {
	s[key] = bytes.Clone(val)
	return nil
}

func lines(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
			out = append(out, bytes.Clone(line))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

func strict(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("expected payload %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}
