package plugintest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// PadMember is the member the large case adds to an object payload, and
// PadBytes the length of its string value.
const (
	PadMember = "conformance_pad"
	PadBytes  = 512 << 10
)

// UnknownOption is the key the config case adds to the configuration; the
// guest must refuse it by name.
const UnknownOption = "conformance_unknown_option"

// Report is the outcome of one guest's run.
type Report struct {
	Profile *Profile
	// Err is why the guest could not be run at all (its module did not
	// load); Cases is then empty.
	Err   error
	Cases []CaseResult
	Calls int // guest calls made
}

// Passed reports whether the guest loaded and passed every case.
func (r Report) Passed() bool {
	if r.Err != nil || len(r.Cases) != len(Cases) {
		return false
	}
	for _, c := range r.Cases {
		if !c.Pass {
			return false
		}
	}
	return true
}

// CaseResult is one case's verdict: Note says why it failed, or what a
// passing never-claim was checked against.
type CaseResult struct {
	Name string
	Pass bool
	Note string
}

// Run runs every case of the profile p against its guest, loaded by host.
func Run(ctx context.Context, host Host, p *Profile) Report {
	rep := Report{Profile: p}
	srv := newServer()
	defer srv.Close()
	module := p.Module
	if module != "" && !filepath.IsAbs(module) {
		module = filepath.Join(p.Dir, module)
	}
	g, err := host.Load(ctx, GuestSpec{Use: p.Use, Module: module, Fetch: []string{srv.URL}})
	if err != nil {
		rep.Err = err
		return rep
	}
	defer g.Close()
	r := &runner{ctx: ctx, p: p, g: g, srv: srv}
	noNote := func(f func() error) func() (string, error) { return func() (string, error) { return "", f() } }
	checks := map[string]func() (string, error){
		CaseConfig:  noNote(r.config),
		CaseZero:    noNote(func() error { return r.plain(CaseZero) }),
		CaseOne:     noNote(func() error { return r.plain(CaseOne) }),
		CaseMany:    noNote(func() error { return r.plain(CaseMany) }),
		CaseError:   noNote(r.errorCase),
		CaseState:   noNote(r.state),
		CaseUnicode: noNote(func() error { return r.plain(CaseUnicode) }),
		CaseEmpty:   noNote(func() error { return r.plain(CaseEmpty) }),
		CaseLarge:   r.large,
	}
	results := map[string]CaseResult{}
	for _, name := range Cases {
		if c := p.Cases[name]; c != nil && c.Never != "" {
			continue // judged once every other case has run
		}
		note, err := checks[name]()
		results[name] = verdict(name, err, note)
	}
	for _, name := range Cases {
		if c := p.Cases[name]; c != nil && c.Never != "" {
			note, err := r.never(name)
			results[name] = verdict(name, err, note)
		}
	}
	for _, name := range Cases {
		rep.Cases = append(rep.Cases, results[name])
	}
	rep.Calls = r.calls
	return rep
}

func verdict(name string, err error, note string) CaseResult {
	if err != nil {
		return CaseResult{Name: name, Note: err.Error()}
	}
	return CaseResult{Name: name, Pass: true, Note: note}
}

type runner struct {
	ctx    context.Context
	p      *Profile
	g      Guest
	srv    *server
	calls  int
	maxOut int // the most outputs of one call
	// ok and emptyOK count successful calls, and those that emitted nothing.
	ok, emptyOK int
}

// configOf is the case's configuration with ${server} replaced.
func (r *runner) configOf(c *Case) json.RawMessage {
	cfg := r.p.Config
	if c != nil && c.Config != nil {
		cfg = c.Config
	}
	return r.expand(cfg)
}

func (r *runner) expand(cfg json.RawMessage) json.RawMessage {
	return bytes.ReplaceAll(cfg, []byte("${server}"), []byte(r.srv.URL))
}

func (r *runner) start(cfg json.RawMessage) (Instance, error) {
	in, out, err := r.g.Start(r.ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start (%s): %v", out, err)
	}
	return in, nil
}

func (r *runner) config() error {
	in, err := r.start(r.configOf(nil))
	if err != nil {
		return err
	}
	in.Close()
	refusals := append([]Refusal(nil), r.p.Refuse...)
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(r.p.Config, &obj); err != nil {
		return fmt.Errorf("profile config: %v", err)
	}
	obj[UnknownOption] = json.RawMessage(`true`)
	unknown, _ := json.Marshal(obj)
	refusals = append(refusals, Refusal{Config: unknown, Error: UnknownOption})
	for _, ref := range refusals {
		in, out, err := r.g.Start(r.ctx, r.expand(ref.Config))
		switch {
		case err == nil:
			in.Close()
			return fmt.Errorf("accepted %s; want a refusal containing %q", ref.Config, ref.Error)
		case out != Reported:
			return fmt.Errorf("%s: sy_init %s instead of refusing: %v", ref.Config, out, err)
		case !containsFold(err.Error(), ref.Error):
			return fmt.Errorf("%s: the refusal %q does not contain %q", ref.Config, err, ref.Error)
		}
	}
	return nil
}

// plain runs a case's steps on a fresh instance, after checking the case
// shows what it names.
func (r *runner) plain(name string) error {
	c := r.p.Cases[name]
	if err := r.shows(name, c); err != nil {
		return err
	}
	in, err := r.start(r.configOf(c))
	if err != nil {
		return err
	}
	defer in.Close()
	return r.steps(in, c.Steps, false)
}

// shows checks a case has a step showing what its name says.
func (r *runner) shows(name string, c *Case) error {
	var ok func(Step) bool
	what := ""
	switch name {
	case CaseZero:
		ok, what = func(s Step) bool { return s.Error == "" && len(s.Want) == 0 }, "a step that emits nothing"
	case CaseOne:
		ok, what = func(s Step) bool { return s.Error == "" && len(s.Want) == 1 }, "a step that emits one message"
	case CaseMany:
		ok, what = func(s Step) bool { return len(s.Want) >= 2 }, "a step that emits two or more messages"
	case CaseError:
		ok, what = func(s Step) bool { return s.Error != "" }, "a step that fails"
	case CaseUnicode:
		if c.Config != nil && !ascii(c.Config) {
			return nil
		}
		ok, what = func(s Step) bool { return !s.ascii() }, "non-ASCII text in an input, a served body or an output"
	case CaseEmpty:
		if r.p.Collector() {
			if c.Config != nil {
				return nil
			}
			ok, what = func(s Step) bool {
				for _, resp := range s.Serve {
					if resp.Body == "" {
						return true
					}
				}
				return false
			}, "a step whose served body is empty"
		} else {
			ok, what = func(s Step) bool { return s.Payload != nil && len(s.Payload) == 0 }, `a step with a zero-byte payload (payload_text: "")`
		}
	default:
		return nil
	}
	if slices.ContainsFunc(c.Steps, ok) {
		return nil
	}
	return fmt.Errorf("profile: the case lacks %s", what)
}

func (s Step) ascii() bool {
	if !ascii([]byte(s.Subject)) || !ascii(s.Payload) {
		return false
	}
	for _, resp := range s.Serve {
		if !ascii([]byte(resp.Body)) {
			return false
		}
	}
	for _, w := range s.Want {
		if !ascii([]byte(w.Subject)) || !ascii(w.Payload) {
			return false
		}
	}
	return true
}

// ascii reports whether b is ASCII once JSON escapes are read: "\u00b0"
// in a payload is non-ASCII text.
func ascii(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	if bytes.Contains(b, []byte(`\u`)) {
		return !hasNonASCIIEscape(b)
	}
	return true
}

func hasNonASCIIEscape(b []byte) bool {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return false
	}
	s, _ := json.Marshal(v) // Marshal writes non-ASCII as UTF-8
	return !ascii(s)
}

// steps runs steps on in, checking each; strip removes PadMember from
// outputs before comparing.
func (r *runner) steps(in Instance, steps []Step, strip bool) error {
	for i, s := range steps {
		if err := r.check(s, r.call(in, s), strip); err != nil {
			return fmt.Errorf("step %d (%s): %w", i+1, s.label(), err)
		}
	}
	return nil
}

func (s Step) label() string {
	if s.Subject != "" {
		return s.Subject
	}
	return s.Now.UTC().Format("15:04:05")
}

func (r *runner) call(in Instance, s Step) Result {
	r.calls++
	var res Result
	if r.p.Collector() {
		r.srv.serve(s.Serve)
		res = in.Collect(r.ctx, s.Now)
	} else {
		res = in.Transform(r.ctx, Message{Subject: s.Subject, Source: s.Source, Time: s.Time, Payload: s.Payload})
	}
	r.maxOut = max(r.maxOut, len(res.Outputs))
	if res.Outcome == Succeeded {
		r.ok++
		if len(res.Outputs) == 0 {
			r.emptyOK++
		}
	}
	return res
}

func (r *runner) check(s Step, res Result, strip bool) error {
	if res.Outcome != Succeeded && res.Outcome != Reported {
		return fmt.Errorf("the call %s: %v", res.Outcome, res.Err)
	}
	if s.Error != "" {
		switch {
		case res.Outcome != Reported:
			return fmt.Errorf("want an error containing %q; the call succeeded with %d outputs", s.Error, len(res.Outputs))
		case !containsFold(res.Err.Error(), s.Error):
			return fmt.Errorf("the error %q does not contain %q", res.Err, s.Error)
		case len(res.Outputs) > 0:
			return fmt.Errorf("a failed call handed the host %d outputs", len(res.Outputs))
		}
		return nil
	}
	if res.Outcome == Reported {
		return fmt.Errorf("the call failed: %v", res.Err)
	}
	return match(s.Want, res.Outputs, strip)
}

func match(want []Want, got []Message, strip bool) error {
	if len(got) != len(want) {
		return fmt.Errorf("want %d outputs, got %d: %s", len(want), len(got), show(got))
	}
	for i, w := range want {
		g := got[i]
		if g.Subject != w.Subject {
			return fmt.Errorf("output %d: subject %q, want %q", i+1, g.Subject, w.Subject)
		}
		if !w.JSON {
			if !bytes.Equal(g.Payload, w.Payload) {
				return fmt.Errorf("output %d: payload %q, want %q", i+1, clip(g.Payload), w.Payload)
			}
			continue
		}
		var gv, wv any
		if err := json.Unmarshal(g.Payload, &gv); err != nil {
			return fmt.Errorf("output %d: payload %q is not JSON: %v", i+1, clip(g.Payload), err)
		}
		_ = json.Unmarshal(w.Payload, &wv)
		if strip {
			gv = withoutPad(gv)
		}
		if !reflect.DeepEqual(gv, wv) {
			return fmt.Errorf("output %d: payload %s, want %s", i+1, clip(g.Payload), w.Payload)
		}
	}
	return nil
}

func show(ms []Message) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "[%s %s] ", m.Subject, clip(m.Payload))
	}
	return strings.TrimSpace(b.String())
}

func clip(b []byte) string {
	if len(b) > 200 {
		return fmt.Sprintf("%s…(%d bytes)", b[:200], len(b))
	}
	return string(b)
}

// withoutPad removes PadMember from every object in v.
func withoutPad(v any) any {
	switch t := v.(type) {
	case map[string]any:
		delete(t, PadMember)
		for k, e := range t {
			t[k] = withoutPad(e)
		}
	case []any:
		for i, e := range t {
			t[i] = withoutPad(e)
		}
	}
	return v
}

// errorCase runs the error steps, then the one case's steps on the same
// instance: a guest that reported an error must go on answering.
func (r *runner) errorCase() error {
	c := r.p.Cases[CaseError]
	if err := r.shows(CaseError, c); err != nil {
		return err
	}
	in, err := r.start(r.configOf(c))
	if err != nil {
		return err
	}
	defer in.Close()
	if err := r.steps(in, c.Steps, false); err != nil {
		return err
	}
	if err := r.steps(in, r.p.Cases[CaseOne].Steps, false); err != nil {
		return fmt.Errorf("after the errors, the one case: %w", err)
	}
	return nil
}

// state runs the steps on two fresh instances, alternating.
func (r *runner) state() error {
	c := r.p.Cases[CaseState]
	if !dependsOnHistory(c.Steps) {
		return errors.New("profile: no step repeats an earlier step's input with a different result, so the case shows no state")
	}
	a, err := r.start(r.configOf(c))
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := r.start(r.configOf(c))
	if err != nil {
		return err
	}
	defer b.Close()
	for i, s := range c.Steps {
		for n, in := range []Instance{a, b} {
			if err := r.check(s, r.call(in, s), false); err != nil {
				return fmt.Errorf("instance %c, step %d (%s): %w", 'A'+n, i+1, s.label(), err)
			}
		}
	}
	return nil
}

// dependsOnHistory reports whether a step has the input of an earlier one
// and a different result.
func dependsOnHistory(steps []Step) bool {
	for j, s := range steps {
		for _, e := range steps[:j] {
			if sameInput(e, s) && !sameResult(e, s) {
				return true
			}
		}
	}
	return false
}

// sameInput compares everything a call reads, times included: a result
// that depends on the time alone is no proof of state.
func sameInput(a, b Step) bool {
	return a.Subject == b.Subject && bytes.Equal(a.Payload, b.Payload) && reflect.DeepEqual(a.Serve, b.Serve) &&
		a.Time.Equal(b.Time) && a.Now.Equal(b.Now)
}

func sameResult(a, b Step) bool { return a.Error == b.Error && reflect.DeepEqual(a.Want, b.Want) }

// large runs the profile's large steps, then the one case's steps with
// PadBytes added to each object payload (or served object body).
func (r *runner) large() (string, error) {
	if c := r.p.Cases[CaseLarge]; c != nil && len(c.Steps) > 0 {
		in, err := r.start(r.configOf(c))
		if err != nil {
			return "", err
		}
		err = r.steps(in, c.Steps, false)
		in.Close()
		if err != nil {
			return "", err
		}
	}
	one := r.p.Cases[CaseOne]
	padded, err := r.pad(one.Steps)
	if err != nil {
		return "", err
	}
	in, err := r.start(r.configOf(one))
	if err != nil {
		return "", err
	}
	defer in.Close()
	refused := 0
	for i, s := range padded {
		res := r.call(in, s)
		if res.Outcome == Reported && s.Error == "" {
			refused++
			continue
		}
		if err := r.check(s, res, true); err != nil {
			return "", fmt.Errorf("padded step %d (%s): %w", i+1, s.label(), err)
		}
	}
	switch {
	case refused == 0:
		return fmt.Sprintf("answered %d steps padded by %d KiB", len(padded), PadBytes>>10), nil
	case refused < len(padded):
		return "", fmt.Errorf("padded steps: %d of %d refused, the others answered: refuse a large input always or never", refused, len(padded))
	}
	if err := r.steps(in, one.Steps, false); err != nil {
		return "", fmt.Errorf("after refusing the padded steps, the one case: %w", err)
	}
	return fmt.Sprintf("refused %d steps padded by %d KiB, then answered them plain", refused, PadBytes>>10), nil
}

func (r *runner) pad(steps []Step) ([]Step, error) {
	pad, _ := json.Marshal(strings.Repeat("x", PadBytes))
	grow := func(b []byte) ([]byte, bool) {
		var obj map[string]json.RawMessage
		if json.Unmarshal(b, &obj) != nil || obj == nil {
			return b, false
		}
		obj[PadMember] = pad
		out, _ := json.Marshal(obj)
		return out, true
	}
	var out []Step
	grown := false
	for _, s := range steps {
		ok := false
		if r.p.Collector() {
			serve := map[string]Response{}
			for path, resp := range s.Serve {
				var b []byte
				b, ok = grow([]byte(resp.Body))
				resp.Body = string(b)
				serve[path] = resp
			}
			s.Serve = serve
		} else {
			s.Payload, ok = grow(s.Payload)
		}
		grown = grown || ok
		out = append(out, s)
	}
	if !grown {
		return nil, errors.New("profile: no step of the one case has a JSON object payload (or served body) to enlarge")
	}
	return out, nil
}

// never checks a case's claim that it cannot happen, after every other
// case has run.
func (r *runner) never(name string) (string, error) {
	switch name {
	case CaseMany:
		if r.calls == 0 {
			return "", errors.New("no call ran to check the claim against")
		}
		if r.maxOut > 1 {
			return "", fmt.Errorf("never emits many, it says, but a call emitted %d messages", r.maxOut)
		}
		return fmt.Sprintf("never: at most one output in each of %d calls", r.calls), nil
	case CaseState:
		return r.stateless()
	case CaseZero:
		if r.ok == 0 {
			return "", errors.New("no call succeeded to check the claim against")
		}
		if r.emptyOK > 0 {
			return "", fmt.Errorf("never emits nothing, it says, but %d successful calls emitted nothing", r.emptyOK)
		}
		return fmt.Sprintf("never: each of %d successful calls emitted", r.ok), nil
	}
	// error, unicode, empty, large: only a collector that fetches nothing.
	if !r.p.Collector() {
		return "", fmt.Errorf("never: only a collector that does not import http_fetch may say so; a transform reads its input")
	}
	if slices.Contains(r.g.Imports(), "switchyard_v1.http_fetch") {
		return "", errors.New("never: the module imports http_fetch, so it reads input from outside")
	}
	return "never: imports no http_fetch", nil
}

// stateless replays zero, one and many on an instance that first ran the
// steps of every other case: the outputs must be those of a fresh one.
func (r *runner) stateless() (string, error) {
	in, err := r.start(r.configOf(nil))
	if err != nil {
		return "", err
	}
	defer in.Close()
	warm := 0
	for _, name := range stepCases {
		if c := r.p.Cases[name]; c != nil && c.Config == nil {
			for _, s := range c.Steps {
				r.call(in, s)
				warm++
			}
		}
	}
	for _, name := range []string{CaseZero, CaseOne, CaseMany} {
		c := r.p.Cases[name]
		if c == nil || c.Config != nil || c.Never != "" {
			continue
		}
		if err := r.steps(in, c.Steps, false); err != nil {
			return "", fmt.Errorf("never keeps state, it says, but after %d other calls the %s case differs: %w", warm, name, err)
		}
	}
	return fmt.Sprintf("never: same outputs after %d other calls", warm), nil
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// server is the kit's loopback HTTP server: it answers what the current
// step serves, and 404 for anything else.
type server struct {
	*httptest.Server
	mu     sync.Mutex
	routes map[string]Response
}

func newServer() *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.mu.Lock()
		resp, ok := s.routes[req.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.Error(w, "not served by the conformance step", http.StatusNotFound)
			return
		}
		if resp.ContentType != "" {
			w.Header().Set("Content-Type", resp.ContentType)
		}
		w.WriteHeader(resp.Status)
		_, _ = w.Write([]byte(resp.Body))
	}))
	return s
}

func (s *server) serve(routes map[string]Response) {
	s.mu.Lock()
	s.routes = routes
	s.mu.Unlock()
}
