package wasm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

const pageSize = 64 << 10

// opInstantiate names instantiation (with _initialize) in errors.
const opInstantiate = "instantiate"

// phase is what a module instance is doing; it decides what the imports
// allow.
type phase uint8

const (
	phaseIdle      phase = iota
	phaseInit            // instantiation, _initialize, sy_init; and the load check
	phaseTransform       // sy_transform, one input in scope
	phaseCollect         // sy_collect
)

// slot is one module instance of an Instance's pool with the state of the
// call it serves. Only the goroutine holding the slot touches it, except
// for the deadline (callCtx.expire), which is atomic.
type slot struct {
	inst *Instance // nil during a module's load check
	sink *logSink
	mod  api.Module
	// Exports looked up once.
	transform, collect api.Function
	stack              [1]uint64 // CallWithStack's params and results

	ctx        callCtx
	timer      *time.Timer   // fires callCtx.expire at the deadline
	stopParent func() bool   // stops watching the caller's context
	budget     time.Duration // the time the current call was given

	mem            linearMemory
	stdout, stderr lineWriter

	// The current call, cleared by reset.
	phase    phase
	in       Message
	hasInput bool
	now      time.Time // the collect time
	out      *batch
	outBytes int
	limitErr error // the first limit the call hit
	failMsg  string
	httpResp []byte // the response of the call's last http_fetch
	httpErr  string // why the call's last http_fetch failed
}

// batch holds the outputs of one call; batches are recycled.
type batch struct{ msgs []Message }

// newSlot instantiates m under timeout. For an instance (inst != nil) it
// runs sy_init too; a non-zero result refuses the configuration with the
// guest's message.
func (r *Runtime) newSlot(ctx context.Context, m *Module, inst *Instance, sink *logSink, pages uint32, timeout time.Duration) (*slot, error) {
	s := &slot{inst: inst, sink: sink, mem: linearMemory{limit: uint64(pages) * pageSize}, out: &batch{}}
	s.ctx = callCtx{slot: s, done: make(chan struct{})}
	s.timer = time.AfterFunc(time.Hour, func() { s.ctx.expire(expiredDeadline) })
	s.timer.Stop()
	s.stdout = lineWriter{sink: sink, stream: "stdout", level: slog.LevelInfo}
	s.stderr = lineWriter{sink: sink, stream: "stderr", level: slog.LevelWarn}

	s.phase = phaseInit
	s.begin(experimental.WithMemoryAllocator(ctx, &s.mem), time.Now(), timeout)
	mod, err := r.wz.InstantiateModule(&s.ctx, m.compiled, r.modCfg.WithStdout(&s.stdout).WithStderr(&s.stderr))
	name, rc := opInstantiate, int32(0)
	if err == nil {
		s.mod = mod
		s.transform = mod.ExportedFunction(exportTransform)
		s.collect = mod.ExportedFunction(exportCollect)
		if init := mod.ExportedFunction(exportInit); inst != nil && init != nil {
			name = exportInit
			err = init.CallWithStack(&s.ctx, s.stack[:])
			rc = int32(s.stack[0])
		}
	}
	usable := s.end()
	res, err := s.outcome(name, err, rc)
	if res == resultOK && !usable {
		res, err = resultTimeout, fmt.Errorf("%s ran past its %v deadline: %w", name, s.budget.Round(time.Millisecond), context.DeadlineExceeded)
	}
	s.reset()
	if res != resultOK {
		return nil, errors.Join(err, s.close(context.Background()))
	}
	return s, nil
}

// begin arms the deadline of a call starting at start: d, or the caller's
// deadline when that is earlier; the caller's cancellation stops the call
// too. ctx also supplies the context values the call sees.
func (s *slot) begin(ctx context.Context, start time.Time, d time.Duration) {
	c := &s.ctx
	c.parent = ctx
	c.deadline = start.Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(c.deadline) {
		c.deadline, d = dl, dl.Sub(start)
	}
	s.budget = d
	s.timer.Reset(d)
	if ctx.Done() != nil { // a cancellable caller: the only path that allocates
		s.stopParent = context.AfterFunc(ctx, func() {
			why := expiredCanceled
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				why = expiredDeadline
			}
			c.expire(why)
		})
	}
}

// end disarms the deadline; false when it or the cancellation fired, after
// which the module instance must be discarded (it is, or is being, closed).
func (s *slot) end() bool {
	usable := s.timer.Stop()
	if s.stopParent != nil {
		if !s.stopParent() {
			usable = false
		}
		s.stopParent = nil
	}
	s.ctx.parent = nil
	return usable && s.ctx.state.Load() == 0
}

// outcome classifies a finished call of the export name: err is wazero's,
// rc the export's result when err is nil.
func (s *slot) outcome(name string, err error, rc int32) (result, error) {
	res, err := s.classify(name, err, rc)
	switch res {
	case resultError:
		err = classified{err, ErrGuestFailed}
	case resultTrap:
		err = classified{err, ErrTrapped}
	case resultLimit:
		err = classified{err, ErrLimit}
	}
	return res, err
}

func (s *slot) classify(name string, err error, rc int32) (result, error) {
	why := ""
	if s.failMsg != "" {
		why = ": " + s.failMsg
	}
	switch {
	case err != nil && s.ctx.state.Load() == expiredCanceled:
		return resultTimeout, fmt.Errorf("%s stopped: %w", name, context.Canceled)
	case err != nil && s.ctx.state.Load() == expiredDeadline:
		return resultTimeout, fmt.Errorf("%s ran past its %v deadline: %w", name, s.budget.Round(time.Millisecond), context.DeadlineExceeded)
	case s.mem.refused && (err != nil || rc != 0):
		return resultLimit, fmt.Errorf("%s: memory limit of %d pages reached%s", name, s.mem.limit/pageSize, why)
	case s.limitErr != nil && (err != nil || rc != 0):
		return resultLimit, fmt.Errorf("%s: %w%s", name, s.limitErr, why)
	case err != nil && name == opInstantiate: // a link error, or a trap in _initialize
		return resultTrap, fmt.Errorf("%s: %w", name, err)
	case err != nil: // the guest's fail message, if it gave one before trapping, says why
		return resultTrap, fmt.Errorf("%s trapped: %w%s", name, err, why)
	case rc != 0 && name == exportInit:
		return resultError, fmt.Errorf("%s refused the configuration (returned %d)%s", name, rc, why)
	case rc != 0:
		return resultError, fmt.Errorf("%s returned %d%s", name, rc, why)
	}
	return resultOK, nil
}

func (s *slot) reset() {
	s.phase = phaseIdle
	s.in, s.hasInput, s.now = Message{}, false, time.Time{}
	clear(s.out.msgs)
	s.out.msgs = s.out.msgs[:0]
	s.outBytes, s.limitErr, s.failMsg = 0, nil, ""
	s.httpResp, s.httpErr = nil, ""
	s.mem.refused = false
}

// limit records the first limit the call hit.
func (s *slot) limit(err error) {
	if s.limitErr == nil {
		s.limitErr = err
	}
}

// badCall counts an import call with a bad argument.
func (s *slot) badCall() {
	if s.inst != nil {
		s.inst.badCalls.Add(1)
	}
}

func (s *slot) bad() int32 {
	s.badCall()
	return statusBadArgument
}

// close closes the module instance; it is idempotent.
func (s *slot) close(ctx context.Context) error {
	s.timer.Stop()
	s.stdout.flush()
	s.stderr.flush()
	if s.mod == nil {
		return nil
	}
	mod := s.mod
	s.mod = nil
	return mod.Close(ctx)
}

// Reasons a call context expired.
const (
	expiredDeadline int32 = 1 + iota
	expiredCanceled
)

type slotKey struct{}

// callCtx is the context of every call into one module instance, reused
// call after call: its Done channel closes when the slot's timer or the
// caller's cancellation expires it, which makes wazero close the module
// instance (WithCloseOnContextDone). Value finds the slot for the host
// imports and defers other keys to the caller's context.
type callCtx struct {
	parent   context.Context // the caller's; nil between calls
	slot     *slot
	deadline time.Time
	done     chan struct{}
	state    atomic.Int32 // 0, expiredDeadline or expiredCanceled
}

var _ context.Context = (*callCtx)(nil)

func (c *callCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *callCtx) Done() <-chan struct{} { return c.done }

func (c *callCtx) Err() error {
	switch c.state.Load() {
	case expiredDeadline:
		return context.DeadlineExceeded
	case expiredCanceled:
		return context.Canceled
	}
	return nil
}

func (c *callCtx) Value(key any) any {
	if key == (slotKey{}) {
		return c.slot
	}
	if c.parent == nil {
		return nil
	}
	return c.parent.Value(key)
}

func (c *callCtx) expire(why int32) {
	if c.state.CompareAndSwap(0, why) {
		close(c.done)
	}
}

// linearMemory backs a module instance's memory and refuses to grow past
// its instance's Limits.MemoryBytes: the guest's memory.grow returns -1.
type linearMemory struct {
	buf     []byte
	limit   uint64 // bytes
	refused bool   // a growth was refused during the current call
}

var (
	_ experimental.MemoryAllocator = (*linearMemory)(nil)
	_ experimental.LinearMemory    = (*linearMemory)(nil)
)

func (m *linearMemory) Allocate(capacity, _ uint64) experimental.LinearMemory {
	m.buf = make([]byte, 0, min(capacity, m.limit))
	return m
}

func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.refused = true
		return nil
	}
	if n := int(size); n <= cap(m.buf) {
		m.buf = m.buf[:n]
	} else {
		m.buf = append(m.buf, make([]byte, n-len(m.buf))...)
	}
	return m.buf
}

func (m *linearMemory) Free() { m.buf = nil }
