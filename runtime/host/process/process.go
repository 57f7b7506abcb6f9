package process

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard/switchyard/sdk/plugin"
	"github.com/switchyard/switchyard/sdk/rpc"
	"github.com/switchyard/switchyard/sdk/rpc/pluginv1"
)

// Defaults of Config's zero fields.
const (
	DefaultRestartMin   = 100 * time.Millisecond
	DefaultRestartMax   = 30 * time.Second
	DefaultHealthy      = time.Minute
	DefaultStartTimeout = 30 * time.Second
	DefaultCallTimeout  = 30 * time.Second

	transformWorkers = 4   // transform RPCs in flight at once
	transformBatch   = 100 // messages per transform RPC at most
	transformQueue   = 1024
	watchEvery       = 20 * time.Millisecond // how often a child's exit is checked
)

// Config is one process plugin instance.
type Config struct {
	// Path is the plugin binary.
	Path string
	// SHA256 is the hex sha256 Path must have; a binary with another sum is
	// never started.
	SHA256 string
	// Args are the binary's arguments; nil means "plugin serve <Use>", which
	// the relay's own binary understands and a binary built on rpc.Serve
	// ignores.
	Args []string
	// Env names the variables of this process's environment the plugin
	// gets, besides PATH. It gets no others (but go-plugin's handshake).
	Env []string

	Use, Tenant, Instance string
	// Config is the instance's settings, a JSON object.
	Config []byte

	Log *slog.Logger

	// Supervision; zero means the Default… constants.
	RestartMin, RestartMax time.Duration // backoff between restarts, doubling
	Healthy                time.Duration // a process that lived this long resets the backoff
	StartTimeout           time.Duration // handshake and Configure
	CallTimeout            time.Duration // one batched transform RPC
}

// State is where a plugin's process is in its life.
type State string

// The states of a plugin's process.
const (
	Starting   State = "starting"   // the first process is being started
	Running    State = "running"    // a process serves calls
	Restarting State = "restarting" // the process died; a new one is due after the backoff
	Failed     State = "failed"     // starting a new one failed; trying again after the backoff
	Stopped    State = "stopped"    // closed
)

// Stats are an instance's counters and state, for the API.
type Stats struct {
	State       State
	Restarts    uint64
	Calls       uint64
	Errors      uint64
	LastError   string
	LastErrorAt time.Time
	PID         int
}

// Result is what a transform made of one input message: Messages, or Err.
type Result struct {
	Messages []plugin.Message
	Err      error
}

// Plugin is one supervised process plugin instance.
type Plugin struct {
	cfg   Config
	log   *slog.Logger
	path  string // absolute path of the binary
	attrs []any

	mu       sync.Mutex
	cur      *child // nil unless Running
	state    State
	ready    chan struct{} // closed when a new process becomes Running
	lastErr  string
	lastAt   time.Time
	restarts uint64

	calls, errors atomic.Uint64

	tq        chan *pending
	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// child is one process.
type child struct {
	client  *goplugin.Client
	rpc     pluginv1.PluginClient
	pid     int
	started time.Time
	dead    chan struct{} // closed when the process has exited
	quit    chan struct{} // stops the watcher
}

// Start checks the binary, starts its first process and configures the
// instance. The error says why it could not: a sha256 mismatch (naming the
// path and both sums), a failed handshake, or the plugin's refusal of its
// configuration. Nothing is left running on error.
func Start(ctx context.Context, cfg Config) (*Plugin, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.RestartMin, DefaultRestartMin)
	def(&cfg.RestartMax, DefaultRestartMax)
	def(&cfg.Healthy, DefaultHealthy)
	def(&cfg.StartTimeout, DefaultStartTimeout)
	def(&cfg.CallTimeout, DefaultCallTimeout)
	if cfg.Args == nil {
		cfg.Args = []string{"plugin", "serve", cfg.Use}
	}
	path, err := resolve(cfg.Path)
	if err != nil {
		return nil, err
	}
	p := &Plugin{
		cfg: cfg, log: cfg.Log, path: path,
		attrs: []any{"tenant", cfg.Tenant, "plugin", cfg.Use, "instance", cfg.Instance},
		state: Starting, ready: make(chan struct{}),
		tq: make(chan *pending, transformQueue), stop: make(chan struct{}),
	}
	c, err := p.spawn(ctx)
	if err != nil {
		return nil, err
	}
	p.install(c)
	p.wg.Go(p.supervise)
	if strings.HasPrefix(cfg.Use, string(plugin.Transforms)+".") {
		for range transformWorkers {
			p.wg.Go(p.transformWorker)
		}
	}
	return p, nil
}

func resolve(path string) (string, error) {
	if path == "" {
		return "", errors.New("no binary: module is empty")
	}
	if !strings.ContainsRune(path, filepath.Separator) {
		found, err := exec.LookPath(path)
		if err != nil {
			return "", fmt.Errorf("binary %s: %w", path, err)
		}
		path = found
	}
	return filepath.Abs(path)
}

// Verify checks that the file at path has the hex sha256 want and returns
// the sum. A mismatch is an error naming the path and both sums.
func Verify(path, want string) ([]byte, error) {
	wantSum, err := hex.DecodeString(want)
	if err != nil || len(wantSum) != sha256.Size {
		return nil, fmt.Errorf("binary %s: configured sha256 %q is not 64 hex digits", path, want)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("binary %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("binary %s: %w", path, err)
	}
	got := h.Sum(nil)
	if !bytes.Equal(got, wantSum) {
		return nil, fmt.Errorf("binary %s: sha256 mismatch: expected %s, actual %s; refusing to run it",
			path, strings.ToLower(want), hex.EncodeToString(got))
	}
	return got, nil
}

// env is the plugin's whole environment (go-plugin adds its handshake).
func (p *Plugin) env() []string {
	env := []string{}
	if v, ok := os.LookupEnv("PATH"); ok {
		env = append(env, "PATH="+v)
	}
	for _, name := range p.cfg.Env {
		if v, ok := os.LookupEnv(name); ok && name != "PATH" {
			env = append(env, name+"="+v)
		}
	}
	return env
}

// spawn verifies the binary, starts a process and configures it.
func (p *Plugin) spawn(ctx context.Context) (*child, error) {
	sum, err := Verify(p.path, p.cfg.SHA256)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(p.path, p.cfg.Args...)
	cmd.Env = p.env()
	cmd.SysProcAttr = sysProcAttr()
	log := p.log.With(p.attrs...)
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  rpc.Handshake,
		Plugins:          goplugin.PluginSet{rpc.PluginName: &rpc.GRPCPlugin{}},
		Cmd:              cmd,
		SecureConfig:     &goplugin.SecureConfig{Checksum: sum, Hash: sha256.New()}, // checked again by go-plugin, just before exec
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		Managed:          false,
		SkipHostEnv:      true,
		StartTimeout:     p.cfg.StartTimeout,
		Logger:           hclog.New(&hclog.LoggerOptions{Level: hclog.Off, Output: io.Discard}),
		Stderr:           &logWriter{log: log, stream: "stderr"},
		SyncStderr:       &logWriter{log: log, stream: "stderr"},
		SyncStdout:       &logWriter{log: log, stream: "stdout"},
	})
	proto, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("start %s: %w", p.path, err)
	}
	raw, err := proto.Dispense(rpc.PluginName)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("start %s: %w", p.path, err)
	}
	pc := raw.(pluginv1.PluginClient)
	cctx, cancel := context.WithTimeout(ctx, p.cfg.StartTimeout)
	defer cancel()
	_, err = pc.Configure(cctx, &pluginv1.ConfigureRequest{
		PluginId: p.cfg.Use, Tenant: p.cfg.Tenant, Instance: p.cfg.Instance, ConfigJson: p.cfg.Config,
	})
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("configure: %s", status.Convert(err).Message())
	}
	c := &child{client: client, rpc: pc, started: time.Now(), dead: make(chan struct{}), quit: make(chan struct{})}
	if rc := client.ReattachConfig(); rc != nil {
		c.pid = rc.Pid
	}
	go c.watch()
	return c, nil
}

// watch closes c.dead when the process has exited.
func (c *child) watch() {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
			if c.client.Exited() {
				close(c.dead)
				return
			}
		}
	}
}

// install makes c the running process.
func (p *Plugin) install(c *child) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur, p.state = c, Running
	close(p.ready)
	p.ready = make(chan struct{})
}

func (p *Plugin) setState(s State, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur, p.state = nil, s
	if err != nil {
		p.lastErr, p.lastAt = err.Error(), time.Now()
	}
}

// supervise starts a new process whenever the running one dies, with
// exponential backoff from RestartMin to RestartMax, reset when a process
// lived for Healthy.
func (p *Plugin) supervise() {
	wait := p.cfg.RestartMin
	for {
		p.mu.Lock()
		c := p.cur
		p.mu.Unlock()
		select {
		case <-p.stop:
			return
		case <-c.dead:
		}
		lived := time.Since(c.started)
		if lived >= p.cfg.Healthy {
			wait = p.cfg.RestartMin
		}
		died := time.Now()
		p.setState(Restarting, fmt.Errorf("plugin process %d exited after %s", c.pid, lived.Round(time.Millisecond)))
		c.client.Kill() // reap and release its pipes
		p.log.Warn("plugin process exited; starting a new one", append(p.attrs, "pid", c.pid, "lived", lived.Round(time.Millisecond), "in", wait)...)
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, p.cfg.RestartMax)
			nc, err := p.spawn(context.Background())
			if err == nil {
				p.mu.Lock()
				p.restarts++
				p.mu.Unlock()
				p.install(nc)
				p.log.Info("plugin process restarted", append(p.attrs, "pid", nc.pid, "after", time.Since(died).Round(time.Millisecond))...)
				break
			}
			p.setState(Failed, err)
			p.log.Error("plugin process did not start", append(p.attrs, "err", err, "next_in", wait)...)
		}
	}
}

// running returns the running process, or an error saying the state.
func (p *Plugin) running() (*child, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return nil, fmt.Errorf("plugin process is %s", p.state)
	}
	return p.cur, nil
}

// waitRunning returns the running process, waiting for one until ctx ends
// or the plugin is closed.
func (p *Plugin) waitRunning(ctx context.Context) (*child, error) {
	for {
		p.mu.Lock()
		c, ready, state := p.cur, p.ready, p.state
		p.mu.Unlock()
		if c != nil {
			return c, nil
		}
		if state == Stopped {
			return nil, errors.New("plugin is closed")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.stop:
			return nil, errors.New("plugin is closed")
		case <-ready:
		}
	}
}

// callErr turns the error of an RPC into the error of the call.
func callErr(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: %w", st.Message(), context.DeadlineExceeded)
	case codes.Unavailable:
		return fmt.Errorf("plugin process unavailable: %s", st.Message())
	}
	return errors.New(st.Message())
}

// count records one call's outcome.
func (p *Plugin) count(err error) {
	p.calls.Add(1)
	if err != nil && !errors.Is(err, context.Canceled) {
		p.fail(err)
	}
}

func (p *Plugin) fail(err error) {
	p.errors.Add(1)
	p.mu.Lock()
	p.lastErr, p.lastAt = err.Error(), time.Now()
	p.mu.Unlock()
}

// TransformBatch runs the transform on each message in one RPC. The error
// is the call's (the process died, the deadline passed); a message the
// transform refused has its Result.Err.
func (p *Plugin) TransformBatch(ctx context.Context, batch []plugin.Message) ([]Result, error) {
	c, err := p.running()
	if err == nil {
		var resp *pluginv1.TransformResponse
		resp, err = c.rpc.Transform(ctx, rpc.ToProtoBatch(batch))
		err = callErr(err)
		if err == nil && len(resp.GetResults()) != len(batch) {
			err = fmt.Errorf("plugin returned %d results for %d messages", len(resp.GetResults()), len(batch))
		}
		if err == nil {
			p.count(nil)
			out := make([]Result, len(batch))
			for i, r := range resp.GetResults() {
				if r.GetError() != "" {
					out[i].Err = errors.New(r.GetError())
					p.fail(out[i].Err)
					continue
				}
				out[i].Messages = make([]plugin.Message, len(r.GetMessages()))
				for j, m := range r.GetMessages() {
					o := rpc.FromProto(m)
					o.Tenant = p.cfg.Tenant // a plugin only ever makes its tenant's messages
					out[i].Messages[j] = o
				}
			}
			return out, nil
		}
	}
	p.count(err)
	return nil, err
}

// pending is one message waiting for a transform worker.
type pending struct {
	m    plugin.Message
	done chan Result
}

// Transform runs the transform on one message. Messages from concurrent
// callers are sent together, up to 100 per RPC, by a few workers: a
// sequential caller pays one RPC per message, concurrent ones share them.
func (p *Plugin) Transform(ctx context.Context, m plugin.Message, emit func(plugin.Message)) error {
	pd := &pending{m: m, done: make(chan Result, 1)}
	select {
	case p.tq <- pd:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.stop:
		return errors.New("plugin is closed")
	}
	select {
	case r := <-pd.done:
		if r.Err != nil {
			return r.Err
		}
		for _, o := range r.Messages {
			emit(o)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.stop:
		return errors.New("plugin is closed")
	}
}

func (p *Plugin) transformWorker() {
	var batch []*pending
	msgs := make([]plugin.Message, 0, transformBatch)
	for {
		select {
		case <-p.stop:
			return
		case first := <-p.tq:
			batch = append(batch[:0], first)
		}
	fill:
		for len(batch) < transformBatch {
			select {
			case pd := <-p.tq:
				batch = append(batch, pd)
			default:
				break fill
			}
		}
		msgs = msgs[:0]
		for _, pd := range batch {
			msgs = append(msgs, pd.m)
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.CallTimeout)
		res, err := p.TransformBatch(ctx, msgs)
		cancel()
		for i, pd := range batch {
			if err != nil {
				pd.done <- Result{Err: err}
			} else {
				pd.done <- res[i]
			}
		}
	}
}

// Publish hands a batch to the broker in one RPC.
func (p *Plugin) Publish(ctx context.Context, batch []plugin.Message) error {
	c, err := p.running()
	if err == nil {
		_, err = c.rpc.Publish(ctx, rpc.ToProtoBatch(batch))
		err = callErr(err)
	}
	p.count(err)
	return err
}

// Collect streams the collector's messages to emit until ctx ends, then
// returns nil. Each message is stamped with the instance's tenant and, as
// its source, the instance id; one without a time gets the time it arrived.
// When the process dies the stream resumes on the next one; when the
// collector itself fails it is called again after a backoff (1 s doubling
// to 1 min). An error of emit ends the current stream, which is started
// again the same way.
func (p *Plugin) Collect(ctx context.Context, emit func(plugin.Message) error) error {
	const minWait, maxWait = time.Second, time.Minute
	wait := minWait
	for {
		c, err := p.waitRunning(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		started := time.Now()
		err = p.stream(ctx, c, emit)
		if ctx.Err() != nil {
			return nil
		}
		p.count(err)
		if time.Since(started) > wait {
			wait = minWait
		}
		p.log.Warn("collector stream ended; starting it again", append(p.attrs, "err", err, "in", wait)...)
		select {
		case <-ctx.Done():
			return nil
		case <-p.stop:
			return nil
		case <-c.dead: // a new process will be along
		case <-time.After(wait):
			wait = min(2*wait, maxWait)
		}
	}
}

func (p *Plugin) stream(ctx context.Context, c *child, emit func(plugin.Message) error) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.rpc.Collect(sctx, &pluginv1.CollectRequest{})
	if err != nil {
		return callErr(err)
	}
	for {
		b, err := st.Recv()
		if err == io.EOF {
			return errors.New("collector returned")
		}
		if err != nil {
			return callErr(err)
		}
		now := time.Now()
		for _, pm := range b.GetMessages() {
			m := rpc.FromProto(pm)
			m.Tenant, m.Source = p.cfg.Tenant, p.cfg.Instance
			if m.Time.IsZero() {
				m.Time = now
			}
			if err := emit(m); err != nil {
				return fmt.Errorf("emit: %w", err)
			}
		}
	}
}

// Stats returns the instance's state and counters.
func (p *Plugin) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{State: p.state, Restarts: p.restarts, Calls: p.calls.Load(), Errors: p.errors.Load(), LastError: p.lastErr, LastErrorAt: p.lastAt}
	if p.cur != nil {
		s.PID = p.cur.pid
	}
	return s
}

// PID returns the pid of the running process, or 0.
func (p *Plugin) PID() int { return p.Stats().PID }

// Close stops supervising, asks the instance to clean up (Close RPC) and
// kills the process.
func (p *Plugin) Close(ctx context.Context) error {
	var err error
	p.closeOnce.Do(func() {
		close(p.stop)
		p.wg.Wait()
		p.mu.Lock()
		c := p.cur
		p.cur, p.state = nil, Stopped
		p.mu.Unlock()
		if c == nil {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, cerr := c.rpc.Close(cctx, &pluginv1.CloseRequest{})
		cancel()
		if cerr != nil {
			err = fmt.Errorf("cleanup: %w", callErr(cerr))
		}
		close(c.quit)
		c.client.Kill()
	})
	return err
}
