// Package host runs the plugin instances a configuration declares: it loads
// each WASM module (compiled once per sha256 by runtime/host/wasm), makes
// the instance with its limits, calls collectors on their interval and hands
// what they emit to the router, and serves transforms to junctions as
// stages. It reports every instance's state for the API.
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
	"github.com/switchyard/switchyard/runtime/host/wasm"
	"github.com/switchyard/switchyard/runtime/junction"
)

var _ junction.Stages = (*Set)(nil)

// Info is an instance as the API lists it.
type Info struct {
	Tenant    string     `json:"tenant"`
	ID        string     `json:"id"`
	Use       string     `json:"use"`
	Runtime   string     `json:"runtime"`
	Module    string     `json:"module"` // sha256 of the module, hex
	State     string     `json:"state"`  // running, stopped
	Calls     uint64     `json:"calls"`
	Errors    uint64     `json:"errors"`
	Timeouts  uint64     `json:"timeouts"`
	Replaced  uint64     `json:"replaced"`
	LastError string     `json:"last_error,omitempty"`
	LastAt    *time.Time `json:"last_error_at,omitempty"`
}

type key struct{ tenant, id string }

type instance struct {
	decl   config.Plugin
	tenant string
	sha    string
	wasm   *wasm.Instance
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
		if d.Runtime != "wasm" {
			return nil, fmt.Errorf("%s: runtime %s is not available in this build (only wasm)", name, d.Runtime)
		}
		code, err := os.ReadFile(d.Module)
		if err != nil {
			return nil, fmt.Errorf("%s: read module: %w", name, err)
		}
		sum := sha256.Sum256(code)
		mod, err := rt.Compile(ctx, code)
		if err != nil {
			return nil, fmt.Errorf("%s: module %s: %w", name, d.Module, err)
		}
		cfg, err := json.Marshal(d.Config)
		if err != nil {
			return nil, fmt.Errorf("%s: config: %w", name, err)
		}
		if d.Config == nil {
			cfg = []byte("{}")
		}
		inst, err := mod.Instantiate(ctx, wasm.InstanceConfig{
			Tenant: tenant, ID: d.ID, Use: d.Use, Config: cfg,
			Limits: wasm.Limits{
				MemoryBytes: int64(d.Limits.Memory),
				CallTimeout: d.Limits.CallTimeout,
				PoolSize:    d.Limits.PoolSize,
			},
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		k := key{tenant, d.ID}
		s.instances[k] = &instance{decl: d, tenant: tenant, sha: hex.EncodeToString(sum[:]), wasm: inst}
		s.order = append(s.order, k)
		log.Info("plugin loaded", "tenant", tenant, "plugin", d.Use, "instance", d.ID, "module", d.Module, "sha256", hex.EncodeToString(sum[:8]))
	}
	return s, nil
}

// Stage returns the transform instance id of tenant.
func (s *Set) Stage(tenant, id string) (junction.Stage, bool) {
	in, ok := s.instances[key{tenant, id}]
	if !ok || !strings.HasPrefix(in.decl.Use, "transforms.") {
		return nil, false
	}
	return stage{in}, true
}

// stage adapts a WASM transform to the router.
type stage struct{ in *instance }

func (st stage) Transform(ctx context.Context, m junction.Message, emit func(junction.Message)) error {
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
		if !strings.HasPrefix(in.decl.Use, "collectors.") {
			continue
		}
		s.wg.Go(func() { s.collect(ctx, in, route) })
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
		in := s.instances[k]
		st := in.wasm.Stats()
		info := Info{
			Tenant: in.tenant, ID: in.decl.ID, Use: in.decl.Use, Runtime: in.decl.Runtime, Module: in.sha,
			State: "running", Calls: st.Calls, Errors: st.Errors, Timeouts: st.Timeouts, Replaced: st.Replaced,
			LastError: st.LastError,
		}
		if !st.LastErrorAt.IsZero() {
			at := st.LastErrorAt
			info.LastAt = &at
		}
		out = append(out, info)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Tenant < out[j].Tenant })
	return out
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
		if err := in.wasm.Close(ctx); err != nil {
			s.log.Warn("plugin close failed", "tenant", in.tenant, "instance", in.decl.ID, "err", err)
		}
	}
}
