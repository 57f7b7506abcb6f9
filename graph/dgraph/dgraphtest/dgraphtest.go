// Package dgraphtest runs a real Dgraph (zero + alpha, ACL on, loopback) for
// a test, through scripts/dgraph.sh — the same script `make dgraph-up` uses —
// on free ports in a temporary folder.
//
// The server binary is built by `make test` (scripts/dgraph.sh bin) into the
// cache. When it is missing, tests that need it are skipped with a message
// saying how to build it, unless SWITCHYARD_REQUIRE_DGRAPH is set (as `make
// test` does): then they fail.
package dgraphtest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/graph/dgraph"
)

// Guardian is the galaxy guardian's password on a test cluster (Dgraph's
// initial one).
const Guardian = "password"

// Cluster is a running zero + alpha.
type Cluster struct {
	GRPC string // 127.0.0.1:port
	HTTP string // http://127.0.0.1:port
	Dir  string

	offset int
	ttl    string
	tls    string
	mu     sync.Mutex
	cmd    *exec.Cmd
	waited chan struct{}
	log    *os.File
}

// Config tunes Start.
type Config struct {
	// TokenTTL is the lifetime of access tokens ("6h" unless set); refresh
	// tokens live twice as long. Short values exercise re-login.
	TokenTTL string
	// TLS is "" (plain), "on" or "mutual" (see DGRAPH_TLS in
	// scripts/dgraph.sh); the certificates are in TLSDir.
	TLS string
}

func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// binary returns the server's path, and whether it exists.
func binary() (string, bool) {
	if p := os.Getenv("DGRAPH_BIN"); p != "" {
		_, err := os.Stat(p)
		return p, err == nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	p := filepath.Join(cache, "switchyard", "dgraph-v25.1.0", "dgraph")
	_, err := os.Stat(p)
	return p, err == nil
}

// Start runs a private cluster for the test and stops it when the test ends.
func Start(tb testing.TB, cfg Config) *Cluster {
	tb.Helper()
	c := start(tb, tb.TempDir(), cfg)
	tb.Cleanup(c.Stop)
	return c
}

var shared struct {
	once sync.Once
	c    *Cluster
	err  string
}

// Shared returns one cluster for the whole test binary, started on first
// use; Main stops it.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	requireBinary(tb)
	shared.once.Do(func() {
		shared.err = "see the first test that asked for it"
		dir, err := os.MkdirTemp("", "dgraphtest-")
		if err != nil {
			shared.err = err.Error()
			return
		}
		shared.c = start(tb, dir, Config{})
	})
	if shared.c == nil {
		tb.Fatalf("dgraphtest: the shared cluster did not start: %s", shared.err)
	}
	return shared.c
}

// Main runs the tests of a package that uses Shared and stops the cluster
// afterwards: func TestMain(m *testing.M) { os.Exit(dgraphtest.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	if shared.c != nil {
		shared.c.Stop()
		_ = os.RemoveAll(shared.c.Dir)
	}
	return code
}

// requireBinary skips the test, or fails it under SWITCHYARD_REQUIRE_DGRAPH,
// when the server binary is missing.
func requireBinary(tb testing.TB) {
	tb.Helper()
	if bin, ok := binary(); !ok {
		msg := fmt.Sprintf("dgraphtest: no Dgraph server at %s: run `scripts/dgraph.sh bin` (make test does)", bin)
		if os.Getenv("SWITCHYARD_REQUIRE_DGRAPH") != "" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
}

func start(tb testing.TB, dir string, cfg Config) *Cluster {
	tb.Helper()
	requireBinary(tb)
	if cfg.TokenTTL == "" {
		cfg.TokenTTL = "6h"
	}
	c := &Cluster{Dir: dir, offset: freeOffset(tb), ttl: cfg.TokenTTL, tls: cfg.TLS}
	scheme := "http"
	if cfg.TLS != "" {
		scheme = "https"
	}
	c.GRPC = fmt.Sprintf("127.0.0.1:%d", 9080+c.offset)
	c.HTTP = fmt.Sprintf("%s://127.0.0.1:%d", scheme, 8080+c.offset)
	c.Start(tb)
	return c
}

// freeOffset picks a port offset whose five ports are free on loopback.
func freeOffset(tb testing.TB) int {
	tb.Helper()
	for range 200 {
		// The highest port, 9080+offset, stays below the kernel's
		// ephemeral range (32768 and up), where outgoing connections of
		// other tests could take it between the check and the bind.
		off := 100 + rand.IntN(200)*100
		free := true
		for _, p := range []int{5080, 6080, 7080, 8080, 9080} {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+off))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return off
		}
	}
	tb.Fatal("dgraphtest: found no free port offset")
	return 0
}

// Start (re)starts the cluster on its data folder and waits until the
// alpha is healthy.
func (c *Cluster) Start(tb testing.TB) {
	tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		tb.Fatal("dgraphtest: Start of a running cluster")
	}
	bin, _ := binary()
	log, err := os.OpenFile(filepath.Join(c.Dir, "run.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		tb.Fatalf("dgraphtest: %v", err)
	}
	cmd := exec.Command(filepath.Join(root(), "scripts", "dgraph.sh"), "run")
	cmd.Env = append(os.Environ(), "DGRAPH_BIN="+bin, "DGRAPH_DIR="+c.Dir,
		fmt.Sprintf("DGRAPH_PORT_OFFSET=%d", c.offset), "DGRAPH_ACL_TTL="+c.ttl, "DGRAPH_TLS="+c.tls)
	// The script stops zero and alpha when it gets SIGTERM, which the
	// kernel sends if this test process dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("dgraphtest: %v", err)
	}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		tb.Fatalf("dgraphtest: start scripts/dgraph.sh: %v", err)
	}
	up := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			fmt.Fprintln(log, sc.Text())
			if !sent && strings.HasPrefix(sc.Text(), "dgraph: up") {
				up <- true
				sent = true
			}
		}
		if !sent {
			up <- false
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	select {
	case ok := <-up:
		if !ok {
			<-waited
			tb.Fatalf("dgraphtest: Dgraph did not start; see %s and the zero/alpha logs beside it:\n%s", log.Name(), tail(c.Dir))
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-waited
		tb.Fatalf("dgraphtest: Dgraph was not healthy within 2 minutes:\n%s", tail(c.Dir))
	}
	c.cmd, c.waited, c.log = cmd, waited, log
}

// TLSDir holds the certificates of a cluster started with TLS: ca.crt, and
// client.switchyard.crt with its key.
func (c *Cluster) TLSDir() string { return filepath.Join(c.Dir, "tls") }

// Stop stops zero and alpha; the data stays for a later Start.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.waited:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.waited
	}
	c.log.Close()
	c.cmd = nil
}

func tail(dir string) string {
	var b strings.Builder
	for _, name := range []string{"zero.log", "alpha.log"} {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", name, strings.Join(lines, "\n"))
	}
	return b.String()
}

// Key is the encryption key of test stores: fixed, derived from a label.
func Key(label string) []byte {
	k := sha256.Sum256([]byte("dgraphtest key " + label))
	return k[:]
}

// Options returns store options for this cluster and installation.
func (c *Cluster) Options(install string) dgraph.Options {
	return dgraph.Options{
		Addresses:      []string{c.GRPC},
		HTTP:           c.HTTP,
		Password:       Guardian,
		EncryptionKey:  Key("default"),
		Install:        install,
		ConnectTimeout: 20 * time.Second,
	}
}

// Open opens a store on a fresh installation of the cluster, closed at the
// end of the test unless the test closes it first.
func (c *Cluster) Open(tb testing.TB) *dgraph.Store {
	tb.Helper()
	s, err := dgraph.Open(context.Background(), c.Options(Install()))
	if err != nil {
		tb.Fatalf("dgraphtest: open: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() }) // a second Close is a no-op
	return s
}

// Install returns a fresh installation name.
func Install() string { return fmt.Sprintf("t%016x", rand.Uint64()) }
