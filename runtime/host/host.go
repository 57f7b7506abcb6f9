// Package host runs the plugin instances a configuration declares: WASM
// modules (compiled once per sha256 by runtime/host/wasm, each instance with
// its limits), built-in plugins (runtime/host/builtin) and process plugins
// (runtime/host/process: the same Go plugin code, or any binary speaking
// sdk/rpc, in a supervised subprocess). It calls WASM collectors on their
// interval and runs built-in and process ones for as long as the set runs
// (restarting one that fails, with backoff), hands what they emit
// to the router, serves transforms to junctions as stages and brokers as
// targets (queued and batched, see runningBroker). It reports every
// instance's state for the API.
//
// It never touches the graph store or the gateway; instances of one tenant
// are only ever given that tenant's messages (the router asks by tenant).
// Swapping a running set for a new one (hot load) is built on Load and
// Close; a set itself never changes after Load.
package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/runtime/config"
	"github.com/switchyard/switchyard/runtime/host/builtin"
	"github.com/switchyard/switchyard/runtime/host/process"
	"github.com/switchyard/switchyard/runtime/host/wasm"
	"github.com/switchyard/switchyard/runtime/junction"
	"github.com/switchyard/switchyard/sdk/plugin"
)

var (
	_ junction.Stages  = (*Set)(nil)
	_ junction.Brokers = (*Set)(nil)
)

// Info is an instance as the API lists it.
type Info struct {
	Tenant    string     `json:"tenant"`
	ID        string     `json:"id"`
	Use       string     `json:"use"`
	Runtime   string     `json:"runtime"`
	Module    string     `json:"module"` // sha256 of the module, hex
	State     string     `json:"state"`  // running, stopped; a process: starting, running, restarting, failed
	PID       int        `json:"pid,omitempty"`
	Restarts  uint64     `json:"restarts,omitempty"`
	Calls     uint64     `json:"calls"`
	Errors    uint64     `json:"errors"`
	Timeouts  uint64     `json:"timeouts"`
	Replaced  uint64     `json:"replaced"`
	LastError string     `json:"last_error,omitempty"`
	LastAt    *time.Time `json:"last_error_at,omitempty"`
}

type key struct{ tenant, id string }

// instance is one loaded instance: exactly one of wasm, native and proc is
// set; broker feeds a native or process broker.
type instance struct {
	decl   config.Plugin
	tenant string
	sha    string
	wasm   *wasm.Instance
	native *builtin.Instance
	proc   *process.Plugin
	broker *runningBroker
}

func (in *instance) attrs() []any {
	return []any{"tenant", in.tenant, "plugin", in.decl.Use, "instance", in.decl.ID}
}

// Set is a loaded set of plugin instances.
type Set struct {
	log       *slog.Logger
	instances map[key]*instance
	order     []key // declaration order, for listings

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// Load makes every declared instance. Modules are read from their path
// (relative to the working directory). On any error nothing is left running
// and the error names the instance.
func Load(ctx context.Context, rt *wasm.Runtime, decls []config.Plugin, log *slog.Logger) (_ *Set, err error) {
	s := &Set{log: log, instances: map[key]*instance{}}
	defer func() {
		if err != nil {
			s.closeInstances(context.Background())
		}
	}()
	for _, d := range decls {
		tenant := d.Tenant
		if tenant == "" {
			tenant = graph.DefaultTenant
		}
		name := fmt.Sprintf("plugin %q of tenant %q (%s)", d.ID, tenant, d.Use)
		cfg, err := json.Marshal(d.Config)
		if err != nil {
			return nil, fmt.Errorf("%s: config: %w", name, err)
		}
		if d.Config == nil {
			cfg = []byte("{}")
		}
		var in *instance
		switch d.Runtime {
		case "wasm":
			in, err = loadWASM(ctx, rt, d, tenant, cfg)
		case "builtin":
			in, err = loadBuiltin(ctx, d, tenant, cfg, log)
		case "process":
			in, err = loadProcess(ctx, d, tenant, cfg, log)
		default:
			err = fmt.Errorf("runtime %s is not available in this build (wasm, builtin or process)", d.Runtime)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		k := key{tenant, d.ID}
		s.instances[k] = in
		s.order = append(s.order, k)
		log.Info("plugin loaded", append(in.attrs(), "runtime", d.Runtime, "module", d.Module, "sha256", in.sha)...)
	}
	return s, nil
}

func loadWASM(ctx context.Context, rt *wasm.Runtime, d config.Plugin, tenant string, cfg []byte) (*instance, error) {
	code, err := os.ReadFile(d.Module)
	if err != nil {
		return nil, fmt.Errorf("read module: %w", err)
	}
	sum := sha256.Sum256(code)
	mod, err := rt.Compile(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", d.Module, err)
	}
	inst, err := mod.Instantiate(ctx, wasm.InstanceConfig{
		Tenant: tenant, ID: d.ID, Use: d.Use, Config: cfg,
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
	return &instance{decl: d, tenant: tenant, sha: hex.EncodeToString(sum[:]), wasm: inst}, nil
}

func loadBuiltin(ctx context.Context, d config.Plugin, tenant string, cfg []byte, log *slog.Logger) (*instance, error) {
	native, err := builtin.New(plugin.WithLogger(ctx, log), d.Use, tenant, d.ID, cfg)
	if err != nil {
		return nil, err
	}
	in := &instance{decl: d, tenant: tenant, native: native}
	if strings.HasPrefix(d.Use, "brokers.") {
		in.broker = startBroker(native, log, in.attrs()...)
	}
	return in, nil
}

func loadProcess(ctx context.Context, d config.Plugin, tenant string, cfg []byte, log *slog.Logger) (*instance, error) {
	p, err := process.Start(ctx, process.Config{
		Path: d.Module, SHA256: d.SHA256, Env: d.Env,
		Use: d.Use, Tenant: tenant, Instance: d.ID, Config: cfg,
		Log: log,
	})
	if err != nil {
		return nil, err
	}
	in := &instance{decl: d, tenant: tenant, sha: strings.ToLower(d.SHA256), proc: p}
	if strings.HasPrefix(d.Use, "brokers.") {
		in.broker = startBroker(p, log, in.attrs()...)
	}
	return in, nil
}

// Stage returns the transform instance id of tenant.
func (s *Set) Stage(tenant, id string) (junction.Stage, bool) {
	in, ok := s.instances[key{tenant, id}]
	if !ok || !strings.HasPrefix(in.decl.Use, "transforms.") {
		return nil, false
	}
	return stage{in}, true
}

// Broker returns the broker instance id of tenant.
func (s *Set) Broker(tenant, id string) (junction.Broker, bool) {
	in, ok := s.instances[key{tenant, id}]
	if !ok || in.broker == nil {
		return nil, false
	}
	return in.broker, true
}

// stage adapts a transform instance to the router.
type stage struct{ in *instance }

func (st stage) Transform(ctx context.Context, m junction.Message, emit func(junction.Message)) error {
	if st.in.native != nil {
		return st.in.native.Transform(ctx, toPlugin(m), func(o plugin.Message) { emit(fromPlugin(o)) })
	}
	if st.in.proc != nil {
		// Concurrent calls share RPCs (up to 100 messages each); a router
		// that hands over whole batches would use TransformBatch.
		return st.in.proc.Transform(ctx, toPlugin(m), func(o plugin.Message) { emit(fromPlugin(o)) })
	}
	return st.in.wasm.Transform(ctx, toWasm(m), func(o wasm.Message) { emit(fromWasm(o)) })
}

func toWasm(m junction.Message) wasm.Message {
	return wasm.Message{Tenant: m.Tenant, Source: m.Source, Subject: m.Subject, Time: m.Time, Payload: m.Payload}
}

func fromWasm(m wasm.Message) junction.Message {
	return junction.Message{Tenant: m.Tenant, Source: m.Source, Subject: m.Subject, Time: m.Time, Payload: m.Payload}
}

// Start calls every collector on its interval and routes what it emits.
func (s *Set) Start(route func(junction.Message)) {
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	for _, k := range s.order {
		in := s.instances[k]
		switch {
		case !strings.HasPrefix(in.decl.Use, "collectors."):
		case in.native != nil:
			s.wg.Go(func() { s.run(ctx, in, route) })
		case in.proc != nil:
			// Restarts of the process and of a failed collector are the
			// supervisor's; Collect returns when ctx ends.
			s.wg.Go(func() {
				if err := in.proc.Collect(ctx, func(m plugin.Message) error { route(fromPlugin(m)); return nil }); err != nil {
					s.log.Warn("collector stopped", append(in.attrs(), "err", err)...)
				}
			})
		default:
			s.wg.Go(func() { s.collect(ctx, in, route) })
		}
	}
}

// Bounds of the backoff between runs of a built-in collector that failed.
const (
	restartMin = time.Second
	restartMax = time.Minute
)

// run runs a built-in collector until ctx ends, starting it again after a
// failure (its error is logged and counted), with exponential backoff
// reset by a run that lasted longer than the backoff.
func (s *Set) run(ctx context.Context, in *instance, route func(junction.Message)) {
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
		s.log.Warn("collector stopped; starting it again", append(in.attrs(), "err", err, "in", wait)...)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, restartMax)
	}
}

func (s *Set) collect(ctx context.Context, in *instance, route func(junction.Message)) {
	t := time.NewTicker(in.decl.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			err := in.wasm.Collect(ctx, now, func(o wasm.Message) { route(fromWasm(o)) })
			if err != nil && !errors.Is(err, context.Canceled) {
				s.log.Debug("collector call failed", "tenant", in.tenant, "plugin", in.decl.Use, "instance", in.decl.ID, "err", err)
			}
		}
	}
}

// List returns every instance with its state, in declaration order.
func (s *Set) List() []Info {
	out := make([]Info, 0, len(s.order))
	for _, k := range s.order {
		out = append(out, s.instances[k].info())
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Tenant < out[j].Tenant })
	return out
}

func (in *instance) info() Info {
	info := Info{Tenant: in.tenant, ID: in.decl.ID, Use: in.decl.Use, Runtime: in.decl.Runtime, Module: in.sha, State: "running"}
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

// StopCollectors stops calling the collectors and waits for calls under way;
// transforms keep serving, so the junctions can deliver what they hold.
func (s *Set) StopCollectors() {
	if s.stop != nil {
		s.stop()
		s.wg.Wait()
	}
}

// Close stops the collectors and closes every instance.
func (s *Set) Close(ctx context.Context) {
	s.StopCollectors()
	s.closeInstances(ctx)
}

func (s *Set) closeInstances(ctx context.Context) {
	for _, in := range s.instances {
		var err error
		if in.broker != nil {
			in.broker.close(ctx)
		}
		switch {
		case in.native != nil:
			err = in.native.Close()
		case in.proc != nil:
			err = in.proc.Close(ctx)
		default:
			err = in.wasm.Close(ctx)
		}
		if err != nil {
			s.log.Warn("plugin close failed", append(in.attrs(), "err", err)...)
		}
	}
}
