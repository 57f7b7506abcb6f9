package device

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// statusNames is the sequence of statuses, runs of downloading folded
// into one.
func statusNames(fs []map[string]any) []string {
	var out []string
	for _, f := range fs {
		s, _ := f["status"].(string)
		if len(out) > 0 && s == "downloading" && out[len(out)-1] == "downloading" {
			continue
		}
		out = append(out, s)
	}
	return out
}

func TestOTA(t *testing.T) {
	r := newFakeRelay(t, 300_000)
	var installed atomic.Value
	d, ev := newDevice(t, r, func(c *Config) {
		c.Install = func(m Manifest, slot string) error {
			installed.Store(slotSHA(t, slot))
			return nil
		}
	})
	start(t, d)

	s1 := r.nextSession()
	if s1.hello["firmware"] != "1.4.2" || s1.hello["model"] != "esp32-s3" {
		t.Fatalf("hello %v", s1.hello)
	}
	if caps := fmt.Sprint(s1.hello["capabilities"]); caps != "[display ota]" {
		t.Fatalf("capabilities %s; want display and ota", caps)
	}
	m := r.manifest()
	s1.send(r.offer(m))
	st := s1.statuses()
	if got, want := statusNames(st), []string{"downloading", "downloaded", "verified", "installing"}; !slices.Equal(got, want) {
		t.Fatalf("statuses %v; want %v (%v)", got, want, st)
	}
	for _, f := range st {
		if f["version"] != "1.5.0" {
			t.Fatalf("status about version %v", f["version"])
		}
	}
	if st[0]["progress"] != 0.0 {
		t.Fatalf("first downloading has progress %v; want 0", st[0]["progress"])
	}
	if code := s1.waitClosed(); code != websocket.CloseNormalClosure {
		t.Fatalf("the device closed with %d before restarting; want 1000", code)
	}
	s2 := r.nextSession()
	if s2.hello["firmware"] != "1.5.0" {
		t.Fatalf("hello after the install says firmware %v; want 1.5.0", s2.hello["firmware"])
	}
	if d.Firmware() != "1.5.0" {
		t.Fatalf("Firmware() = %q", d.Firmware())
	}
	if got := installed.Load(); got != m.SHA256 {
		t.Fatalf("Install saw a slot with sha256 %v; want %s", got, m.SHA256)
	}
	reqs := r.requests()
	if len(reqs) != 1 || reqs[0].Range != "" || reqs[0].Auth != "Bearer "+r.token || reqs[0].Status != http.StatusOK {
		t.Fatalf("download requests %+v; want one whole GET with the token", reqs)
	}
	if b := ev.of(EventBooted); len(b) != 1 || b[0].Version != "1.5.0" || b[0].Reason != "" {
		t.Fatalf("booted events %+v", b)
	}
	if s := ev.of(EventStatus); len(s) != len(st) {
		t.Fatalf("%d status events for %d statuses sent", len(s), len(st))
	}
	waitFor(t, "the second connected event", func() bool { return len(ev.of(EventConnected)) == 2 })
	if c := ev.of(EventConnected); c[0].Version != "1.4.2" || c[1].Version != "1.5.0" || c[0].Session != "3f9a0c1d22e4b871" {
		t.Fatalf("connected events %+v", c)
	}
}

func TestOTAResumesCutDownload(t *testing.T) {
	r := newFakeRelay(t, 300_000)
	const cut = 100_000
	tr := &cutTransport{base: http.DefaultTransport.(*http.Transport).Clone(), cutAt: cut}
	t.Cleanup(tr.base.(*http.Transport).CloseIdleConnections)
	var installed atomic.Value
	d, _ := newDevice(t, r, func(c *Config) {
		c.HTTPClient = &http.Client{Transport: tr}
		c.Install = func(m Manifest, slot string) error {
			installed.Store(slotSHA(t, slot))
			return nil
		}
	})
	start(t, d)
	s1 := r.nextSession()
	m := r.manifest()
	s1.send(r.offer(m))
	st := s1.statuses()
	if got, want := statusNames(st), []string{"downloading", "downloaded", "verified", "installing"}; !slices.Equal(got, want) {
		t.Fatalf("statuses %v; want %v", got, want)
	}
	reqs := r.requests()
	if len(reqs) != 2 {
		t.Fatalf("download requests %+v; want the whole GET and one resumption", reqs)
	}
	if reqs[0].Range != "" {
		t.Fatalf("first request asked for %q", reqs[0].Range)
	}
	if want := fmt.Sprintf("bytes=%d-", cut); reqs[1].Range != want || reqs[1].IfRange != `"`+m.SHA256+`"` || reqs[1].Status != http.StatusPartialContent {
		t.Fatalf("resumption %+v; want Range %s, If-Range the ETag, answered 206", reqs[1], want)
	}
	if s2 := r.nextSession(); s2.hello["firmware"] != "1.5.0" {
		t.Fatalf("hello after the install: %v", s2.hello)
	}
	if got := installed.Load(); got != m.SHA256 {
		t.Fatalf("installed sha256 %v; want %s", got, m.SHA256)
	}
}

// The partial image survives the end of a session: the next offer resumes
// it, and a changed image behind the same sha256 path is sent whole.
func TestOTAResumesAcrossSessions(t *testing.T) {
	r := newFakeRelay(t, 50_000)
	d, _ := newDevice(t, r, nil)
	m := r.manifest()
	// A previous session left the first 20 000 bytes in the slot.
	if err := os.WriteFile(d.cfg.Slot, r.image[:20_000], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeMeta(d.cfg.Slot, slotMeta{SHA256: m.SHA256, ETag: `"` + m.SHA256 + `"`}); err != nil {
		t.Fatal(err)
	}
	start(t, d)
	s1 := r.nextSession()
	s1.send(r.offer(m))
	st := s1.statuses()
	if st[0]["status"] != "downloading" || st[0]["progress"] != 20_000.0 {
		t.Fatalf("first status %v; want downloading with progress 20000", st[0])
	}
	if got := statusNames(st); got[len(got)-1] != "installing" {
		t.Fatalf("statuses %v", got)
	}
	if reqs := r.requests(); len(reqs) != 1 || reqs[0].Range != "bytes=20000-" || reqs[0].Status != http.StatusPartialContent {
		t.Fatalf("requests %+v", reqs)
	}
}

func TestOTABusyHonoursRetryAfter(t *testing.T) {
	r := newFakeRelay(t, 10_000)
	r.busy = 1
	d, _ := newDevice(t, r, nil)
	start(t, d)
	s1 := r.nextSession()
	s1.send(r.offer(r.manifest()))
	if got := statusNames(s1.statuses()); got[len(got)-1] != "installing" {
		t.Fatalf("statuses %v", got)
	}
	reqs := r.requests()
	if len(reqs) != 2 || reqs[0].Status != http.StatusServiceUnavailable || reqs[1].Status != http.StatusOK {
		t.Fatalf("requests %+v; want a 503 then the image", reqs)
	}
	if wait := reqs[1].At.Sub(reqs[0].At); wait < 900*time.Millisecond {
		t.Fatalf("retried %v after a 503 with Retry-After: 1", wait)
	}
}

func TestOTATamperedImage(t *testing.T) {
	r := newFakeRelay(t, 40_000)
	m := r.manifest()
	tampered := append([]byte(nil), r.image...)
	tampered[12345] ^= 1
	r.mu.Lock()
	r.image = tampered // same path, same size, other bytes
	r.mu.Unlock()
	var installs atomic.Int32
	d, _ := newDevice(t, r, func(c *Config) {
		c.Install = func(Manifest, string) error { installs.Add(1); return nil }
	})
	start(t, d)
	s1 := r.nextSession()
	s1.send(r.offer(m))
	st := s1.statuses()
	if got, want := statusNames(st), []string{"downloading", "downloaded", "failed"}; !slices.Equal(got, want) {
		t.Fatalf("statuses %v; want %v", got, want)
	}
	if reason, _ := st[len(st)-1]["reason"].(string); !strings.HasPrefix(reason, "sha256 mismatch: got ") {
		t.Fatalf("reason %q", reason)
	}
	if installs.Load() != 0 || d.Firmware() != "1.4.2" {
		t.Fatal("installed an image that does not verify")
	}
	if _, err := os.Stat(d.cfg.Slot + ".meta"); !os.IsNotExist(err) {
		t.Fatalf("the sidecar of a refused image is kept: %v", err)
	}
}

func TestOTAFailures(t *testing.T) {
	r := newFakeRelay(t, 10_000)
	tests := []struct {
		name   string
		edit   func(*Config)
		offer  func() map[string]any
		reason string
	}{
		{"image not found", nil, func() map[string]any {
			o := r.offer(r.manifest())
			o["url"] = "/firmware/v1/" + strings.Repeat("0", 64)
			return o
		}, "download: 404 not_found: no image with this sum"},
		{"url on another host", nil, func() map[string]any {
			o := r.offer(r.manifest())
			o["url"] = "http://evil.example/firmware"
			return o
		}, `url "http://evil.example/firmware" is not an absolute path`},
		{"install fails", func(c *Config) {
			c.Install = func(Manifest, string) error { return errors.New("flash write error") }
		}, func() map[string]any { return r.offer(r.manifest()) }, "install: flash write error"},
		{"signature does not verify", nil, func() map[string]any {
			o := r.offer(r.manifest())
			o["manifest"] = strings.Replace(o["manifest"].(string), `"default"`, `"evil"`, 1)
			return o
		}, "signature does not verify"},
		{"older version", nil, func() map[string]any {
			m := r.manifest()
			m.Version = "1.0.0"
			return r.offer(m)
		}, "version 1.0.0 is not newer than 1.4.2"},
		{"too large for the slot", func(c *Config) { c.MaxImageSize = 5000 }, func() map[string]any {
			return r.offer(r.manifest())
		}, "size 10000 exceeds the update slot's 5000 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.t = t
			d, ev := newDevice(t, r, tc.edit)
			stop := start(t, d)
			s := r.nextSession()
			s.send(tc.offer())
			st := s.statuses()
			last := st[len(st)-1]
			if last["status"] == "installing" { // Install runs after it
				last = s.next()
			}
			if last["status"] != "failed" || last["reason"] != tc.reason || last["version"] == "" {
				t.Fatalf("last status %v; want failed with reason %q", last, tc.reason)
			}
			if d.Firmware() != "1.4.2" {
				t.Fatalf("firmware %q after a failure", d.Firmware())
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if code := s.waitClosed(); code != websocket.CloseNormalClosure {
				t.Fatalf("closed with %d when Run's context ended; want 1000", code)
			}
			if o := ev.of(EventOffer); len(o) != 1 {
				t.Fatalf("offer events %+v", o)
			}
		})
	}
}

func TestOTABootRollback(t *testing.T) {
	r := newFakeRelay(t, 10_000)
	d, ev := newDevice(t, r, func(c *Config) {
		c.Boot = func(Manifest) string { return "1.4.2" } // the bootloader rolled back
	})
	start(t, d)
	s1 := r.nextSession()
	s1.send(r.offer(r.manifest()))
	if got := statusNames(s1.statuses()); got[len(got)-1] != "installing" {
		t.Fatalf("statuses %v", got)
	}
	s2 := r.nextSession()
	if s2.hello["firmware"] != "1.4.2" {
		t.Fatalf("hello after the rollback says %v; want the old 1.4.2", s2.hello["firmware"])
	}
	if d.Firmware() != "1.4.2" {
		t.Fatalf("Firmware() = %q", d.Firmware())
	}
	if b := ev.of(EventBooted); len(b) != 1 || b[0].Version != "1.4.2" || b[0].Reason != "installed 1.5.0, restarted on 1.4.2" {
		t.Fatalf("booted events %+v", b)
	}
}

// One offer at a time: the repeat of an offer in progress starts no second
// download, and the session keeps heart-beating and answering while the
// download waits.
func TestOTARepeatedOfferDuringDownload(t *testing.T) {
	r := newFakeRelay(t, 10_000)
	gate := make(chan struct{})
	r.gate = gate
	d, ev := newDevice(t, r, nil)
	start(t, d)
	s1 := r.nextSession()
	offer := r.offer(r.manifest())
	s1.send(offer)
	if f := s1.next(); f["status"] != "downloading" {
		t.Fatalf("got %v; want downloading", f)
	}
	s1.send(offer)
	s1.send(map[string]any{"type": "message", "id": "m-1", "subject": "display.text", "payload": map[string]any{"text": "hi"}, "ack": true})
	s1.send(map[string]any{"type": "frame_of_the_future", "x": 1}) // ignored
	if f := s1.next(); f["type"] != "ack" || f["id"] != "m-1" {
		t.Fatalf("got %v; want the ack of m-1", f)
	}
	// Frames are handled in order: the repeated offer has been seen.
	offers := ev.of(EventOffer)
	if len(offers) != 2 || offers[0].Reason != "" || offers[1].Reason != "ignored: already in progress" {
		t.Fatalf("offer events %+v", offers)
	}
	hb := s1.heartbeats.Load()
	deadline := time.Now().Add(5 * time.Second)
	for s1.heartbeats.Load() < hb+3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s1.heartbeats.Load() < hb+3 {
		t.Fatal("no heartbeats while the download waits")
	}
	close(gate)
	st := s1.statuses()
	if got := statusNames(st); !slices.Equal(got, []string{"downloaded", "verified", "installing"}) && !slices.Equal(got, []string{"downloading", "downloaded", "verified", "installing"}) {
		t.Fatalf("statuses %v", got)
	}
	if reqs := r.requests(); len(reqs) != 1 {
		t.Fatalf("%d download requests; want 1", len(reqs))
	}
	if m := ev.of(EventMessage); len(m) != 1 {
		t.Fatalf("message events %+v", m)
	}
}

func TestSendData(t *testing.T) {
	r := newFakeRelay(t, 10)
	d, _ := newDevice(t, r, func(c *Config) { c.Slot = "" })
	if err := d.Send("sensors.temp", 1, ""); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Send before connecting: %v", err)
	}
	start(t, d)
	s := r.nextSession()
	if caps := fmt.Sprint(s.hello["capabilities"]); caps != "[display]" {
		t.Fatalf("capabilities %s without a slot; want no ota", caps)
	}
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if err = d.Send("sensors.temp", map[string]float64{"c": 21.5}, "r-1"); !errors.Is(err, ErrNotConnected) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	f := s.next()
	if f["type"] != "data" || f["stream"] != "sensors.temp" || f["id"] != "r-1" || fmt.Sprint(f["payload"]) != "map[c:21.5]" {
		t.Fatalf("data frame %v", f)
	}
	// Without a slot offers are ignored, and nothing is sent.
	s.send(r.offer(r.manifest()))
	s.send(map[string]any{"type": "message", "id": "m-2", "ack": true})
	if f := s.next(); f["type"] != "ack" {
		t.Fatalf("got %v; want only the ack", f)
	}
}

func TestCloseCodes(t *testing.T) {
	for _, code := range []int{4003, 4004} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			r := newFakeRelay(t, 10)
			d, ev := newDevice(t, r, nil)
			go func() {
				s := r.nextSession()
				s.close(code, "token rotated")
			}()
			err := runUntilStopped(t, d)
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Code != code || ce.Reason != "token rotated" {
				t.Fatalf("Run: %v; want a CloseError %d", err, code)
			}
			if c := ev.of(EventClosed); len(c) != 1 || c[0].CloseCode != code {
				t.Fatalf("closed events %+v", c)
			}
		})
	}
	t.Run("401", func(t *testing.T) {
		r := newFakeRelay(t, 10)
		d, ev := newDevice(t, r, func(c *Config) { c.Token = "sydev_revoked" })
		err := runUntilStopped(t, d)
		var re *RefusedError
		if !errors.As(err, &re) || re.Status != 401 || re.Code != "unauthorized" {
			t.Fatalf("Run: %v; want a RefusedError 401", err)
		}
		if f := ev.of(EventConnectFailed); len(f) != 1 || f[0].CloseCode != 401 {
			t.Fatalf("connect_failed events %+v", f)
		}
	})
	t.Run("1001 waits the hinted delay", func(t *testing.T) {
		r := newFakeRelay(t, 10)
		d, _ := newDevice(t, r, nil)
		start(t, d)
		s1 := r.nextSession()
		s1.close(websocket.CloseGoingAway, "shutdown; reconnect in 300ms")
		closedAt := time.Now()
		s1.waitClosed()
		r.nextSession()
		if wait := time.Since(closedAt); wait < 300*time.Millisecond {
			t.Fatalf("reconnected %v after a 1001 asking for 300ms", wait)
		}
	})
	t.Run("4008 reconnects at once", func(t *testing.T) {
		r := newFakeRelay(t, 10)
		d, _ := newDevice(t, r, func(c *Config) {})
		d.backoffBase = time.Minute // would fail the test if used
		start(t, d)
		r.nextSession().close(4008, "heartbeat timeout")
		r.nextSession()
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s in 5 s", what)
		}
	}
}

// Run's context ending while the relay has not said welcome yet ends Run
// at once.
func TestCancelBeforeWelcome(t *testing.T) {
	upgraded := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c, err := upgrader.Upgrade(w, req, nil)
		if err != nil {
			return
		}
		defer c.Close()
		upgraded <- struct{}{}
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	d, err := New(Config{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, d)
	<-upgraded
	began := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > time.Second {
		t.Fatalf("Run took %v to return", took)
	}
}

func TestReconnectDelay(t *testing.T) {
	d := &Device{backoffBase: time.Second, backoffMax: time.Minute}
	within := func(got, lo, hi time.Duration) {
		t.Helper()
		if got < lo || got > hi {
			t.Fatalf("delay %v; want it in [%v, %v]", got, lo, hi)
		}
	}
	fails := 0
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute} {
		got := d.reconnectDelay(ending{code: 1006}, &fails)
		if fails != i+1 {
			t.Fatalf("fails = %d", fails)
		}
		within(got, want, want+want/2)
	}
	within(d.reconnectDelay(ending{welcomed: true, code: 1006}, &fails), time.Second, 1500*time.Millisecond)
	within(d.reconnectDelay(ending{welcomed: true, code: 1001, reason: "shutdown; reconnect in 1m30s"}, &fails), 90*time.Second, 180*time.Second)
	within(d.reconnectDelay(ending{welcomed: true, code: 1001, reason: "going away"}, &fails), time.Second, 1500*time.Millisecond)
	within(d.reconnectDelay(ending{welcomed: true, code: 4008}, &fails), 0, 0)
	within(d.reconnectDelay(ending{welcomed: true, code: 4029}, &fails), 0, 0)
	within(d.reconnectDelay(ending{restart: true, welcomed: true}, &fails), 0, 0)
	within(d.reconnectDelay(ending{code: 1006, retryAfter: 5 * time.Second}, &fails), 5*time.Second, 10*time.Second)
	fails = 0
	d.reconnectDelay(ending{welcomed: true, code: 4002}, &fails)
	within(d.reconnectDelay(ending{welcomed: true, code: 4002}, &fails), 2*time.Second, 3*time.Second) // keeps backing off
}

func TestNewChecksConfig(t *testing.T) {
	good := Config{URL: "ws://127.0.0.1:8080/ws/device", Token: "t", Model: "m", Firmware: "1.0.0"}
	for name, edit := range map[string]func(*Config){
		"http URL":      func(c *Config) { c.URL = "http://127.0.0.1/ws/device" },
		"no host":       func(c *Config) { c.URL = "ws:///ws/device" },
		"no token":      func(c *Config) { c.Token = "" },
		"long model":    func(c *Config) { c.Model = strings.Repeat("m", 65) },
		"control char":  func(c *Config) { c.Firmware = "1.0.0\n" },
		"empty cap":     func(c *Config) { c.Capabilities = []string{""} },
		"too many caps": func(c *Config) { c.Capabilities = make([]string, 33) },
		"33 with ota":   func(c *Config) { c.Slot = "x"; c.Capabilities = strings.Split(strings.Repeat("c,", 31)+"c", ",") },
	} {
		c := good
		edit(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
	d, err := New(good)
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := d.imageURL("/firmware/v1/abc?x=1"); u != "http://127.0.0.1:8080/firmware/v1/abc?x=1" {
		t.Fatalf("imageURL = %q", u)
	}
	good.URL = "wss://relay.example/ws/device"
	d, _ = New(good)
	if u, _ := d.imageURL("/firmware/v1/abc"); u != "https://relay.example/firmware/v1/abc" {
		t.Fatalf("imageURL = %q", u)
	}
	for _, bad := range []string{"//evil.example/x", "https://relay.example/x", "firmware/v1/abc", ""} {
		if u, err := d.imageURL(bad); err == nil {
			t.Errorf("imageURL(%q) = %q", bad, u)
		}
	}
}

func TestTruncReason(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	got := truncReason(long)
	if len(got) > 256 || !strings.HasPrefix(long, got) || len(got) < 255 {
		t.Fatalf("truncReason cut to %d bytes", len(got))
	}
	if truncReason("") == "" {
		t.Fatal("empty reason")
	}
}

func TestParseContentRange(t *testing.T) {
	for in, want := range map[string][3]int64{
		"bytes 100-299/300": {100, 300, 1},
		"bytes 0-0/*":       {0, -1, 1},
		"bytes 100-299/200": {0, 0, 0},
		"bytes */300":       {0, 0, 0},
		"items 1-2/3":       {0, 0, 0},
		"bytes 5-4/10":      {0, 0, 0},
	} {
		first, total, ok := parseContentRange(in)
		if ok != (want[2] == 1) || ok && (first != want[0] || total != want[1]) {
			t.Errorf("parseContentRange(%q) = %d, %d, %v", in, first, total, ok)
		}
	}
}
