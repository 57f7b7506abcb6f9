package wasm

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/switchyard/switchyard/runtime/host/wasm/termination"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// DefaultMaxMemoryBytes is RuntimeOptions.MaxMemoryBytes when it is zero.
const DefaultMaxMemoryBytes = 64 << 20

// ErrClosed is returned by calls on a closed Instance, Module or Runtime.
var ErrClosed = errors.New("closed")

// How a call or an instantiation ended, for errors.Is; a call stopped at
// its deadline or by its caller wraps context.DeadlineExceeded or
// context.Canceled instead.
var (
	// ErrGuestFailed: the guest returned non-zero (from sy_init: it refused
	// its configuration); the error carries the guest's fail message.
	ErrGuestFailed = errors.New("the guest failed")
	// ErrTrapped: the guest trapped or exited.
	ErrTrapped = errors.New("the guest trapped")
	// ErrLimit: the call hit a limit of the host (memory, emits, output bytes).
	ErrLimit = errors.New("a host limit was hit")
)

// classified is an error that is also one of the sentinels above, without
// changing its text.
type classified struct{ err, class error }

func (c classified) Error() string   { return c.err.Error() }
func (c classified) Unwrap() []error { return []error{c.err, c.class} }

// RuntimeOptions configure the Runtime.
type RuntimeOptions struct {
	// CacheDir is the directory of wazero's on-disk compilation cache, so a
	// module compiled once is loaded from disk by later runtimes. Empty:
	// compiled code is kept in memory only.
	CacheDir string
	// MaxMemoryBytes is the ceiling of every instance's Limits.MemoryBytes,
	// compiled into each module in 64 KiB pages (WithMemoryLimitPages).
	// Zero means DefaultMaxMemoryBytes; at most 4 GiB.
	MaxMemoryBytes int64
	// Logger receives guest logs and host warnings; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the switchyard_plugin_* metrics; nil registers
	// nothing. Collectors it already holds (another Runtime's) are reused.
	Registerer prometheus.Registerer
}

// Runtime compiles and runs WASM plugins; one serves the process.
type Runtime struct {
	wz       wazero.Runtime
	cache    wazero.CompilationCache
	log      *slog.Logger
	metrics  *metrics
	maxPages uint32
	modCfg   wazero.ModuleConfig
	// imports is what a guest may import: module name → function name →
	// the host's definition.
	imports map[string]map[string]api.FunctionDefinition

	batches sync.Pool // of *batch, the outputs of calls

	mu      sync.Mutex
	closed  bool
	modules map[[sha256.Size]byte]*Module
}

// NewRuntime starts a Runtime: a wazero runtime with the switchyard_v1 host
// module and WASI (no preopens, no environment, no arguments).
func NewRuntime(ctx context.Context, opts RuntimeOptions) (*Runtime, error) {
	maxBytes := opts.MaxMemoryBytes
	if maxBytes == 0 {
		maxBytes = DefaultMaxMemoryBytes
	}
	if maxBytes < pageSize || maxBytes > 65536*pageSize {
		return nil, fmt.Errorf("max memory %d bytes: want 64 KiB to 4 GiB", maxBytes)
	}
	maxPages := uint32(maxBytes / pageSize)
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	cfg := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(maxPages)
	var cache wazero.CompilationCache
	if opts.CacheDir != "" {
		if cache, err = wazero.NewCompilationCacheWithDir(opts.CacheDir); err != nil {
			m.unregister()
			return nil, fmt.Errorf("compilation cache %s: %w", opts.CacheDir, err)
		}
		cfg = cfg.WithCompilationCache(cache)
	}
	r := &Runtime{
		wz:       wazero.NewRuntimeWithConfig(ctx, cfg),
		cache:    cache,
		log:      log,
		metrics:  m,
		maxPages: maxPages,
		modCfg: wazero.NewModuleConfig().
			WithName("").
			WithStartFunctions("_initialize").
			WithSysWalltime().
			WithSysNanotime().
			WithRandSource(rand.Reader),
		modules: map[[sha256.Size]byte]*Module{},
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r.wz); err != nil {
		m.unregister()
		return nil, errors.Join(fmt.Errorf("instantiate wasi: %w", err), r.closeAll(ctx))
	}
	host, err := instantiateHost(ctx, r.wz)
	if err != nil {
		m.unregister()
		return nil, errors.Join(fmt.Errorf("instantiate %s: %w", hostModule, err), r.closeAll(ctx))
	}
	r.imports = map[string]map[string]api.FunctionDefinition{
		wasi_snapshot_preview1.ModuleName: r.wz.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions(),
		hostModule:                        host.ExportedFunctionDefinitions(),
	}
	return r, nil
}

// Close closes every module and instance of the runtime and the
// compilation cache. Close Instances first: their calls fail afterwards.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	clear(r.modules)
	r.mu.Unlock()
	r.metrics.unregister()
	return r.closeAll(ctx)
}

func (r *Runtime) closeAll(ctx context.Context) error {
	err := r.wz.Close(ctx)
	if r.cache != nil {
		err = errors.Join(err, r.cache.Close(ctx))
	}
	return err
}

// Module is a compiled guest module that passed the load checks. It is
// shared: every successful Compile of the same bytes returns the same
// *Module and must be matched by one Close.
type Module struct {
	rt     *Runtime
	sum    [sha256.Size]byte
	digest string

	ready chan struct{} // closed when compilation ended
	err   error         // set before ready is closed

	compiled wazero.CompiledModule
	exports  exports
	refs     int // guarded by rt.mu; Instances hold one each
}

// Digest is the hex sha256 of the module's bytes.
func (m *Module) Digest() string { return m.digest }

// Imports lists the functions the module imports, as "module.name".
func (m *Module) Imports() []string { return slices.Clone(m.exports.imports) }

// Compile compiles a guest module once per sha256 of its bytes, checks its
// imports, exports and signatures against ABI v1 and runs its
// sy_abi_version (after _initialize) to check that it returns 1. Errors
// name the import or export at fault and the expected WAT signature.
func (r *Runtime) Compile(ctx context.Context, wasm []byte) (*Module, error) {
	sum := sha256.Sum256(wasm)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("compile: runtime %w", ErrClosed)
	}
	if m := r.modules[sum]; m != nil {
		m.refs++
		r.mu.Unlock()
		<-m.ready
		if m.err != nil {
			return nil, m.err
		}
		return m, nil
	}
	m := &Module{rt: r, sum: sum, digest: hex.EncodeToString(sum[:]), ready: make(chan struct{}), refs: 1}
	r.modules[sum] = m
	r.mu.Unlock()

	if err := r.compile(ctx, m, wasm); err != nil {
		m.err = fmt.Errorf("wasm module sha256:%.12s: %w", m.digest, err)
		r.mu.Lock()
		if r.modules[sum] == m {
			delete(r.modules, sum)
		}
		r.mu.Unlock()
	}
	close(m.ready)
	if m.err != nil {
		return nil, m.err
	}
	return m, nil
}

// instrument inserts the deadline checks into a module before it is
// compiled (a variable: tests and benchmarks do without them).
var instrument = termination.Instrument

// compile compiles the module's bytes with deadline checks inserted
// (package termination: without them a loop-free guest, a deep recursion
// say, runs past its deadline). m keeps the digest of the bytes as given.
// Bytes the instrumenter cannot read are compiled as they are, for wazero
// to refuse with its own error; should wazero accept them, the module runs
// without the checks, and a warning says so.
func (r *Runtime) compile(ctx context.Context, m *Module, wasm []byte) error {
	if err := checkCounts(wasm); err != nil {
		return fmt.Errorf("compile: %w", err)
	}
	code, _, ierr := instrument(wasm)
	if ierr != nil {
		code = wasm
	}
	compiled, err := compileModule(ctx, r.wz, code)
	if err != nil {
		return fmt.Errorf("compile: %w", err)
	}
	if ierr != nil {
		r.log.Warn("wasm module compiled without deadline checks: a loop-free recursion may run past its deadline",
			"module", "sha256:"+m.digest[:12], "err", ierr)
	}
	ex, err := validate(compiled, r.imports)
	if err != nil {
		return errors.Join(err, compiled.Close(ctx))
	}
	m.compiled, m.exports = compiled, ex
	if err := r.checkVersion(ctx, m); err != nil {
		return errors.Join(err, compiled.Close(ctx))
	}
	return nil
}

// checkVersion instantiates the module once, without an instance: config
// reads "{}", emit and state are not allowed, and sy_abi_version must
// return 1.
func (r *Runtime) checkVersion(ctx context.Context, m *Module) error {
	sink := &logSink{log: r.log.With("module", "sha256:"+m.digest[:12]), guest: newRate(logRate, logBurst)}
	s, err := r.newSlot(ctx, m, nil, sink, r.maxPages, DefaultInitTimeout)
	if err != nil {
		return err
	}
	defer s.close(ctx)
	s.phase = phaseInit
	s.begin(ctx, time.Now(), DefaultInitTimeout)
	err = s.mod.ExportedFunction(exportVersion).CallWithStack(&s.ctx, s.stack[:])
	s.end()
	if _, err := s.outcome(exportVersion, err, 0); err != nil {
		return err
	}
	if v := int32(s.stack[0]); v != abiVersion {
		return fmt.Errorf("%s returned %d: this host implements ABI version %d (module %s)", exportVersion, v, abiVersion, hostModule)
	}
	return nil
}

// Close releases this reference to the module; the compiled code is freed
// when the last reference (Compile results and Instances) is gone.
func (m *Module) Close(ctx context.Context) error {
	r := m.rt
	r.mu.Lock()
	if m.refs == 0 {
		r.mu.Unlock()
		return fmt.Errorf("module sha256:%.12s: %w", m.digest, ErrClosed)
	}
	m.refs--
	last := m.refs == 0
	if last && r.modules[m.sum] == m {
		delete(r.modules, m.sum)
	}
	closed := r.closed
	r.mu.Unlock()
	if last && !closed {
		return m.compiled.Close(ctx)
	}
	return nil
}

// retain takes a reference for an Instance.
func (m *Module) retain() error {
	m.rt.mu.Lock()
	defer m.rt.mu.Unlock()
	if m.refs == 0 || m.rt.closed {
		return fmt.Errorf("module sha256:%.12s: %w", m.digest, ErrClosed)
	}
	m.refs++
	return nil
}

func (r *Runtime) getBatch() *batch {
	if b, ok := r.batches.Get().(*batch); ok {
		return b
	}
	return &batch{}
}

// putBatch recycles a batch whose messages were handed over; very large
// ones are left to the garbage collector.
func (r *Runtime) putBatch(b *batch) {
	clear(b.msgs)
	if cap(b.msgs) > 1024 {
		return
	}
	b.msgs = b.msgs[:0]
	r.batches.Put(b)
}

// compileModule is wazero's CompileModule, with a panic turned into the
// module's refusal: wazero v1.12 panics on some malformed modules (a call
// to a function whose type index is out of range, found by fuzzing), and
// module bytes come from tenants.
func compileModule(ctx context.Context, wz wazero.Runtime, code []byte) (c wazero.CompiledModule, err error) {
	defer func() {
		if p := recover(); p != nil {
			c, err = nil, fmt.Errorf("malformed module: the compiler failed on it: %v", p)
		}
	}()
	return wz.CompileModule(ctx, code)
}
