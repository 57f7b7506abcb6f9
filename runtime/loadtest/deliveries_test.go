package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/plugins/collectors/synthetic"
	"github.com/switchyard/switchyard/plugins/transforms/format"
	"github.com/switchyard/switchyard/plugins/transforms/scale"
	"github.com/switchyard/switchyard/runtime/config"
)

// TestBareBroadcastCountsEveryFrame is the bare side end to end, in one
// process: a broadcasting bare server and 20 client connections for two
// seconds. Every frame the server wrote must be counted by the clients,
// with a time they could read.
func TestBareBroadcastCountsEveryFrame(t *testing.T) {
	s := startBare(t)
	c := startClients(t, testSpec(20, s.URL()))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if rep := c.connectAll(ctx); rep.Connected != 20 {
		t.Fatalf("connected %d, failures %v; want 20", rep.Connected, rep.Failures)
	}
	if got := s.Stats().Ready; got != 20 {
		t.Fatalf("server has %d connections that said hello, want 20", got)
	}
	done := make(chan struct{})
	go func() { defer close(done); s.Broadcast(ctx) }()
	time.Sleep(2 * time.Second)
	cancel()
	<-done

	// The generator stopped; wait for what is on the wire.
	st := s.Stats()
	deadline := time.Now().Add(10 * time.Second)
	for c.deliveries.frames.Load() < st.Writes && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := c.deliveryReport()
	if st.Generated == 0 || st.Writes == 0 {
		t.Fatalf("server stats %+v: nothing generated", st)
	}
	if got.Counts.Frames != st.Writes || got.Counts.Untimed != 0 {
		t.Fatalf("clients counted %d frames (%d without a time), server wrote %d", got.Counts.Frames, got.Counts.Untimed, st.Writes)
	}
	if st.Writes+st.Skipped != st.Generated*20 {
		t.Fatalf("writes %d + skipped %d != generated %d × 20 connections", st.Writes, st.Skipped, st.Generated)
	}
	if got.Counts.Latency.Count() != got.Counts.Frames {
		t.Fatalf("%d latency samples for %d frames", got.Counts.Latency.Count(), got.Counts.Frames)
	}
	// Loopback, 20 connections: frames arrive within a second of their time.
	if lat := got.Counts.Latency.Summary(); lat.Max <= 0 || lat.Max > time.Second {
		t.Fatalf("latency %+v, want above 0 and at most 1 s", lat)
	}
	mean := float64(got.Counts.Bytes) / float64(got.Counts.Frames)
	if mean < 100 || mean > 200 {
		t.Fatalf("mean frame %.0f bytes, want the ~140 of a relay frame", mean)
	}
	if c.otherMessages.Load() != 0 {
		t.Fatalf("%d frames were neither messages nor heartbeats", c.otherMessages.Load())
	}
}

// TestClientsClassifyFrames checks what a client counts as a delivery.
func TestClientsClassifyFrames(t *testing.T) {
	c := &clients{}
	now := time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC).UnixNano()
	for _, f := range []string{
		`{"type":"message","id":"a-1","subject":"load.s0001","time":"2026-01-02T03:04:05Z","payload":{}}`, // 1 s
		`{"id":"a-2","type":"message","time":"2026-01-02T03:04:05.5Z","payload":{"time":"x"}}`,            // other order: 0.5 s
		`{"type":"message","id":"a-3","payload":{}}`,                                                      // no time
		`{"type":"heartbeat","time":"2026-01-02T03:04:05Z"}`,
		`{"type":"welcome","protocol":1}`,
		`not json`,
	} {
		c.onMessage([]byte(f), now)
	}
	got := c.deliveries.snapshot()
	if got.Frames != 3 || got.Untimed != 1 || c.hbAnswered.Load() != 1 || c.otherMessages.Load() != 2 {
		t.Fatalf("frames %d, untimed %d, heartbeats %d, other %d; want 3, 1, 1, 2",
			got.Frames, got.Untimed, c.hbAnswered.Load(), c.otherMessages.Load())
	}
	if lat := got.Latency.Summary(); lat.P50 < 490*time.Millisecond || lat.P50 > 510*time.Millisecond ||
		lat.Max < 990*time.Millisecond || lat.Max > 1010*time.Millisecond {
		t.Fatalf("latency %+v, want p50 0.5 s and max 1 s", lat)
	}
}

// TestDeliveryConfigMatchesBareFrames loads the relay configuration a
// delivery run generates, as the relay does, then runs its three plugins
// natively and encodes the result as the gateway does: the bare server's
// frame for the same message must be byte for byte the same.
func TestDeliveryConfigMatchesBareFrames(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plugins.yaml")
	yaml := relayConfig(8080, 8081, 100, 15*time.Second, "warn", filepath.Join(dir, "db")) +
		deliveryPlugins("/opt/plugins", filepath.Join(dir, "cache"), 3, 10*time.Millisecond)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Source{Path: path})
	if err != nil {
		t.Fatalf("the relay refuses the generated configuration: %v\n%s", err, yaml)
	}
	if len(cfg.Plugins) != 3 || len(cfg.Junctions) != 1 {
		t.Fatalf("%d plugins and %d junctions, want 3 and 1", len(cfg.Plugins), len(cfg.Junctions))
	}
	j := cfg.Junctions[0]
	if j.Collector != deliveryCollector || strings.Join(j.Transforms, ",") != "to-fahrenheit,display-text" ||
		len(j.Targets) != 1 || j.Targets[0].Selector[deliveryLabel] != "1" {
		t.Fatalf("junction %+v", j)
	}
	if p := cfg.Plugins[0]; p.Interval != 10*time.Millisecond || p.Module != "/opt/plugins/collectors.synthetic.wasm" {
		t.Fatalf("collector %+v", p)
	}
	configJSON := func(i int) []byte {
		b, err := json.Marshal(cfg.Plugins[i].Config)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	coll, err := synthetic.New(configJSON(0))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scale.New(configJSON(1))
	if err != nil {
		t.Fatal(err)
	}
	fm, err := format.New(configJSON(2))
	if err != nil {
		t.Fatal(err)
	}

	for _, at := range []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 59, 999_999_999, time.UTC),
		time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC),
		time.Date(2026, 7, 1, 0, 0, 17, 123_456_789, time.UTC),
	} {
		readings, err := coll.Collect(at, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(readings) != 3 || readings[0].Subject != "load.s0001" || readings[2].Subject != "load.s0003" {
			t.Fatalf("collector emitted %+v", readings)
		}
		p, err := sc.Apply(readings[0].Payload)
		if err != nil {
			t.Fatal(err)
		}
		if p, err = fm.Apply(p); err != nil {
			t.Fatal(err)
		}
		relay, err := json.Marshal(struct {
			Type    string          `json:"type"`
			ID      string          `json:"id"`
			Subject string          `json:"subject"`
			Time    string          `json:"time"`
			Payload json.RawMessage `json:"payload"`
		}{"message", "0a1b2c3d-1", readings[0].Subject, at.UTC().Format(time.RFC3339Nano), p})
		if err != nil {
			t.Fatal(err)
		}
		bare := appendLoadMessage(nil, "0a1b2c3d", 1, bareSensors, at)
		if !bytes.Equal(bare, relay) {
			t.Fatalf("at %s:\nbare  %s\nrelay %s", at, bare, relay)
		}
		if !bytes.HasPrefix(bare, messagePrefix) {
			t.Fatalf("%s does not start with %s", bare, messagePrefix)
		}
	}
}

func TestCollectorPlan(t *testing.T) {
	tests := []struct {
		rate     float64
		sensors  int
		interval time.Duration
	}{
		{2400, 24, 10 * time.Millisecond},
		{243.2, 3, 10 * time.Millisecond},
		{100, 1, 10 * time.Millisecond},
		{40, 1, 25 * time.Millisecond},
		{0.5, 1, 2 * time.Second},
		{1e9, maxSensors, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		s, iv := collectorPlan(tt.rate)
		if s != tt.sensors || iv != tt.interval {
			t.Errorf("collectorPlan(%g) = %d sensors every %s, want %d every %s", tt.rate, s, iv, tt.sensors, tt.interval)
		}
		if offered := float64(s) / iv.Seconds(); tt.rate < 1e5 && offered < tt.rate {
			t.Errorf("collectorPlan(%g) offers %g messages/s, less than asked", tt.rate, offered)
		}
	}
}

func TestRelayCounters(t *testing.T) {
	metrics := `# HELP switchyard_junction_messages_in_total Messages a junction took in.
# TYPE switchyard_junction_messages_in_total counter
switchyard_junction_messages_in_total{junction="load-fanout",tenant="default"} 1200
switchyard_junction_messages_in_total{junction="other",tenant="default"} 5
switchyard_junction_messages_out_total{junction="load-fanout",tenant="default"} 1.19e+06
switchyard_junction_dropped_total{junction="load-fanout",reason="junction_queue_full",tenant="default"} 300
switchyard_junction_dropped_total{junction="load-fanout",reason="no_matching_device",tenant="default"} 7
switchyard_junction_dropped_total{junction="other",reason="throttled",tenant="default"} 9
switchyard_gateway_send_dropped_total{reason="drop_oldest"} 42
switchyard_gateway_send_dropped_total{reason="session_closed"} 0
switchyard_plugin_call_duration_seconds_bucket{instance="display-text",tenant="default",le="+Inf"} 4771
weird_label{a="x\"y\\z\n",b="}"} NaN 1700000000000
`
	samples, err := parsePromText(strings.NewReader(metrics))
	if err != nil {
		t.Fatal(err)
	}
	last := samples[len(samples)-1]
	if last.labels["a"] != "x\"y\\z\n" || last.labels["b"] != "}" || last.value == last.value {
		t.Fatalf("escaped labels and NaN: %+v", last)
	}
	end := relayCountersOf(samples)
	if end.Messages != 1200 || end.Writes != 1_190_000 || end.Drops["junction junction_queue_full"] != 300 ||
		end.Drops["junction no_matching_device"] != 7 || end.Drops["gateway drop_oldest"] != 42 || len(end.Drops) != 4 {
		t.Fatalf("counters %+v", end)
	}
	start := ServerCounters{Messages: 200, Writes: 200_000, Drops: map[string]float64{"junction no_matching_device": 7}}
	w := end.sub(start)
	if w.Messages != 1000 || w.Writes != 990_000 || len(w.Drops) != 2 || w.Drops["gateway drop_oldest"] != 42 {
		t.Fatalf("window %+v: unchanged and zero drops must be left out", w)
	}
	if g := w.backlog(1000); g != 10 {
		t.Fatalf("backlog growth %g, want 1000 in − 990,000 out / 1,000 devices = 10", g)
	}

	for _, bad := range []string{`m{a="x} 1`, `m{a=x} 1`, `m`, `m{a="x"} one`, `m 1 2 3`} {
		if _, err := parsePromText(strings.NewReader(bad)); err == nil {
			t.Errorf("parsePromText(%q) accepted a bad line", bad)
		}
	}
}

func TestParseProcCPU(t *testing.T) {
	// Fields 14 and 15 (utime, stime) are 250 and 50 ticks; the command
	// name holds a space and a parenthesis.
	stat := "4242 (switch yard) worker) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 12 0 100 1000000 500 18446744073709551615"
	got, err := ParseProcCPU([]byte(stat))
	if err != nil || got != 3*time.Second {
		t.Fatalf("ParseProcCPU = %s, %v; want 3s", got, err)
	}
	for _, bad := range []string{"4242 no parenthesis", "4242 (x) S 1 2", "4242 (x) S 1 4242 4242 0 -1 1 0 0 0 0 x 50 0"} {
		if _, err := ParseProcCPU([]byte(bad)); err == nil {
			t.Errorf("ParseProcCPU(%q) accepted it", bad)
		}
	}
	self, err := ReadCPU(os.Getpid())
	if err != nil || self <= 0 {
		t.Fatalf("ReadCPU(self) = %s, %v", self, err)
	}

	machine := "cpu  1000 20 300 90000 5 6 7 0 0 0\ncpu0 500 10 150 45000 2 3 4 0 0 0\n"
	if got, err := ParseMachineCPU([]byte(machine)); err != nil || got != 13200*time.Millisecond {
		t.Fatalf("ParseMachineCPU = %s, %v; want 13.2s (user + nice + system)", got, err)
	}
	if _, err := ParseMachineCPU([]byte("cpu0 1 2 3\n")); err == nil {
		t.Fatal("ParseMachineCPU accepted a /proc/stat without the total line")
	}
	if all, err := ReadMachineCPU(); err != nil || all < self {
		t.Fatalf("ReadMachineCPU = %s, %v; want at least this process's %s", all, err, self)
	}
}

func TestDeliveryTable(t *testing.T) {
	bare := &DeliverySide{Label: "bare nbio", Connected: 1000, Rate: 121375.4, ServerCPU: 1, ClientCPU: 0.87, OtherCPU: 0.05,
		Latency: Latency{P50: 5540 * time.Microsecond, P99: 13890 * time.Microsecond}}
	relay := &DeliverySide{Label: "switchyard", Connected: 1000, Rate: 99493, PerDevice: 99.5, Offered: 300, ServerCPU: 1.01, ClientCPU: 0.78,
		Latency: Latency{P50: 4230 * time.Millisecond, P99: 5670 * time.Millisecond},
		Server:  ServerCounters{Drops: map[string]float64{"junction junction_queue_full": 660}}}
	table := DeliveryTable([]DeliveryPair{{N: 1000, Bare: bare, Relay: relay}, {N: 100, Bare: bare}})
	for _, want := range []string{
		"| 1,000 | 121,375 | 99,493 | 82 % | 5.54ms / 13.89ms | 4.23s / 5.67s | 300 → 100 | junction junction_queue_full 660 | 1.00 + 0.87 (+ 0.05) / 1.01 + 0.78 (+ 0.00) |",
		"| 100 | 121,375 | — | — | 5.54ms / 13.89ms | — | — | — | 1.00 + 0.87 (+ 0.05) / — |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if got := thousands(-1234567.6); got != "-1,234,568" {
		t.Fatalf("thousands = %q", got)
	}
}
