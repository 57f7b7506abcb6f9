package wasm

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fetchServers are the servers of the http_fetch tests: listed, which the
// instances may reach as 127.0.0.1:port, and other, reached as
// localhost:port, which they may not (it resolves to the same loopback
// address: the check is on the URL's host, not on the address). other
// counts the requests it gets.
type fetchServers struct {
	listed, other *httptest.Server
	otherHits     atomic.Int64
	release       chan struct{} // closed at cleanup: ends /slow
}

func newFetchServers(t *testing.T) *fetchServers {
	t.Helper()
	fs := &fetchServers{release: make(chan struct{})}
	fs.other = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.otherHits.Add(1)
		_, _ = io.WriteString(w, "other")
	}))
	t.Cleanup(fs.other.Close)
	otherURL := "http://localhost:" + port(t, fs.other.URL)

	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Reply", "yes")
		_, _ = io.WriteString(w, "hello <world> & \"you\"")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s\n%s\n%s", r.Method, r.Header.Get("X-Test"), body)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		for range 4 { // chunked: no Content-Length to refuse early
			_, _ = w.Write([]byte(strings.Repeat("b", 1024)))
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/big-declared", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "4096")
		_, _ = w.Write([]byte(strings.Repeat("b", 4096)))
	})
	mux.Handle("/redirect", http.RedirectHandler("/ok", http.StatusFound))
	mux.Handle("/away", http.RedirectHandler(otherURL+"/ok", http.StatusFound))
	mux.Handle("/loop", http.RedirectHandler("/loop", http.StatusFound))
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-fs.release:
		case <-time.After(10 * time.Second):
		}
	})
	fs.listed = httptest.NewServer(mux)
	t.Cleanup(fs.listed.Close)
	t.Cleanup(func() { close(fs.release) }) // runs before the servers close
	return fs
}

// port is the port of a server's URL.
func port(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(l.Addr().String())
	_ = l.Close()
	return p
}

// fetchOutcome is what http_fetch.wat emitted: a response or a status and
// the http_error text.
type fetchOutcome struct {
	resp   fetchResponse
	status int32
	reason string
}

func (o fetchOutcome) body(t *testing.T) string {
	t.Helper()
	switch {
	case o.resp.Body != nil:
		return *o.resp.Body
	case o.resp.BodyBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*o.resp.BodyBase64)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Fatal("response without body or body_base64")
	return ""
}

func outcome(t *testing.T, out []Message) fetchOutcome {
	t.Helper()
	if len(out) != 1 {
		t.Fatalf("%d outputs, want 1", len(out))
	}
	switch m := out[0]; m.Subject {
	case "response":
		var o fetchOutcome
		if err := json.Unmarshal(m.Payload, &o.resp); err != nil {
			t.Fatalf("response JSON %s: %v", m.Payload, err)
		}
		return o
	case "error":
		if len(m.Payload) < 4 {
			t.Fatalf("error payload %q", m.Payload)
		}
		return fetchOutcome{status: int32(binary.LittleEndian.Uint32(m.Payload)), reason: string(m.Payload[4:])}
	default:
		t.Fatalf("output on subject %q", m.Subject)
	}
	return fetchOutcome{}
}

// fetchVia runs one request (JSON) through an http_fetch.wat transform.
func fetchVia(t *testing.T, in *Instance, request string) fetchOutcome {
	t.Helper()
	out, err := transform(in, request)
	if err != nil {
		t.Fatalf("call failed: %v", err)
	}
	return outcome(t, out)
}

func fetchInstance(t *testing.T, rt *Runtime, use, id, config string, limits Limits, policy HTTPFetchPolicy) *Instance {
	t.Helper()
	in, err := compile(t, rt, "http_fetch").Instantiate(context.Background(), InstanceConfig{
		Tenant: tenant, ID: id, Use: use, Config: []byte(config), Limits: limits, HTTPFetch: policy,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := in.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return in
}

func TestHTTPFetch(t *testing.T) {
	fs := newFetchServers(t)
	rt, logs, _ := newRuntime(t, RuntimeOptions{})
	listed, closed := fs.listed.URL, "http://127.0.0.1:"+closedPort(t)
	otherHost := "localhost:" + port(t, fs.other.URL)
	in := fetchInstance(t, rt, "transforms.fetch", "fetch", "", Limits{CallTimeout: 5 * time.Second}, HTTPFetchPolicy{
		Hosts:       []string{strings.TrimPrefix(listed, "http://"), strings.TrimPrefix(closed, "http://")},
		MaxResponse: 2048,
		MaxRequest:  512,
	})
	req := func(method, u string, extra string) string {
		return fmt.Sprintf(`{"method":%q,"url":%q%s}`, method, u, extra)
	}
	tests := []struct {
		name       string
		request    string
		status     int32  // 0: a response
		wantBody   string // of the response
		wantReason string // contained in http_error's text
	}{
		{"allowed GET", req("", listed+"/ok", ""), 0, `hello <world> & "you"`, ""},
		{"POST with a header and a body", req("post", listed+"/echo", `,"headers":{"X-Test":"t1"},"body":"payload"`), 0, "POST\nt1\npayload", ""},
		{"PUT with a binary body", req("PUT", listed+"/echo", `,"body_base64":"/wA="`), 0, "PUT\n\n\xff\x00", ""},
		{"redirect on a listed host", req("GET", listed+"/redirect", ""), 0, `hello <world> & "you"`, ""},
		{"host not listed", req("GET", "http://"+otherHost+"/ok", ""), statusNotAllowed, "", `host "` + otherHost + `" is not in`},
		{"redirect to a host not listed", req("GET", listed+"/away", ""), statusNotAllowed, "", `redirect: host "` + otherHost + `" is not in`},
		{"too many redirects", req("GET", listed+"/loop", ""), statusFailed, "", "stopped after 3 redirects"},
		{"scheme not allowed", req("GET", "ftp://"+strings.TrimPrefix(listed, "http://")+"/ok", ""), statusNotAllowed, "", `scheme "ftp" is not allowed`},
		{"method not allowed", req("DELETE", listed+"/ok", ""), statusNotAllowed, "", "method DELETE is not allowed"},
		{"response body over the limit", req("GET", listed+"/big", ""), statusLimit, "", "response body exceeds the limit of 2048 bytes"},
		{"declared response over the limit", req("GET", listed+"/big-declared", ""), statusLimit, "", "response body exceeds"},
		{"request over the limit", req("POST", listed+"/echo", `,"body":"`+strings.Repeat("x", 600)+`"`), statusLimit, "", "exceeds the limit of 512"},
		{"connection refused", req("GET", closed+"/ok", ""), statusFailed, "", "refused"},
		{"malformed JSON", `{"url":`, statusBadArgument, "", "request: unexpected EOF"},
		{"not an object", `"http://x"`, statusBadArgument, "", "request: json"},
		{"unknown field", `{"uri":"http://x"}`, statusBadArgument, "", `unknown field "uri"`},
		{"no url", `{}`, statusBadArgument, "", "url is required"},
		{"relative url", req("GET", "/ok", ""), statusBadArgument, "", "not absolute"},
		{"Host header", req("GET", listed+"/ok", `,"headers":{"host":"evil"}`), statusBadArgument, "", "header Host is not allowed"},
		{"bad header name", req("GET", listed+"/ok", `,"headers":{"a b":"c"}`), statusBadArgument, "", `bad header "a b"`},
		{"body and body_base64", req("POST", listed+"/echo", `,"body":"a","body_base64":"YQ=="`), statusBadArgument, "", "exclusive"},
		{"trailing data", req("GET", listed+"/ok", "") + "x", statusBadArgument, "", "data after the JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fetchVia(t, in, tt.request)
			if got.status != tt.status {
				t.Fatalf("status %d (%q), want %d", got.status, got.reason, tt.status)
			}
			if tt.status != 0 {
				if !strings.Contains(got.reason, tt.wantReason) {
					t.Errorf("http_error %q, want it to contain %q", got.reason, tt.wantReason)
				}
				return
			}
			if got.resp.Status != http.StatusOK {
				t.Errorf("HTTP status %d", got.resp.Status)
			}
			if body := got.body(t); body != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
			if strings.HasPrefix(tt.wantBody, "hello") && got.resp.Headers["X-Reply"] != "yes" {
				t.Errorf("headers %v lack X-Reply: yes", got.resp.Headers)
			}
		})
	}
	if n := fs.otherHits.Load(); n != 0 {
		t.Errorf("the host not listed got %d requests", n)
	}
	if st := in.Stats(); st.Traps != 0 || st.Replaced != 0 || st.Errors != 0 {
		t.Errorf("a refused fetch cost a call or a module instance: %+v", st)
	}
	fetches := func(result string) float64 {
		return testutil.ToFloat64(rt.metrics.fetches.WithLabelValues(tenant, "fetch", result))
	}
	for result, want := range map[string]float64{"ok": 4, "not_allowed": 4, "limit": 3, "failed": 2, "bad_argument": 9} {
		if got := fetches(result); got != want {
			t.Errorf("http_fetches_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	want := `"msg":"plugin http_fetch refused","tenant":"acme","plugin":"transforms.fetch","instance":"fetch","result":"not_allowed","err":"host \"` + otherHost
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, logs)
	}
}

func TestHTTPFetchOff(t *testing.T) {
	fs := newFetchServers(t)
	rt, _, reg := newRuntime(t, RuntimeOptions{})
	in := fetchInstance(t, rt, "transforms.fetch", "off", "", Limits{}, HTTPFetchPolicy{})
	got := fetchVia(t, in, `{"url":"`+fs.listed.URL+`/ok"}`)
	if got.status != statusNotAllowed || got.reason != "http_fetch is not enabled for this instance" {
		t.Fatalf("got %d %q, want -4 and the capability named", got.status, got.reason)
	}
	// A module that does not import http_fetch has no http_fetch series.
	other := instantiate(t, compile(t, rt, "passthrough"), "transforms.pass", "pass", "", Limits{})
	if _, err := transform(other, "x"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "switchyard_plugin_http_fetches_total"); err != nil || n != len(fetchResultLabels) {
		t.Errorf("http_fetch series: %d, %v; want %d, of the instance that imports it", n, err, len(fetchResultLabels))
	}
}

func TestHTTPFetchCollector(t *testing.T) {
	fs := newFetchServers(t)
	rt, _, _ := newRuntime(t, RuntimeOptions{})
	in := fetchInstance(t, rt, "collectors.fetch", "weather", `{"url":"`+fs.listed.URL+`/ok"}`, Limits{CallTimeout: 5 * time.Second},
		HTTPFetchPolicy{Hosts: []string{strings.TrimPrefix(fs.listed.URL, "http://")}})
	for range 2 { // the response kept by the first call is gone in the second
		var out []Message
		if err := in.Collect(context.Background(), inputTime, func(m Message) { out = append(out, m) }); err != nil {
			t.Fatal(err)
		}
		if got := outcome(t, out); got.status != 0 || got.body(t) != `hello <world> & "you"` {
			t.Fatalf("got %+v", got)
		}
	}
}

func TestHTTPFetchSlowServer(t *testing.T) {
	fs := newFetchServers(t)
	rt, _, _ := newRuntime(t, RuntimeOptions{})
	hosts := []string{strings.TrimPrefix(fs.listed.URL, "http://")}
	slow, ok := `{"url":"`+fs.listed.URL+`/slow"}`, `{"url":"`+fs.listed.URL+`/ok"}`

	t.Run("fetch timeout within the call", func(t *testing.T) {
		in := fetchInstance(t, rt, "transforms.fetch", "short", "", Limits{CallTimeout: 5 * time.Second},
			HTTPFetchPolicy{Hosts: hosts, Timeout: 100 * time.Millisecond})
		start := time.Now()
		got := fetchVia(t, in, slow)
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("the call took %v", elapsed)
		}
		if got.status != statusFailed || got.reason != "timed out after 100ms" {
			t.Fatalf("got %d %q, want -5 and the timeout", got.status, got.reason)
		}
		if got := fetchVia(t, in, ok); got.status != 0 {
			t.Fatalf("next fetch: %+v", got)
		}
	})
	t.Run("call deadline before the fetch timeout", func(t *testing.T) {
		in := fetchInstance(t, rt, "transforms.fetch", "long", "", Limits{CallTimeout: 300 * time.Millisecond},
			HTTPFetchPolicy{Hosts: hosts, Timeout: time.Minute})
		start := time.Now()
		out, err := transform(in, slow)
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("the call took %v, past its 300ms deadline", elapsed)
		}
		// The deadline cancels the fetch; which notices first decides the
		// answer: the guest gets -5 and returns before wazero stops it, or
		// wazero stops the guest and the call fails with the deadline.
		timedOut := errors.Is(err, context.DeadlineExceeded)
		switch {
		case timedOut:
		case err == nil && outcome(t, out).status == statusFailed:
		default:
			t.Fatalf("call error %v, outputs %+v; want the deadline, or -5 given to the guest", err, out)
		}
		if got := fetchVia(t, in, ok); got.status != 0 {
			t.Fatalf("the instance does not work after the timeout: %+v", got)
		}
		if st := in.Stats(); timedOut && (st.Timeouts != 1 || st.Replaced != 1) {
			t.Errorf("stats %+v, want one timeout and one replaced module instance", st)
		}
	})
}

func TestHTTPFetchPolicy(t *testing.T) {
	rt, _, _ := newRuntime(t, RuntimeOptions{})
	m := compile(t, rt, "http_fetch")
	for _, tt := range []struct {
		policy  HTTPFetchPolicy
		wantErr string
	}{
		{HTTPFetchPolicy{Hosts: []string{"http://example.com/"}}, `host "http://example.com/": want host or host:port, not a URL`},
		{HTTPFetchPolicy{Hosts: []string{"example.com:http"}}, "bad port"},
		{HTTPFetchPolicy{Hosts: []string{"*"}}, `want an exact name or a "*.example.com" suffix`},
		{HTTPFetchPolicy{Hosts: []string{"a.*.com"}}, `suffix`},
		{HTTPFetchPolicy{Hosts: []string{""}}, "empty"},
		{HTTPFetchPolicy{Hosts: []string{"example.com"}, Timeout: -1}, "must be positive"},
	} {
		_, err := m.Instantiate(context.Background(), InstanceConfig{Tenant: tenant, ID: "p", Use: "transforms.fetch", HTTPFetch: tt.policy})
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%+v: error %v, want %q", tt.policy, err, tt.wantErr)
		}
	}

	f, err := newFetcher(HTTPFetchPolicy{Hosts: []string{"API.example.com", "*.example.org", "example.net:8443", "[::1]:8080", "10.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]int32{
		"https://api.example.com/x":      statusOK,
		"http://API.Example.COM./x":      statusOK,
		"https://api.example.com:443/x":  statusOK,
		"https://api.example.com:8443/x": statusNotAllowed, // no port listed: the default one only
		"https://x.api.example.com/":     statusNotAllowed,
		"https://a.example.org/":         statusOK,
		"https://a.b.example.org/":       statusOK,
		"https://example.org/":           statusNotAllowed,
		"https://badexample.org/":        statusNotAllowed,
		"https://example.net:8443/":      statusOK,
		"https://example.net/":           statusNotAllowed,
		"http://[::1]:8080/":             statusOK,
		"http://[::1]:8081/":             statusNotAllowed,
		"http://10.0.0.1/":               statusOK,
		"ws://api.example.com/":          statusNotAllowed,
		"http://:80/":                    statusBadArgument,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		got := statusOK
		if fe := f.allowed(u); fe != nil {
			got = fe.status
		}
		if got != want {
			t.Errorf("%s: %d, want %d", raw, got, want)
		}
	}
}

// FuzzHTTPFetchRequest feeds arbitrary request JSON to the decoder: it
// never panics, and a request it accepts has a method the ABI allows and an
// absolute URL.
func FuzzHTTPFetchRequest(f *testing.F) {
	for _, seed := range []string{
		`{"url":"http://a/"}`, `{"method":"post","url":"https://a:1/x?y","headers":{"A":"b"},"body":"c"}`,
		`{"url":"http://a/","body_base64":"YQ=="}`, `{"url":`, `[]`, `{"method":"DELETE","url":"http://a/"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, _, fe := parseFetchRequest(raw)
		if fe != nil {
			if fe.status != statusBadArgument && fe.status != statusNotAllowed || fe.reason == "" {
				t.Fatalf("refusal %+v", fe)
			}
			return
		}
		if m := req.Method; m != http.MethodGet && m != http.MethodPost && m != http.MethodPut || !req.URL.IsAbs() {
			t.Fatalf("accepted %s %s", req.Method, req.URL)
		}
	})
}

// TestGoGuestHTTPFetch runs the guest kit's guest.HTTPFetch on the host:
// the kit's kitcheck guest GETs the URL in its payload and emits
// "<status> <body>", or fails with the kit's error.
func TestGoGuestHTTPFetch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and compiles a Go guest (a few seconds)")
	}
	fs := newFetchServers(t)
	rt, _, _ := newRuntime(t, RuntimeOptions{CacheDir: goGuestCache(t)})
	m, err := rt.Compile(context.Background(), buildGoGuest(t, "./guest/internal/kitcheck"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	in, err := m.Instantiate(context.Background(), InstanceConfig{Tenant: tenant, ID: "kit", Use: "transforms.kitcheck",
		Limits: Limits{CallTimeout: 5 * time.Second}, HTTPFetch: HTTPFetchPolicy{Hosts: []string{strings.TrimPrefix(fs.listed.URL, "http://")}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	fetch := func(u string) ([]Message, error) {
		var out []Message
		m := input(u)
		m.Subject = "http.fetch"
		err := in.Transform(context.Background(), m, func(m Message) { out = append(out, m) })
		return out, err
	}
	out, err := fetch(fs.listed.URL + "/ok")
	if err != nil || len(out) != 1 || string(out[0].Payload) != `200 hello <world> & "you"` {
		t.Fatalf("got %+v, %v; want the response", out, err)
	}
	otherHost := "localhost:" + port(t, fs.other.URL)
	_, err = fetch("http://" + otherHost + "/ok")
	if want := `guest: http fetch: not allowed here: host "` + otherHost + `" is not in`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("host not listed: %v, want %s", err, want)
	}
}
