package wasm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Limits.
const (
	DefaultMemoryBytes    = 16 << 20
	DefaultCallTimeout    = 100 * time.Millisecond
	DefaultInitTimeout    = time.Second
	DefaultPoolSize       = 2
	DefaultMaxEmits       = 1024
	DefaultMaxOutputBytes = 1 << 20
	DefaultStateMaxBytes  = 1 << 20
	DefaultStateMaxKeys   = 4096
)

// Limits bound one plugin instance. Zero fields take the defaults above.
type Limits struct {
	MemoryBytes    int64         // per module instance, rounded down to 64 KiB pages; at most RuntimeOptions.MaxMemoryBytes
	CallTimeout    time.Duration // per sy_transform or sy_collect call
	InitTimeout    time.Duration // per instantiation: _initialize and sy_init
	PoolSize       int           // module instances, so calls at once
	MaxEmits       int           // outputs per call
	MaxOutputBytes int           // subject and payload bytes of the outputs of one call
	StateMaxBytes  int           // keys plus values of the instance's state
	StateMaxKeys   int           // keys of the instance's state
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if l.MemoryBytes == 0 {
		l.MemoryBytes = DefaultMemoryBytes
	}
	if l.CallTimeout == 0 {
		l.CallTimeout = DefaultCallTimeout
	}
	if l.InitTimeout == 0 {
		l.InitTimeout = DefaultInitTimeout
	}
	def(&l.PoolSize, DefaultPoolSize)
	def(&l.MaxEmits, DefaultMaxEmits)
	def(&l.MaxOutputBytes, DefaultMaxOutputBytes)
	def(&l.StateMaxBytes, DefaultStateMaxBytes)
	def(&l.StateMaxKeys, DefaultStateMaxKeys)
	return l
}

// pages is MemoryBytes in 64 KiB pages.
func (l Limits) pages() uint32 { return uint32(l.MemoryBytes / pageSize) }

func (l Limits) validate(maxPages uint32) error {
	switch {
	case l.MemoryBytes < pageSize:
		return fmt.Errorf("limits: memory %d bytes is below one 64 KiB page", l.MemoryBytes)
	case l.MemoryBytes/pageSize > int64(maxPages):
		return fmt.Errorf("limits: memory %d MiB is above the runtime's ceiling of %d MiB", l.MemoryBytes>>20, maxPages*pageSize>>20)
	case l.CallTimeout < 0 || l.InitTimeout < 0:
		return errors.New("limits: timeouts must be positive")
	case l.PoolSize < 0 || l.MaxEmits < 0 || l.MaxOutputBytes < 0 || l.StateMaxBytes < 0 || l.StateMaxKeys < 0:
		return errors.New("limits: sizes must be positive")
	}
	return nil
}

// Message is one message into or out of a guest. Outputs of a transform
// share the input's Meta map: neither the host nor the runtime may modify
// it.
type Message struct {
	Tenant, Source, Subject string
	Time                    time.Time
	Meta                    map[string]string
	Payload                 []byte
}

// InstanceConfig configures one plugin instance.
type InstanceConfig struct {
	Tenant string
	ID     string
	// Use is the plugin, kind.name: transforms.scale, collectors.http.
	Use string
	// Config is the instance's configuration, a JSON object; empty is {}.
	Config []byte
	Limits Limits
	// HTTPFetch is what the guest may reach with the http_fetch import; the
	// zero value refuses every fetch.
	HTTPFetch HTTPFetchPolicy
}

type kind string

const (
	kindTransform kind = "transforms"
	kindCollector kind = "collectors"
)

// Stats are an instance's counters since it was created.
type Stats struct {
	Calls           uint64 // guest calls (sy_transform, sy_collect)
	Errors          uint64 // calls that returned non-zero, and replacements that failed to start
	Timeouts        uint64 // calls stopped at their deadline or cancelled
	Traps           uint64 // calls that trapped or exited
	LimitHits       uint64 // calls that hit a limit (emits, output bytes, memory)
	Replaced        uint64 // module instances discarded, to be replaced on next use
	BadImportCalls  uint64 // import calls with a bad argument (status -2, or ignored)
	LogLinesDropped uint64 // guest log lines over the rate limit
	LastError       string
	LastErrorAt     time.Time
}

// Instance is one configured plugin instance: a pool of module instances
// of one Module, with the instance's config, limits and state.
type Instance struct {
	rt      *Runtime
	mod     *Module
	tenant  string
	id      string
	plugin  string
	name    string // plugin "id", the context of errors
	kind    kind
	config  []byte
	limits  Limits
	sink    logSink
	warn    *rate
	state   *kvState
	metrics instanceMetrics
	fetcher *fetcher // nil: http_fetch is off

	pool      chan *slot // nil entries: to instantiate on next use
	closing   chan struct{}
	closed    atomic.Bool
	closeOnce sync.Once

	calls, errors, timeouts, traps, limitHits, replaced, badCalls atomic.Uint64

	lastMu    sync.Mutex
	lastErr   string
	lastErrAt time.Time
}

// Instantiate starts a plugin instance of the module: it instantiates one
// module instance and runs its sy_init (a refusal fails Instantiate with
// the guest's message); the rest of the pool is instantiated on demand.
func (m *Module) Instantiate(ctx context.Context, cfg InstanceConfig) (*Instance, error) {
	in, err := m.newInstance(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", cfg.Use, cfg.ID, err)
	}
	return in, nil
}

func (m *Module) newInstance(ctx context.Context, cfg InstanceConfig) (*Instance, error) {
	if cfg.Tenant == "" || cfg.ID == "" {
		return nil, errors.New("tenant and instance id are required")
	}
	k, name, _ := strings.Cut(cfg.Use, ".")
	if name == "" || (kind(k) != kindTransform && kind(k) != kindCollector) {
		return nil, fmt.Errorf("plugin %q: want transforms.<name> or collectors.<name>", cfg.Use)
	}
	if err := m.exports.requireExport(kind(k)); err != nil {
		return nil, err
	}
	limits := cfg.Limits.withDefaults()
	if err := limits.validate(m.rt.maxPages); err != nil {
		return nil, err
	}
	if pages := limits.pages(); m.exports.memoryMin > pages {
		return nil, fmt.Errorf("module memory starts at %d pages of 64 KiB, above the limit of %d", m.exports.memoryMin, pages)
	}
	fetch, err := newFetcher(cfg.HTTPFetch)
	if err != nil {
		return nil, err
	}
	config := emptyConfig
	if len(bytes.TrimSpace(cfg.Config)) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(cfg.Config, &obj); err != nil || obj == nil {
			return nil, errors.New("config: not a JSON object")
		}
		config = bytes.Clone(cfg.Config)
	}
	if err := m.retain(); err != nil {
		return nil, err
	}
	log := m.rt.log.With("tenant", cfg.Tenant, "plugin", cfg.Use, "instance", cfg.ID)
	in := &Instance{
		rt:      m.rt,
		mod:     m,
		tenant:  cfg.Tenant,
		id:      cfg.ID,
		plugin:  cfg.Use,
		name:    fmt.Sprintf("%s %q", cfg.Use, cfg.ID),
		kind:    kind(k),
		config:  config,
		limits:  limits,
		sink:    logSink{log: log, guest: newRate(logRate, logBurst)},
		warn:    newRate(warnRate, warnBurst),
		state:   newState(limits.StateMaxBytes, limits.StateMaxKeys),
		metrics: m.rt.metrics.acquire(cfg.Tenant, cfg.ID, m.exports.httpFetch),
		fetcher: fetch,
		pool:    make(chan *slot, limits.PoolSize),
		closing: make(chan struct{}),
	}
	s, err := in.instantiate(ctx)
	if err != nil {
		m.rt.metrics.release(in.tenant, in.id)
		in.fetcher.close()
		return nil, errors.Join(err, m.Close(ctx))
	}
	in.pool <- s
	for range limits.PoolSize - 1 {
		in.pool <- nil
	}
	return in, nil
}

func (in *Instance) instantiate(ctx context.Context) (*slot, error) {
	return in.rt.newSlot(ctx, in.mod, in, &in.sink, in.limits.pages(), in.limits.InitTimeout)
}

// Transform runs sy_transform on m, which must belong to the instance's
// tenant, and hands each output to emit (zero, one or many) after the call
// succeeded; the outputs of a failed call are discarded. Outputs take
// Source = the instance id and the input's tenant, time and meta. emit
// (never nil) runs on the caller's goroutine before Transform returns, after
// the module instance is back in the pool, so it may call other instances
// or this one.
func (in *Instance) Transform(ctx context.Context, m Message, emit func(Message)) error {
	if in.kind != kindTransform {
		return fmt.Errorf("%s: not a transform", in.name)
	}
	if m.Tenant != in.tenant {
		return fmt.Errorf("%s: message of tenant %q refused: the instance belongs to tenant %q", in.name, m.Tenant, in.tenant)
	}
	return in.call(ctx, &m, time.Time{}, emit)
}

// Collect runs sy_collect and hands its outputs to emit like Transform;
// outputs take the instance's tenant and now as their time.
func (in *Instance) Collect(ctx context.Context, now time.Time, emit func(Message)) error {
	if in.kind != kindCollector {
		return fmt.Errorf("%s: not a collector", in.name)
	}
	return in.call(ctx, nil, now, emit)
}

func (in *Instance) call(ctx context.Context, m *Message, now time.Time, emit func(Message)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", in.name, err)
	}
	s, err := in.acquire(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", in.name, err)
	}
	if s == nil {
		if s, err = in.instantiate(ctx); err != nil {
			in.pool <- nil
			in.record(resultError, 0, err)
			return fmt.Errorf("%s: replace module instance: %w", in.name, err)
		}
	}
	fn, name := s.transform, exportTransform
	if m != nil {
		s.phase, s.in, s.hasInput = phaseTransform, *m, true
	} else {
		fn, name = s.collect, exportCollect
		s.phase, s.now = phaseCollect, now
	}
	start := time.Now()
	s.begin(ctx, start, in.limits.CallTimeout)
	err = fn.CallWithStack(&s.ctx, s.stack[:])
	usable := s.end()
	elapsed := time.Since(start)
	res, err := s.outcome(name, err, int32(s.stack[0]))

	if res == resultOK && s.limitErr != nil {
		// The guest stopped at an emit limit and returned 0, as the ABI
		// allows: what it emitted is delivered, and the limit counted.
		in.limitHits.Add(1)
	}
	var out *batch
	if res == resultOK && len(s.out.msgs) > 0 {
		out, s.out = s.out, in.rt.getBatch()
	}
	s.reset()
	if res.discards() || !usable {
		in.discard(s, res, err)
	} else {
		in.pool <- s
	}
	in.record(res, elapsed, err)
	if err != nil {
		return fmt.Errorf("%s: %w", in.name, err)
	}
	if out != nil {
		for i := range out.msgs {
			emit(out.msgs[i])
		}
		in.rt.putBatch(out)
	}
	return nil
}

// acquire takes a slot from the pool (nil: one to instantiate).
func (in *Instance) acquire(ctx context.Context) (*slot, error) {
	var s *slot
	select {
	case s = <-in.pool:
	default:
		select {
		case s = <-in.pool:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-in.closing:
			return nil, ErrClosed
		}
	}
	if in.closed.Load() {
		in.pool <- s
		return nil, ErrClosed
	}
	return s, nil
}

// discard closes a module instance after a trap, a timeout or a limit; the
// next call that takes its place in the pool instantiates a new one.
func (in *Instance) discard(s *slot, res result, cause error) {
	_ = s.close(context.Background()) // closing a module instance fails only if it is already closed
	in.pool <- nil
	in.replaced.Add(1)
	in.metrics.replaced.Inc()
	if ok, dropped := in.warn.allow(time.Now()); ok {
		in.sink.log.LogAttrs(context.Background(), slog.LevelWarn, "plugin module instance discarded; the next call starts a new one",
			slog.String("result", resultLabels[res]), slog.Any("err", cause), slog.Uint64("warnings_dropped", dropped))
	}
}

func (in *Instance) record(res result, elapsed time.Duration, err error) {
	in.calls.Add(1)
	in.metrics.calls[res].Inc()
	if elapsed > 0 {
		in.metrics.duration.Observe(elapsed.Seconds())
	}
	switch res {
	case resultOK:
		return
	case resultError:
		in.errors.Add(1)
		in.sink.log.LogAttrs(context.Background(), slog.LevelDebug, "plugin call failed", slog.Any("err", err))
	case resultTimeout:
		in.timeouts.Add(1)
	case resultTrap:
		in.traps.Add(1)
	case resultLimit:
		in.limitHits.Add(1)
	}
	in.lastMu.Lock()
	in.lastErr, in.lastErrAt = err.Error(), time.Now()
	in.lastMu.Unlock()
}

// Stats returns the instance's counters.
func (in *Instance) Stats() Stats {
	in.lastMu.Lock()
	last, at := in.lastErr, in.lastErrAt
	in.lastMu.Unlock()
	return Stats{
		Calls:           in.calls.Load(),
		Errors:          in.errors.Load(),
		Timeouts:        in.timeouts.Load(),
		Traps:           in.traps.Load(),
		LimitHits:       in.limitHits.Load(),
		Replaced:        in.replaced.Load(),
		BadImportCalls:  in.badCalls.Load(),
		LogLinesDropped: in.sink.guest.refused(),
		LastError:       last,
		LastErrorAt:     at,
	}
}

// Close stops the instance: calls waiting for a module instance fail with
// ErrClosed, calls under way finish (each within its deadline), then the
// module instances, the state and the reference to the Module are
// released. If ctx ends first, Close returns its error and the release
// completes in the background.
func (in *Instance) Close(ctx context.Context) error {
	first := false
	in.closeOnce.Do(func() {
		first = true
		in.closed.Store(true)
		close(in.closing)
	})
	if !first {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		var errs []error
		for range cap(in.pool) {
			if s := <-in.pool; s != nil {
				errs = append(errs, s.close(context.Background()))
			}
		}
		in.rt.metrics.release(in.tenant, in.id)
		in.fetcher.close()
		errs = append(errs, in.mod.Close(context.Background()))
		done <- errors.Join(errs...)
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s: close: %w", in.name, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: close: %w", in.name, ctx.Err())
	}
}
