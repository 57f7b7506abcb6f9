package loadtest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startBare(t *testing.T) *BareServer {
	t.Helper()
	s, err := StartBareServer("127.0.0.1:0", "/ws/device", 10*time.Second, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return s
}

func testSpec(count int, targets ...string) WorkerSpec {
	return WorkerSpec{
		Count: count, Targets: targets, SourceBase: "127.0.0.2", PerSource: 20,
		Concurrency: 8, DialTimeout: 2 * time.Second, ConnectTimeout: 10 * time.Second,
		Heartbeat: 200 * time.Millisecond, Lifetime: 30 * time.Second,
	}
}

func startClients(t *testing.T, spec WorkerSpec) *clients {
	t.Helper()
	c, err := newClients(spec, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.close(time.Second) })
	return c
}

// TestClientsHoldBareServer brings up connections from several source
// addresses, holds them with heartbeats, and checks what both sides see.
func TestClientsHoldBareServer(t *testing.T) {
	s := startBare(t)
	c := startClients(t, testSpec(50, s.URL()))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go c.heartbeats(ctx)

	rep := c.connectAll(ctx)
	if rep.Connected != 50 || len(rep.Failures) != 0 {
		t.Fatalf("connected %d, failures %v; want 50 and none", rep.Connected, rep.Failures)
	}
	if !rep.End.After(rep.Start) {
		t.Fatalf("connect phase ends %v, before its start %v", rep.End, rep.Start)
	}
	if got := s.Online(); got != 50 {
		t.Fatalf("server sees %d connections, want 50", got)
	}
	sources := map[string]bool{}
	for _, cc := range c.conns {
		host, _, _ := net.SplitHostPort(cc.nc.LocalAddr().String())
		sources[host] = true
	}
	for _, want := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		if !sources[want] {
			t.Errorf("no connection dialed from %s; sources %v", want, sources)
		}
	}

	time.Sleep(500 * time.Millisecond)
	hold := c.holdReport()
	if hold.Open != 50 || len(hold.Disconnects) != 0 {
		t.Fatalf("open %d, disconnects %v; want 50 and none", hold.Open, hold.Disconnects)
	}
	if hold.HeartbeatsSent < 50 || hold.HeartbeatsAnswered < hold.HeartbeatsSent-50 {
		t.Fatalf("heartbeats %d sent, %d answered; want every connection heard back", hold.HeartbeatsSent, hold.HeartbeatsAnswered)
	}
	if hold.RSS <= 0 {
		t.Fatalf("client RSS %d", hold.RSS)
	}

	// The server going away is a disconnect the worker counts.
	ctxShut, cancelShut := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShut()
	if err := s.Shutdown(ctxShut); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.open.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	hold = c.holdReport()
	lost := 0
	for _, v := range hold.Disconnects {
		lost += v
	}
	if hold.Open != 0 || lost != 50 {
		t.Fatalf("after server shutdown: open %d, disconnects %v; want 0 and 50", hold.Open, hold.Disconnects)
	}
}

// TestClientsCountFailures checks that failures are counted by a short,
// address-free reason.
func TestClientsCountFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	unauthorized := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer tok-") {
			t.Errorf("request without the device token: %q", r.Header.Get("Authorization"))
		}
		http.Error(w, `{"error":{"code":"bad_token"}}`, http.StatusUnauthorized)
	}))
	t.Cleanup(unauthorized.Close)

	tests := []struct {
		name   string
		target string
		tokens bool
		reason string
	}{
		{name: "nothing listening", target: "ws://" + closedPort + "/ws/device", reason: "dial: connection refused"},
		{name: "upgrade refused", target: "ws" + strings.TrimPrefix(unauthorized.URL, "http") + "/ws/device", tokens: true, reason: "upgrade: http 401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := testSpec(10, tt.target)
			if tt.tokens {
				for i := range spec.Count {
					spec.Tokens = append(spec.Tokens, "tok-"+DeviceID("", i))
				}
			}
			c := startClients(t, spec)
			rep := c.connectAll(t.Context())
			if rep.Connected != 0 || rep.Failures[tt.reason] != 10 || len(rep.Failures) != 1 {
				t.Fatalf("connected %d, failures %v; want 0 and {%q: 10}", rep.Connected, rep.Failures, tt.reason)
			}
		})
	}
}

func TestWorkerSpecValidate(t *testing.T) {
	good := testSpec(2, "ws://127.0.0.1:1/ws/device")
	tests := []struct {
		name   string
		change func(*WorkerSpec)
	}{
		{"no targets", func(s *WorkerSpec) { s.Targets = nil }},
		{"zero count", func(s *WorkerSpec) { s.Count = 0 }},
		{"token count mismatch", func(s *WorkerSpec) { s.Tokens = []string{"a"} }},
		{"zero concurrency", func(s *WorkerSpec) { s.Concurrency = 0 }},
		{"zero lifetime", func(s *WorkerSpec) { s.Lifetime = 0 }},
		{"sample above the devices", func(s *WorkerSpec) { s.Sample, s.Total, s.SampleInterval = 3, 2, time.Second }},
		{"range past the devices", func(s *WorkerSpec) { s.First, s.Sample, s.Total, s.SampleInterval = 1, 1, 2, time.Second }},
		{"sample interval below a tick", func(s *WorkerSpec) { s.Sample, s.Total, s.SampleInterval = 1, 2, time.Millisecond }},
	}
	if err := good.validate(); err != nil {
		t.Fatalf("good spec: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			tt.change(&s)
			if err := s.validate(); err == nil {
				t.Fatal("validate accepted a bad spec")
			}
		})
	}
	bad := good
	bad.Targets = []string{"http://127.0.0.1:1/"}
	if _, err := newClients(bad, quietLog()); err == nil {
		t.Fatal("newClients accepted an http:// target")
	}
}
