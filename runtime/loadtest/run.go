package loadtest

import (
	"context"
	"fmt"
	"time"
)

// maxPerServer is the number of connections one server process is planned
// for: the open-file limit here is 20,000 per process.
const maxPerServer = 19000

// ServersFor is the number of server processes n connections need when the
// caller does not say.
func ServersFor(n int) int { return max(1, (n+maxPerServer-1)/maxPerServer) }

// serverLifetime bounds a server the tool starts: the longest a run with
// these options can take, plus a margin.
func serverLifetime(o Options, setup time.Duration) time.Duration {
	return setup + o.ConnectTimeout + o.DialTimeout + o.Hold + 2*time.Minute
}

// RunBaseline measures o.N connections against servers bare nbio servers
// started as children of this program.
func RunBaseline(ctx context.Context, o Options, servers int) (Result, error) {
	if err := o.Validate(); err != nil {
		return Result{}, fmt.Errorf("baseline: %w", err)
	}
	start := time.Now()
	bs, err := startBareServers(o.Self, servers, 3*o.Heartbeat, serverLifetime(o, 0))
	if err != nil {
		return Result{}, fmt.Errorf("baseline: %w", err)
	}
	defer func() { _ = bs.stop() }()
	res, err := Measure(ctx, o, Servers{Label: "bare nbio", Targets: bs.urls, PIDs: bs.pids(), Stop: bs.stop})
	res.Elapsed = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("baseline: %w", err)
	}
	return res, nil
}

// RelayOptions say how to start relays and provision their devices.
type RelayOptions struct {
	// Bin is the switchyard binary.
	Bin string
	// Servers is the number of relay processes; device i belongs to relay
	// i%Servers, each with its own data directory.
	Servers int
	// ProvisionConcurrency bounds admin API requests in flight per relay.
	ProvisionConcurrency int
	// LogLevel is the relays' log.level; above warn the logging itself
	// costs CPU and memory during the measurement.
	LogLevel string
	// Keep leaves each relay's directory (config, store, log) in place.
	Keep bool
	// Extra is appended to the generated configuration: further top-level
	// sections (wasm, plugins, junctions).
	Extra string
}

// RunRelay starts relays, provisions o.N devices, and measures them like
// RunBaseline does the bare servers.
func RunRelay(ctx context.Context, o Options, ro RelayOptions) (Result, error) {
	if err := o.Validate(); err != nil {
		return Result{}, fmt.Errorf("relay: %w", err)
	}
	start := time.Now()
	relays := make([]*relay, 0, ro.Servers)
	stop := func() error {
		for _, r := range relays {
			r.stop(o.Log)
		}
		relays = relays[:0]
		return nil
	}
	defer func() { _ = stop() }()
	perRelay := (o.N + ro.Servers - 1) / ro.Servers
	for range ro.Servers {
		r, err := startRelay(ctx, ro, perRelay+64, o.Heartbeat, o.Log)
		if err != nil {
			return Result{}, fmt.Errorf("relay: %w", err)
		}
		relays = append(relays, r)
	}
	srv := Servers{Label: "switchyard", Tokens: make([]string, o.N), Stop: stop}
	for _, r := range relays {
		srv.PIDs = append(srv.PIDs, r.pid())
	}
	started, err := ReadRSSSum(srv.PIDs)
	if err != nil {
		return Result{}, fmt.Errorf("relay: %w", err)
	}
	for k, r := range relays {
		srv.Targets = append(srv.Targets, r.gateway)
		var idx []int
		var ids []string
		for i := k; i < o.N; i += ro.Servers {
			idx = append(idx, i)
			ids = append(ids, DeviceID("load-", i))
		}
		p := Provisioner{API: r.api, Key: r.key, Tenant: "default", Concurrency: ro.ProvisionConcurrency, Log: o.Log}
		tokens, err := p.Provision(ctx, ids)
		if err != nil {
			return Result{}, fmt.Errorf("relay: %w", err)
		}
		for j, i := range idx {
			srv.Tokens[i] = tokens[j]
		}
	}
	setup := time.Since(start)
	o.Log.Info("provisioned", "devices", o.N, "relays", len(relays), "seconds", fmt.Sprintf("%.1f", setup.Seconds()))
	res, err := Measure(ctx, o, srv)
	res.Setup = fmt.Sprintf("started %d relay(s) (RSS %.1f MiB) and provisioned %d devices in %.1f s (%.0f devices/s)",
		ro.Servers, float64(started)/mib, o.N, setup.Seconds(), float64(o.N)/setup.Seconds())
	res.Elapsed = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("relay: %w", err)
	}
	return res, nil
}

// External describes relays the tool did not start.
type External struct {
	// Targets are the relays' gateway URLs.
	Targets []string
	// API is the admin API the devices are provisioned through.
	API string
	// OperatorKey authenticates the provisioning.
	OperatorKey string
	// PIDs are the relay processes whose RSS is measured, if known.
	PIDs []int
	// IDPrefix starts every device id; it must be new to the relay.
	IDPrefix             string
	ProvisionConcurrency int
}

// RunExternal provisions o.N devices through an existing admin API and
// measures them against existing relays. The devices stay provisioned.
func RunExternal(ctx context.Context, o Options, ex External) (Result, error) {
	if err := o.Validate(); err != nil {
		return Result{}, fmt.Errorf("relay: %w", err)
	}
	start := time.Now()
	ids := make([]string, o.N)
	for i := range ids {
		ids[i] = DeviceID(ex.IDPrefix, i)
	}
	p := Provisioner{API: ex.API, Key: ex.OperatorKey, Tenant: "default", Concurrency: ex.ProvisionConcurrency, Log: o.Log}
	tokens, err := p.Provision(ctx, ids)
	if err != nil {
		return Result{}, fmt.Errorf("relay: %w", err)
	}
	setup := time.Since(start)
	res, err := Measure(ctx, o, Servers{Label: "switchyard", Targets: ex.Targets, PIDs: ex.PIDs, Tokens: tokens})
	res.Setup = fmt.Sprintf("provisioned %d devices through %s in %.1f s", o.N, ex.API, setup.Seconds())
	res.Elapsed = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("relay: %w", err)
	}
	return res, nil
}

// DeviceID names device i (counting from 0) as prefix plus i+1 in six
// digits: load-000001, load-000002, …
func DeviceID(prefix string, i int) string { return fmt.Sprintf("%s%06d", prefix, i+1) }
