package http

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/plugins/internal/plugintest"
	"github.com/switchyard/switchyard/sdk/plugin"
)

// hangLimit bounds how long a test waits for something that should happen
// promptly; reaching it means the plugin hung, not that it was slow.
const hangLimit = 10 * time.Second

// start makes an instance the way the runtime does: New from the registry,
// strict decode, Provision, Validate; Cleanup when the test ends.
func start(t *testing.T, cfg string) (*Collector, error) {
	t.Helper()
	info, ok := plugin.Lookup(Use)
	if !ok {
		t.Fatalf("%s is not registered", Use)
	}
	c := info.New().(*Collector)
	if err := plugin.DecodeConfig([]byte(cfg), c); err != nil {
		return nil, err
	}
	err := c.Provision(context.Background())
	t.Cleanup(func() { c.Cleanup() })
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func mustStart(t *testing.T, cfg string) *Collector {
	t.Helper()
	c, err := start(t, cfg)
	if err != nil {
		t.Fatalf("config %s: %v", cfg, err)
	}
	return c
}

// serve starts a loopback server that answers every request with h.
func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// body answers with status and the given body.
func body(status int, b string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, b)
	}
}

// recorder is an Emitter that keeps what it is given.
type recorder struct {
	mu   sync.Mutex
	msgs []plugin.Message
	fail error // returned by every Emit when set
}

func (r *recorder) Emit(m plugin.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return r.fail
}

func (r *recorder) got() []plugin.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]plugin.Message(nil), r.msgs...)
}

type emitted struct {
	Subject string
	Payload string
}

func emittedOf(msgs []plugin.Message) []emitted {
	var out []emitted
	for _, m := range msgs {
		out = append(out, emitted{m.Subject, string(m.Payload)})
	}
	return out
}

func config1(url string, sensors string, extra string) string {
	return fmt.Sprintf(`{"url": %q, "subject_prefix": "lab.station", "sensors": %s %s}`, url, sensors, extra)
}

const doc = `{
	"data": {
		"temps": [{"value": 21.5, "unit": "C"}, {"value": -3}],
		"humidity": 40,
		"big": 12345678901234567890123,
		"matrix": [[1, 2], [3, 4]],
		"label": "<hall & stairs>",
		"ok": true,
		"none": null,
		"nested": {"a": {"b": [10, {"c": "deep"}]}},
		"with space": 7
	},
	"list": []
}`

func TestPollSelectsPaths(t *testing.T) {
	srv := serve(t, body(200, doc))
	tests := []struct {
		name    string
		sensors string
		want    []emitted
	}{
		{"nested object", `[{"name": "hum", "path": "data.humidity", "unit": "%"}]`,
			[]emitted{{"lab.station.hum", `{"value":40,"unit":"%"}`}}},
		{"array element field", `[{"name": "t0", "path": "data.temps[0].value", "unit": "°C"}, {"name": "t1", "path": "data.temps[1].value"}]`,
			[]emitted{{"lab.station.t0", `{"value":21.5,"unit":"°C"}`}, {"lab.station.t1", `{"value":-3}`}}},
		{"array of arrays", `[{"name": "m", "path": "data.matrix[1][0]"}]`,
			[]emitted{{"lab.station.m", `{"value":3}`}}},
		{"deep mix", `[{"name": "d", "path": "data.nested.a.b[1].c"}]`,
			[]emitted{{"lab.station.d", `{"value":"deep"}`}}},
		{"number kept as written", `[{"name": "big", "path": "data.big"}]`,
			[]emitted{{"lab.station.big", `{"value":12345678901234567890123}`}}},
		{"string not HTML-escaped", `[{"name": "l", "path": "data.label"}]`,
			[]emitted{{"lab.station.l", `{"value":"<hall & stairs>"}`}}},
		{"bool", `[{"name": "ok", "path": "data.ok"}]`, []emitted{{"lab.station.ok", `{"value":true}`}}},
		{"null is a value", `[{"name": "n", "path": "data.none"}]`, []emitted{{"lab.station.n", `{"value":null}`}}},
		{"object value", `[{"name": "first", "path": "data.temps[0]"}]`,
			[]emitted{{"lab.station.first", `{"value":{"unit":"C","value":21.5}}`}}},
		{"array value", `[{"name": "row", "path": "data.matrix[0]"}]`, []emitted{{"lab.station.row", `{"value":[1,2]}`}}},
		{"key with a space", `[{"name": "s", "path": "data.with space"}]`, []emitted{{"lab.station.s", `{"value":7}`}}},
		{"order as configured", `[{"name": "b", "path": "data.humidity"}, {"name": "a", "path": "data.ok"}]`,
			[]emitted{{"lab.station.b", `{"value":40}`}, {"lab.station.a", `{"value":true}`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustStart(t, config1(srv.URL, tt.sensors, ""))
			var rec recorder
			before := time.Now()
			c.poll(context.Background(), &rec)
			msgs := rec.got()
			if got := emittedOf(msgs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("emitted %v, want %v", got, tt.want)
			}
			for _, m := range msgs {
				if m.Tenant != "" || m.Time.Before(before) {
					t.Errorf("message %+v: want no tenant (the runtime sets it) and the poll's time", m)
				}
			}
			st := c.Stats()
			if st.Polls != 1 || st.Failures != 0 || st.Missing != 0 || st.Messages != uint64(len(tt.want)) {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestPollTopLevelArray(t *testing.T) {
	srv := serve(t, body(200, `[{"v": 1}, {"v": 2}]`))
	c := mustStart(t, config1(srv.URL, `[{"name": "second", "path": "[1].v"}]`, ""))
	var rec recorder
	c.poll(context.Background(), &rec)
	if got, want := emittedOf(rec.got()), []emitted{{"lab.station.second", `{"value":2}`}}; !reflect.DeepEqual(got, want) {
		t.Errorf("emitted %v, want %v", got, want)
	}
}

func TestPollMissingPathsSkipped(t *testing.T) {
	srv := serve(t, body(200, doc))
	c := mustStart(t, config1(srv.URL, `[
		{"name": "absent", "path": "data.pressure"},
		{"name": "hum", "path": "data.humidity"},
		{"name": "out-of-range", "path": "data.temps[5].value"},
		{"name": "index-into-object", "path": "data[0]"},
		{"name": "key-into-array", "path": "data.temps.value"},
		{"name": "key-into-number", "path": "data.humidity.x"},
		{"name": "empty-array", "path": "list[0]"},
		{"name": "t", "path": "data.temps[1].value"}]`, ""))
	var rec recorder
	c.poll(context.Background(), &rec)
	c.poll(context.Background(), &rec)
	want := []emitted{
		{"lab.station.hum", `{"value":40}`}, {"lab.station.t", `{"value":-3}`},
		{"lab.station.hum", `{"value":40}`}, {"lab.station.t", `{"value":-3}`},
	}
	if got := emittedOf(rec.got()); !reflect.DeepEqual(got, want) {
		t.Errorf("emitted %v, want %v", got, want)
	}
	if st := c.Stats(); st.Polls != 2 || st.Failures != 0 || st.Missing != 12 || st.Messages != 4 {
		t.Errorf("stats %+v, want 2 polls, 0 failures, 12 missing, 4 messages", st)
	}
}

func TestPollFailures(t *testing.T) {
	big := `{"v": "` + strings.Repeat("x", 2000) + `"}`
	tests := []struct {
		name    string
		handler http.HandlerFunc
		extra   string
		wantErr string
	}{
		{"server error", body(503, `{"v": 1}`), "", "status 503 Service Unavailable"},
		{"not found", body(404, `{"v": 1}`), "", "status 404 Not Found"},
		{"redirect loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, r.URL.String(), http.StatusFound) }, "", "stopped after 10 redirects"},
		{"invalid JSON", body(200, `{"v": 1`), "", "response is not valid JSON: unexpected EOF"},
		{"HTML", body(200, `<html></html>`), "", "response is not valid JSON: invalid character '<'"},
		{"empty body", body(200, ``), "", "response is not valid JSON: empty body"},
		{"two documents", body(200, `{"v": 1} {"v": 2}`), "", "response is not valid JSON: unexpected data after the value"},
		{"oversize with length", body(200, big), `, "max_body_size": "1KiB"`, "response body of 2009 bytes is larger than max_body_size 1KiB"},
		{"oversize chunked", func(w http.ResponseWriter, r *http.Request) {
			for range 4 {
				fmt.Fprint(w, strings.Repeat(" ", 400))
				w.(http.Flusher).Flush()
			}
			fmt.Fprint(w, `{"v": 1}`)
		}, `, "max_body_size": "1KiB"`, "response body is larger than max_body_size 1KiB"},
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			select { // longer than the timeout: until the client gives up
			case <-r.Context().Done():
			case <-time.After(hangLimit):
			}
		}, `, "timeout": "50ms"`, "timed out"},
		{"slow body", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"v": `)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(hangLimit):
			}
		}, `, "timeout": "50ms"`, "context deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, tt.handler)
			c := mustStart(t, config1(srv.URL, `[{"name": "v", "path": "v"}]`, tt.extra))
			var rec recorder
			c.poll(context.Background(), &rec)
			if msgs := rec.got(); len(msgs) != 0 {
				t.Errorf("a failed poll emitted %v", emittedOf(msgs))
			}
			st := c.Stats()
			if st.Polls != 1 || st.Failures != 1 || st.LastErrorAt.IsZero() {
				t.Errorf("stats %+v, want 1 poll, 1 failure", st)
			}
			if !strings.Contains(st.LastError, tt.wantErr) || !strings.Contains(st.LastError, "GET "+srv.URL) {
				t.Errorf("last error %q, want one naming GET %s and containing %q", st.LastError, srv.URL, tt.wantErr)
			}
		})
	}
}

func TestPollConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	c := mustStart(t, config1(url, `[{"name": "v", "path": "v"}]`, ""))
	var rec recorder
	c.poll(context.Background(), &rec)
	if st := c.Stats(); st.Failures != 1 || !strings.Contains(st.LastError, "connection refused") {
		t.Errorf("stats %+v, want a connection refused failure", st)
	}
}

func TestPollRecoversAfterFailure(t *testing.T) {
	var mu sync.Mutex
	status := 500
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		body(status, `{"v": 1}`)(w, r)
	})
	c := mustStart(t, config1(srv.URL, `[{"name": "v", "path": "v"}]`, ""))
	var rec recorder
	c.poll(context.Background(), &rec)
	mu.Lock()
	status = 200
	mu.Unlock()
	c.poll(context.Background(), &rec)
	if got := emittedOf(rec.got()); len(got) != 1 || got[0].Payload != `{"value":1}` {
		t.Errorf("emitted %v, want one message from the second poll", got)
	}
	if st := c.Stats(); st.Polls != 2 || st.Failures != 1 || !strings.Contains(st.LastError, "500") {
		t.Errorf("stats %+v: the last error stays until another failure", st)
	}
}

func TestRequest(t *testing.T) {
	type seen struct{ method, auth, custom, accept, host, query string }
	got := make(chan seen, 1)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Method, r.Header.Get("Authorization"), r.Header.Get("X-Custom"), r.Header.Get("Accept"), r.Host, r.URL.RawQuery}
		fmt.Fprint(w, `{"v": 1}`)
	})
	c := mustStart(t, config1(srv.URL+"/api?x=1", `[{"name": "v", "path": "v"}]`,
		`, "headers": {"Authorization": "Bearer s3cret", "X-Custom": "a b", "Host": "station.lan"}`))
	c.poll(context.Background(), new(recorder))
	want := seen{"GET", "Bearer s3cret", "a b", "application/json", "station.lan", "x=1"}
	if s := <-got; s != want {
		t.Errorf("server saw %+v, want %+v", s, want)
	}
}

func TestEmitErrorStopsThePoll(t *testing.T) {
	srv := serve(t, body(200, doc))
	c := mustStart(t, config1(srv.URL, `[{"name": "a", "path": "data.humidity"}, {"name": "b", "path": "data.ok"}]`, ""))
	rec := &recorder{fail: errors.New("route closed")}
	c.poll(context.Background(), rec)
	if n := len(rec.got()); n != 1 {
		t.Errorf("Emit called %d times after it failed, want 1", n)
	}
	if st := c.Stats(); st.EmitErrors != 1 || st.Messages != 0 || st.Failures != 0 {
		t.Errorf("stats %+v, want 1 emit error and no poll failure", st)
	}
}

// runCollect runs Collect in the background; the returned function cancels
// it and fails the test unless it returns nil promptly.
func runCollect(t *testing.T, c *Collector, out plugin.Emitter) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Collect(ctx, out) }()
	return func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Collect returned %v after its context ended, want nil", err)
			}
		case <-time.After(hangLimit):
			t.Fatal("Collect did not return after its context ended")
		}
	}
}

// waitFor polls cond until it holds or the hang limit passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCollectPollsUntilCanceled(t *testing.T) {
	srv := serve(t, body(200, `{"v": 1}`))
	c := mustStart(t, config1(srv.URL, `[{"name": "v", "path": "v"}]`, `, "interval": "10ms"`))
	var rec recorder
	stop := runCollect(t, c, &rec)
	waitFor(t, "three polls", func() bool { return len(rec.got()) >= 3 })
	stop()
	for _, m := range rec.got() {
		if m.Subject != "lab.station.v" || string(m.Payload) != `{"value":1}` {
			t.Fatalf("emitted %s %s", m.Subject, m.Payload)
		}
	}
}

func TestCollectKeepsRunningWhenPollsFail(t *testing.T) {
	srv := serve(t, body(500, `oops`))
	c := mustStart(t, config1(srv.URL, `[{"name": "v", "path": "v"}]`, `, "interval": "10ms"`))
	stop := runCollect(t, c, new(recorder))
	waitFor(t, "three failed polls", func() bool { return c.Stats().Failures >= 3 })
	stop()
	if st := c.Stats(); st.Failures != st.Polls {
		t.Errorf("stats %+v, want every poll failed", st)
	}
}

func TestCollectCanceledDuringPoll(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(hangLimit):
		}
	})
	c := mustStart(t, config1(srv.URL, `[{"name": "v", "path": "v"}]`, `, "timeout": "1m"`))
	stop := runCollect(t, c, new(recorder))
	waitFor(t, "the first poll", func() bool { return c.Stats().Polls == 1 })
	stop()
	if st := c.Stats(); st.Failures != 0 {
		t.Errorf("stats %+v: a poll cut short by shutdown is not a failure", st)
	}
}

func TestDefaults(t *testing.T) {
	c := mustStart(t, config1("http://127.0.0.1:1/", `[{"name": "v", "path": "v"}]`, ""))
	if c.interval != DefaultInterval || c.timeout != DefaultTimeout || c.maxBodySize != DefaultMaxBodySize {
		t.Errorf("interval %s timeout %s max_body_size %d, want %s %s %d", c.interval, c.timeout, c.maxBodySize, DefaultInterval, DefaultTimeout, DefaultMaxBodySize)
	}
}

func TestConfigErrors(t *testing.T) {
	const sensors = `[{"name": "v", "path": "v"}]`
	tests := []struct {
		name, cfg, err string
	}{
		{"unknown key", `{"url": "http://a", "subject_prefix": "p", "sensors": [], "method": "POST"}`, `config: unknown field "method"`},
		{"unknown sensor key", config1("http://a", `[{"name": "v", "path": "v", "scale": 2}]`, ""), `unknown field "scale"`},
		{"wrong type", config1("http://a", sensors, `, "interval": 10`), `field "interval": want string, got JSON number`},
		{"not an object", `[]`, "want a JSON object"},
		{"no url", `{"subject_prefix": "p", "sensors": ` + sensors + `}`, "url: is required"},
		{"bad url", config1("http://a b/", sensors, ""), `url: parse "http://a b/": invalid character " " in host name`},
		{"relative url", config1("/api/status", sensors, ""), `url: "/api/status": want an http or https URL, got scheme ""`},
		{"ftp url", config1("ftp://nas/x.json", sensors, ""), `url: "ftp://nas/x.json": want an http or https URL, got scheme "ftp"`},
		{"no host", config1("http:///x", sensors, ""), `url: "http:///x" has no host`},
		{"password redacted", config1("ftp://u:pw@nas/x", sensors, ""), `"ftp://u:xxxxx@nas/x"`},
		{"bad interval", config1("http://a", sensors, `, "interval": "ten"`), `interval: want a duration such as "10s", got "ten"`},
		{"negative interval", config1("http://a", sensors, `, "interval": "-1s"`), "interval: must be positive, got -1s"},
		{"zero timeout", config1("http://a", sensors, `, "timeout": "0s"`), "timeout: must be positive, got 0s"},
		{"negative timeout", config1("http://a", sensors, `, "timeout": "-5s"`), "timeout: must be positive, got -5s"},
		{"bad size", config1("http://a", sensors, `, "max_body_size": "1MB"`), `max_body_size: size "1MB" has unknown unit "MB"`},
		{"zero size", config1("http://a", sensors, `, "max_body_size": "0"`), "max_body_size: must be positive"},
		{"negative size", config1("http://a", sensors, `, "max_body_size": "-1KiB"`), `max_body_size: want a size such as "1MiB", got "-1KiB"`},
		{"no prefix", `{"url": "http://a", "sensors": ` + sensors + `}`, "subject_prefix: is required"},
		{"wildcard prefix", `{"url": "http://a", "subject_prefix": "a.*", "sensors": ` + sensors + `}`, `subject_prefix: "a.*": a token "*" is a wildcard`},
		{"empty token prefix", `{"url": "http://a", "subject_prefix": "a..b", "sensors": ` + sensors + `}`, `subject_prefix: "a..b": a token must not be empty`},
		{"no sensors", config1("http://a", `[]`, ""), "sensors: is required: at least one sensor"},
		{"sensors left out", `{"url": "http://a", "subject_prefix": "p"}`, "sensors: is required"},
		{"no name", config1("http://a", `[{"path": "v"}]`, ""), "sensors[0].name: must not be empty"},
		{"dotted name", config1("http://a", `[{"name": "a.b", "path": "v"}]`, ""), `sensors[0].name: "a.b" must not contain '.'`},
		{"duplicate name", config1("http://a", `[{"name": "v", "path": "a"}, {"name": "v", "path": "b"}]`, ""), `sensors[1].name: "v" is already sensors[0]`},
		{"no path", config1("http://a", `[{"name": "v"}]`, ""), "sensors[0].path: is required"},
		{"bad path", config1("http://a", `[{"name": "v", "path": "a"}, {"name": "w", "path": "a[x]"}]`, ""), `sensors[1].path: "a[x]": want a whole number index such as [0], got [x]`},
		{"bad header name", config1("http://a", sensors, `, "headers": {"Bad Name": "x"}`), `headers: header name "Bad Name": character ' ' not allowed`},
		{"header value newline", config1("http://a", sensors, `, "headers": {"X": "a\r\nInjected: 1"}`), `headers: header "X": the value has a control character`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := start(t, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("config %s: error %v, want one containing %q", tt.cfg, err, tt.err)
			}
		})
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	_, err := start(t, `{"url": "ftp://x", "subject_prefix": "", "interval": "-1s", "sensors": []}`)
	for _, want := range []string{"url:", "subject_prefix:", "interval:", "sensors:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not report %s", err, want)
		}
	}
}

func TestParsePath(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "a", want: "a"},
		{in: "data.temps[0].value", want: "data.temps[0].value"},
		{in: "[3]", want: "[3]"},
		{in: "[0][1].x", want: "[0][1].x"},
		{in: "m[1][22]", want: "m[1][22]"},
		{in: "a.[0]", want: "a[0]"}, // an index after a dot reads as the same step
		{in: "", err: "is required"},
		{in: ".a", err: `empty key at byte 0`},
		{in: "a..b", err: "empty key at byte 2"},
		{in: "a.", err: "ends with '.'"},
		{in: "a[", err: "is not closed"},
		{in: "a[]", err: "want a whole number index"},
		{in: "a[-1]", err: "want a whole number index"},
		{in: "a[+1]", err: "want a whole number index"},
		{in: "a[1]b", err: "want '.' or '[' after ']'"},
		{in: "a]", err: "unexpected ']'"},
		{in: "a[99999999999999999999]", err: "want a whole number index"},
		{in: strings.Repeat("a.", 64) + "a", err: "more than 64 steps"},
	}
	for _, tt := range tests {
		p, err := parsePath(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parsePath(%q) = %v, %v; want error containing %q", tt.in, p, err, tt.err)
			}
			continue
		}
		if err != nil || p.String() != tt.want {
			t.Errorf("parsePath(%q) = %q, %v; want %q", tt.in, p.String(), err, tt.want)
		}
	}
}

func TestRegistered(t *testing.T) {
	info, ok := plugin.Lookup(Use)
	if !ok {
		t.Fatalf("%s is not registered", Use)
	}
	if _, ok := info.New().(plugin.Collector); !ok {
		t.Errorf("New returns %T, not a plugin.Collector", info.New())
	}
}

// TestSample loads sample.yaml with the runtime's own loader, checks that
// it declares one built-in instance of the plugin, that the plugin accepts
// its configuration, and that the README shows it verbatim.
func TestSample(t *testing.T) {
	raw := plugintest.BuiltinSample(t, Sample, Use)
	c := mustStart(t, string(raw))
	if c.interval != 30*time.Second || c.maxBodySize != 256<<10 || len(c.Sensors) != 3 {
		t.Errorf("sample decoded as interval %s max_body_size %d sensors %d", c.interval, c.maxBodySize, len(c.Sensors))
	}
}

func FuzzConfig(f *testing.F) {
	f.Add(config1("http://a", `[{"name": "v", "path": "data.x[0]", "unit": "C"}]`, `, "interval": "1s", "max_body_size": "1KiB"`))
	f.Add(`{"url": "https://h:8443/p?q", "headers": {"A": "b"}, "subject_prefix": "a.b", "sensors": [{"name": "n", "path": "[0]"}]}`)
	f.Add(`{"url": "ftp://x", "timeout": "-1s", "sensors": [], "x": 1}`)
	f.Add(`{"max_body_size": "99999999999GiB"}`)
	f.Fuzz(func(t *testing.T, cfg string) {
		c := new(Collector)
		if err := plugin.DecodeConfig([]byte(cfg), c); err != nil {
			return
		}
		err := c.Provision(context.Background())
		defer c.Cleanup()
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			return
		}
		if c.interval <= 0 || c.timeout <= 0 || c.maxBodySize <= 0 || len(c.paths) != len(c.Sensors) || len(c.Sensors) == 0 {
			t.Fatalf("accepted %s as interval %s timeout %s size %d", cfg, c.interval, c.timeout, c.maxBodySize)
		}
		if c.url.Scheme != "http" && c.url.Scheme != "https" {
			t.Fatalf("accepted URL %q", c.URL)
		}
	})
}

func FuzzPath(f *testing.F) {
	for _, s := range []string{"a", "data.temps[0].value", "[1][2]", "a..b", "a[", "x[01].y", "é.ü[3]"} {
		f.Add(s, `{"data": {"temps": [{"value": 1}]}, "a": [[1, [2, 3]]]}`)
	}
	f.Fuzz(func(t *testing.T, s, docText string) {
		p, err := parsePath(s)
		if err != nil {
			return
		}
		if len(p) == 0 || len(p) > maxPathSteps {
			t.Fatalf("parsePath(%q) = %d steps", s, len(p))
		}
		again, err := parsePath(p.String())
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("parsePath(%q).String() = %q, which parses as %v, %v", s, p.String(), again, err)
		}
		if d, err := decodeJSON([]byte(docText)); err == nil {
			p.lookup(d) // must not panic
		}
	})
}
