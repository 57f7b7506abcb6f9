// Package conform runs the guest conformance kit (sdk/plugintest) against
// guests in Switchyard's own WASM host, with the limits and checks the relay
// applies. `switchyard conform` and the tests over every example and shipped
// plugin use it.
package conform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/switchyard/switchyard/runtime/host/wasm"
	"github.com/switchyard/switchyard/sdk/plugintest"
)

// Options configure a Host.
type Options struct {
	// Modules is the folder of <kind>.<name>.wasm for profiles that name no
	// module (the shipped plugins: bin/plugins).
	Modules string
	// Limits are every instance's; zero fields take the host's defaults,
	// which are the relay's.
	Limits wasm.Limits
	// CacheDir keeps compiled modules between runs; empty: none.
	CacheDir string
	// Logger receives the guests' logs; nil: discarded.
	Logger *slog.Logger
}

// Host is plugintest.Host over a wasm.Runtime.
type Host struct {
	rt   *wasm.Runtime
	opts Options
}

// NewHost starts a WASM runtime for the kit.
func NewHost(ctx context.Context, opts Options) (*Host, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rt, err := wasm.NewRuntime(ctx, wasm.RuntimeOptions{CacheDir: opts.CacheDir, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	return &Host{rt: rt, opts: opts}, nil
}

// Close stops the runtime.
func (h *Host) Close(ctx context.Context) error { return h.rt.Close(ctx) }

// Load compiles the guest's module (refused as the relay would refuse it).
func (h *Host) Load(ctx context.Context, g plugintest.GuestSpec) (plugintest.Guest, error) {
	path := g.Module
	if path == "" {
		path = filepath.Join(h.opts.Modules, g.Use+".wasm")
	}
	code, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	mod, err := h.rt.Compile(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var hosts []string
	for _, origin := range g.Fetch {
		u, err := url.Parse(origin)
		if err != nil {
			return nil, errors.Join(err, mod.Close(ctx))
		}
		hosts = append(hosts, u.Host)
	}
	return &guest{mod: mod, use: g.Use, limits: h.opts.Limits, fetch: wasm.HTTPFetchPolicy{Hosts: hosts}}, nil
}

type guest struct {
	mod    *wasm.Module
	use    string
	limits wasm.Limits
	fetch  wasm.HTTPFetchPolicy
	n      int // instances started, for their ids
}

func (g *guest) Start(ctx context.Context, config json.RawMessage) (plugintest.Instance, plugintest.Outcome, error) {
	g.n++
	in, err := g.mod.Instantiate(ctx, wasm.InstanceConfig{Tenant: "conformance", ID: fmt.Sprintf("case-%d", g.n),
		Use: g.use, Config: config, Limits: g.limits, HTTPFetch: g.fetch})
	if err != nil {
		return nil, outcome(err), err
	}
	return instance{in}, plugintest.Succeeded, nil
}

func (g *guest) Imports() []string { return g.mod.Imports() }

func (g *guest) Close() error { return g.mod.Close(context.Background()) }

type instance struct{ in *wasm.Instance }

func (i instance) Transform(ctx context.Context, m plugintest.Message) plugintest.Result {
	var res plugintest.Result
	res.Err = i.in.Transform(ctx, wasm.Message{Tenant: "conformance", Source: m.Source, Subject: m.Subject, Time: m.Time, Payload: m.Payload},
		func(o wasm.Message) { res.Outputs = append(res.Outputs, message(o)) })
	res.Outcome = outcome(res.Err)
	return res
}

func (i instance) Collect(ctx context.Context, now time.Time) plugintest.Result {
	var res plugintest.Result
	res.Err = i.in.Collect(ctx, now, func(o wasm.Message) { res.Outputs = append(res.Outputs, message(o)) })
	res.Outcome = outcome(res.Err)
	return res
}

func (i instance) Close() error { return i.in.Close(context.Background()) }

func message(m wasm.Message) plugintest.Message {
	return plugintest.Message{Subject: m.Subject, Source: m.Source, Time: m.Time, Payload: m.Payload}
}

// outcome tells how a call that returned err ended. An error that is none
// of the host's classes (a refused argument, a closed instance) counts as a
// trap: the kit must not mistake it for the guest's own report.
func outcome(err error) plugintest.Outcome {
	switch {
	case err == nil:
		return plugintest.Succeeded
	case errors.Is(err, wasm.ErrGuestFailed):
		return plugintest.Reported
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return plugintest.TimedOut
	case errors.Is(err, wasm.ErrLimit):
		return plugintest.LimitHit
	}
	return plugintest.Trapped
}

// Profiles finds the profiles in paths: each path is a folder holding a
// conformance.yaml, or a profile's YAML file. Folders without one and other
// files are skipped, so a shell glob over examples/* picks the guests out.
func Profiles(paths []string) ([]*plugintest.Profile, error) {
	var out []*plugintest.Profile
	var errs []error
	seen := map[string]bool{}
	for _, p := range paths {
		file := p
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			file = filepath.Join(p, plugintest.ProfileFile)
			if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
				continue
			}
		} else if ext := filepath.Ext(p); err == nil && ext != ".yaml" && ext != ".yml" {
			continue // a file a glob picked up beside the guests' folders
		}
		abs, _ := filepath.Abs(file)
		if seen[abs] {
			continue
		}
		seen[abs] = true
		prof, err := plugintest.LoadProfile(file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, prof)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Dir < out[j].Dir })
	return out, errors.Join(errs...)
}

// Run runs every profile and returns the reports in the same order.
func (h *Host) Run(ctx context.Context, profiles []*plugintest.Profile) []plugintest.Report {
	reports := make([]plugintest.Report, 0, len(profiles))
	for _, p := range profiles {
		reports = append(reports, plugintest.Run(ctx, h, p))
	}
	return reports
}
