package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchyard/switchyard/runtime/apptest"
)

// These tests run the real binary, built once for the package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchyard-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "switchyard")
	// Without -race: these tests are about the process (flags, signals, exit
	// codes); the race detector runs over the same code in the in-process
	// suites, and it makes compiling the demo's Go guests many times slower.
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build switchyard:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func switchyard(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(cleanEnv(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

// cleanEnv is the test's environment without SWITCHYARD_* settings and
// GOGC (TestGCPercent chooses it).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SWITCHYARD_") && !strings.HasPrefix(kv, "GOGC=") {
			env = append(env, kv)
		}
	}
	return env
}

func TestValidate(t *testing.T) {
	t.Run("broken file", func(t *testing.T) {
		_, stderr, code := switchyard(t, nil, "validate", "-c", "testdata/broken.yaml")
		if code != 1 {
			t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
		}
		for _, want := range []string{
			"broken.yaml:2: gateway.listen",
			"broken.yaml:3: gateway.max_connections",
			"broken.yaml:4: gateway.heartbeat_interval",
			"broken.yaml:5: gateway.colour",
			"broken.yaml:9: store.backend",
			"broken.yaml:12: junctions[0].source",
			"broken.yaml:13: junctions[0].targets",
		} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
	})
	t.Run("env typo", func(t *testing.T) {
		_, stderr, code := switchyard(t, []string{"SWITCHYARD_GATEWAY__MAX_CONECTIONS=5"}, "validate", "-c", "../../../plugins.yaml")
		if code != 1 || !strings.Contains(stderr, "SWITCHYARD_GATEWAY__MAX_CONECTIONS") {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, stderr, code := switchyard(t, nil, "validate", "-c", "testdata/nope.yaml")
		if code != 1 || !strings.Contains(stderr, "nope.yaml") {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr)
		}
	})
	t.Run("root plugins.yaml", func(t *testing.T) {
		stdout, stderr, code := switchyard(t, nil, "validate", "-c", "../../../plugins.yaml")
		if code != 0 || !strings.Contains(stdout, "ok") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
	})
	t.Run("usage", func(t *testing.T) {
		if _, _, code := switchyard(t, nil, "frobnicate"); code != 2 {
			t.Fatalf("unknown command: exit %d, want 2", code)
		}
	})
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type process struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	api    string
	ws     string
}

// start runs `switchyard run` with the root plugins.yaml (its demo plugins
// built first) on free loopback ports with data in dir.
func start(t *testing.T, dir string, env ...string) *process {
	t.Helper()
	apptest.Plugins(t)
	return startWith(t, dir, "../../../plugins.yaml", env...)
}

// startWith is start with the configuration file config.
func startWith(t *testing.T, dir, config string, env ...string) *process {
	t.Helper()
	gw, api := freePort(t), freePort(t)
	cmd := exec.Command(binary, "run", "-c", config,
		"-set", "gateway.listen="+gw, "-set", "api.listen="+api,
		"-set", "store.embedded.path="+filepath.Join(dir, "switchyard.db"),
		"-set", "wasm.cache_dir="+apptest.WASMCache())
	cmd.Env = append(cleanEnv(), env...)
	p := &process{cmd: cmd, stderr: &lockedBuffer{}, api: "http://" + api, ws: "ws://" + gw + "/ws/device"}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(p.api + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay not ready in 60s; stderr:\n%s", p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *process) stop(t *testing.T) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("relay did not exit within 20s of SIGTERM; stderr:\n%s", p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// The first start prints a generated operator key once; the key works and
// survives a restart, which prints nothing. SIGTERM sends 1001 to devices and
// exits 0.
func TestRunLifecycle(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	key := ""
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	for sc.Scan() {
		if f := strings.TrimSpace(sc.Text()); strings.HasPrefix(f, "syop_") {
			key = f
		}
	}
	if key == "" {
		t.Fatalf("no generated operator key printed; stderr:\n%s", p.stderr.String())
	}

	tok := createDevice(t, p.api, key, "d1")
	conn, _, err := websocket.DefaultDialer.Dial(p.ws+"?token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.WriteJSON(map[string]any{"type": "hello", "protocol": 1, "model": "m", "firmware": "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	var welcome map[string]any
	if err := conn.ReadJSON(&welcome); err != nil || welcome["type"] != "welcome" {
		t.Fatalf("welcome: %v %v", welcome, err)
	}

	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", code, p.stderr.String())
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = conn.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("device saw %v, want close 1001", err)
	}

	p2 := start(t, dir)
	if strings.Contains(p2.stderr.String(), "syop_") {
		t.Fatalf("second start printed a key again:\n%s", p2.stderr.String())
	}
	createDevice(t, p2.api, key, "d2")
	p2.stop(t)
}

// A configured operator key is used as is, and a second relay on the same
// data file fails with a clear error instead of hanging.
func TestConfiguredKeyAndLockedStore(t *testing.T) {
	dir := t.TempDir()
	key := "a-key-chosen-by-the-operator-0001"
	p := start(t, dir, "SWITCHYARD_API__OPERATOR_KEY="+key)
	createDevice(t, p.api, key, "d1")

	_, stderr, code := switchyard(t, nil, "run", "-c", "../../../plugins.yaml",
		"-set", "gateway.listen="+freePort(t), "-set", "api.listen="+freePort(t),
		"-set", "store.embedded.path="+filepath.Join(dir, "switchyard.db"))
	if code != 1 || !strings.Contains(stderr, "locked") {
		t.Fatalf("second relay on the same store: exit %d, stderr:\n%s", code, stderr)
	}
	p.stop(t)
}

func createDevice(t *testing.T, api, key, id string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), "POST", api+"/api/v1/tenants/default/devices",
		strings.NewReader(`{"id":"`+id+`"}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &out) != nil || out.Token == "" {
		t.Fatalf("create device: %d %s", resp.StatusCode, raw)
	}
	return out.Token
}

// run sets GOGC to 50 unless the environment chose one; Go's collector
// reports the value in effect on /metrics.
func TestGCPercent(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, "go_gc_gogc_percent 50\n"},
		{[]string{"GOGC=80"}, "go_gc_gogc_percent 80\n"},
	} {
		p := start(t, t.TempDir(), tc.env...)
		resp, err := http.Get(p.api + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(body), tc.want) {
			t.Errorf("env %v: /metrics lacks %q", tc.env, strings.TrimSpace(tc.want))
		}
		p.stop(t)
	}
}

// A change to the configuration file is applied without a restart, and so
// is SIGHUP; a file that cannot be applied leaves the relay as it was.
func TestReloadOnFileChangeAndSignal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plugins.yaml")
	write := func(v int) {
		module, _ := filepath.Abs(fmt.Sprintf("../../host/testdata/stamp_v%d.wasm", v))
		yaml := fmt.Sprintf("plugins:\n  - {id: stamp, use: transforms.stamp, runtime: wasm, module: %s}\n", module)
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(1)
	const key = "reload-test-operator-key-0123456789"
	p := startWith(t, dir, path, "SWITCHYARD_API__OPERATOR_KEY="+key)
	generation := func() float64 {
		req, _ := http.NewRequest("GET", p.api+"/api/v1/plugins", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		g, _ := body["generation"].(float64)
		return g
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s; stderr:\n%s", what, p.stderr.String())
			}
		}
	}
	if g := generation(); g != 1 {
		t.Fatalf("generation %v at start", g)
	}
	write(2)
	waitFor("the file change applied", func() bool { return generation() == 2 })

	if err := os.WriteFile(path, []byte("plugins: [{id: stamp}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor("the broken file refused", func() bool { return strings.Contains(p.stderr.String(), "configuration not reloaded") })
	if g := generation(); g != 2 {
		t.Fatalf("generation %v after a broken file", g)
	}
	write(1)
	waitFor("the repaired file applied", func() bool { return generation() == 3 })

	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("SIGHUP reloaded", func() bool { return strings.Contains(p.stderr.String(), "cause=signal") })
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr.String())
	}
}
