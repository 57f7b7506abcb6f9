// Package host runs the plugin instances a configuration declares: WASM
// modules (compiled once per sha256 by runtime/host/wasm, each instance with
// its limits), built-in plugins (runtime/host/builtin) and process plugins
// (runtime/host/process: the same Go plugin code, or any binary speaking
// sdk/rpc, in a supervised subprocess). It calls WASM collectors on their
// interval and runs built-in and process ones (restarting one that fails,
// with backoff), hands what they emit to the router, serves transforms to
// junctions as stages and brokers as targets (queued and batched, see
// runningBroker). It reports every instance's state for the API.
//
// The instances run as generations (Host.Apply): the next generation is
// built and provisioned in full while the current one serves, then swapped
// in atomically; instances whose declaration did not change are carried
// over as they run (the same WASM pool, the same process); the replaced
// ones finish their calls and are closed. A generation that fails to build
// changes nothing. Junctions hold stages and brokers by id, so each call
// reaches exactly one instance: the one serving when it starts.
//
// It never touches the graph store or the gateway; instances of one tenant
// are only ever given that tenant's messages (the router asks by tenant).
package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/runtime/config"
	"github.com/switchyard/switchyard/runtime/host/builtin"
	"github.com/switchyard/switchyard/runtime/host/process"
	"github.com/switchyard/switchyard/runtime/host/wasm"
	"github.com/switchyard/switchyard/runtime/junction"
	"github.com/switchyard/switchyard/sdk/plugin"
)

// Info is an instance as the API lists it.
type Info struct {
	Tenant string `json:"tenant"`
	ID     string `json:"id"`
	Use    string `json:"use"`
	// Runtime is wasm, builtin or process; Origin is who declared it:
	// file (plugins.yaml) or api.
	Runtime string `json:"runtime"`
	Origin  string `json:"origin"`
	Module  string `json:"module"` // sha256 of the module, hex
	// Generation is the generation that loaded this instance: it has run
	// unchanged since.
	Generation uint64     `json:"generation"`
	State      string     `json:"state"` // running, stopped; a process: starting, running, restarting, failed
	PID        int        `json:"pid,omitempty"`
	Restarts   uint64     `json:"restarts,omitempty"`
	Calls      uint64     `json:"calls"`
	Errors     uint64     `json:"errors"`
	Timeouts   uint64     `json:"timeouts"`
	Replaced   uint64     `json:"replaced"`
	LastError  string     `json:"last_error,omitempty"`
	LastAt     *time.Time `json:"last_error_at,omitempty"`
}

// Key names an instance: its tenant and id.
type Key struct{ Tenant, ID string }

// instance is one loaded instance: exactly one of wasm, native and proc is
// set; broker feeds a native or process broker.
type instance struct {
	decl   config.Plugin
	tenant string
	sha    string // the module's sha256, hex ("" for builtin)
	gen    uint64 // the generation that loaded it
	wasm   *wasm.Instance
	native *builtin.Instance
	proc   *process.Plugin
	broker *runningBroker

	// use guards calls against retirement: a call holds it shared; retire
	// takes it exclusively, so it waits for the calls under way, and marks
	// the instance retired, so a call that found it in a generation that
	// has just been replaced looks again.
	use     sync.RWMutex
	retired bool

	// collecting is set while the instance's collector runs.
	collecting *collector
}

func (in *instance) attrs() []any {
	return []any{"tenant", in.tenant, "plugin", in.decl.Use, "instance", in.decl.ID}
}

// load makes one declared instance; code is the module's bytes for wasm.
func load(ctx context.Context, rt *wasm.Runtime, d config.Plugin, code []byte, log *slog.Logger) (*instance, error) {
	cfg, err := json.Marshal(d.Config)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if d.Config == nil {
		cfg = []byte("{}")
	}
	switch d.Runtime {
	case "wasm":
		return loadWASM(ctx, rt, d, code, cfg)
	case "builtin":
		return loadBuiltin(ctx, d, cfg, log)
	case "process":
		return loadProcess(ctx, d, cfg, log)
	}
	return nil, fmt.Errorf("runtime %s is not available in this build (wasm, builtin or process)", d.Runtime)
}

func loadWASM(ctx context.Context, rt *wasm.Runtime, d config.Plugin, code []byte, cfg []byte) (*instance, error) {
	mod, err := rt.Compile(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", d.Module, err)
	}
	// The instance holds its own reference to the compiled module: this
	// one is released, so the code is freed with the last instance using it.
	defer mod.Close(ctx)
	inst, err := mod.Instantiate(ctx, wasm.InstanceConfig{
		Tenant: d.Tenant, ID: d.ID, Use: d.Use, Config: cfg,
		Limits: wasm.Limits{
			MemoryBytes: int64(d.Limits.Memory),
			CallTimeout: d.Limits.CallTimeout,
			PoolSize:    d.Limits.PoolSize,
		},
		HTTPFetch: wasm.HTTPFetchPolicy{
			Hosts:       d.HTTPFetch.Hosts,
			Timeout:     d.HTTPFetch.Timeout,
			MaxResponse: int64(d.HTTPFetch.MaxResponse),
			MaxRequest:  int64(d.HTTPFetch.MaxRequest),
		},
	})
	if err != nil {
		return nil, err
	}
	return &instance{decl: d, tenant: d.Tenant, sha: mod.Digest(), wasm: inst}, nil
}

func loadBuiltin(ctx context.Context, d config.Plugin, cfg []byte, log *slog.Logger) (*instance, error) {
	native, err := builtin.New(plugin.WithLogger(ctx, log), d.Use, d.Tenant, d.ID, cfg)
	if err != nil {
		return nil, err
	}
	in := &instance{decl: d, tenant: d.Tenant, native: native}
	if strings.HasPrefix(d.Use, "brokers.") {
		in.broker = startBroker(native, log, in.attrs()...)
	}
	return in, nil
}

func loadProcess(ctx context.Context, d config.Plugin, cfg []byte, log *slog.Logger) (*instance, error) {
	p, err := process.Start(ctx, process.Config{
		Path: d.Module, SHA256: d.SHA256, Env: d.Env,
		Use: d.Use, Tenant: d.Tenant, Instance: d.ID, Config: cfg,
		Log: log,
	})
	if err != nil {
		return nil, err
	}
	in := &instance{decl: d, tenant: d.Tenant, sha: strings.ToLower(d.SHA256), proc: p}
	if strings.HasPrefix(d.Use, "brokers.") {
		in.broker = startBroker(p, log, in.attrs()...)
	}
	return in, nil
}

// acquire returns the instance k of the generation serving now, holding
// its use guard (release it with use.RUnlock), or nil when there is none.
func (h *Host) acquire(k Key) *instance {
	for {
		in := h.cur.Load().instances[k]
		if in == nil {
			return nil
		}
		in.use.RLock()
		if !in.retired {
			return in
		}
		// Replaced between the two reads: the generation serving now has
		// already been swapped in (retire comes after the swap).
		in.use.RUnlock()
	}
}

// retire waits for the calls under way on in and turns later ones away.
func (in *instance) retire() {
	in.use.Lock()
	in.retired = true
	in.use.Unlock()
}

// Stage returns the transform id of tenant as a stage of a junction. The
// stage follows generations: each call goes to the instance serving at
// that moment, so a junction needs nothing when its transform is replaced.
// An id that names no transform makes calls fail with
// junction.ErrUnavailable until a generation declares it.
func (h *Host) Stage(tenant, id string) (junction.Stage, bool) {
	return stage{h, Key{tenant, id}}, true
}

// Broker returns the broker id of tenant as a junction target; like Stage,
// it follows generations.
func (h *Host) Broker(tenant, id string) (junction.Broker, bool) {
	return broker{h, Key{tenant, id}}, true
}

// stage adapts a transform instance to the router.
type stage struct {
	h *Host
	k Key
}

func (st stage) Transform(ctx context.Context, m junction.Message, emit func(junction.Message)) error {
	in := st.h.acquire(st.k)
	if in == nil {
		return fmt.Errorf("transform %q: %w", st.k.ID, junction.ErrUnavailable)
	}
	defer in.use.RUnlock()
	switch {
	case !strings.HasPrefix(in.decl.Use, "transforms."):
		return fmt.Errorf("%q is a %s, not a transform: %w", st.k.ID, in.decl.Use, junction.ErrUnavailable)
	case in.native != nil:
		return in.native.Transform(ctx, toPlugin(m), func(o plugin.Message) { emit(fromPlugin(o)) })
	case in.proc != nil:
		// Concurrent calls share RPCs (up to 100 messages each); a router
		// that hands over whole batches would use TransformBatch.
		return in.proc.Transform(ctx, toPlugin(m), func(o plugin.Message) { emit(fromPlugin(o)) })
	}
	return in.wasm.Transform(ctx, toWasm(m), func(o wasm.Message) { emit(fromWasm(o)) })
}

// broker adapts a broker instance to the router.
type broker struct {
	h *Host
	k Key
}

func (b broker) Offer(m junction.Message) error {
	in := b.h.acquire(b.k)
	if in == nil {
		return fmt.Errorf("broker %q: %w", b.k.ID, junction.ErrUnavailable)
	}
	defer in.use.RUnlock()
	if in.broker == nil {
		return fmt.Errorf("%q is a %s, not a broker: %w", b.k.ID, in.decl.Use, junction.ErrUnavailable)
	}
	return in.broker.Offer(m)
}

func toWasm(m junction.Message) wasm.Message {
	return wasm.Message{Tenant: m.Tenant, Source: m.Source, Subject: m.Subject, Time: m.Time, Payload: m.Payload}
}

func fromWasm(m wasm.Message) junction.Message {
	return junction.Message{Tenant: m.Tenant, Source: m.Source, Subject: m.Subject, Time: m.Time, Payload: m.Payload}
}

// collector is a running collector instance.
type collector struct {
	stop context.CancelFunc
	done chan struct{}
}

// halt stops the collector and waits for the call under way.
func (c *collector) halt() {
	c.stop()
	<-c.done
}

// startCollector runs in (a collector) until halted: a WASM one on its
// interval, a built-in one restarted after a failure, a process one by its
// supervisor. What it emits goes to route.
func (h *Host) startCollector(in *instance, route func(junction.Message)) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{stop: cancel, done: make(chan struct{})}
	in.collecting = c
	go func() {
		defer close(c.done)
		switch {
		case in.native != nil:
			h.run(ctx, in, route)
		case in.proc != nil:
			// Restarts of the process and of a failed collector are the
			// supervisor's; Collect returns when ctx ends.
			if err := in.proc.Collect(ctx, func(m plugin.Message) error { route(fromPlugin(m)); return nil }); err != nil {
				h.log.Warn("collector stopped", append(in.attrs(), "err", err)...)
			}
		default:
			h.collect(ctx, in, route)
		}
	}()
}

// Bounds of the backoff between runs of a built-in collector that failed.
const (
	restartMin = time.Second
	restartMax = time.Minute
)

// run runs a built-in collector until ctx ends, starting it again after a
// failure (its error is logged and counted), with exponential backoff
// reset by a run that lasted longer than the backoff.
func (h *Host) run(ctx context.Context, in *instance, route func(junction.Message)) {
	wait := restartMin
	for {
		started := time.Now()
		err := in.native.Collect(ctx, func(m plugin.Message) error { route(fromPlugin(m)); return nil })
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > wait {
			wait = restartMin
		}
		h.log.Warn("collector stopped; starting it again", append(in.attrs(), "err", err, "in", wait)...)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, restartMax)
	}
}

func (h *Host) collect(ctx context.Context, in *instance, route func(junction.Message)) {
	t := time.NewTicker(in.decl.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			err := in.wasm.Collect(ctx, now, func(o wasm.Message) { route(fromWasm(o)) })
			if err != nil && !errors.Is(err, context.Canceled) {
				h.log.Debug("collector call failed", append(in.attrs(), "err", err)...)
			}
		}
	}
}

func (in *instance) isCollector() bool { return strings.HasPrefix(in.decl.Use, "collectors.") }

func (in *instance) info() Info {
	origin := in.decl.Origin
	if origin == "" {
		origin = config.OriginFile
	}
	info := Info{Tenant: in.tenant, ID: in.decl.ID, Use: in.decl.Use, Runtime: in.decl.Runtime, Origin: origin,
		Module: in.sha, Generation: in.gen, State: "running"}
	var lastAt time.Time
	switch {
	case in.native != nil:
		st := in.native.Stats()
		info.Calls, info.Errors, info.LastError, lastAt = st.Calls, st.Errors, st.LastError, st.LastErrorAt
	case in.proc != nil:
		st := in.proc.Stats()
		info.State, info.PID, info.Restarts = string(st.State), st.PID, st.Restarts
		info.Calls, info.Errors, info.LastError, lastAt = st.Calls, st.Errors, st.LastError, st.LastErrorAt
	default:
		st := in.wasm.Stats()
		info.Calls, info.Errors, info.Timeouts, info.Replaced = st.Calls, st.Errors, st.Timeouts, st.Replaced
		info.LastError, lastAt = st.LastError, st.LastErrorAt
	}
	if !lastAt.IsZero() {
		info.LastAt = &lastAt
	}
	return info
}

// close releases the instance: its broker's queue is delivered first (within
// ctx), then the plugin is closed. Retire it before.
func (in *instance) close(ctx context.Context, log *slog.Logger) {
	if in.broker != nil {
		in.broker.close(ctx)
	}
	var err error
	switch {
	case in.native != nil:
		err = in.native.Close()
	case in.proc != nil:
		err = in.proc.Close(ctx)
	default:
		err = in.wasm.Close(ctx)
	}
	if err != nil {
		log.Warn("plugin close failed", append(in.attrs(), "err", err)...)
	}
}
