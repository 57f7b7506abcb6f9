package loadtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/runtime/config"
)

func TestSampled(t *testing.T) {
	for _, tt := range []struct{ sample, n int }{{1000, 10000}, {1, 7}, {7, 7}, {3, 10}, {999, 1000}, {10, 19000}} {
		var picked []int
		for i := range tt.n {
			if Sampled(i, tt.sample, tt.n) {
				picked = append(picked, i)
			}
		}
		if len(picked) != tt.sample {
			t.Fatalf("Sampled(·, %d, %d) picks %d connections", tt.sample, tt.n, len(picked))
		}
		// Evenly spread: pick k lies in [k, k+1) × n/sample.
		for k, i := range picked {
			if i*tt.sample < k*tt.n || i*tt.sample >= (k+1)*tt.n {
				t.Fatalf("Sampled(·, %d, %d): pick %d is connection %d, outside [%d, %d) × %d/%d", tt.sample, tt.n, k, i, k, k+1, tt.n, tt.sample)
			}
		}
	}
	for _, bad := range [][3]int{{-1, 5, 10}, {10, 5, 10}, {3, 0, 10}, {3, 5, 0}} {
		if Sampled(bad[0], bad[1], bad[2]) {
			t.Errorf("Sampled%v = true", bad)
		}
	}
}

// TestTimedHeartbeatsBareServer times heartbeats against the bare server,
// which echoes their seq as the relay does: every heartbeat sent in the
// window is answered, only the sampled connections send them, and the
// window's counts are its own.
func TestTimedHeartbeatsBareServer(t *testing.T) {
	s := startBare(t)
	spec := testSpec(30, s.URL())
	spec.Heartbeat = time.Hour // only timed heartbeats in this test
	spec.Sample, spec.Total, spec.SampleInterval = 10, 30, 200*time.Millisecond
	c := startClients(t, spec)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if rep := c.connectAll(ctx); rep.Connected != 30 {
		t.Fatalf("connected %d, failures %v", rep.Connected, rep.Failures)
	}
	go c.heartbeats(ctx)
	go c.timedHeartbeats(ctx)
	time.Sleep(300 * time.Millisecond) // outside any window: not counted
	c.window.Store(1)
	time.Sleep(time.Second)
	c.window.Store(2)
	time.Sleep(500 * time.Millisecond)
	c.window.Store(0)
	time.Sleep(300 * time.Millisecond)

	one, two := c.heartbeatReport(1), c.heartbeatReport(2)
	// 10 connections, one heartbeat each every 200 ms: ~50 in 1 s.
	if one.Counts.Sent < 30 || one.Counts.Sent > 70 || one.Counts.Answered != one.Counts.Sent || one.Counts.Lost() != 0 {
		t.Fatalf("window 1: %+v, want ~50 sent, every one answered", one.Counts)
	}
	if two.Counts.Sent < 10 || two.Counts.Answered != two.Counts.Sent {
		t.Fatalf("window 2: %+v", two.Counts)
	}
	if got := one.Counts.RTT.Count(); got != one.Counts.Answered {
		t.Fatalf("%d round trips for %d answers", got, one.Counts.Answered)
	}
	if rtt := one.Counts.RTT.Summary(); rtt.P50 <= 0 || rtt.Max > time.Second {
		t.Fatalf("round trips %+v: want above 0 and within a second on loopback", rtt)
	}
	if one.Sample != 10 || one.Open != 30 || one.Unmatched != 0 || len(one.Disconnects) != 0 {
		t.Fatalf("report %+v", one)
	}
	timed := 0
	for _, cc := range c.conns {
		if cc.timed != nil {
			timed++
			cc.mu.Lock()
			sent := cc.timed.next
			cc.mu.Unlock()
			if sent < 5 {
				t.Fatalf("a sampled connection sent %d timed heartbeats in 1.8 s, want about 9", sent)
			}
		}
	}
	if timed != 10 {
		t.Fatalf("%d sampled connections, want 10", timed)
	}
	// Every heartbeat of the server came back as an answer.
	if answered := c.hbAnswered.Load(); answered < one.Counts.Sent+two.Counts.Sent {
		t.Fatalf("%d heartbeat answers in all, fewer than the windows' %d", answered, one.Counts.Sent+two.Counts.Sent)
	}
}

func TestTimedDue(t *testing.T) {
	for _, tt := range []struct {
		elapsed, interval time.Duration
		conns             int
		want              int64
	}{
		{100 * time.Millisecond, time.Second, 1000, 100},
		{2500 * time.Millisecond, time.Second, 1000, 2500},
		{150 * time.Millisecond, time.Second, 3, 0},
		{time.Second, 200 * time.Millisecond, 10, 50},
		{0, time.Second, 10, 0},
		{time.Hour, time.Second, 19000, 68_400_000},
	} {
		if got := timedDue(tt.elapsed, tt.interval, tt.conns); got != tt.want {
			t.Errorf("timedDue(%s, %s, %d) = %d, want %d", tt.elapsed, tt.interval, tt.conns, got, tt.want)
		}
	}
}

func TestTimedAnswer(t *testing.T) {
	c := &clients{}
	cc := &clientConn{c: c, timed: &timedConn{}}
	const ms = int64(time.Millisecond)
	tc := cc.timed
	tc.waiting[5] = timedSend{seq: 5, sent: 100 * ms, window: 1, pending: true}
	tc.waiting[6] = timedSend{seq: 6, sent: 200 * ms, window: 2, pending: true}
	tc.waiting[7] = timedSend{seq: 7, sent: 300 * ms, window: 0, pending: true}
	c.countSent(1)
	c.countSent(2)
	c.countSent(0)
	cc.timedAnswer(5, 103*ms) // 3 ms
	cc.timedAnswer(5, 104*ms) // again: unmatched
	cc.timedAnswer(5+timedRing, 105*ms)
	cc.timedAnswer(7, 301*ms) // window 0: not counted
	one, two := c.heartbeatReport(1), c.heartbeatReport(2)
	if one.Counts.Sent != 1 || one.Counts.Answered != 1 || two.Counts.Answered != 0 || two.Counts.Lost() != 1 {
		t.Fatalf("window 1 %+v, window 2 %+v", one.Counts, two.Counts)
	}
	if rtt := one.Counts.RTT.Quantile(0.5); rtt < 2900*time.Microsecond || rtt > 3100*time.Microsecond {
		t.Fatalf("round trip %s, want 3 ms", rtt)
	}
	if one.Unmatched != 2 {
		t.Fatalf("unmatched %d, want 2 (a repeated answer and a seq of another round)", one.Unmatched)
	}
	(&clientConn{c: c}).timedAnswer(1, 0) // a connection that is not sampled
	if got := c.unmatched.Load(); got != 3 {
		t.Fatalf("unmatched %d, want 3", got)
	}
}

func TestCheckImage(t *testing.T) {
	img := []byte("firmware image bytes")
	sum := sha256.Sum256(img)
	other := sha256.Sum256([]byte("something else"))
	n := int64(len(img))
	tests := []struct {
		name      string
		n, length int64
		sum       []byte
		want      string
	}{
		{"whole and verified", n, n, sum[:], ""},
		{"no content-length", n, -1, sum[:], ""},
		{"short body", n - 1, n, sum[:], "wrong length"},
		{"long body", n + 1, -1, sum[:], "wrong length"},
		{"announced another size", n, n + 5, sum[:], "wrong content-length"},
		{"other bytes", n, n, other[:], "sha256 mismatch"},
	}
	for _, tt := range tests {
		if got := checkImage(tt.n, tt.length, tt.sum, n, sum[:]); got != tt.want {
			t.Errorf("%s: checkImage = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestRateDelay(t *testing.T) {
	for _, tt := range []struct {
		n, rate int64
		elapsed time.Duration
		want    time.Duration
	}{
		{1 << 20, 0, 0, 0},
		{1 << 20, 1 << 20, 0, time.Second},
		{1 << 20, 1 << 20, 400 * time.Millisecond, 600 * time.Millisecond},
		{64 << 10, 1 << 20, 2 * time.Second, 0},
		{4 << 20, 1 << 20, time.Second, 3 * time.Second},
	} {
		if got := rateDelay(tt.n, tt.rate, tt.elapsed); got != tt.want {
			t.Errorf("rateDelay(%d, %d, %s) = %s, want %s", tt.n, tt.rate, tt.elapsed, got, tt.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	for h, want := range map[string]time.Duration{"5": 5 * time.Second, " 0 ": 0, "": time.Second, "-3": time.Second,
		"Wed, 21 Oct 2026 07:28:00 GMT": time.Second, "3600": maxRetryAfter} {
		if got := retryAfter(h); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", h, got, want)
		}
	}
}

// imageServer serves img at /firmware/v1/<sum> to the bearer tokens it
// knows, refusing the first refuse requests with 503 too_many_downloads,
// and corrupting the body of device "bad".
type imageServer struct {
	img     []byte
	sum     string
	refuse  atomic.Int64
	served  atomic.Int64
	tokens  map[string]bool
	headers atomic.Value // the last request's Authorization
}

func (s *imageServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	s.headers.Store(auth)
	tok := strings.TrimPrefix(auth, "Bearer ")
	switch {
	case r.URL.Path != "/firmware/v1/"+s.sum:
		http.Error(w, `{"error":{"code":"not_found"}}`, http.StatusNotFound)
		return
	case !s.tokens[tok] && tok != "bad":
		http.Error(w, `{"error":{"code":"unauthorized"}}`, http.StatusUnauthorized)
		return
	case s.refuse.Add(-1) >= 0:
		w.Header().Set("Retry-After", "0")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":{"code":"too_many_downloads","message":"busy"}}`)
		return
	}
	body := s.img
	if tok == "bad" {
		body = append([]byte{body[0] ^ 1}, body[1:]...)
	}
	s.served.Add(1)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

func TestDownloaders(t *testing.T) {
	img := randomImage(100<<10, 42)
	sum := sha256.Sum256(img)
	srv := &imageServer{img: img, sum: hex.EncodeToString(sum[:]), tokens: map[string]bool{"tok-1": true, "tok-2": true}}
	srv.refuse.Store(3)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	spec := DownloadSpec{URL: hs.URL + "/firmware/v1/" + srv.sum, Tokens: []string{"tok-1", "tok-2", "bad"},
		Size: int64(len(img)), SHA256: srv.sum, RequestTimeout: 5 * time.Second, Lifetime: time.Minute}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	d, err := startDownloaders(ctx, spec, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	first := d.report()
	time.Sleep(500 * time.Millisecond)
	d.stopDrain(5 * time.Second)
	last := d.report()
	if last.Running != 0 {
		t.Fatalf("%d downloaders still running after the drain", last.Running)
	}
	if last.Refused != 3 {
		t.Fatalf("refused %d, want the server's 3", last.Refused)
	}
	// Device "bad" got a corrupted image every time; the others whole ones.
	if last.Completed == 0 || last.Completed > srv.served.Load() || last.Failures["sha256 mismatch"] == 0 || len(last.Failures) != 1 {
		t.Fatalf("completed %d of %d served, failures %v", last.Completed, srv.served.Load(), last.Failures)
	}
	if last.Bytes != srv.served.Load()*int64(len(img)) {
		t.Fatalf("received %d bytes, the server sent %d images of %d", last.Bytes, srv.served.Load(), len(img))
	}
	if last.Dials != 3 {
		t.Fatalf("%d connections opened for 3 downloaders: keep-alive did not hold", last.Dials)
	}
	if last.Duration.Count() != last.Completed || last.CPU <= 0 {
		t.Fatalf("%d durations for %d downloads, cpu %s", last.Duration.Count(), last.Completed, last.CPU)
	}
	if got := srv.headers.Load(); got != "Bearer tok-1" && got != "Bearer tok-2" && got != "Bearer bad" {
		t.Fatalf("Authorization %q", got)
	}

	// The window between two reports, as they travel.
	raw, err := json.Marshal(last)
	if err != nil {
		t.Fatal(err)
	}
	var window DownloadReport
	if err := json.Unmarshal(raw, &window); err != nil {
		t.Fatal(err)
	}
	window.Sub(first)
	if window.Completed != last.Completed-first.Completed || window.Duration.Count() != window.Completed || window.Dials != 0 {
		t.Fatalf("window %+v", window)
	}

	// At 1 MiB/s a 100 KiB image takes ~0.1 s.
	slow := spec
	slow.Tokens, slow.Rate = []string{"tok-1"}, 1<<20
	ds, err := startDownloaders(ctx, slow, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	ds.stopDrain(5 * time.Second)
	if r := ds.report(); r.Completed < 5 || r.Completed > 11 || r.Duration.Quantile(0) < 90*time.Millisecond {
		t.Fatalf("at 1 MiB/s: %d downloads of 100 KiB in 1 s, fastest %s; want about 10, each ~0.1 s", r.Completed, r.Duration.Quantile(0))
	}

	bad := spec
	bad.URL = "http://192.0.2.1:80/firmware/v1/" + srv.sum
	if _, err := startDownloaders(ctx, bad, quietLog()); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("a remote url: %v", err)
	}
	bad = spec
	bad.SHA256 = strings.ToUpper(srv.sum)
	if _, err := startDownloaders(ctx, bad, quietLog()); err == nil {
		t.Fatal("an upper-case sha256 was accepted")
	}
}

func TestUploadRelease(t *testing.T) {
	img := randomImage(3000, 7)
	var parts []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/tenants/default/firmware" || r.Header.Get("Authorization") != "Bearer syop_k" {
			http.Error(w, `{"error":{"code":"nope"}}`, http.StatusUnauthorized)
			return
		}
		mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/form-data" {
			http.Error(w, "media type", http.StatusUnsupportedMediaType)
			return
		}
		mr := multipart.NewReader(r.Body, params["boundary"])
		fields := map[string][]byte{}
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			parts = append(parts, p.FormName())
			fields[p.FormName()], _ = io.ReadAll(p)
		}
		sum := sha256.Sum256(fields["image"])
		if string(fields["model"]) == "corrupt" {
			sum[0] ^= 1
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"r1","model":%q,"version":%q,"size":%d,"sha256":%q}`, fields["model"], fields["version"], len(fields["image"]), hex.EncodeToString(sum[:]))
	}))
	t.Cleanup(api.Close)
	sum, err := uploadRelease(t.Context(), api.URL, "syop_k", "default", "load", "1.0.1", img)
	want := sha256.Sum256(img)
	if err != nil || sum != hex.EncodeToString(want[:]) {
		t.Fatalf("uploadRelease = %q, %v; want %x", sum, err, want)
	}
	if !slices.Equal(parts, []string{"model", "version", "image"}) {
		t.Fatalf("parts %v: the relay wants model and version before the image", parts)
	}
	if _, err := uploadRelease(t.Context(), api.URL, "wrong", "default", "load", "1.0.1", img); err == nil || !strings.Contains(err.Error(), "http 401") {
		t.Fatalf("wrong key: %v", err)
	}
	if _, err := uploadRelease(t.Context(), api.URL, "syop_k", "default", "corrupt", "1.0.1", img); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("a relay that stored other bytes: %v", err)
	}
}

// TestDownloadConfig loads a downloads run's relay configuration as the
// relay does.
func TestDownloadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plugins.yaml")
	for _, tt := range []struct {
		max       int
		size      int64
		wantLimit int64
	}{{32, 4 << 20, 64 << 20}, {500, 100 << 20, 100 << 20}} {
		yaml := relayConfig(8080, 8081, 100, 15*time.Second, "warn", filepath.Join(dir, "db")) + firmwareConfig(tt.max, tt.size)
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(config.Source{Path: path})
		if err != nil {
			t.Fatalf("the relay refuses the generated configuration: %v\n%s", err, yaml)
		}
		if cfg.Firmware.MaxDownloads != tt.max || int64(cfg.Firmware.MaxImageSize) != tt.wantLimit {
			t.Fatalf("firmware %+v, want max_downloads %d and max_image_size %d", cfg.Firmware, tt.max, tt.wantLimit)
		}
	}
}

func TestRandomImage(t *testing.T) {
	a, b, c := randomImage(1000, 1), randomImage(1000, 1), randomImage(1000, 2)
	if len(a) != 1000 || string(a) != string(b) || string(a) == string(c) {
		t.Fatal("randomImage is not a function of its seed")
	}
	zeros := 0
	for _, x := range a {
		if x == 0 {
			zeros++
		}
	}
	if zeros > 20 {
		t.Fatalf("%d zero bytes in 1000: not random", zeros)
	}
}

func TestParseByteSize(t *testing.T) {
	for s, want := range map[string]int64{"4MiB": 4 << 20, "512KiB": 512 << 10, "1000": 1000, "7B": 7, " 2GiB ": 2 << 30, "0": 0} {
		if got, err := ParseByteSize(s); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "4MB", "1.5MiB", "-1", "9999999999GiB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) accepted it", bad)
		}
	}
	for n, want := range map[int64]string{4 << 20: "4 MiB", 256 << 10: "256 KiB", 1000: "1000 B", 3 << 30: "3 GiB"} {
		if got := sizeText(n); got != want {
			t.Errorf("sizeText(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestLevelsAndTokens(t *testing.T) {
	if got := withBaseline([]int{8, 32}); !slices.Equal(got, []int{0, 8, 32}) {
		t.Fatalf("withBaseline(8,32) = %v", got)
	}
	if got := withBaseline([]int{0, 8, 0}); !slices.Equal(got, []int{0, 8, 0}) {
		t.Fatalf("withBaseline(0,8,0) = %v", got)
	}
	tokens := []string{"a", "b", "c"}
	if got := downloaderTokens(tokens, 5); !slices.Equal(got, []string{"c", "b", "a", "c", "b"}) {
		t.Fatalf("downloaderTokens = %v", got)
	}
}

func TestRelayDownloadCounters(t *testing.T) {
	metrics := `# TYPE switchyard_gateway_downloads_total counter
switchyard_gateway_downloads_total{result="complete"} 120
switchyard_gateway_downloads_total{result="busy"} 3
switchyard_gateway_downloads_total{result="cut"} 0
switchyard_gateway_download_bytes_total 5.0331648e+08
switchyard_gateway_downloads_active 8
go_memstats_heap_inuse_bytes 1.2e+07
go_goroutines 42
`
	samples, err := parsePromText(strings.NewReader(metrics))
	if err != nil {
		t.Fatal(err)
	}
	end := relayDownloadsOf(samples)
	if end.Bytes != 503316480 || end.Results["complete"] != 120 || end.HeapInuse != 1.2e7 || end.Goroutines != 42 || end.Active != 8 {
		t.Fatalf("counters %+v", end)
	}
	w := end.sub(relayDownloads{Bytes: 3316480, Results: map[string]float64{"complete": 20, "busy": 3}})
	if w.Bytes != 500e6 || len(w.Results) != 1 || w.Results["complete"] != 100 {
		t.Fatalf("window %+v: unchanged results must be left out", w)
	}
}

func TestDownloadTable(t *testing.T) {
	base := DownloadPhase{Downloaders: 0, Window: 20 * time.Second, Sample: 1000,
		Heartbeat: HeartbeatSummary{Sent: 20000, Answered: 20000, P50: 410 * time.Microsecond, P90: 850 * time.Microsecond,
			P99: 2100 * time.Microsecond, Max: 15 * time.Millisecond},
		RSSMedian: 60 << 20, RSSMax: 61 << 20, RelayCPU: 2.4, RelayCores: 0.12, ClientCores: 0.05, OtherCores: 0.01}
	busy := DownloadPhase{Downloaders: 32, Window: 20 * time.Second, Sample: 1000,
		Heartbeat: HeartbeatSummary{Sent: 19990, Answered: 19980, Lost: 10, P50: 3 * time.Millisecond, P90: 9 * time.Millisecond,
			P99: 41 * time.Millisecond, Max: 1230 * time.Millisecond},
		Completed: 2400, MBPerSecond: 503.3, Refused: 7, RSSMedian: 64 << 20, RSSMax: 70 << 20, RelayCPU: 19.6, RelayCores: 0.98, RelayCPUPerGB: 1.95,
		ClientCores: 0.06, LoaderCores: 0.81, OtherCores: 0}
	table := DownloadTable(DownloadRun{Phases: []DownloadPhase{base, busy}})
	for _, want := range []string{
		"| 0 | 20,000 / 20,000 (0) | 410µs / 850µs / 2.1ms / 15ms | — | — | — | 60.0 / 61.0 | 2.4 (0.12) | — | 0.05 / — / 0.01 |",
		"| 32 | 19,980 / 19,990 (10) | 3ms / 9ms / 41ms / 1.23s | 2,400 | 503.3 | 7 | 64.0 / 70.0 | 19.6 (0.98) | 1.95 | 0.06 / 0.81 / 0.00 |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if text := busy.Text(); !strings.Contains(text, "19990 sent, 19980 answered, 10 lost") || !strings.Contains(text, "7 refused (503)") {
		t.Errorf("text:\n%s", text)
	}
}
