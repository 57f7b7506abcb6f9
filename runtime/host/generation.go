package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/runtime/config"
	"github.com/switchyard/switchyard/runtime/host/wasm"
	"github.com/switchyard/switchyard/runtime/junction"
)

var (
	_ junction.Stages  = (*Host)(nil)
	_ junction.Brokers = (*Host)(nil)
)

// historySize bounds the generations a Host remembers (applied and failed).
const historySize = 64

// closeTimeout bounds the release of one replaced instance (a broker
// delivering its queue, a process saying goodbye).
const closeTimeout = 30 * time.Second

// ErrStopping refuses a plan once the host is shutting down.
var ErrStopping = errors.New("the plugin host is shutting down")

// NotAppliedError is why a plan made no generation; the generation serving
// (Serving, 0 for none) is unchanged. Err is the cause: an instance that
// could not be built (named) or the plan's Commit error (unwrapped as is).
type NotAppliedError struct {
	Generation, Serving uint64
	Err                 error
}

func (e *NotAppliedError) Error() string {
	if e.Serving == 0 {
		return fmt.Sprintf("generation %d not applied: %v", e.Generation, e.Err)
	}
	return fmt.Sprintf("generation %d not applied, generation %d keeps serving: %v", e.Generation, e.Serving, e.Err)
}

func (e *NotAppliedError) Unwrap() error { return e.Err }

// Host runs one generation of plugin instances at a time and replaces it
// with the next (see Apply). Junctions reach its transforms and brokers by
// id through Stage and Broker, whichever generation serves.
type Host struct {
	rt      *wasm.Runtime
	log     *slog.Logger
	metrics hostMetrics

	cur atomic.Pointer[generation] // the generation serving

	mu       sync.Mutex // serialises Apply, Start, StopCollectors and Close
	route    func(junction.Message)
	stopping bool
	next     uint64 // the number of the last generation attempted

	// hist guards history apart from mu, so that listings never wait for a
	// generation being built.
	hist    sync.Mutex
	history []Generation // oldest first, at most historySize
}

// generation is an immutable set of instances.
type generation struct {
	number    uint64
	instances map[Key]*instance
	order     []Key // declaration order
}

// Generation is one attempt at a plugin set, as the API lists it.
type Generation struct {
	Number uint64 `json:"number"`
	// Cause is what asked for it: start, file, signal, api, rollback.
	Cause string `json:"cause"`
	// State is active (serving), superseded (served before) or failed
	// (refused: the generation before it kept serving).
	State string    `json:"state"`
	At    time.Time `json:"at"`
	// ServingAfterMS is the time from the request to the generation
	// serving: every new instance built and provisioned, then swapped in.
	ServingAfterMS float64  `json:"serving_after_ms"`
	Error          string   `json:"error,omitempty"`
	Changes        []Change `json:"changes"`
	Instances      int      `json:"instances"`

	decls  []config.Plugin
	tenant string // of a failure: the tenant whose instance or request failed
}

// Generation states.
const (
	StateActive     = "active"
	StateSuperseded = "superseded"
	StateFailed     = "failed"
)

// Change is what a generation changed in one instance.
type Change struct {
	Tenant string `json:"tenant"`
	ID     string `json:"id"`
	// Change is added, replaced or removed.
	Change string `json:"change"`
	// Fields are the declaration keys that differ, for replaced ("module"
	// also when the same path now holds other bytes).
	Fields []string `json:"fields,omitempty"`
}

// Plan asks for a new generation.
type Plan struct {
	// Decls is the whole plugin set wanted; an instance whose declaration
	// (and module bytes) did not change is carried over as it runs.
	Decls []config.Plugin
	// Cause says what asked (see Generation.Cause).
	Cause string
	// Tenant is the tenant that asked through the API ("" for the
	// operator): a failure is shown to it.
	Tenant string
	// Commit, when set, runs once every new instance is ready and before the
	// swap: an error abandons the generation (its new instances are closed)
	// and the one serving keeps serving. The API writes the store here.
	Commit func() error
}

// hostMetrics count the host's generations.
type hostMetrics struct {
	serving prometheus.Gauge
	plans   *prometheus.CounterVec
	latency prometheus.Histogram
}

// New returns a host serving an empty generation; Apply loads instances.
// Its metrics are registered with reg.
func New(rt *wasm.Runtime, log *slog.Logger, reg prometheus.Registerer) *Host {
	m := hostMetrics{
		serving: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_plugin_generation",
			Help: "The number of the plugin generation serving.",
		}),
		plans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_plugin_reloads_total",
			Help: "Plugin changes asked for, by result: applied (a new generation serves), unchanged, failed.",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_plugin_reload_seconds",
			Help:    "Time from a plugin change asked for to its generation serving.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1 ms … 33 s
		}),
	}
	reg.MustRegister(m.serving, m.plans, m.latency)
	h := &Host{rt: rt, log: log, metrics: m}
	h.cur.Store(&generation{instances: map[Key]*instance{}})
	return h
}

// Apply builds the plan's generation — reads and compiles modules,
// instantiates and configures new instances, starts new processes — while
// the generation serving goes on, then swaps it in atomically: from then
// on, every call of a junction goes to the new instances. The instances it
// replaced or removed stop collecting, finish the calls under way, deliver
// their broker queues and are closed before Apply returns. On any error
// nothing changes: the new instances are closed, the generation serving
// keeps serving, and the error (naming the instance at fault) is returned
// and kept in the history. A plan that changes nothing makes no generation
// (its Commit still runs) and returns the one serving.
func (h *Host) Apply(ctx context.Context, p Plan) (Generation, error) {
	started := time.Now()
	// The instances outlive the request that made them: ctx's values (the
	// logger) reach them, its end does not.
	ctx = context.WithoutCancel(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.cur.Load()
	if h.stopping {
		return Generation{}, ErrStopping
	}
	number := h.next + 1
	next := &generation{number: number, instances: make(map[Key]*instance, len(p.Decls))}
	var fresh []*instance
	var changes []Change
	fail := func(tenant string, err error) (Generation, error) {
		for _, in := range fresh {
			in.close(ctx, h.log)
		}
		err = &NotAppliedError{Generation: number, Serving: cur.number, Err: err}
		if tenant == "" {
			tenant = p.Tenant
		}
		h.next = number
		g := h.record(Generation{Number: number, Cause: p.Cause, State: StateFailed, At: started,
			Error: err.Error(), Changes: changes, decls: p.Decls, tenant: tenant})
		h.metrics.plans.WithLabelValues("failed").Inc()
		h.log.Warn("plugin generation refused", "generation", number, "cause", p.Cause, "err", err)
		return g, err
	}
	for _, d := range p.Decls {
		if d.Tenant == "" {
			d.Tenant = graph.DefaultTenant
		}
		k := Key{d.Tenant, d.ID}
		name := fmt.Sprintf("plugin %q of tenant %q (%s)", d.ID, d.Tenant, d.Use)
		if _, dup := next.instances[k]; dup {
			return fail(d.Tenant, fmt.Errorf("%s is declared twice", name))
		}
		next.order = append(next.order, k)
		code, sum, err := moduleOf(d)
		if err != nil {
			return fail(d.Tenant, fmt.Errorf("%s: %w", name, err))
		}
		old := cur.instances[k]
		var fields []string
		if old != nil {
			if fields = changedFields(old, d, sum); len(fields) == 0 {
				next.instances[k] = old
				continue
			}
		}
		in, err := load(ctx, h.rt, d, code, h.log)
		if err != nil {
			return fail(d.Tenant, fmt.Errorf("%s: %w", name, err))
		}
		in.gen = number
		fresh = append(fresh, in)
		next.instances[k] = in
		if old == nil {
			changes = append(changes, Change{Tenant: k.Tenant, ID: k.ID, Change: "added"})
		} else {
			changes = append(changes, Change{Tenant: k.Tenant, ID: k.ID, Change: "replaced", Fields: fields})
		}
	}
	var outgoing []*instance
	for _, k := range cur.order {
		in := cur.instances[k]
		if next.instances[k] == in {
			continue
		}
		outgoing = append(outgoing, in)
		if next.instances[k] == nil {
			changes = append(changes, Change{Tenant: k.Tenant, ID: k.ID, Change: "removed"})
		}
	}
	if p.Commit != nil {
		if err := p.Commit(); err != nil {
			return fail("", err)
		}
	}
	if len(changes) == 0 {
		h.metrics.plans.WithLabelValues("unchanged").Inc()
		active, _ := h.Status()
		return active, nil
	}

	for _, in := range outgoing {
		if in.collecting != nil {
			in.collecting.halt()
		}
	}
	h.cur.Store(next)
	if h.route != nil {
		for _, in := range fresh {
			if in.isCollector() {
				h.startCollector(in, h.route)
			}
		}
	}
	serving := time.Since(started)
	h.metrics.serving.Set(float64(number))
	h.metrics.latency.Observe(serving.Seconds())
	h.metrics.plans.WithLabelValues("applied").Inc()
	for _, in := range outgoing {
		in.retire()
		cctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		in.close(cctx, h.log)
		cancel()
	}
	h.next = number
	g := h.record(Generation{Number: number, Cause: p.Cause, State: StateActive, At: started,
		ServingAfterMS: float64(serving.Microseconds()) / 1000, Changes: changes, Instances: len(next.order), decls: p.Decls})
	h.log.Info("plugin generation serving", "generation", number, "cause", p.Cause, "changes", len(changes),
		"instances", len(next.order), "serving_after", serving, "took", time.Since(started))
	return g, nil
}

// moduleOf reads the module of a WASM declaration and returns its bytes
// and sha256, checked against the declared one when there is one (an
// uploaded module); a process binary's sum is its declared one (the process
// host checks the file against it before it runs).
func moduleOf(d config.Plugin) (code []byte, sum string, err error) {
	switch d.Runtime {
	case "wasm":
		code, err := os.ReadFile(d.Module)
		if err != nil {
			return nil, "", fmt.Errorf("read module: %w", err)
		}
		s := sha256.Sum256(code)
		sum := hex.EncodeToString(s[:])
		if d.SHA256 != "" && !strings.EqualFold(d.SHA256, sum) {
			return nil, "", fmt.Errorf("module %s has sha256 %s, not the %s declared: the file changed on disk", d.Module, sum, d.SHA256)
		}
		return code, sum, nil
	case "process":
		return nil, strings.ToLower(d.SHA256), nil
	}
	return nil, "", nil
}

// changedFields lists the declaration keys in which d differs from the
// running instance in (nil: in can be carried over as it is).
func changedFields(in *instance, d config.Plugin, sum string) []string {
	var out []string
	a, b := reflect.ValueOf(in.decl), reflect.ValueOf(d)
	for i := range a.NumField() {
		key, _, _ := strings.Cut(a.Type().Field(i).Tag.Get("koanf"), ",")
		if key == "" || key == "-" {
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			out = append(out, key)
		}
	}
	if in.sha != sum && !slices.Contains(out, "module") {
		out = append(out, "module")
	}
	return out
}

// record appends g to the history (dropping the oldest past historySize)
// and returns it; an active g supersedes the one before.
func (h *Host) record(g Generation) Generation {
	h.hist.Lock()
	defer h.hist.Unlock()
	if g.State == StateActive {
		for i := range h.history {
			if h.history[i].State == StateActive {
				h.history[i].State = StateSuperseded
			}
		}
	}
	if len(h.history) == historySize {
		h.history = slices.Delete(h.history, 0, 1)
	}
	h.history = append(h.history, g)
	return g
}

// Start starts the collectors of the generation serving and of every later
// one; what they emit goes to route.
func (h *Host) Start(route func(junction.Message)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.route = route
	cur := h.cur.Load()
	for _, k := range cur.order {
		if in := cur.instances[k]; in.isCollector() && in.collecting == nil {
			h.startCollector(in, route)
		}
	}
}

// List returns every instance serving, with its state, by tenant and then
// in declaration order.
func (h *Host) List() []Info {
	cur := h.cur.Load()
	out := make([]Info, 0, len(cur.order))
	for _, k := range cur.order {
		out = append(out, cur.instances[k].info())
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Tenant < out[j].Tenant })
	return out
}

// Status returns the generation serving and, when the last attempt after
// it failed, that attempt.
func (h *Host) Status() (active Generation, failed *Generation) {
	h.hist.Lock()
	defer h.hist.Unlock()
	for i := len(h.history) - 1; i >= 0; i-- {
		if h.history[i].State == StateActive {
			active = h.history[i]
			break
		}
	}
	if n := len(h.history); n > 0 && h.history[n-1].State == StateFailed {
		f := h.history[n-1]
		failed = &f
	}
	return active, failed
}

// History returns the generations remembered, newest first. For a tenant
// ("" is every tenant) it keeps only the generations that changed one of
// its instances, or that failed on one of them or on its request, with only
// its changes.
func (h *Host) History(tenant string) []Generation {
	h.hist.Lock()
	defer h.hist.Unlock()
	out := []Generation{}
	for i := len(h.history) - 1; i >= 0; i-- {
		g := h.history[i]
		if tenant != "" {
			g.Changes = slices.DeleteFunc(slices.Clone(g.Changes), func(c Change) bool { return c.Tenant != tenant })
			if len(g.Changes) == 0 && !(g.State == StateFailed && g.tenant == tenant) {
				continue
			}
			g.Instances = 0
			for _, d := range g.decls {
				if d.Tenant == tenant {
					g.Instances++
				}
			}
		}
		if g.Changes == nil {
			g.Changes = []Change{}
		}
		out = append(out, g)
	}
	return out
}

// Decls returns what generation number declared, if it is remembered and
// was applied (active or superseded).
func (h *Host) Decls(number uint64) ([]config.Plugin, bool) {
	h.hist.Lock()
	defer h.hist.Unlock()
	for _, g := range h.history {
		if g.Number == number && g.State != StateFailed {
			return slices.Clone(g.decls), true
		}
	}
	return nil, false
}

// Previous returns the number of the generation that served before the one
// serving (the target of a rollback), if it is remembered.
func (h *Host) Previous() (uint64, bool) {
	h.hist.Lock()
	defer h.hist.Unlock()
	seenActive := false
	for i := len(h.history) - 1; i >= 0; i-- {
		switch g := h.history[i]; {
		case g.State == StateActive:
			seenActive = true
		case seenActive && g.State == StateSuperseded:
			return g.Number, true
		}
	}
	return 0, false
}

// StopCollectors stops calling the collectors and waits for calls under way;
// transforms keep serving, so the junctions can deliver what they hold. No
// plan is applied after it.
func (h *Host) StopCollectors() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopping = true
	h.route = nil
	cur := h.cur.Load()
	for _, k := range cur.order {
		if in := cur.instances[k]; in.collecting != nil {
			in.collecting.halt()
			in.collecting = nil
		}
	}
}

// Close stops the collectors and closes every instance, within ctx.
func (h *Host) Close(ctx context.Context) {
	h.StopCollectors()
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.cur.Load()
	h.cur.Store(&generation{number: cur.number, instances: map[Key]*instance{}})
	for _, k := range cur.order {
		in := cur.instances[k]
		in.retire()
		in.close(ctx, h.log)
	}
}
