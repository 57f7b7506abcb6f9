package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/runtime/loadtest"
)

// asMain makes the test binary act as switchyard-load, so that the workers
// and bare servers the tests start are this same binary re-executed.
const asMain = "SWITCHYARD_LOAD_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		main()
	}
	os.Exit(m.Run())
}

func TestParse(t *testing.T) {
	plugins := t.TempDir()
	for _, m := range []string{"collectors.synthetic.wasm", "transforms.scale.wasm", "transforms.format.wasm"} {
		if err := os.WriteFile(filepath.Join(plugins, m), []byte("\x00asm"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, inv *invocation)
	}{
		{
			name: "baseline defaults",
			args: []string{"baseline"},
			check: func(t *testing.T, inv *invocation) {
				o := inv.opts
				if o.N != 1000 || o.Hold != 30*time.Second || o.Heartbeat != 15*time.Second || o.PerWorker != 10000 ||
					o.PerSource != 10000 || o.SourceBase.String() != "127.0.0.2" || o.Samples != 5 || inv.serversFor(o.N) != 1 {
					t.Fatalf("defaults: %+v", o)
				}
			},
		},
		{
			name: "baseline flags",
			args: []string{"baseline", "-n", "19000", "-hold", "1m", "-per-worker", "9000", "-source", "127.0.1.10", "-json"},
			check: func(t *testing.T, inv *invocation) {
				if inv.opts.N != 19000 || inv.opts.Hold != time.Minute || inv.opts.PerWorker != 9000 ||
					inv.opts.SourceBase.String() != "127.0.1.10" || !inv.json {
					t.Fatalf("flags not applied: %+v json=%v", inv.opts, inv.json)
				}
			},
		},
		{
			name: "servers scale with n",
			args: []string{"baseline", "-n", "100000"},
			check: func(t *testing.T, inv *invocation) {
				if got := inv.serversFor(inv.opts.N); got != 6 {
					t.Fatalf("servers for 100000 = %d, want 6", got)
				}
			},
		},
		{
			name: "compare list",
			args: []string{"compare", "-n", "1000, 10000,19000", "-relay-bin", "/bin/switchyard"},
			check: func(t *testing.T, inv *invocation) {
				if !slices.Equal(inv.ns, []int{1000, 10000, 19000}) || inv.opts.Hold != 20*time.Second || inv.relay.Bin != "/bin/switchyard" ||
					inv.relay.LogLevel != "warn" || inv.relay.Keep {
					t.Fatalf("compare: ns=%v hold=%s bin=%q", inv.ns, inv.opts.Hold, inv.relay.Bin)
				}
			},
		},
		{
			name: "relay against running relays",
			args: []string{"relay", "-n", "10", "-target", "ws://127.0.0.1:8080/ws/device,ws://127.0.0.1:8090/ws/device",
				"-api", "http://127.0.0.1:8081/", "-relay-pid", "41,42"},
			env: map[string]string{"SWITCHYARD_API__OPERATOR_KEY": "syop_from_env"},
			check: func(t *testing.T, inv *invocation) {
				ex := inv.external
				if len(ex.Targets) != 2 || ex.API != "http://127.0.0.1:8081" || ex.OperatorKey != "syop_from_env" ||
					!slices.Equal(ex.PIDs, []int{41, 42}) || !strings.HasPrefix(ex.IDPrefix, "load-") || ex.ProvisionConcurrency != 32 {
					t.Fatalf("external: %+v", ex)
				}
			},
		},
		{
			name: "bare server",
			args: []string{"bare-server", "-listen", "127.0.0.1:9999", "-max-lifetime", "5m"},
			check: func(t *testing.T, inv *invocation) {
				if inv.bare.listen != "127.0.0.1:9999" || inv.bare.path != "/ws/device" || inv.bare.lifetime != 5*time.Minute {
					t.Fatalf("bare: %+v", inv.bare)
				}
			},
		},
		{
			name: "deliveries defaults",
			args: []string{"deliveries", "-relay-bin", "/bin/switchyard", "-plugins", plugins},
			check: func(t *testing.T, inv *invocation) {
				d := inv.deliveryOptions(inv.ns[0])
				if !slices.Equal(inv.ns, []int{1000}) || d.N != 1000 || d.Window != 30*time.Second || d.Warmup != 5*time.Second ||
					d.Offer != 2 || d.Settle != 30*time.Second || d.Plugins != plugins || d.Relay.Bin != "/bin/switchyard" ||
					d.Relay.ProvisionConcurrency != 32 || d.Heartbeat != 15*time.Second || d.BareOnly {
					t.Fatalf("deliveries defaults: %+v", d)
				}
			},
		},
		{
			name: "deliveries bare only",
			args: []string{"deliveries", "-bare-only", "-devices", "100,5000", "-duration", "10s", "-offer", "0.5"},
			check: func(t *testing.T, inv *invocation) {
				d := inv.deliveryOptions(5000)
				if !slices.Equal(inv.ns, []int{100, 5000}) || !d.BareOnly || d.Window != 10*time.Second || d.Offer != 0.5 || d.N != 5000 {
					t.Fatalf("deliveries: %v %+v", inv.ns, d)
				}
			},
		},
		{name: "deliveries without relay", args: []string{"deliveries"}, wantErr: "deliveries needs -relay-bin"},
		{name: "deliveries without plugins", args: []string{"deliveries", "-relay-bin", "s", "-plugins", "/nonexistent"}, wantErr: "make plugins"},
		{name: "deliveries over one server", args: []string{"deliveries", "-bare-only", "-devices", "20000"}, wantErr: "at most 19000"},
		{name: "deliveries zero offer", args: []string{"deliveries", "-relay-bin", "s", "-plugins", plugins, "-offer", "0"}, wantErr: "offer 0"},
		{name: "deliveries zero window", args: []string{"deliveries", "-bare-only", "-duration", "0s"}, wantErr: "window must be positive"},
		{
			name: "downloads defaults",
			args: []string{"downloads", "-relay-bin", "/bin/switchyard"},
			check: func(t *testing.T, inv *invocation) {
				d := inv.downloadOptions()
				if d.N != 10000 || !slices.Equal(d.Levels, []int{0, 8, 32}) || d.Phase != 20*time.Second || d.Settle != 3*time.Second ||
					d.ImageSize != 4<<20 || d.MaxDownloads != 32 || d.Sample != 1000 || d.SampleInterval != time.Second ||
					d.Heartbeat != 15*time.Second || d.RequestTimeout != time.Minute || d.Relay.Bin != "/bin/switchyard" ||
					d.Relay.ProvisionConcurrency != 32 || d.PerWorker != 10000 || d.SourceBase.String() != "127.0.0.2" || inv.json {
					t.Fatalf("downloads defaults: %+v", d)
				}
			},
		},
		{
			name: "downloads flags",
			args: []string{"downloads", "-relay-bin", "s", "-devices", "200", "-downloaders", "8, 64", "-phase", "5s", "-settle", "0s",
				"-image-size", "512KiB", "-max-downloads", "100", "-sample", "5000", "-sample-interval", "250ms", "-download-rate", "64KiB", "-json"},
			check: func(t *testing.T, inv *invocation) {
				d := inv.downloadOptions()
				if d.N != 200 || !slices.Equal(d.Levels, []int{8, 64}) || d.Phase != 5*time.Second || d.Settle != 0 ||
					d.ImageSize != 512<<10 || d.MaxDownloads != 100 || d.SampleInterval != 250*time.Millisecond || d.Rate != 64<<10 || !inv.json {
					t.Fatalf("downloads flags: %+v", d)
				}
				if d.Sample != 200 {
					t.Fatalf("-sample 5000 of 200 devices = %d, want all 200", d.Sample)
				}
			},
		},
		{name: "downloads without relay", args: []string{"downloads"}, wantErr: "downloads needs -relay-bin"},
		{name: "downloads negative level", args: []string{"downloads", "-relay-bin", "s", "-downloaders", "8,-1"}, wantErr: `"-1" is not a whole number`},
		{name: "downloads too many downloaders", args: []string{"downloads", "-relay-bin", "s", "-downloaders", "2000"}, wantErr: "from 0 to 1024"},
		{name: "downloads decimal size", args: []string{"downloads", "-relay-bin", "s", "-image-size", "4MB"}, wantErr: "unknown unit"},
		{name: "downloads huge image", args: []string{"downloads", "-relay-bin", "s", "-image-size", "1GiB"}, wantErr: "image size"},
		{name: "downloads over one relay", args: []string{"downloads", "-relay-bin", "s", "-devices", "20000"}, wantErr: "at most 19000"},
		{name: "downloads zero sample", args: []string{"downloads", "-relay-bin", "s", "-sample", "0"}, wantErr: "sample 0"},
		{name: "downloads fast sample", args: []string{"downloads", "-relay-bin", "s", "-sample-interval", "10ms"}, wantErr: "sample interval"},
		{name: "downloads too slow", args: []string{"downloads", "-relay-bin", "s", "-download-rate", "64KiB"}, wantErr: "takes 1m4s"},
		{name: "downloads too many heartbeats", args: []string{"downloads", "-relay-bin", "s", "-sample", "10000", "-sample-interval", "100ms"}, wantErr: "more than 20000 a second"},
		{name: "downloads zero phase", args: []string{"downloads", "-relay-bin", "s", "-phase", "0s"}, wantErr: "phase"},
		{name: "no command", args: nil, wantErr: "no command"},
		{name: "unknown command", args: []string{"bench"}, wantErr: `unknown command "bench"`},
		{name: "stray argument", args: []string{"baseline", "extra"}, wantErr: "unexpected argument"},
		{name: "zero n", args: []string{"baseline", "-n", "0"}, wantErr: "must be positive"},
		{name: "non-loopback source", args: []string{"baseline", "-source", "10.0.0.2"}, wantErr: "not an IPv4 loopback"},
		{name: "sources run out", args: []string{"baseline", "-n", "1000", "-per-source", "1", "-source", "127.255.255.2"}, wantErr: "outside 127.0.0.0/8"},
		{name: "bad list", args: []string{"compare", "-n", "1000,x", "-relay-bin", "s"}, wantErr: `"x" is not a positive integer`},
		{name: "compare without relay", args: []string{"compare"}, wantErr: "compare needs -relay-bin"},
		{name: "bad relay log level", args: []string{"relay", "-relay-bin", "s", "-relay-log", "loud"}, wantErr: `-relay-log "loud"`},
		{name: "relay needs a relay", args: []string{"relay"}, wantErr: "exactly one of -relay-bin and -target"},
		{name: "relay with both", args: []string{"relay", "-relay-bin", "s", "-target", "ws://127.0.0.1:1/"}, wantErr: "exactly one"},
		{name: "target needs api", args: []string{"relay", "-target", "ws://127.0.0.1:1/ws/device"}, wantErr: "needs -api"},
		{name: "target needs key", args: []string{"relay", "-target", "ws://127.0.0.1:1/", "-api", "http://127.0.0.1:2"},
			env: map[string]string{"SWITCHYARD_API__OPERATOR_KEY": ""}, wantErr: "needs -operator-key"},
		{name: "remote target", args: []string{"relay", "-target", "ws://192.0.2.1:80/", "-api", "http://127.0.0.1:2"}, wantErr: "loopback"},
		{name: "remote api", args: []string{"relay", "-target", "ws://127.0.0.1:1/", "-api", "http://example.com:2"}, wantErr: "loopback"},
		{name: "target scheme", args: []string{"relay", "-target", "http://127.0.0.1:1/", "-api", "http://127.0.0.1:2"}, wantErr: "scheme must be ws"},
		{name: "unknown flag", args: []string{"baseline", "-bogus"}, wantErr: "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			inv, err := parse(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parse(%q) error = %v, want one containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse(%q): %v", tt.args, err)
			}
			tt.check(t, inv)
		})
	}
}

func TestHelp(t *testing.T) {
	t.Setenv("SWITCHYARD_API__OPERATOR_KEY", "syop_secret_in_env")
	for _, args := range [][]string{{"-h"}, {"baseline", "-h"}, {"relay", "-h"}, {"deliveries", "-h"}, {"downloads", "-h"}} {
		var out bytes.Buffer
		if _, err := parse(args, &out); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("parse(%q) error = %v, want flag.ErrHelp", args, err)
		}
		if !strings.Contains(out.String(), "switchyard-load") {
			t.Fatalf("parse(%q) printed no usage: %q", args, out.String())
		}
		if strings.Contains(out.String(), "syop_secret_in_env") {
			t.Fatalf("parse(%q) printed the operator key from the environment", args)
		}
	}
}

// TestBaselineEndToEnd runs the real thing at a small scale: a bare server
// and a client worker, both this binary re-executed, 200 connections held
// with heartbeats for two seconds.
func TestBaselineEndToEnd(t *testing.T) {
	self := loadtest.Command{Path: os.Args[0], Env: []string{asMain + "=1"}}
	var stdout, stderr bytes.Buffer
	args := []string{"baseline", "-n", "200", "-hold", "2s", "-heartbeat", "300ms", "-samples", "2",
		"-per-worker", "120", "-per-source", "50", "-dial-timeout", "5s", "-connect-timeout", "20s", "-json"}
	code := run(t.Context(), args, self, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	var res loadtest.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("result is not JSON: %v\n%s", err, stdout.String())
	}
	if res.Connected != 200 || res.Failed != 0 || res.Open != 200 || len(res.Disconnects) != 0 {
		t.Fatalf("connected %d, failed %d %v, open %d, disconnects %v; want 200, 0, 200, none",
			res.Connected, res.Failed, res.Failures, res.Open, res.Disconnects)
	}
	if res.Workers != 2 || res.Servers != 1 {
		t.Fatalf("%d workers and %d servers, want 2 and 1", res.Workers, res.Servers)
	}
	// Each connection heartbeats every 300 ms for at least the 2 s hold.
	if res.HeartbeatsSent < 200*5 || res.HeartbeatsAnswered < res.HeartbeatsSent-200 {
		t.Fatalf("heartbeats %d sent, %d answered", res.HeartbeatsSent, res.HeartbeatsAnswered)
	}
	if len(res.RSSSamples) != 2 || res.RSSBefore <= 0 || res.RSSAfter <= 0 || res.ConnectRate <= 0 || res.ClientRSS <= 0 {
		t.Fatalf("figures missing: %+v", res)
	}
}

// TestDeliveriesBareEndToEnd runs the bare side of a delivery run for real
// at a small scale: a broadcasting bare server and two client workers, this
// binary re-executed, 20 devices counted for two seconds.
func TestDeliveriesBareEndToEnd(t *testing.T) {
	self := loadtest.Command{Path: os.Args[0], Env: []string{asMain + "=1"}}
	var stdout, stderr bytes.Buffer
	args := []string{"deliveries", "-bare-only", "-devices", "20", "-duration", "2s", "-warmup", "500ms",
		"-per-worker", "12", "-dial-timeout", "5s", "-connect-timeout", "20s", "-json"}
	code := run(t.Context(), args, self, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	var pairs []loadtest.DeliveryPair
	if err := json.Unmarshal(stdout.Bytes(), &pairs); err != nil {
		t.Fatalf("result is not JSON: %v\n%s", err, stdout.String())
	}
	if len(pairs) != 1 || pairs[0].Bare == nil || pairs[0].Relay != nil {
		t.Fatalf("want one pair with the bare side only: %s", stdout.String())
	}
	b := pairs[0].Bare
	if b.Connected != 20 || b.Failed != 0 || b.Open != 20 || len(b.Disconnects) != 0 {
		t.Fatalf("connected %d, failed %d, open %d, disconnects %v; want 20, 0, 20, none", b.Connected, b.Failed, b.Open, b.Disconnects)
	}
	if b.Window < 1900*time.Millisecond || b.Window > 3*time.Second {
		t.Fatalf("window %s, want about 2 s", b.Window)
	}
	// Every frame the server wrote in the window reached a device, give or
	// take the frames in flight at its two ends.
	if b.Deliveries <= 0 || b.Untimed != 0 || b.Rate <= 0 || b.PerDevice <= 0 ||
		math.Abs(float64(b.Deliveries)-b.Server.Writes) > 0.05*b.Server.Writes {
		t.Fatalf("deliveries %d (untimed %d), rate %.0f/s; server wrote %.0f", b.Deliveries, b.Untimed, b.Rate, b.Server.Writes)
	}
	if b.Latency.P50 <= 0 || b.Latency.P99 < b.Latency.P50 || b.FrameBytes < 100 {
		t.Fatalf("latency %+v, frame %.0f bytes", b.Latency, b.FrameBytes)
	}
	if b.Server.Messages <= 0 || b.ServerCPU <= 0 || b.ClientCPU <= 0 {
		t.Fatalf("server messages %.0f, cpu server %.2f clients %.2f", b.Server.Messages, b.ServerCPU, b.ClientCPU)
	}
}

func TestCommandLine(t *testing.T) {
	got := commandLine([]string{"downloads", "-devices", "10000", "-downloaders", "0,8,32", "-relay-bin", "bin/switchyard", "-note", "it's a test", ""})
	want := `switchyard-load downloads -devices 10000 -downloaders 0,8,32 -relay-bin bin/switchyard -note 'it'\''s a test' ''`
	if got != want {
		t.Fatalf("commandLine =\n%s\nwant\n%s", got, want)
	}
}

// TestDownloadsEndToEnd runs a downloads measurement for real at a small
// scale: the relay binary (built here), this binary re-executed as the
// client worker and the download worker, 20 devices, a baseline phase and
// one with two downloaders of a 256 KiB image, two seconds each.
func TestDownloadsEndToEnd(t *testing.T) {
	relay := filepath.Join(t.TempDir(), "switchyard")
	build := exec.Command("go", "build", "-o", relay, "../switchyard")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build the relay: %v", err)
	}
	self := loadtest.Command{Path: os.Args[0], Env: []string{asMain + "=1"}}
	var stdout, stderr bytes.Buffer
	args := []string{"downloads", "-devices", "20", "-sample", "10", "-sample-interval", "200ms", "-downloaders", "2",
		"-phase", "2s", "-settle", "500ms", "-image-size", "256KiB", "-per-source", "8", "-relay-bin", relay,
		"-dial-timeout", "5s", "-connect-timeout", "20s", "-json"}
	code := run(t.Context(), args, self, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	var res loadtest.DownloadRun
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("result is not JSON: %v\n%s", err, stdout.String())
	}
	if res.Connected != 20 || res.Failed != 0 || len(res.SHA256) != 64 || res.ImageSize != 256<<10 || len(res.Phases) != 2 {
		t.Fatalf("connected %d, failed %d, sha256 %q, size %d, %d phases; want 20, 0, a sum, 256 KiB, 2",
			res.Connected, res.Failed, res.SHA256, res.ImageSize, len(res.Phases))
	}
	for _, ph := range res.Phases {
		h := ph.Heartbeat
		// 10 devices, one timed heartbeat every 200 ms, for 2 s.
		if ph.Sample != 10 || h.Sent < 60 || h.Answered != h.Sent || h.Lost != 0 || h.P50 <= 0 || h.Max < h.P99 || h.P99 < h.P50 {
			t.Fatalf("%d downloaders: sample %d, heartbeats %+v", ph.Downloaders, ph.Sample, h)
		}
		if ph.Open != 20 || len(ph.Disconnects) != 0 || ph.RSSMedian <= 0 || ph.RSSMax < ph.RSSMedian || ph.Window < 1900*time.Millisecond {
			t.Fatalf("%d downloaders: open %d, disconnects %v, rss %d/%d, window %s", ph.Downloaders, ph.Open, ph.Disconnects, ph.RSSMedian, ph.RSSMax, ph.Window)
		}
	}
	base, busy := res.Phases[0], res.Phases[1]
	if base.Downloaders != 0 || base.Completed != 0 || base.RelayBytes != 0 || base.ActiveMax != 0 {
		t.Fatalf("baseline: %+v", base)
	}
	if busy.Downloaders != 2 || busy.Completed == 0 || busy.MBPerSecond <= 0 || busy.Refused != 0 || len(busy.Failures) != 0 ||
		busy.Dials > 1 || busy.RelayResults["complete"] < float64(busy.Completed)-2 || busy.RelayCPU <= 0 || busy.LoaderCores <= 0 || busy.ActiveMax > 2 {
		t.Fatalf("2 downloaders: completed %d, %.1f MB/s, refused %d, failures %v, dials %d, relay results %v, relay cpu %.2f s, downloaders %.2f cores",
			busy.Completed, busy.MBPerSecond, busy.Refused, busy.Failures, busy.Dials, busy.RelayResults, busy.RelayCPU, busy.LoaderCores)
	}
	// What the relay handed out and what the downloaders received agree,
	// give or take what moved between the two readings at each end.
	if got, want := busy.RelayBytes, float64(busy.Bytes); math.Abs(got-want) > max(4*float64(res.ImageSize), 0.05*want) {
		t.Fatalf("relay handed %.0f bytes, downloaders received %.0f", got, want)
	}
}
