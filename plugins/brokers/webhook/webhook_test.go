package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
func start(t *testing.T, cfg string) (*Webhook, error) {
	t.Helper()
	info, ok := plugin.Lookup(Use)
	if !ok {
		t.Fatalf("%s is not registered", Use)
	}
	w := info.New().(*Webhook)
	if err := plugin.DecodeConfig([]byte(cfg), w); err != nil {
		return nil, err
	}
	err := w.Provision(context.Background())
	t.Cleanup(func() { w.Cleanup() })
	if err != nil {
		return nil, err
	}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	return w, nil
}

func mustStart(t *testing.T, cfg string) *Webhook {
	t.Helper()
	w, err := start(t, cfg)
	if err != nil {
		t.Fatalf("config %s: %v", cfg, err)
	}
	return w
}

// waits replaces w's backoff sleep with one that returns at once and
// records what it was asked to wait.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (ws *waits) install(w *Webhook) *waits {
	w.sleep = func(ctx context.Context, d time.Duration) error {
		ws.mu.Lock()
		ws.d = append(ws.d, d)
		ws.mu.Unlock()
		return ctx.Err()
	}
	return ws
}

func (ws *waits) got() []time.Duration {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return append([]time.Duration(nil), ws.d...)
}

// script is a server that answers its n-th request with steps[n], and with
// the last step after that; it keeps every request body.
type script struct {
	mu     sync.Mutex
	steps  []http.HandlerFunc
	bodies [][]byte
	heads  []http.Header
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := len(s.bodies)
	s.bodies = append(s.bodies, body)
	s.heads = append(s.heads, r.Header.Clone())
	step := s.steps[min(n, len(s.steps)-1)]
	s.mu.Unlock()
	step(w, r)
}

func (s *script) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bodies)
}

func serve(t *testing.T, steps ...http.HandlerFunc) (*script, string) {
	t.Helper()
	s := &script{steps: steps}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL + "/hook"
}

func status(code int, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		if code >= 300 {
			fmt.Fprintf(w, `{"error": "%d"}`, code)
		}
	}
}

// hangUp closes the connection without an answer: a network error.
func hangUp(w http.ResponseWriter, r *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// stall answers only after the client gave up.
func stall(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(hangLimit):
	}
}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 500, time.UTC)

func batchOf(n int) []plugin.Message {
	var b []plugin.Message
	for i := range n {
		b = append(b, plugin.Message{Tenant: "acme", Source: "station", Subject: fmt.Sprintf("s.%d", i), Time: t0, Payload: []byte(`{"value":1}`)})
	}
	return b
}

func TestPublishBody(t *testing.T) {
	srv, url := serve(t, status(204))
	w := mustStart(t, fmt.Sprintf(`{"url": %q, "headers": {"Authorization": "Bearer t0k", "Host": "hooks.lan"}}`, url))
	batch := []plugin.Message{
		{Tenant: "acme", Source: "weather", Subject: "weather.temp", Time: t0, Payload: []byte(`{"value": 21.5, "unit": "<°C>"}`)},
		{Source: "device:d1", Subject: "device.d1.text", Meta: map[string]string{"k": "v"}, Payload: []byte(`"just a string"`)},
		{Subject: "raw", Payload: []byte{0xff, 'h', 'i'}},
		{Subject: "empty"},
	}
	if err := w.Publish(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	want := `{"messages":[` +
		`{"tenant":"acme","source":"weather","subject":"weather.temp","time":"2025-06-01T12:00:00.0000005Z","payload":{"value":21.5,"unit":"<°C>"}},` +
		`{"source":"device:d1","subject":"device.d1.text","meta":{"k":"v"},"payload":"just a string"},` +
		`{"source":"","subject":"raw","payload":null,"payload_base64":"/2hp"},` +
		`{"source":"","subject":"empty","payload":null}]}`
	if srv.requests() != 1 || string(srv.bodies[0]) != want {
		t.Fatalf("server got %d requests, body\n%s\nwant\n%s", srv.requests(), srv.bodies[0], want)
	}
	h := srv.heads[0]
	if h.Get("Content-Type") != "application/json" || h.Get("Authorization") != "Bearer t0k" || h.Get(SignatureHeader) != "" {
		t.Errorf("headers %v", h)
	}
	var doc Batch
	dec := json.NewDecoder(bytes.NewReader(srv.bodies[0]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil || len(doc.Messages) != 4 || !doc.Messages[0].Time.Equal(t0) || string(doc.Messages[2].PayloadBase64) != "\xffhi" {
		t.Errorf("the body does not decode as a Batch: %+v, %v", doc, err)
	}
	if st := w.Stats(); st.DeliveredBatches != 1 || st.DeliveredMessages != 4 || st.Retries != 0 || st.DeadLetteredBatches != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestPublishHost(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Host }))
	t.Cleanup(srv.Close)
	w := mustStart(t, fmt.Sprintf(`{"url": %q, "headers": {"Host": "hooks.lan"}}`, srv.URL))
	if err := w.Publish(context.Background(), batchOf(1)); err != nil {
		t.Fatal(err)
	}
	if h := <-got; h != "hooks.lan" {
		t.Errorf("Host %q, want hooks.lan", h)
	}
}

func TestSignatureVerifiedByReceiver(t *testing.T) {
	const secret = "s3cret"
	verified := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		want := mac.Sum(nil)
		sig, ok := strings.CutPrefix(r.Header.Get(SignatureHeader), "sha256=")
		got, err := hex.DecodeString(sig)
		switch {
		case !ok || err != nil:
			verified <- fmt.Errorf("header %q is not sha256=<hex>", r.Header.Get(SignatureHeader))
			w.WriteHeader(http.StatusUnauthorized)
		case !hmac.Equal(got, want):
			verified <- errors.New("signature does not match the body")
			w.WriteHeader(http.StatusUnauthorized)
		default:
			verified <- nil
		}
	}))
	t.Cleanup(srv.Close)
	w := mustStart(t, fmt.Sprintf(`{"url": %q, "secret": %q}`, srv.URL, secret))
	if err := w.Publish(context.Background(), batchOf(3)); err != nil {
		t.Fatal(err)
	}
	if err := <-verified; err != nil {
		t.Fatal(err)
	}
	if got := Sign([]byte("key"), []byte("The quick brown fox jumps over the lazy dog")); got != "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8" {
		t.Errorf("Sign = %s, want the RFC 4231-style known answer", got)
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		steps     []http.HandlerFunc
		extra     string
		requests  int
		waits     []time.Duration // exact waits; nil: check they are backoffs
		wantErr   []string        // "" for success
		retries   uint64
		dead      bool
		timeoutOK bool
	}{
		{name: "503 then success", steps: []http.HandlerFunc{status(503), status(200)}, requests: 2, retries: 1},
		{name: "500 502 504 then success", steps: []http.HandlerFunc{status(500), status(502), status(504), status(201)}, requests: 4, retries: 3},
		{name: "network error then success", steps: []http.HandlerFunc{hangUp, status(200)}, requests: 2, retries: 1},
		{name: "attempt timeout then success", steps: []http.HandlerFunc{stall, status(200)}, extra: `, "timeout": "50ms"`, requests: 2, retries: 1},
		{name: "429 Retry-After seconds", steps: []http.HandlerFunc{status(429, "Retry-After", "3"), status(200)},
			requests: 2, retries: 1, waits: []time.Duration{3 * time.Second}},
		{name: "Retry-After bounded by max_backoff", steps: []http.HandlerFunc{status(503, "Retry-After", "120"), status(200)},
			extra: `, "max_backoff": "7s"`, requests: 2, retries: 1, waits: []time.Duration{7 * time.Second}},
		{name: "Retry-After zero", steps: []http.HandlerFunc{status(503, "Retry-After", "0"), status(200)},
			requests: 2, retries: 1, waits: []time.Duration{0}},
		{name: "unreadable Retry-After: backoff", steps: []http.HandlerFunc{status(503, "Retry-After", "soon"), status(200)}, requests: 2, retries: 1},
		{name: "400 not retried", steps: []http.HandlerFunc{status(400), status(200)}, requests: 1, dead: true,
			wantErr: []string{"dead-lettered 2 messages (status not retried): status 400 Bad Request: {\"error\": \"400\"}"}},
		{name: "404 not retried", steps: []http.HandlerFunc{status(404)}, requests: 1, dead: true, wantErr: []string{"status 404 Not Found"}},
		{name: "401 ignores Retry-After", steps: []http.HandlerFunc{status(401, "Retry-After", "1")}, requests: 1, dead: true, wantErr: []string{"status 401 Unauthorized"}},
		{name: "redirect not followed", steps: []http.HandlerFunc{status(302, "Location", "/elsewhere")}, requests: 1, dead: true,
			wantErr: []string{"status 302 Found (redirects are not followed)"}},
		{name: "dead letter after max attempts", steps: []http.HandlerFunc{status(503)}, extra: `, "max_attempts": 3`, requests: 3, retries: 2, dead: true,
			wantErr: []string{"dead-lettered 2 messages after 3 attempts: status 503 Service Unavailable"}},
		{name: "dead letter after 429s", steps: []http.HandlerFunc{status(429, "Retry-After", "2")}, extra: `, "max_attempts": 2`, requests: 2, retries: 1, dead: true,
			waits: []time.Duration{2 * time.Second}, wantErr: []string{"after 2 attempts: status 429 Too Many Requests"}},
		{name: "dead letter after network errors", steps: []http.HandlerFunc{hangUp}, extra: `, "max_attempts": 2`, requests: 2, retries: 1, dead: true,
			wantErr: []string{"after 2 attempts: EOF"}},
		{name: "dead letter after timeouts", steps: []http.HandlerFunc{stall}, extra: `, "max_attempts": 2, "timeout": "20ms"`, requests: 2, retries: 1, dead: true,
			wantErr: []string{"after 2 attempts: timed out"}},
		{name: "one attempt only", steps: []http.HandlerFunc{status(503)}, extra: `, "max_attempts": 1`, requests: 1, dead: true, wantErr: []string{"after 1 attempts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, url := serve(t, tt.steps...)
			w := mustStart(t, fmt.Sprintf(`{"url": %q %s}`, url, tt.extra))
			ws := new(waits).install(w)
			err := w.Publish(context.Background(), batchOf(2))
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatalf("Publish: %v", err)
			}
			for _, want := range append(tt.wantErr, "POST "+url) {
				if len(tt.wantErr) > 0 && (err == nil || !strings.Contains(err.Error(), want)) {
					t.Errorf("Publish error %v, want one containing %q", err, want)
				}
			}
			if n := srv.requests(); n != tt.requests {
				t.Errorf("server got %d requests, want %d", n, tt.requests)
			}
			got := ws.got()
			if tt.waits != nil && !reflect.DeepEqual(got, tt.waits) {
				t.Errorf("waited %v, want %v", got, tt.waits)
			}
			if tt.waits == nil {
				for i, d := range got {
					nominal := min(DefaultInitialBackoff<<i, DefaultMaxBackoff)
					if d < nominal/2 || d > nominal {
						t.Errorf("wait %d is %s, want %s to %s", i+1, d, nominal/2, nominal)
					}
				}
			}
			if uint64(len(got)) != tt.retries {
				t.Errorf("waited %d times, want once per retry (%d)", len(got), tt.retries)
			}
			st := w.Stats()
			wantStats := Stats{Retries: tt.retries, DeliveredBatches: 1, DeliveredMessages: 2}
			if tt.dead {
				wantStats.DeliveredBatches, wantStats.DeliveredMessages = 0, 0
				wantStats.DeadLetteredBatches, wantStats.DeadLetteredMessages = 1, 2
			}
			if tt.requests > 1 || tt.dead {
				if st.LastError == "" || st.LastErrorAt.IsZero() {
					t.Errorf("stats %+v: want the last failure kept", st)
				}
			}
			st.LastError, st.LastErrorAt = "", time.Time{}
			if st != wantStats {
				t.Errorf("stats %+v, want %+v", st, wantStats)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	w := mustStart(t, `{"url": "http://127.0.0.1:1/", "initial_backoff": "200ms", "max_backoff": "10s"}`)
	nominal := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond,
		3200 * time.Millisecond, 6400 * time.Millisecond, 10 * time.Second, 10 * time.Second, 10 * time.Second}
	for attempt, d := range nominal {
		seen := map[time.Duration]bool{}
		for range 200 {
			got := w.backoff(attempt + 1)
			if got < d/2 || got > d {
				t.Fatalf("backoff(%d) = %s, want %s to %s", attempt+1, got, d/2, d)
			}
			seen[got] = true
		}
		if len(seen) < 2 {
			t.Errorf("backoff(%d) has no jitter: always %v", attempt+1, seen)
		}
	}
	if got := w.backoff(1000); got < 5*time.Second || got > 10*time.Second {
		t.Errorf("backoff(1000) = %s: no overflow past max_backoff", got)
	}
	huge := mustStart(t, `{"url": "http://127.0.0.1:1/", "max_backoff": "2000000h"}`) // found by FuzzConfig
	for attempt := 1; attempt <= 70; attempt++ {
		if got := huge.backoff(attempt); got <= 0 || got > huge.maxBackoff {
			t.Fatalf("backoff(%d) = %s with max_backoff 2000000h", attempt, got)
		}
	}
}

func TestCancelDuringBackoffReturnsPromptly(t *testing.T) {
	srv, url := serve(t, status(503))
	w := mustStart(t, fmt.Sprintf(`{"url": %q, "initial_backoff": "1h", "max_backoff": "1h"}`, url))
	waiting := make(chan struct{})
	w.sleep = func(ctx context.Context, d time.Duration) error {
		close(waiting)
		return sleep(ctx, d) // the real wait: an hour
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Publish(ctx, batchOf(2)) }()
	select {
	case <-waiting:
	case <-time.After(hangLimit):
		t.Fatal("no backoff after a 503")
	}
	cancel()
	select {
	case err := <-done:
		want := "POST " + url + ": gave up waiting to retry after 1 attempts (last: status 503 Service Unavailable"
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), want) {
			t.Errorf("Publish error %v, want context.Canceled naming the URL and the last status", err)
		}
	case <-time.After(hangLimit):
		t.Fatal("Publish did not return after its context was canceled")
	}
	if st := w.Stats(); st.Canceled != 1 || st.DeadLetteredBatches != 0 || st.DeliveredBatches != 0 {
		t.Errorf("stats %+v, want 1 canceled and nothing dead-lettered", st)
	}
	if srv.requests() != 1 {
		t.Errorf("%d requests, want 1", srv.requests())
	}
}

func TestCancelDuringAttempt(t *testing.T) {
	srv, url := serve(t, stall)
	w := mustStart(t, fmt.Sprintf(`{"url": %q, "timeout": "1h"}`, url))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Publish(ctx, batchOf(1)) }()
	deadline := time.Now().Add(hangLimit)
	for srv.requests() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "POST "+url+": gave up during attempt 1: context canceled") {
			t.Errorf("Publish error %v, want context.Canceled", err)
		}
	case <-time.After(hangLimit):
		t.Fatal("Publish did not return after its context was canceled")
	}
}

func TestDeadlineBeforeNextAttempt(t *testing.T) {
	srv, url := serve(t, status(503))
	w := mustStart(t, fmt.Sprintf(`{"url": %q, "initial_backoff": "1h", "max_backoff": "1h"}`, url))
	ctx, cancel := context.WithTimeout(context.Background(), hangLimit)
	defer cancel()
	err := w.Publish(ctx, batchOf(2))
	if err == nil || !strings.Contains(err.Error(), "dead-lettered 2 messages after 1 attempts (the call's deadline comes before the next): status 503") {
		t.Errorf("Publish error %v", err)
	}
	if srv.requests() != 1 || w.Stats().DeadLetteredBatches != 1 {
		t.Errorf("%d requests, stats %+v", srv.requests(), w.Stats())
	}
}

func TestStatusErrorUnwraps(t *testing.T) {
	_, url := serve(t, status(422))
	w := mustStart(t, fmt.Sprintf(`{"url": %q}`, url))
	err := w.Publish(context.Background(), batchOf(1))
	var serr *StatusError
	if !errors.As(err, &serr) || serr.Code != 422 || serr.Retryable() {
		t.Fatalf("Publish error %v, want a *StatusError 422", err)
	}
}

func TestEmptyBatchSendsNothing(t *testing.T) {
	srv, url := serve(t, status(200))
	w := mustStart(t, fmt.Sprintf(`{"url": %q}`, url))
	if err := w.Publish(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if srv.requests() != 0 || w.Stats() != (Stats{}) {
		t.Errorf("an empty batch made %d requests, stats %+v", srv.requests(), w.Stats())
	}
}

func TestConcurrentPublish(t *testing.T) {
	srv, url := serve(t, status(200))
	w := mustStart(t, fmt.Sprintf(`{"url": %q, "secret": "k"}`, url))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				if err := w.Publish(context.Background(), batchOf(3)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if st := w.Stats(); st.DeliveredBatches != 40 || st.DeliveredMessages != 120 || srv.requests() != 40 {
		t.Errorf("stats %+v, %d requests; want 40 batches of 3", st, srv.requests())
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", -1},
		{"3", 3 * time.Second},
		{" 0 ", 0},
		{"-1", -1},
		{"1.5", -1},
		{"soon", -1},
		{"99999999999999999999", -1},
		{"999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	w := mustStart(t, `{"url": "https://hooks.lan/x"}`)
	if w.timeout != DefaultTimeout || w.maxAttempts != DefaultMaxAttempts || w.initialBackoff != DefaultInitialBackoff || w.maxBackoff != DefaultMaxBackoff {
		t.Errorf("timeout %s max_attempts %d initial_backoff %s max_backoff %s", w.timeout, w.maxAttempts, w.initialBackoff, w.maxBackoff)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name, cfg, err string
	}{
		{"unknown key", `{"url": "http://a", "retries": 3}`, `config: unknown field "retries"`},
		{"wrong type", `{"url": "http://a", "max_attempts": "5"}`, `field "max_attempts": want int, got JSON string`},
		{"fraction", `{"url": "http://a", "max_attempts": 2.5}`, `field "max_attempts": want int, got JSON number 2.5`},
		{"not an object", `"http://a"`, "want a JSON object"},
		{"no url", `{}`, "url: is required"},
		{"bad url", `{"url": "http://[::1"}`, `url: parse "http://[::1": missing ']' in host`},
		{"relative url", `{"url": "hooks.lan/x"}`, `url: "hooks.lan/x": want an http or https URL, got scheme ""`},
		{"mqtt url", `{"url": "mqtt://broker"}`, `got scheme "mqtt"`},
		{"no host", `{"url": "https:///x"}`, `url: "https:///x" has no host`},
		{"password redacted", `{"url": "ftp://u:pw@h/"}`, `"ftp://u:xxxxx@h/"`},
		{"bad timeout", `{"url": "http://a", "timeout": "5"}`, `timeout: want a duration such as "5s", got "5"`},
		{"zero timeout", `{"url": "http://a", "timeout": "0s"}`, "timeout: must be positive, got 0s"},
		{"negative timeout", `{"url": "http://a", "timeout": "-1s"}`, "timeout: must be positive, got -1s"},
		{"zero attempts", `{"url": "http://a", "max_attempts": 0}`, "max_attempts: must be at least 1, got 0"},
		{"negative attempts", `{"url": "http://a", "max_attempts": -2}`, "max_attempts: must be at least 1, got -2"},
		{"negative initial backoff", `{"url": "http://a", "initial_backoff": "-200ms"}`, "initial_backoff: must be positive, got -200ms"},
		{"bad max backoff", `{"url": "http://a", "max_backoff": "ten seconds"}`, `max_backoff: want a duration such as "5s", got "ten seconds"`},
		{"negative max backoff", `{"url": "http://a", "max_backoff": "-1s"}`, "max_backoff: must be positive, got -1s"},
		{"max below initial", `{"url": "http://a", "initial_backoff": "2s", "max_backoff": "1s"}`, "max_backoff: 1s is less than initial_backoff 2s"},
		{"bad header", `{"url": "http://a", "headers": {"X:Y": "1"}}`, `headers: header name "X:Y": character ':' not allowed`},
		{"header value newline", `{"url": "http://a", "headers": {"X": "a\nb"}}`, `headers: header "X": the value has a control character`},
		{"signature header with secret", `{"url": "http://a", "secret": "k", "headers": {"x-switchyard-signature": "x"}}`, "headers: X-Switchyard-Signature is set from secret"},
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
	_, err := start(t, `{"url": "ftp://x", "timeout": "-1s", "max_attempts": 0, "initial_backoff": "-1s", "max_backoff": "-2s"}`)
	for _, want := range []string{"url:", "timeout:", "max_attempts:", "initial_backoff:", "max_backoff:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not report %s", err, want)
		}
	}
}

func TestRegistered(t *testing.T) {
	info, ok := plugin.Lookup(Use)
	if !ok {
		t.Fatalf("%s is not registered", Use)
	}
	if _, ok := info.New().(plugin.Broker); !ok {
		t.Errorf("New returns %T, not a plugin.Broker", info.New())
	}
}

// TestSample loads sample.yaml with the runtime's own loader, checks that
// it declares one built-in instance of the plugin, that the plugin accepts
// its configuration, and that the README shows it verbatim.
func TestSample(t *testing.T) {
	raw := plugintest.BuiltinSample(t, Sample, Use)
	w := mustStart(t, string(raw))
	if w.maxAttempts != 5 || w.Secret == "" || w.url.Scheme != "https" {
		t.Errorf("sample decoded as %+v", w)
	}
}

func FuzzConfig(f *testing.F) {
	f.Add(`{"url": "https://h/x", "headers": {"A": "b"}, "timeout": "1s", "max_attempts": 3, "initial_backoff": "1ms", "max_backoff": "1s", "secret": "k"}`)
	f.Add(`{"url": "ftp://x", "max_attempts": -1, "y": 1}`)
	f.Add(`{"url": "http://a", "initial_backoff": "2562047h47m16.854775807s", "max_backoff": "2562047h47m16.854775807s"}`)
	f.Fuzz(func(t *testing.T, cfg string) {
		w := new(Webhook)
		if err := plugin.DecodeConfig([]byte(cfg), w); err != nil {
			return
		}
		err := w.Provision(context.Background())
		defer w.Cleanup()
		if err != nil {
			return
		}
		if err := w.Validate(); err != nil {
			return
		}
		if w.timeout <= 0 || w.maxAttempts < 1 || w.initialBackoff <= 0 || w.maxBackoff < w.initialBackoff {
			t.Fatalf("accepted %s", cfg)
		}
		if w.url.Scheme != "http" && w.url.Scheme != "https" {
			t.Fatalf("accepted URL %q", w.URL)
		}
		for attempt := 1; attempt <= 70; attempt++ {
			if d := w.backoff(attempt); d < 0 || d > w.maxBackoff {
				t.Fatalf("backoff(%d) = %s with %s", attempt, d, cfg)
			}
		}
	})
}

func FuzzEncode(f *testing.F) {
	f.Add("acme", "a.b", []byte(`{"value": 1}`))
	f.Add("", "x", []byte("\xff"))
	f.Add("t", "<s>", []byte(` "x" `))
	f.Fuzz(func(t *testing.T, tenant, subject string, p []byte) {
		body, err := encode([]plugin.Message{{Tenant: tenant, Subject: subject, Payload: p}})
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		var doc Batch
		if err := json.Unmarshal(body, &doc); err != nil || len(doc.Messages) != 1 {
			t.Fatalf("encode wrote %s: %v", body, err)
		}
		m := doc.Messages[0]
		switch {
		case m.PayloadBase64 != nil:
			if !bytes.Equal(m.PayloadBase64, p) || json.Valid(p) {
				t.Fatalf("payload %q sent as base64 %q", p, m.PayloadBase64)
			}
		case len(bytes.TrimSpace(p)) == 0:
			if string(m.Payload) != "null" {
				t.Fatalf("empty payload sent as %s", m.Payload)
			}
		default:
			a, aerr := decodeNumbers(p)
			b, berr := decodeNumbers(m.Payload)
			if aerr != nil || berr != nil || !reflect.DeepEqual(a, b) {
				t.Fatalf("payload %q sent as %s", p, m.Payload)
			}
		}
	})
}

func decodeNumbers(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}
