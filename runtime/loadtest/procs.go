package loadtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Command is how to start a program: the load tool uses it to re-execute
// itself as workers and bare servers.
type Command struct {
	Path string
	// Env is added to the tool's own environment.
	Env []string
}

func (c Command) command(args ...string) *exec.Cmd {
	cmd := exec.Command(c.Path, args...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = childAttr()
	return cmd
}

// process is a child the tool started and will stop.
type process struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // the result of Wait, set before exited is closed
}

func startProcess(name string, cmd *exec.Cmd) (*process, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// stop asks the process to end with SIGTERM and kills it after grace. It
// reports a process that had to be killed or did not exit cleanly.
func (p *process) stop(grace time.Duration) error {
	select {
	case <-p.exited:
		return p.exitErr()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.exitErr()
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s: killed after not stopping within %s", p.name, grace)
	}
}

// exitErr describes an unclean exit; call it after exited is closed.
func (p *process) exitErr() error {
	if p.err != nil {
		return fmt.Errorf("%s: %w", p.name, p.err)
	}
	return nil
}

// startWithStdout starts cmd with its stdout on a pipe the caller reads to
// the end; unlike Cmd.StdoutPipe, Wait does not close it early.
func startWithStdout(name string, cmd *exec.Cmd) (*process, *os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd.Stdout = w
	p, err := startProcess(name, cmd)
	_ = w.Close()
	if err != nil {
		_ = r.Close()
		return nil, nil, err
	}
	return p, r, nil
}

// firstLine reads the first line of r within timeout, then discards the
// rest of r in the background until it ends.
func firstLine(r *os.File, timeout time.Duration) (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		br := bufio.NewReader(r)
		line, err := br.ReadString('\n')
		ch <- result{strings.TrimSpace(line), err}
		_, _ = io.Copy(io.Discard, br)
		_ = r.Close()
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			return "", fmt.Errorf("read first line: %w", res.err)
		}
		return res.line, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("read first line: nothing within %s", timeout)
	}
}

// bareServers are bare-server children of the tool.
type bareServers struct {
	procs []*process
	urls  []string
}

// startBareServers starts count bare servers on free loopback ports. Each
// closes connections idle for idle and exits after lifetime; extra flags
// are passed on.
func startBareServers(self Command, count int, idle, lifetime time.Duration, extra ...string) (*bareServers, error) {
	s := &bareServers{}
	for i := range count {
		name := fmt.Sprintf("bare-server %d", i)
		args := append([]string{"bare-server", "-listen", "127.0.0.1:0",
			"-idle-timeout", idle.String(), "-max-lifetime", lifetime.String()}, extra...)
		cmd := self.command(args...)
		p, stdout, err := startWithStdout(name, cmd)
		if err != nil {
			_ = s.stop()
			return nil, err
		}
		s.procs = append(s.procs, p)
		u, err := firstLine(stdout, 10*time.Second)
		if err == nil && !strings.HasPrefix(u, "ws://") {
			err = fmt.Errorf("printed %q, not its ws:// address", u)
		}
		if err != nil {
			_ = s.stop()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		s.urls = append(s.urls, u)
	}
	return s, nil
}

func (s *bareServers) pids() []int {
	out := make([]int, len(s.procs))
	for i, p := range s.procs {
		out[i] = p.pid()
	}
	return out
}

// stop stops every server, once, and reports the unclean exits.
func (s *bareServers) stop() error {
	var errs []error
	for _, p := range s.procs {
		errs = append(errs, p.stop(5*time.Second))
	}
	s.procs = nil
	return errors.Join(errs...)
}

// relay is a Switchyard process the tool started with its own config and
// data directory.
type relay struct {
	*process
	dir     string
	keep    bool   // keep dir (config, store, log) after stop
	gateway string // ws:// URL devices dial
	api     string // admin API base URL
	key     string // operator key
}

// relayDrain is the drain timeout given to relays the tool starts; stop
// waits a little longer before it kills.
const relayDrain = 2 * time.Second

// startRelay runs `<ro.Bin> run -c <dir>/plugins.yaml` with a fresh data
// directory, a random operator key and free loopback ports, and waits until
// its /ready answers 200.
func startRelay(ctx context.Context, ro RelayOptions, maxConns int, heartbeat time.Duration, log *slog.Logger) (*relay, error) {
	dir, err := os.MkdirTemp("", "switchyard-load-relay-")
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	r := &relay{dir: dir, keep: ro.Keep}
	ok := false
	defer func() {
		if !ok {
			r.stop(log)
		}
	}()
	gwPort, err := freePort()
	if err != nil {
		return nil, err
	}
	apiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	r.gateway = fmt.Sprintf("ws://127.0.0.1:%d/ws/device", gwPort)
	r.api = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails on Linux
	r.key = "syop_" + base64.RawURLEncoding.EncodeToString(raw[:])

	cfg := relayConfig(gwPort, apiPort, maxConns, heartbeat, ro.LogLevel, filepath.Join(dir, "switchyard.db")) + ro.Extra
	cfgPath := filepath.Join(dir, "plugins.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, fmt.Errorf("relay: write config: %w", err)
	}
	logFile, err := os.Create(filepath.Join(dir, "relay.log"))
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(ro.Bin, "run", "-c", cfgPath)
	cmd.Dir = dir
	cmd.Env = append(relayEnviron(), "SWITCHYARD_API__OPERATOR_KEY="+r.key)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childAttr()
	if r.process, err = startProcess("relay", cmd); err != nil {
		return nil, err
	}
	readyCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := WaitReady(readyCtx, r.api, r.exited); err != nil {
		return nil, fmt.Errorf("relay: %w; log tail:\n%s", err, r.logTail(2048))
	}
	log.Info("relay ready", "pid", r.pid(), "gateway", r.gateway, "api", r.api, "dir", dir)
	ok = true
	return r, nil
}

// relayConfig is the plugins.yaml of a relay under test: loopback ports,
// room for maxConns sessions, the clients' heartbeat interval with three
// missed beats allowed, a short drain, and its own store.
func relayConfig(gwPort, apiPort, maxConns int, heartbeat time.Duration, logLevel, dbPath string) string {
	return fmt.Sprintf(`gateway:
  listen: 127.0.0.1:%d
  path: /ws/device
  max_connections: %d
  heartbeat_interval: %s
  heartbeat_timeout: %s
  drain_timeout: %s
api:
  listen: 127.0.0.1:%d
store:
  backend: embedded
  embedded:
    path: %s
log:
  level: %s
  format: text
`, gwPort, maxConns, heartbeat, 3*heartbeat, relayDrain, apiPort, dbPath, logLevel)
}

// logTail is the end of the relay's log, for error messages.
func (r *relay) logTail(n int64) string {
	b, err := os.ReadFile(filepath.Join(r.dir, "relay.log"))
	if err != nil {
		return err.Error()
	}
	return string(b[max(0, int64(len(b))-n):])
}

// stop ends the relay (gracefully if it drains in time) and removes its
// directory unless asked to keep it. An unclean exit is the relay's to
// explain: it is logged with the end of the relay's log, not returned.
func (r *relay) stop(log *slog.Logger) {
	if r.process != nil {
		if err := r.process.stop(relayDrain + 5*time.Second); err != nil {
			log.Warn("relay did not stop cleanly", "err", err, "log_tail", r.logTail(1024))
		}
		r.process = nil
	}
	if r.keep {
		log.Info("relay directory kept", "dir", r.dir)
		return
	}
	_ = os.RemoveAll(r.dir)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("free port: not a TCP address")
	}
	return addr.Port, nil
}

// relayEnviron is the tool's environment without SWITCHYARD_* variables:
// the relay the tool starts is configured by the file it writes, so a
// setting inherited from the shell (or a test harness's own SWITCHYARD_
// variables, which the relay refuses as unknown keys) cannot change what
// is measured.
func relayEnviron() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SWITCHYARD_") {
			env = append(env, kv)
		}
	}
	return env
}
