package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard/switchyard/runtime/config"
)

// fakeAuth stands for the runtime's in-memory device index (the catalog the
// lead's code keeps): a token maps to an identity, or is revoked.
type fakeAuth struct {
	mu      sync.Mutex
	ids     map[string]Identity
	revoked map[string]bool
}

func newFakeAuth() *fakeAuth {
	return &fakeAuth{ids: map[string]Identity{}, revoked: map[string]bool{}}
}

func (a *fakeAuth) add(token string, id Identity) {
	a.mu.Lock()
	a.ids[token] = id
	a.mu.Unlock()
}

func (a *fakeAuth) revoke(token string) {
	a.mu.Lock()
	a.revoked[token] = true
	a.mu.Unlock()
}

func (a *fakeAuth) Authenticate(token string) (Identity, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id, ok := a.ids[token]
	switch {
	case !ok:
		return Identity{}, ErrUnknownToken
	case a.revoked[token]:
		return Identity{}, fmt.Errorf("catalog: %w", ErrRevoked)
	}
	return id, nil
}

type dataEvent struct {
	id      Identity
	stream  string
	payload string
	at      time.Time
}

type seenEvent struct {
	tenant, device, firmware string
	at                       time.Time
}

type ackEvent struct {
	id  Identity
	mid string
}

// recorder is the DataHandler, SeenRecorder and AckHandler of the tests.
type recorder struct {
	data chan dataEvent
	seen chan seenEvent
	acks chan ackEvent
}

func newRecorder() *recorder {
	return &recorder{data: make(chan dataEvent, 1024), seen: make(chan seenEvent, 1024), acks: make(chan ackEvent, 1024)}
}

func (r *recorder) DeviceData(id Identity, stream string, payload json.RawMessage, at time.Time) {
	r.data <- dataEvent{id, stream, string(payload), at}
}

func (r *recorder) Seen(tenant, device string, at time.Time, firmware string) {
	r.seen <- seenEvent{tenant, device, firmware, at}
}

func (r *recorder) DeviceAck(id Identity, mid string, _ time.Time) { r.acks <- ackEvent{id, mid} }

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(3 * time.Second):
		t.Fatalf("no %s within 3s", what)
	}
	var zero T
	return zero
}

func none[T any](t *testing.T, ch <-chan T, wait time.Duration, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %+v", what, v)
	case <-time.After(wait):
	}
}

type harness struct {
	g    *Gateway
	auth *fakeAuth
	rec  *recorder
	reg  *prometheus.Registry
	url  string // ws://127.0.0.1:port/ws/device
	tls  *tls.Config
}

func testConfig() config.Gateway {
	c := config.Default().Gateway
	c.Listen = "127.0.0.1:0"
	c.HeartbeatInterval = time.Second
	c.HeartbeatTimeout = 3 * time.Second
	c.HelloTimeout = 3 * time.Second
	c.DrainTimeout = 3 * time.Second
	c.LastSeenFlush = time.Hour
	return c
}

// start runs a gateway on a loopback port; mutate adjusts its config. The
// identities "tok-a" → t1/dev-a (labels room=kitchen), "tok-b" → t1/dev-b
// (room=hall), "tok-c" → t2/dev-c exist.
func start(t *testing.T, mutate func(*config.Gateway)) *harness {
	t.Helper()
	c := testConfig()
	if mutate != nil {
		mutate(&c)
	}
	h := &harness{auth: newFakeAuth(), rec: newRecorder(), reg: prometheus.NewRegistry()}
	h.auth.add("tok-a", Identity{Tenant: "t1", Device: "dev-a", Model: "esp32-display", Labels: map[string]string{"room": "kitchen", "kind": "display"}})
	h.auth.add("tok-b", Identity{Tenant: "t1", Device: "dev-b", Labels: map[string]string{"room": "hall", "kind": "display"}})
	h.auth.add("tok-c", Identity{Tenant: "t2", Device: "dev-c"})
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	g, err := New(Options{Config: c, Auth: h.auth, Seen: h.rec, Data: h.rec, Acks: h.rec, Registerer: h.reg, Logger: logger})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := g.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	h.g = g
	scheme := "ws"
	if c.TLS.CertFile != "" {
		scheme = "wss"
	}
	h.url = scheme + "://" + g.Addr().String() + c.Path
	return h
}

type dialOpt func(*gws.Dialer, http.Header)

func bearer(token string) dialOpt {
	return func(_ *gws.Dialer, h http.Header) { h.Set("Authorization", "Bearer "+token) }
}

// dial opens a WebSocket with gorilla (an independent implementation) and
// closes it when the test ends.
func (h *harness) dial(t *testing.T, url string, opts ...dialOpt) (*gws.Conn, *http.Response, error) {
	t.Helper()
	d := &gws.Dialer{HandshakeTimeout: 3 * time.Second, TLSClientConfig: h.tls}
	hdr := http.Header{}
	for _, o := range opts {
		o(d, hdr)
	}
	c, resp, err := d.Dial(url, hdr)
	if c != nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, resp, err
}

// connect dials with the bearer token, says hello and returns the welcome.
func (h *harness) connect(t *testing.T, token string, opts ...dialOpt) (*gws.Conn, map[string]any) {
	t.Helper()
	c, _, err := h.dial(t, h.url, append([]dialOpt{bearer(token)}, opts...)...)
	if err != nil {
		t.Fatalf("dial %s: %v", token, err)
	}
	send(t, c, map[string]any{"type": "hello", "protocol": 1, "model": "esp32-display", "firmware": "1.2.3", "capabilities": []string{"display", "ota"}})
	w := read(t, c)
	if w["type"] != "welcome" {
		t.Fatalf("first frame = %v, want welcome", w)
	}
	return c, w
}

func send(t *testing.T, c *gws.Conn, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	sendRaw(t, c, string(b))
}

func sendRaw(t *testing.T, c *gws.Conn, s string) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(3 * time.Second))
	if err := c.WriteMessage(gws.TextMessage, []byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func read(t *testing.T, c *gws.Conn) map[string]any {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	mt, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if mt != gws.TextMessage {
		t.Fatalf("message type %d, want text", mt)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("frame %q is not a JSON object: %v", b, err)
	}
	return m
}

// expectClose reads until the connection closes and checks the close frame.
func expectClose(t *testing.T, c *gws.Conn, code int, reason string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range 10000 {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *gws.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("connection ended with %v, want close %d", err, code)
		}
		if ce.Code != code || !strings.Contains(ce.Text, reason) {
			t.Fatalf("close %d %q, want %d containing %q", ce.Code, ce.Text, code, reason)
		}
		return
	}
	t.Fatal("no close frame after 10000 frames")
}

// errorBody decodes a refused handshake's JSON body.
func errorBody(t *testing.T, resp *http.Response) (code, message string) {
	t.Helper()
	if resp == nil {
		t.Fatal("no HTTP response")
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return body.Error.Code, body.Error.Message
}

// counter returns the value of a metric with one label.
func (h *harness) counter(t *testing.T, name, label, value string) float64 {
	t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelIs(m, label, value) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s=%q} not found", name, label, value)
	return 0
}

func labelIs(m *dto.Metric, label, value string) bool {
	if label == "" {
		return len(m.GetLabel()) == 0
	}
	for _, l := range m.GetLabel() {
		if l.GetName() == label && l.GetValue() == value {
			return true
		}
	}
	return false
}

// eventually polls cond every 5 ms for at most 3 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) session(t *testing.T, tenant, device string) SessionInfo {
	t.Helper()
	for _, s := range h.g.Sessions(tenant) {
		if s.Device == device {
			return s
		}
	}
	t.Fatalf("no session of %s/%s", tenant, device)
	return SessionInfo{}
}
