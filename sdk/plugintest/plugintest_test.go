package plugintest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// The kit's checks, each seen to fail: a scripted host (a mock: the kit
// must be tested on guests that break one rule each, which no real module
// of the repository does) runs a counting transform whose faults are
// switched on one at a time. The real guests run through the real WASM
// host in runtime/conform.

const countProfile = `
use: transforms.count
language: Go (scripted)
config: {step: 1}
refuse:
  - config: {step: 0}
    error: step must be positive
cases:
  zero:
    steps:
      - {subject: a, payload: {n: 0}, want: []}
  one:
    steps:
      - {subject: a, payload: {n: 1}, want: [{subject: a, payload: {count: 1}}]}
  many:
    steps:
      - {subject: a, payload: {n: 2}, want: [{subject: a, payload: {count: 1}}, {subject: a, payload: {count: 1}}]}
  error:
    steps:
      - {subject: e, payload: [1], error: not a JSON object}
  state:
    steps:
      - {subject: s, payload: {n: 1}, want: [{subject: s, payload: {count: 1}}]}
      - {subject: s, payload: {n: 1}, want: [{subject: s, payload: {count: 2}}]}
  unicode:
    steps:
      - {subject: küche, payload: {n: 1}, want: [{subject: küche, payload: {count: 1}}]}
  empty:
    steps:
      - {subject: a, payload_text: "", error: empty payload}
`

// faults break one rule of the counting transform each.
type faults struct {
	ignoreUnknown  bool // accepts an unknown option
	refuseByTrap   bool // refuses a bad config by trapping
	trapOnEmpty    bool // traps on an empty payload
	emitOnError    bool // hands outputs over with a failure
	sharedState    bool // keeps its counters across instances
	trapLarge      bool // traps on a payload over 64 KiB
	refuseLarge    bool // refuses a payload over 64 KiB (allowed)
	wrongUnicode   bool // mangles non-ASCII subjects
	brokenAfterErr bool // fails every call after a failed one
	slow           bool // every call runs past its deadline
	fetch          bool // the collector fetches from the kit's server
}

type scriptedHost struct{ f faults }

func (h scriptedHost) Load(_ context.Context, g GuestSpec) (Guest, error) {
	if g.Use == "transforms.missing" {
		return nil, errors.New("no such module")
	}
	return &scriptedGuest{f: h.f, fetch: g.Fetch, shared: map[string]int{}}, nil
}

type scriptedGuest struct {
	f      faults
	fetch  []string
	shared map[string]int
}

func (g *scriptedGuest) Start(_ context.Context, config json.RawMessage) (Instance, Outcome, error) {
	var c map[string]any
	if err := json.Unmarshal(config, &c); err != nil {
		return nil, Trapped, err
	}
	for k := range c {
		if k != "step" && !g.f.ignoreUnknown {
			return nil, Reported, fmt.Errorf("unknown option %q", k)
		}
	}
	step, _ := c["step"].(float64)
	if step <= 0 {
		if g.f.refuseByTrap {
			return nil, Trapped, errors.New("unreachable")
		}
		return nil, Reported, errors.New("step must be positive")
	}
	counts := map[string]int{}
	if g.f.sharedState {
		counts = g.shared
	}
	return &scripted{g: g, step: int(step), counts: counts}, Succeeded, nil
}

func (g *scriptedGuest) Imports() []string {
	if g.f.fetch {
		return []string{"switchyard_v1.http_fetch"}
	}
	return []string{"switchyard_v1.input", "switchyard_v1.emit"}
}

func (g *scriptedGuest) Close() error { return nil }

type scripted struct {
	g      *scriptedGuest
	step   int
	counts map[string]int
	failed bool
}

func (s *scripted) Transform(_ context.Context, m Message) Result {
	f := s.g.f
	switch {
	case f.slow:
		return Result{Outcome: TimedOut, Err: errors.New("ran past its 100ms deadline")}
	case f.brokenAfterErr && s.failed:
		return Result{Outcome: Reported, Err: errors.New("broken")}
	case len(m.Payload) == 0 && f.trapOnEmpty:
		return Result{Outcome: Trapped, Err: errors.New("out of bounds memory access")}
	case len(m.Payload) > 64<<10 && f.trapLarge:
		return Result{Outcome: Trapped, Err: errors.New("out of bounds memory access")}
	case len(m.Payload) > 64<<10 && f.refuseLarge:
		return Result{Outcome: Reported, Err: errors.New("payload over 64 KiB")}
	case len(m.Payload) == 0:
		s.failed = true
		return Result{Outcome: Reported, Err: errors.New("empty payload")}
	}
	var p struct{ N int }
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		s.failed = true
		res := Result{Outcome: Reported, Err: errors.New("payload is not a JSON object")}
		if f.emitOnError {
			res.Outputs = []Message{{Subject: m.Subject, Payload: []byte(`{}`)}}
		}
		return res
	}
	subject := m.Subject
	if f.wrongUnicode {
		subject = strings.ToValidUTF8(string(bytes.Map(func(r rune) rune {
			if r > 127 {
				return '?'
			}
			return r
		}, []byte(subject))), "?")
	}
	if p.N > 0 {
		s.counts[m.Subject] += s.step
	}
	var res Result
	for range p.N {
		res.Outputs = append(res.Outputs, Message{Subject: subject, Payload: fmt.Appendf(nil, `{"count":%d}`, s.counts[m.Subject])})
	}
	return res
}

// Collect fetches the origin's /v and emits its body.
func (s *scripted) Collect(_ context.Context, _ time.Time) Result {
	resp, err := http.Get(s.g.fetch[0] + "/v")
	if err != nil {
		return Result{Outcome: Reported, Err: err}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if len(body) == 0 {
		return Result{Outcome: Reported, Err: errors.New("empty body")}
	}
	var v map[string]any
	if json.Unmarshal(body, &v) != nil {
		return Result{Outcome: Reported, Err: errors.New("body is not JSON")}
	}
	s.counts["v"]++
	if s.counts["v"] > 1 && v["once"] == true {
		return Result{}
	}
	delete(v, "once")
	out, _ := json.Marshal(v)
	return Result{Outputs: []Message{{Subject: "v", Payload: out}}}
}

func (s *scripted) Close() error { return nil }

func run(t *testing.T, profile string, f faults) Report {
	t.Helper()
	p, err := ParseProfile([]byte(profile))
	if err != nil {
		t.Fatal(err)
	}
	return Run(context.Background(), scriptedHost{f}, p)
}

func failed(r Report) []string {
	var out []string
	for _, c := range r.Cases {
		if !c.Pass {
			out = append(out, c.Name)
		}
	}
	return out
}

func TestEachRuleFails(t *testing.T) {
	withNever := func(from, to string) string { return strings.Replace(countProfile, from, to, 1) }
	manySteps := "  many:\n    steps:\n      - {subject: a, payload: {n: 2}, want: [{subject: a, payload: {count: 1}}, {subject: a, payload: {count: 1}}]}\n"
	stateSteps := "  state:\n    steps:\n      - {subject: s, payload: {n: 1}, want: [{subject: s, payload: {count: 1}}]}\n      - {subject: s, payload: {n: 1}, want: [{subject: s, payload: {count: 2}}]}\n"
	tests := []struct {
		name    string
		profile string
		f       faults
		fail    []string // the cases that must fail
		note    string   // words of the first failure's note
	}{
		{"a conforming guest", countProfile, faults{}, nil, ""},
		{"a guest may refuse a large payload", countProfile, faults{refuseLarge: true}, nil, ""},
		{"unknown option accepted", countProfile, faults{ignoreUnknown: true}, []string{CaseConfig}, "accepted"},
		{"refusal by trap", countProfile, faults{refuseByTrap: true}, []string{CaseConfig}, "trapped instead of refusing"},
		{"trap on an empty payload", countProfile, faults{trapOnEmpty: true}, []string{CaseEmpty}, "trapped"},
		{"outputs with a failure", countProfile, faults{emitOnError: true}, []string{CaseError}, "failed call handed the host 1 outputs"},
		{"state shared between instances", countProfile, faults{sharedState: true},
			[]string{CaseMany, CaseError, CaseState, CaseLarge}, `payload {"count":2}, want {"count":1}`},
		{"trap on a large payload", countProfile, faults{trapLarge: true}, []string{CaseLarge}, "trapped"},
		{"unicode mangled", countProfile, faults{wrongUnicode: true}, []string{CaseUnicode}, `subject "k?che"`},
		{"broken after an error", countProfile, faults{brokenAfterErr: true}, []string{CaseError}, "after the errors"},
		{"every call times out", countProfile, faults{slow: true},
			[]string{CaseZero, CaseOne, CaseMany, CaseError, CaseState, CaseUnicode, CaseEmpty, CaseLarge}, "timed out"},
		{"a false never-many", strings.Replace(withNever(manySteps, "  many: {never: one at most}\n"), stateSteps,
			"  state:\n    steps:\n      - {subject: s, payload: {n: 2}, want: [{subject: s, payload: {count: 1}}, {subject: s, payload: {count: 1}}]}\n"+
				"      - {subject: s, payload: {n: 2}, want: [{subject: s, payload: {count: 2}}, {subject: s, payload: {count: 2}}]}\n", 1),
			faults{}, []string{CaseMany}, "a call emitted 2"},
		{"a false never-state", withNever(stateSteps, "  state: {never: keeps nothing}\n"), faults{}, []string{CaseState}, "case differs"},
		{"a transform cannot skip unicode", withNever("  unicode:\n    steps:\n      - {subject: küche, payload: {n: 1}, want: [{subject: küche, payload: {count: 1}}]}\n", "  unicode: {never: no text}\n"),
			faults{}, []string{CaseUnicode}, "only a collector"},
		{"a state case that shows no state", withNever("want: [{subject: s, payload: {count: 2}}]", "want: [{subject: s, payload: {count: 1}}]"),
			faults{}, []string{CaseState}, "shows no state"},
		{"a zero case that shows no zero", withNever("payload: {n: 0}, want: []", "payload: {n: 1}, want: [{subject: a, payload: {count: 1}}]"),
			faults{}, []string{CaseZero}, "lacks a step that emits nothing"},
		{"a false never-zero", strings.Replace(withNever("  zero:\n    steps:\n      - {subject: a, payload: {n: 0}, want: []}\n", "  zero: {never: always emits}\n"),
			"  empty:\n    steps:\n", "  empty:\n    steps:\n      - {subject: a, payload: {n: 0}, want: []}\n", 1),
			faults{}, []string{CaseZero}, "successful calls emitted nothing"},
		{"a transform cannot skip errors", withNever("  error:\n    steps:\n      - {subject: e, payload: [1], error: not a JSON object}\n", "  error: {never: cannot fail}\n"),
			faults{}, []string{CaseError}, "only a collector"},
		{"a wrong expectation", withNever("payload: {count: 1}}]}\n  many", "payload: {count: 7}}]}\n  many"),
			faults{}, []string{CaseOne, CaseError, CaseLarge}, "want {\"count\":7}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.profile, tt.f)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			got := failed(r)
			if !slices.Equal(got, tt.fail) {
				var b strings.Builder
				_ = WriteTable(&b, []Report{r})
				t.Fatalf("failed cases %v, want %v\n%s", got, tt.fail, b.String())
			}
			if r.Passed() != (len(tt.fail) == 0) {
				t.Fatalf("Passed() = %v with failures %v", r.Passed(), got)
			}
			for _, c := range r.Cases {
				if !c.Pass {
					if !strings.Contains(c.Note, tt.note) {
						t.Fatalf("%s: note %q does not contain %q", c.Name, c.Note, tt.note)
					}
					break
				}
			}
		})
	}
}

const fetchProfile = `
use: collectors.fetch
language: Go (scripted)
config: {step: 1, url: "${server}/v"}
cases:
  zero:
    steps:
      - {now: 2025-06-01T12:00:00Z, serve: {/v: {body: '{"once":true,"t":1}'}}, want: [{subject: v, payload: {t: 1}}]}
      - {now: 2025-06-01T12:00:01Z, serve: {/v: {body: '{"once":true,"t":1}'}}, want: []}
  one:
    steps:
      - {now: 2025-06-01T12:00:00Z, serve: {/v: {body: '{"t":1}'}}, want: [{subject: v, payload: {t: 1}}]}
  many: {never: one reading}
  error:
    steps:
      - {now: 2025-06-01T12:00:00Z, serve: {/v: {body: 'x'}}, error: not JSON}
  state:
    steps:
      - {now: 2025-06-01T12:00:00Z, serve: {/v: {body: '{"once":true,"t":1}'}}, want: [{subject: v, payload: {t: 1}}]}
      - {now: 2025-06-01T12:00:00Z, serve: {/v: {body: '{"once":true,"t":1}'}}, want: []}
  unicode:
    steps:
      - {now: 2025-06-01T12:00:00Z, serve: {/v: {body: '{"t":"☕"}'}}, want: [{subject: v, payload: {t: ☕}}]}
  empty:
    steps:
      - {now: 2025-06-01T12:00:00Z, serve: {/v: {body: ''}}, error: empty body}
`

// A collector is served each step's bodies on loopback, padded for the
// large case; it may not claim to read nothing when it imports http_fetch.
func TestCollectorOverHTTP(t *testing.T) {
	// The scripted guest's config has no "url" option: let it through.
	r := run(t, fetchProfile, faults{fetch: true, ignoreUnknown: true})
	if got := failed(r); len(got) != 1 || got[0] != CaseConfig {
		t.Fatalf("failed %v, want only config (the unknown option is let through)", got)
	}
	if large := r.Cases[slices.Index(Cases, CaseLarge)]; !strings.Contains(large.Note, "answered 1 steps padded by 512 KiB") {
		t.Fatalf("large: %q", large.Note)
	}
	// Two calls at different times are different inputs: a result that
	// changes with the time alone shows no state.
	timed := strings.Replace(fetchProfile, "      - {now: 2025-06-01T12:00:00Z, serve: {/v: {body: '{\"once\":true,\"t\":1}'}}, want: []}\n  unicode",
		"      - {now: 2025-06-01T12:00:09Z, serve: {/v: {body: '{\"once\":true,\"t\":1}'}}, want: []}\n  unicode", 1)
	if timed == fetchProfile {
		t.Fatal("the state case was not rewritten")
	}
	r = run(t, timed, faults{fetch: true, ignoreUnknown: true})
	if state := r.Cases[slices.Index(Cases, CaseState)]; state.Pass || !strings.Contains(state.Note, "shows no state") {
		t.Fatalf("a state case whose steps differ in time: %+v", state)
	}
	r = run(t, strings.Replace(fetchProfile, "  empty:\n    steps:\n      - {now: 2025-06-01T12:00:00Z, serve: {/v: {body: ''}}, error: empty body}\n",
		"  empty: {never: reads nothing}\n", 1), faults{fetch: true})
	if empty := r.Cases[slices.Index(Cases, CaseEmpty)]; empty.Pass || !strings.Contains(empty.Note, "imports http_fetch") {
		t.Fatalf("a fetching collector's never-empty: %+v", empty)
	}
}

func TestLoadFailureIsReported(t *testing.T) {
	r := run(t, strings.Replace(countProfile, "transforms.count", "transforms.missing", 1), faults{})
	var b strings.Builder
	_ = WriteTable(&b, []Report{r})
	if r.Passed() || !strings.Contains(b.String(), "not loaded: no such module") {
		t.Fatalf("a module that does not load:\n%s", b.String())
	}
}

func TestBrokenProfilesAreRefused(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown key", countProfile + "extra: 1\n", "field extra not found"},
		{"bad use", strings.Replace(countProfile, "transforms.count", "count", 1), "use: want transforms.<name>"},
		{"missing case", strings.Replace(countProfile, "  zero:\n    steps:\n      - {subject: a, payload: {n: 0}, want: []}\n", "", 1), "cases.zero: missing"},
		{"want and error", strings.Replace(countProfile, "error: not a JSON object", "error: x, want: []", 1), "not both"},
		{"no payload", strings.Replace(countProfile, "{subject: a, payload: {n: 0}, want: []}", "{subject: a, want: []}", 1), "payload: missing"},
		{"unknown case", countProfile + "  other: {steps: []}\n", "cases.other: not a case"},
		{"never with steps", strings.Replace(countProfile, "  zero:\n    steps:", "  zero:\n    never: x\n    steps:", 1), "one or the other"},
		{"never for one", strings.Replace(countProfile, "  one:\n    steps:\n      - {subject: a, payload: {n: 1}, want: [{subject: a, payload: {count: 1}}]}\n", "  one: {never: x}\n", 1), "never is not allowed"},
		{"refusal without words", strings.Replace(countProfile, "    error: step must be positive\n", "", 1), "refuse[0].error: missing"},
		{"a collector step with a subject", strings.Replace(fetchProfile, "{now: 2025-06-01T12:00:00Z, serve: {/v: {body: 'x'}}", "{subject: a, now: 2025-06-01T12:00:00Z, serve: {/v: {body: 'x'}}", 1), "no input message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseProfile([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}
