// Package apptest starts a whole Switchyard in a test — embedded store in the
// test's temp folder, gateway and admin API on free loopback ports — and
// gives the test an HTTP client for the API and a real WebSocket client
// (gorilla/websocket, an implementation independent of the gateway's nbio)
// for devices. Nothing in it is a mock.
package apptest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchyard/switchyard/graph/dgraph/dgraphtest"
	"github.com/switchyard/switchyard/runtime/app"
	"github.com/switchyard/switchyard/runtime/config"
)

// OperatorKey is the operator API key every test relay uses.
const OperatorKey = "test-operator-key-0123456789abcdef"

// Relay is a running Switchyard.
type Relay struct {
	T      testing.TB
	App    *app.App
	Config *config.Config
	API    string // http://127.0.0.1:port
	WS     string // ws://127.0.0.1:port/ws/device

	// DeviceTokens holds the tokens of devices the configuration declared
	// and this start created, by "tenant/device".
	DeviceTokens map[string]string

	stopped *bool
}

// Start runs a relay with the default configuration changed by edit (may be
// nil), stopped at the end of the test. dataDir (may be "") reuses a data
// folder, to test restarts.
func Start(t testing.TB, dataDir string, edit func(*config.Config)) *Relay {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	cfg := config.Default()
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.API.Listen = "127.0.0.1:0"
	cfg.API.OperatorKey = OperatorKey
	cfg.Store.Embedded.Path = filepath.Join(dataDir, "switchyard.db")
	cfg.Gateway.LastSeenFlush = 50 * time.Millisecond
	cfg.Gateway.DrainTimeout = 2 * time.Second // devices that do not read never answer the close
	// One compilation cache for every relay of the test process: a Go guest
	// compiles in seconds (much longer under -race), once.
	cfg.WASM.CacheDir = WASMCache()
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test configuration: %v", err)
	}
	return launch(t, &cfg, nil, false)
}

// StartFile runs a relay whose configuration is the file at path, loaded
// the way `switchyard run -c path` loads it, with the test's loopback
// listeners, operator key and data folder set as flags would set them (so
// a reload keeps them). watch reloads the file when it changes.
func StartFile(t testing.TB, path string, watch bool) *Relay {
	t.Helper()
	dataDir := t.TempDir()
	src := config.Source{Path: path, Overrides: map[string]string{
		"gateway.listen":          "127.0.0.1:0",
		"api.listen":              "127.0.0.1:0",
		"api.operator_key":        OperatorKey,
		"store.embedded.path":     filepath.Join(dataDir, "switchyard.db"),
		"gateway.last_seen_flush": "50ms",
		"gateway.drain_timeout":   "2s",
		"wasm.cache_dir":          WASMCache(),
	}}
	cfg, err := config.Load(src)
	if err != nil {
		t.Fatalf("test configuration %s: %v", path, err)
	}
	return launch(t, cfg, &src, watch)
}

// launch starts a relay on cfg; src, when set, is where it reloads from.
func launch(t testing.TB, cfg *config.Config, src *config.Source, watch bool) *Relay {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(&tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	tokens := map[string]string{}
	a, err := app.Start(context.Background(), cfg, app.Options{Logger: log, Version: "test", Source: src, Watch: watch,
		DeviceToken: func(tenant, device, token string) { tokens[tenant+"/"+device] = token }})
	if err != nil {
		t.Fatalf("start relay: %v", err)
	}
	r := &Relay{T: t, App: a, Config: cfg, DeviceTokens: tokens,
		API: "http://" + a.APIAddr().String(),
		WS:  "ws://" + a.GatewayAddr().String() + cfg.Gateway.Path,
	}
	r.stopped = new(bool)
	t.Cleanup(r.Stop)
	return r
}

// OnDgraph returns a configuration edit that puts the relay's graph on a
// fresh installation of the Dgraph test cluster c.
func OnDgraph(c *dgraphtest.Cluster) func(*config.Config) {
	opts := c.Options(dgraphtest.Install())
	return func(cfg *config.Config) {
		cfg.Store.Backend = "dgraph"
		cfg.Store.Dgraph.Addresses = opts.Addresses
		cfg.Store.Dgraph.HTTP = opts.HTTP
		cfg.Store.Dgraph.Password = opts.Password
		cfg.Store.Dgraph.Install = opts.Install
		cfg.Store.Dgraph.ConnectTimeout = opts.ConnectTimeout
		cfg.EncryptionKey = opts.EncryptionKey
	}
}

// Stop stops the relay (idempotent with the test's cleanup).
func (r *Relay) Stop() {
	r.T.Helper()
	if *r.stopped {
		return
	}
	*r.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.App.Stop(ctx); err != nil {
		r.T.Errorf("stop relay: %v", err)
	}
}

type tlog struct{ t testing.TB }

func (w *tlog) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// Do sends an API request with the operator key; body may be nil, a string
// (sent verbatim) or a value (sent as JSON). It returns the status and the
// decoded JSON body (nil when empty).
func (r *Relay) Do(method, path string, body any) (int, map[string]any) {
	r.T.Helper()
	return r.DoAs(OperatorKey, method, path, body)
}

// WASM is a request body DoAs sends as application/wasm (a module upload).
type WASM []byte

// Form is a request body DoAs sends as multipart/form-data (a firmware
// upload): the encoded parts and the content type with their boundary.
type Form struct {
	ContentType string
	Body        []byte
}

// NewForm encodes text fields, in order, then a file part named file (none
// when data is nil).
func NewForm(fields [][2]string, file string, data []byte) Form {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, f := range fields {
		_ = mw.WriteField(f[0], f[1])
	}
	if data != nil {
		w, _ := mw.CreateFormFile(file, file+".bin")
		_, _ = w.Write(data)
	}
	_ = mw.Close()
	return Form{ContentType: mw.FormDataContentType(), Body: body.Bytes()}
}

// DoAs is Do with another key ("" sends no Authorization header).
func (r *Relay) DoAs(key, method, path string, body any) (int, map[string]any) {
	r.T.Helper()
	var rd io.Reader
	contentType := "application/json"
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case WASM:
		rd, contentType = bytes.NewReader(b), "application/wasm"
	case Form:
		rd, contentType = bytes.NewReader(b.Body), b.ContentType
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			r.T.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, r.API+path, rd)
	if err != nil {
		r.T.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			r.T.Fatalf("%s %s: status %d, body is not a JSON object: %q", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}

// CreateDevice creates a device in tenant and returns its token.
func (r *Relay) CreateDevice(tenant, id string, labels map[string]string) string {
	r.T.Helper()
	status, body := r.Do("POST", "/api/v1/tenants/"+tenant+"/devices", map[string]any{"id": id, "model": "test", "labels": labels})
	if status != http.StatusCreated {
		r.T.Fatalf("create device %s/%s: %d %v", tenant, id, status, body)
	}
	return body["token"].(string)
}

// CreateKey creates the API key id of tenant and returns the key.
func (r *Relay) CreateKey(tenant, id string) string {
	r.T.Helper()
	status, body := r.Do("POST", "/api/v1/tenants/"+tenant+"/keys", map[string]any{"id": id, "name": "test key " + id})
	if status != http.StatusCreated {
		r.T.Fatalf("create API key %s/%s: %d %v", tenant, id, status, body)
	}
	return body["key"].(string)
}

// Device is a connected test device.
type Device struct {
	T    testing.TB
	Conn *websocket.Conn
}

// Dial opens a WebSocket with the token in the Authorization header.
func (r *Relay) Dial(tok string) (*websocket.Conn, *http.Response, error) {
	h := http.Header{}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	return d.Dial(r.WS, h)
}

// Connect dials with tok, says hello and reads the welcome.
func (r *Relay) Connect(tok string) *Device {
	r.T.Helper()
	c, resp, err := r.Dial(tok)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		r.T.Fatalf("dial: %v (status %d)", err, status)
	}
	r.T.Cleanup(func() { c.Close() })
	d := &Device{T: r.T, Conn: c}
	d.Send(map[string]any{"type": "hello", "protocol": 1, "model": "test", "firmware": "1.2.3", "capabilities": []string{"display"}})
	if w := d.Read(); w["type"] != "welcome" {
		r.T.Fatalf("want welcome, got %v", w)
	}
	return d
}

// Send writes one JSON frame.
func (d *Device) Send(f map[string]any) {
	d.T.Helper()
	if err := d.Conn.WriteJSON(f); err != nil {
		d.T.Fatalf("send %v: %v", f, err)
	}
}

// Read reads one JSON frame within 5 s.
func (d *Device) Read() map[string]any {
	d.T.Helper()
	f, err := d.TryRead(5 * time.Second)
	if err != nil {
		d.T.Fatalf("read: %v", err)
	}
	return f
}

// TryRead reads one JSON frame within timeout.
func (d *Device) TryRead(timeout time.Duration) (map[string]any, error) {
	_ = d.Conn.SetReadDeadline(time.Now().Add(timeout))
	var f map[string]any
	err := d.Conn.ReadJSON(&f)
	return f, err
}

// ReadUntil reads frames until one has the given type, within 5 s.
func (d *Device) ReadUntil(typ string) map[string]any {
	d.T.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		f, err := d.TryRead(time.Until(deadline))
		if err != nil {
			d.T.Fatalf("waiting for a %q frame: %v", typ, err)
		}
		if f["type"] == typ {
			return f
		}
	}
	d.T.Fatalf("no %q frame within 5s", typ)
	return nil
}

// CloseCode waits (up to timeout) for the relay to close the connection and
// returns the close code and reason.
func (d *Device) CloseCode(timeout time.Duration) (int, string) {
	d.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_ = d.Conn.SetReadDeadline(deadline)
		_, _, err := d.Conn.ReadMessage()
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code, ce.Text
		}
		d.T.Fatalf("want a close frame, got %v", err)
		return 0, ""
	}
}

var (
	pluginsOnce sync.Once
	pluginsDir  string
	pluginsErr  error
)

// Plugins builds the shipped WASM plugins (plugins/build.sh, as `make
// plugins` does: into bin/plugins, a no-op when up to date) once per test
// process and returns the folder holding <kind>.<name>.wasm.
func Plugins(t testing.TB) string {
	t.Helper()
	pluginsOnce.Do(func() {
		root := repoRoot()
		pluginsDir = filepath.Join(root, "bin", "plugins")
		cmd := exec.Command("bash", filepath.Join(root, "plugins", "build.sh"), pluginsDir)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			pluginsErr = fmt.Errorf("plugins/build.sh: %v\n%s", err, out)
		}
	})
	if pluginsErr != nil {
		t.Fatal(pluginsErr)
	}
	return pluginsDir
}

// binary is a Go program built once per test process.
type binary struct {
	pkg  string // relative to the repository
	once sync.Once
	path string
	err  error
}

var (
	relay      = &binary{pkg: "./runtime/cmd/switchyard"}
	testPlugin = &binary{pkg: "./runtime/host/process/testdata/testplugin"}
)

// build builds b into a temp folder (once) and returns its path and sha256.
func (b *binary) build(t testing.TB) (path, sum string) {
	t.Helper()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "apptest-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, filepath.Base(b.pkg))
		cmd := exec.Command("go", "build", "-o", b.path, b.pkg)
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	data, err := os.ReadFile(b.path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	return b.path, hex.EncodeToString(h[:])
}

// RelayBinary builds the relay (runtime/cmd/switchyard, with every shipped
// built-in) once per test process and returns its path and sha256 (hex): a
// process plugin module for tests, served by `switchyard plugin serve`.
func RelayBinary(t testing.TB) (path, sum string) { return relay.build(t) }

// TestPluginBinary builds the process plugin of the process host's tests
// (runtime/host/process/testdata/testplugin: transforms.test-upper, which
// upper-cases payloads, and others) once per test process and returns its
// path and sha256 (hex).
func TestPluginBinary(t testing.TB) (path, sum string) { return testPlugin.build(t) }

// WASMCache is the compilation cache every test relay of the repository
// shares (bin/wasm-cache-test).
func WASMCache() string { return filepath.Join(repoRoot(), "bin", "wasm-cache-test") }

// repoRoot is the repository's top folder (the test binary runs in the
// package's folder, so it is found from this file).
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
