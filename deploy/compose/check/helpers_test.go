package deploycheck

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var root string

func TestMain(m *testing.M) {
	r, err := Root()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	root = r
	code := m.Run()
	if built.ctx != "" {
		_ = os.RemoveAll(built.ctx)
	}
	os.Exit(code)
}

// need skips the test when a tool is missing, or fails it under
// DEPLOYCHECK_REQUIRE (make deploy-check).
func need(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("DEPLOYCHECK_REQUIRE") != "" {
		t.Fatalf("missing: %s", what)
	}
	t.Skipf("missing: %s", what)
}

func repoFile(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func readRepo(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoFile(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// relayBin is the relay built for this machine (make build).
func relayBin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(root, "bin", "switchyard")
	_, err := os.Stat(p)
	need(t, err == nil, "bin/switchyard (make build)")
	return p
}

// version is the version the deploy check builds with: make passes its
// VERSION as DEPLOYCHECK_VERSION (not SWITCHYARD_*: the relay reads those
// as configuration and refuses unknown ones).
func version() string {
	if v := os.Getenv("DEPLOYCHECK_VERSION"); v != "" {
		return v
	}
	return "deploycheck"
}

// relayImage reads the Dockerfile: the image's configuration for linux/amd64
// and the configuration file it has at its -c path.
func relayImage(t *testing.T) *RelayImage {
	t.Helper()
	dt := readRepo(t, "deploy/Dockerfile")
	img, _, err := ImageConfig(dt, "amd64", map[string]string{"VERSION": version()})
	if err != nil {
		t.Fatal(err)
	}
	stages, err := Stages(dt)
	if err != nil {
		t.Fatal(err)
	}
	files, err := FinalFiles(stages[len(stages)-1], nil, root)
	if err != nil {
		t.Fatal(err)
	}
	cmd := img.Config.Cmd
	if len(cmd) < 3 || cmd[1] != "-c" {
		t.Fatalf("CMD %q does not name a configuration file with -c", cmd)
	}
	def, err := files.Resolve(cmd[2])
	if err != nil {
		t.Fatalf("the image's configuration %s: %v", cmd[2], err)
	}
	return &RelayImage{Dockerfile: "deploy/Dockerfile", Config: img, ConfigPath: cmd[2], DefaultConfig: def}
}

// fullStack copies deploy/compose/full into a temporary folder and runs its
// init.sh there, as an operator does beside compose.yaml: the folder and
// the .env it wrote.
func fullStack(t *testing.T) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	src := repoFile(t, "deploy/compose/full")
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() && e.Name() != ".env" {
			info, _ := e.Info()
			if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name()), info.Mode().Perm()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if out, err := exec.Command(filepath.Join(dir, "init.sh")).CombinedOutput(); err != nil {
		t.Fatalf("init.sh: %v\n%s", err, out)
	}
	env, err := ReadEnvFile(filepath.Join(dir, ".env"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, env
}

// freePort is a TCP port free on loopback now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for a process's output and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a service's process started by a test.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// startProc starts argv in dir with env (nothing of this process's
// environment but what env holds) and stops it when the test ends.
func startProc(t *testing.T, name, dir string, env []string, argv ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir, p.cmd.Env = dir, env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// Its own process group, so that a shell's children stop with it; and
	// the kernel stops it if this test process dies first.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM, 20*time.Second)
		if t.Failed() {
			t.Logf("--- %s (%s):\n%s", name, strings.Join(argv, " "), tail(p.out.String(), 40))
		}
	})
	return p
}

// stop sends sig (again every second: Dgraph's zero finishes only on a
// second one) and kills the process group after timeout; it reports
// whether the process exited within the timeout.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) bool {
	deadline := time.After(timeout)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	for {
		select {
		case <-p.done:
			return true
		case <-tick.C:
			_ = syscall.Kill(-p.cmd.Process.Pid, sig)
		case <-deadline:
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
			return false
		}
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// probe runs a compose or image health check test (CMD … or CMD-SHELL …)
// until it succeeds or the time is up, failing the test then; procs are the
// processes it checks, whose early exit fails it at once.
func probe(t *testing.T, what string, test []string, env []string, within time.Duration, procs ...*proc) {
	t.Helper()
	var argv []string
	switch test[0] {
	case "CMD":
		argv = test[1:]
	case "CMD-SHELL":
		argv = []string{"/bin/sh", "-c", test[1]}
	default:
		t.Fatalf("%s: health check %q", what, test)
	}
	deadline := time.Now().Add(within)
	var out []byte
	var err error
	for time.Now().Before(deadline) {
		for _, p := range procs {
			if p.exited() {
				t.Fatalf("%s: %s exited before it was healthy: %v\n%s", what, p.name, p.err, tail(p.out.String(), 30))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = env
		out, err = cmd.CombinedOutput()
		cancel()
		if err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: health check %q never passed within %s; last: %v\n%s", what, argv, within, err, out)
}

// call makes an HTTP request and returns the status and body.
func call(t *testing.T, method, url, key, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// hostPath is the PATH of the emulated containers: this machine's, with
// the sbin folders where Debian puts daemons.
func hostPath() string {
	return "PATH=/usr/local/sbin:/usr/sbin:/sbin:" + os.Getenv("PATH")
}

// runIn runs argv in dir and returns what it printed.
func runIn(dir string, argv ...string) ([]byte, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}
