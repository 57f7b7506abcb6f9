package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchyard/switchyard/runtime/apptest"
)

// hotload is the configuration of the hot-load tests: the transform
// "stamp" runs the stamp module of version v (runtime/host/testdata: it
// wraps each payload as {"v":<version>,"in":<payload>}), then, when upper
// is set, the process plugin at upper (transforms.test-upper, which
// upper-cases it); the sensor's readings go through them to every display.
// extra is appended verbatim.
type hotload struct {
	v          int
	upper, sum string
	extra      string
}

func (h hotload) write(t testing.TB, path string) {
	t.Helper()
	module, err := filepath.Abs(fmt.Sprintf("../host/testdata/stamp_v%d.wasm", h.v))
	if err != nil {
		t.Fatal(err)
	}
	chain, upper := "[stamp]", ""
	if h.upper != "" {
		chain = "[stamp, upper]"
		upper = fmt.Sprintf("  - {id: upper, use: transforms.test-upper, runtime: process, module: %s, sha256: %s}\n", h.upper, h.sum)
	}
	yaml := fmt.Sprintf(`plugins:
  - id: stamp
    use: transforms.stamp
    runtime: wasm
    module: %s
    limits: {call_timeout: 10s}
%sjunctions:
  - id: readings
    source: device.sensor.telemetry
    transforms: %s
    targets:
      - selector: {role: display}
%s`, module, upper, chain, h.extra)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
}

// hotloadFile writes the configuration of stamp version v alone, with extra.
func hotloadFile(t *testing.T, path string, v int, extra string) {
	t.Helper()
	hotload{v: v, extra: extra}.write(t, path)
}

// display is a connected device that records what it receives.
type display struct {
	conn     *websocket.Conn
	mu       sync.Mutex
	got      []stamped // in order of arrival
	closeErr error     // why its connection ended, if it did
}

type stamped struct{ seq, version int }

func (d *display) read(done *sync.WaitGroup) {
	defer done.Done()
	for {
		var f struct {
			Type    string `json:"type"`
			Payload struct {
				V  int `json:"v"`
				In struct {
					Seq int `json:"seq"`
				} `json:"in"`
			} `json:"payload"`
		}
		if err := d.conn.ReadJSON(&f); err != nil {
			d.mu.Lock()
			d.closeErr = err
			d.mu.Unlock()
			return
		}
		if f.Type != "message" {
			continue
		}
		d.mu.Lock()
		d.got = append(d.got, stamped{f.Payload.In.Seq, f.Payload.V})
		d.mu.Unlock()
	}
}

func (d *display) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.got)
}

// Under steady traffic to 1,000 connected devices through a WASM transform
// and a process transform, 100 reloads of the configuration file alternate
// two versions of the WASM transform: no device is disconnected, every
// device gets every message once and in order, each message was handled by
// exactly one version (every device saw the same version for it), and the
// process plugin, whose declaration did not change, kept its process.
func TestReloadsUnderTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 devices and 100 reloads")
	}
	run := reloadUnderTraffic(t, swapWASM, 100)
	t.Logf("reload request to new generation serving: p50 %.1f ms, p99 %.1f ms", run.p50, run.p99)
}

// BenchmarkReloadUnderTraffic measures the reload latency (request to new
// generation serving) under the traffic of TestReloadsUnderTraffic, b.N
// reloads: swapping the WASM transform, or the process transform (a new
// process each time). Run with -benchtime 100x.
func BenchmarkReloadUnderTraffic(b *testing.B) {
	for _, swap := range []string{swapWASM, swapProcess} {
		b.Run(swap, func(b *testing.B) {
			run := reloadUnderTraffic(b, swap, b.N)
			b.ReportMetric(run.p50, "p50-ms")
			b.ReportMetric(run.p99, "p99-ms")
			b.ReportMetric(float64(run.messages), "messages")
		})
	}
}

// What reloadUnderTraffic swaps.
const (
	swapWASM    = "wasm"    // stamp v1 ↔ v2; the process plugin stays
	swapProcess = "process" // the process plugin's binary between two copies; stamp stays
)

type trafficRun struct {
	p50, p99 float64 // reload latency, ms
	messages int     // sent, and received by every device
}

func reloadUnderTraffic(tb testing.TB, swap string, reloads int) trafficRun {
	const (
		devices = 1000
		// The sensor's pace: 20 readings a second, 20,000 frames a second to
		// the displays, within what the relay and these 1,000 clients
		// sustain together under the race detector on two cores.
		every = 50 * time.Millisecond
	)
	dir := tb.TempDir()
	path := filepath.Join(dir, "plugins.yaml")
	upper, sum := apptest.TestPluginBinary(tb)
	// Two copies of the plugin binary: a process swap changes its path.
	uppers := [2]string{filepath.Join(dir, "a-upper"), filepath.Join(dir, "b-upper")}
	for _, p := range uppers {
		copyExecutable(tb, upper, p)
	}
	config := func(i int) hotload {
		if swap == swapWASM {
			return hotload{v: 1 + i%2, upper: uppers[0], sum: sum}
		}
		return hotload{v: 1, upper: uppers[i%2], sum: sum}
	}
	config(0).write(tb, path)
	r := apptest.StartFile(tb, path, false)

	var readers sync.WaitGroup
	displays := make([]*display, devices)
	for i := range displays {
		tok := r.CreateDevice("default", fmt.Sprintf("display-%d", i), map[string]string{"role": "display"})
		d := r.Connect(tok)
		displays[i] = &display{conn: d.Conn}
		_ = d.Conn.SetReadDeadline(time.Time{})
	}
	for _, d := range displays {
		readers.Add(1)
		go d.read(&readers)
	}
	sensor := r.Connect(r.CreateDevice("default", "sensor", nil))
	pid := processPID(tb, r, "upper")

	// The sensor sends until the reloads are over.
	var sent atomic.Int64
	stop := make(chan struct{})
	sending := make(chan struct{})
	go func() {
		defer close(sending)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for seq := 1; ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if err := sensor.Conn.WriteJSON(map[string]any{"type": "data", "stream": "telemetry", "payload": map[string]any{"seq": seq}}); err != nil {
				tb.Errorf("sensor: %v", err)
				return
			}
			sent.Store(int64(seq))
		}
	}()

	latencies := make([]float64, 0, reloads)
	if b, ok := tb.(*testing.B); ok {
		b.ResetTimer()
	}
	for i := range reloads {
		time.Sleep(2 * every) // readings under each version
		config(i+1).write(tb, path)
		status, body := r.Do("POST", "/api/v1/reload", nil)
		if status != http.StatusOK {
			tb.Fatalf("reload %d: %d %v", i+1, status, body)
		}
		g := body["generation"].(map[string]any)
		if g["state"] != "active" || len(g["changes"].([]any)) != 1 {
			tb.Fatalf("reload %d: generation %v", i+1, g)
		}
		latencies = append(latencies, g["serving_after_ms"].(float64))
	}
	time.Sleep(2 * every)
	close(stop)
	<-sending
	n := int(sent.Load())

	deadline := time.Now().Add(30 * time.Second)
	for _, d := range displays {
		for d.count() < n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(100 * time.Millisecond) // anything past n would be a duplicate

	versionOf := map[int]int{}
	for i, d := range displays {
		d.mu.Lock()
		got, closeErr := slices.Clone(d.got), d.closeErr
		d.mu.Unlock()
		if closeErr != nil {
			tb.Fatalf("display-%d was disconnected: %v", i, closeErr)
		}
		if len(got) != n {
			tb.Fatalf("display-%d got %d messages, the sensor sent %d", i, len(got), n)
		}
		for j, m := range got {
			if m.seq != j+1 {
				tb.Fatalf("display-%d: message %d has sequence %d (lost, duplicated or out of order)", i, j+1, m.seq)
			}
			if m.version != 1 && m.version != 2 {
				tb.Fatalf("display-%d: message %d handled by version %d", i, m.seq, m.version)
			}
			if v, ok := versionOf[m.seq]; ok && v != m.version {
				tb.Fatalf("message %d: version %d at one display, %d at another", m.seq, v, m.version)
			}
			versionOf[m.seq] = m.version
		}
	}
	switches := 0
	for seq := 2; seq <= n; seq++ {
		if versionOf[seq] != versionOf[seq-1] {
			switches++
		}
	}
	tb.Logf("%s swaps: %d messages to each of %d devices across %d reloads; the version changed %d times between consecutive messages",
		swap, n, devices, reloads, switches)
	switch after := processPID(tb, r, "upper"); {
	case swap == swapWASM && switches < reloads/2:
		tb.Errorf("the version changed only %d times in %d reloads: the reloads did not take effect", switches, reloads)
	case swap == swapWASM && after != pid:
		tb.Errorf("the process plugin, whose declaration did not change, went from pid %d to %d", pid, after)
	case swap == swapProcess && reloads > 0 && after == pid:
		tb.Errorf("the process plugin kept pid %d across %d swaps of its binary", pid, reloads)
	}

	_, body := r.Do("GET", "/api/v1/tenants/default/sessions", nil)
	if got := len(body["sessions"].([]any)); got != devices+1 {
		tb.Errorf("%d sessions after the reloads, want %d", got, devices+1)
	}
	for _, d := range displays {
		d.conn.Close()
	}
	readers.Wait()
	slices.Sort(latencies)
	run := trafficRun{messages: n}
	if len(latencies) > 0 {
		run.p50, run.p99 = latencies[len(latencies)/2], latencies[len(latencies)*99/100]
	}
	return run
}

// processPID is the pid GET /api/v1/plugins shows for instance id.
func processPID(tb testing.TB, r *apptest.Relay, id string) int {
	tb.Helper()
	pid, _ := instance(tb, r, apptest.OperatorKey, id)["pid"].(float64)
	return int(pid)
}

func copyExecutable(tb testing.TB, from, to string) {
	tb.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o700); err != nil {
		tb.Fatal(err)
	}
}

// A reload to a broken module, to a broken configuration and to one that
// changes a live-only setting is refused with the reason, and the running
// generation, junctions and devices are unchanged.
func TestRefusedReloads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plugins.yaml")
	hotloadFile(t, path, 1, "")
	r := apptest.StartFile(t, path, false)
	sensor := r.Connect(r.CreateDevice("default", "sensor", nil))
	screen := r.Connect(r.CreateDevice("default", "screen", map[string]string{"role": "display"}))
	reading := func(seq int) int {
		t.Helper()
		sensor.Send(map[string]any{"type": "data", "stream": "telemetry", "payload": map[string]any{"seq": seq}})
		m := screen.ReadUntil("message")
		raw, _ := json.Marshal(m["payload"])
		var p struct {
			V  int `json:"v"`
			In struct {
				Seq int `json:"seq"`
			} `json:"in"`
		}
		if err := json.Unmarshal(raw, &p); err != nil || p.In.Seq != seq {
			t.Fatalf("reading %d arrived as %s", seq, raw)
		}
		return p.V
	}
	if v := reading(1); v != 1 {
		t.Fatalf("version %d before the reloads", v)
	}
	garbage := filepath.Join(dir, "garbage.wasm")
	if err := os.WriteFile(garbage, []byte("\x00asm\x01\x00\x00\x00 and then nonsense"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		write func()
		code  string
		want  []string
	}{
		{"broken module", func() {
			raw, _ := os.ReadFile(path)
			abs, _ := filepath.Abs("../host/testdata/stamp_v1.wasm")
			_ = os.WriteFile(path, []byte(strings.Replace(string(raw), abs, garbage, 1)), 0o600)
		}, "plugin_refused", []string{`plugin "stamp" of tenant "default" (transforms.stamp)`, "generation 1 keeps serving"}},
		{"broken configuration", func() {
			hotloadFile(t, path, 2, "  - {id: second, source: 'a..b', targets: []}\n")
		}, "invalid_configuration", []string{"junctions[1].source", "junctions[1].targets"}},
		{"unknown transform named", func() {
			hotloadFile(t, path, 2, "  - {id: second, source: a.b, transforms: [nothing], targets: [{device: screen}]}\n")
		}, "invalid_configuration", []string{"junctions[1].transforms[0]"}},
		{"live-only setting", func() {
			hotloadFile(t, path, 2, "gateway:\n  max_connections: 5\n  heartbeat_timeout: 2m\napi:\n  max_body_size: 2MiB\n")
		}, "live_only_setting", []string{"gateway.max_connections", "gateway.heartbeat_timeout", "api.max_body_size", "restart"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.write()
			status, body := r.Do("POST", "/api/v1/reload", nil)
			wantErrorCode(t, status, body, http.StatusUnprocessableEntity, tc.code)
			e := body["error"].(map[string]any)
			text := fmt.Sprint(e["message"], e["problems"])
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("the refusal does not say %q: %s", w, text)
				}
			}
			_, list := r.Do("GET", "/api/v1/plugins", nil)
			if list["generation"] != 1.0 {
				t.Errorf("generation %v serves after a refused reload", list["generation"])
			}
			if v := reading(2); v != 1 {
				t.Errorf("version %d handled a reading after a refused reload", v)
			}
		})
	}
	metrics := scrape(t, r)
	for _, want := range []string{"switchyard_plugin_generation 1", `switchyard_plugin_reloads_total{result="applied"} 1`,
		`switchyard_plugin_reloads_total{result="failed"} 1`} { // the others were refused before a plan was made
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	_, list := r.Do("GET", "/api/v1/plugins", nil)
	if f, _ := list["last_failure"].(map[string]any); f == nil || !strings.Contains(f["error"].(string), "garbage") && !strings.Contains(f["error"].(string), "stamp") {
		t.Errorf("GET /api/v1/plugins does not show the refused generation: %v", list)
	}
	// A good file applies, and a junction it adds routes.
	hotloadFile(t, path, 2, "  - {id: echo, source: device.sensor.echo, targets: [{device: screen}]}\n")
	if status, body := r.Do("POST", "/api/v1/reload", nil); status != http.StatusOK {
		t.Fatalf("good reload: %d %v", status, body)
	}
	if v := reading(3); v != 2 {
		t.Errorf("version %d after the good reload", v)
	}
	sensor.Send(map[string]any{"type": "data", "stream": "echo", "payload": 1})
	if m := screen.ReadUntil("message"); m["subject"] != "device.sensor.echo" {
		t.Errorf("the junction the reload added delivered %v", m)
	}
}

// scrape returns the relay's /metrics text.
func scrape(t *testing.T, r *apptest.Relay) string {
	t.Helper()
	resp, err := http.Get(r.API + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return string(raw)
}

func wantErrorCode(t *testing.T, status int, body map[string]any, wantStatus int, code string) {
	t.Helper()
	e, _ := body["error"].(map[string]any)
	if status != wantStatus || e == nil || e["code"] != code {
		t.Fatalf("%d %v, want %d %s", status, body, wantStatus, code)
	}
}
