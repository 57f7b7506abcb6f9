package device

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchyard/switchyard/firmware/manifest"
)

// fakeRelay is the relay side of the tests, built from real parts only: a
// gorilla/websocket server that speaks enough of protocol v1
// (firmware/PROTOCOL.md §1–§3) to say welcome, answer heartbeats and send
// offers, and that records what the device sends; and an image download
// endpoint (§8.4) served with http.ServeContent. That endpoint stands in
// for the relay's, which is being written in parallel (firmware/ and
// runtime/): ServeContent gives the same Range, If-Range (strong ETag) and
// 206/416 behaviour the spec asks of it.
type fakeRelay struct {
	t     *testing.T
	srv   *httptest.Server
	token string
	priv  ed25519.PrivateKey
	pub   ed25519.PublicKey

	sessions chan *relaySession

	mu    sync.Mutex
	image []byte // served at /firmware/v1/<sha>
	sha   string
	busy  int           // answer this many downloads with 503 and Retry-After: 1 first
	gate  chan struct{} // when set, downloads wait for it to close
	reqs  []download    // every download request
}

type download struct {
	Range, IfRange, Auth string
	Status               int
	At                   time.Time
}

// relaySession is one device connection as the relay sees it.
type relaySession struct {
	t          *testing.T
	conn       *websocket.Conn
	hello      map[string]any
	wmu        sync.Mutex
	frames     chan map[string]any // what the device sent, but hello and heartbeats
	heartbeats atomic.Int64
	closed     chan struct{}
	closeCode  int // valid once closed is closed
}

func newFakeRelay(t *testing.T, imageSize int) *fakeRelay {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeRelay{t: t, token: "sydev_test", priv: priv, pub: pub, sessions: make(chan *relaySession, 1024)}
	r.setImage(randomBytes(t, imageSize))
	mux := http.NewServeMux()
	mux.HandleFunc("/ws/device", r.serveWS)
	mux.HandleFunc("/firmware/v1/", r.serveImage)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func (r *fakeRelay) setImage(b []byte) {
	sum := sha256.Sum256(b)
	r.mu.Lock()
	r.image, r.sha = b, hex.EncodeToString(sum[:])
	r.mu.Unlock()
}

func (r *fakeRelay) wsURL() string {
	return "ws" + strings.TrimPrefix(r.srv.URL, "http") + "/ws/device"
}

func (r *fakeRelay) requests() []download {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]download(nil), r.reqs...)
}

// manifest is the manifest of the served image: esp32-s3, 1.5.0.
func (r *fakeRelay) manifest() Manifest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Manifest{
		Tenant: "default", Model: "esp32-s3", Version: "1.5.0", MinVersion: "1.2.0",
		Size: int64(len(r.image)), SHA256: r.sha, Notes: "Fixes the backlight.",
		IssuedAt: time.Now().UTC().Truncate(time.Second),
	}
}

// offer is the firmware_offer frame of m, signed as the relay signs it.
func (r *fakeRelay) offer(m Manifest) map[string]any {
	o, err := manifest.Sign(m, r.priv)
	if err != nil {
		r.t.Fatal(err)
	}
	return map[string]any{
		"type": "firmware_offer", "manifest": o.Manifest, "key_id": o.KeyID, "signature": o.Signature,
		"url": "/firmware/v1/" + m.SHA256,
	}
}

func refuse(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Connection", "close")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard"`)
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, msg)
}

var upgrader = websocket.Upgrader{}

func (r *fakeRelay) serveWS(w http.ResponseWriter, req *http.Request) {
	if req.Header.Get("Authorization") != "Bearer "+r.token {
		refuse(w, http.StatusUnauthorized, "unauthorized", "unknown token")
		return
	}
	c, err := upgrader.Upgrade(w, req, nil)
	if err != nil {
		return
	}
	defer c.Close()
	s := &relaySession{t: r.t, conn: c, frames: make(chan map[string]any, 256), closed: make(chan struct{})}
	if err := c.ReadJSON(&s.hello); err != nil || s.hello["type"] != "hello" || s.hello["protocol"] != 1.0 {
		r.t.Errorf("relay: first frame %v, %v; want a hello with protocol 1", s.hello, err)
		return
	}
	s.send(map[string]any{
		"type": "welcome", "protocol": 1, "session": "3f9a0c1d22e4b871", "device": "kitchen-display",
		"heartbeat_interval_ms": 50, "heartbeat_timeout_ms": 2000, "max_frame_size": 65536,
		"time": time.Now().UTC().Format(time.RFC3339Nano), "future_member": true,
	})
	r.sessions <- s
	defer close(s.closed)
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			s.closeCode = websocket.CloseAbnormalClosure
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				s.closeCode = ce.Code
			}
			return
		}
		var f map[string]any
		if err := json.Unmarshal(b, &f); err != nil {
			r.t.Errorf("relay: device sent %q: %v", b, err)
			return
		}
		if f["type"] == "heartbeat" {
			s.heartbeats.Add(1)
			s.send(map[string]any{"type": "heartbeat", "seq": f["seq"], "time": time.Now().UTC().Format(time.RFC3339Nano)})
			continue
		}
		s.frames <- f
	}
}

func (s *relaySession) send(v any) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.WriteJSON(v)
}

func (s *relaySession) close(code int, reason string) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason))
}

// next returns the next frame the device sent (heartbeats aside).
func (s *relaySession) next() map[string]any {
	s.t.Helper()
	select {
	case f := <-s.frames:
		return f
	case <-time.After(5 * time.Second):
		s.t.Fatal("relay: no frame from the device in 5 s")
		return nil
	}
}

// statuses collects firmware_status frames up to installing or failed.
func (s *relaySession) statuses() []map[string]any {
	s.t.Helper()
	var got []map[string]any
	for {
		f := s.next()
		if f["type"] != "firmware_status" {
			s.t.Fatalf("relay: unexpected frame %v", f)
		}
		got = append(got, f)
		if f["status"] == "installing" || f["status"] == "failed" {
			return got
		}
	}
}

// waitClosed waits for the device to end the connection and returns the
// close code it sent.
func (s *relaySession) waitClosed() int {
	s.t.Helper()
	select {
	case <-s.closed:
		return s.closeCode
	case <-time.After(5 * time.Second):
		s.t.Fatal("relay: the device did not close the connection")
		return 0
	}
}

func (r *fakeRelay) nextSession() *relaySession {
	r.t.Helper()
	select {
	case s := <-r.sessions:
		return s
	case <-time.After(5 * time.Second):
		r.t.Fatal("relay: no connection from the device in 5 s")
		return nil
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (r *fakeRelay) serveImage(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	image, sha, gate := r.image, r.sha, r.gate
	busy := r.busy > 0
	if busy {
		r.busy--
	}
	r.mu.Unlock()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		r.mu.Lock()
		r.reqs = append(r.reqs, download{
			Range: req.Header.Get("Range"), IfRange: req.Header.Get("If-Range"), Auth: req.Header.Get("Authorization"),
			Status: rec.status, At: time.Now(),
		})
		r.mu.Unlock()
	}()
	switch {
	case req.Header.Get("Authorization") != "Bearer "+r.token:
		refuse(rec, http.StatusUnauthorized, "unauthorized", "unknown token")
		return
	case busy:
		rec.Header().Set("Retry-After", "1")
		refuse(rec, http.StatusServiceUnavailable, "too_many_downloads", "the relay serves its maximum of concurrent downloads")
		return
	case req.URL.Path != "/firmware/v1/"+sha:
		refuse(rec, http.StatusNotFound, "not_found", "no image with this sum")
		return
	}
	if gate != nil {
		select {
		case <-gate:
		case <-req.Context().Done():
			return
		}
	}
	sum, _ := hex.DecodeString(sha)
	rec.Header().Set("Content-Type", "application/octet-stream")
	rec.Header().Set("ETag", `"`+sha+`"`)
	rec.Header().Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum)+":")
	http.ServeContent(rec, req, "", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), bytes.NewReader(image))
}

// events records a device's events.
type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

func (e *events) of(kind string) []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Event
	for _, ev := range e.all {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// newDevice makes a device of r: esp32-s3 running 1.4.2, trusting r's key,
// with short backoffs.
func newDevice(t *testing.T, r *fakeRelay, edit func(*Config)) (*Device, *events) {
	t.Helper()
	ev := &events{}
	c := Config{
		URL: r.wsURL(), Token: r.token, Model: "esp32-s3", Firmware: "1.4.2",
		Capabilities: []string{"display"}, TrustedKeys: []ed25519.PublicKey{r.pub},
		Slot: filepath.Join(t.TempDir(), "slot.bin"), OnEvent: ev.add,
	}
	if edit != nil {
		edit(&c)
	}
	d, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	d.backoffBase = 20 * time.Millisecond
	d.retryBase = 20 * time.Millisecond
	return d, ev
}

// start runs d until the test ends (or stop is called) and checks that Run
// left no goroutine behind.
func start(t *testing.T, d *Device) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- d.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-res:
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return 5 s after its context ended")
			}
			checkNoDeviceGoroutines(t)
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// runUntilStopped runs d until Run returns by itself.
func runUntilStopped(t *testing.T, d *Device) error {
	t.Helper()
	res := make(chan error, 1)
	go func() { res <- d.Run(context.Background()) }()
	select {
	case err := <-res:
		checkNoDeviceGoroutines(t)
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

// checkNoDeviceGoroutines fails when a goroutine is still in the
// package's code (not its tests): Run must wait for all it started. A
// goroutine that has called wg.Done may take a moment to exit, hence the
// few retries (as go.uber.org/goleak does).
func checkNoDeviceGoroutines(t *testing.T) {
	t.Helper()
	var left []string
	for try := 0; try < 50; try++ {
		left = left[:0]
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			for _, fn := range []string{"device.(*session)", "device.(*Device)", "device.(*job)"} {
				if strings.Contains(g, fn) {
					left = append(left, g)
					break
				}
			}
		}
		if len(left) == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("goroutines left behind after Run returned:\n%s", strings.Join(left, "\n\n"))
}

// cutTransport cuts the body of the first 200 answer after cutAt bytes, as
// a dropped connection would.
type cutTransport struct {
	base  http.RoundTripper
	cutAt int64
	done  atomic.Bool
}

func (c *cutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusOK && c.done.CompareAndSwap(false, true) {
		resp.Body = &cutBody{ReadCloser: resp.Body, left: c.cutAt}
	}
	return resp, err
}

type cutBody struct {
	io.ReadCloser
	left int64
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// slotSHA is the sha256 of a file, for Install callbacks.
func slotSHA(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
