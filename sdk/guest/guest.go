package guest

import (
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/switchyard/switchyard/sdk/guest/internal/abi"
)

// Message is the input of a transform.
type Message struct {
	// Subject is the dotted topic the message was routed on.
	Subject string
	// Source names where the message was made: a plugin instance id or "device.<id>".
	Source string
	// Time is when the message was made; zero when the host does not know.
	Time time.Time
	// Payload is the message body. It is valid only until the transform function returns
	// (the kit reuses its memory for the next message): copy it to keep it.
	Payload []byte
}

// Level is the severity of a log line.
type Level int32

// The log levels, as the host numbers them.
const (
	Debug Level = 0
	Info  Level = 1
	Warn  Level = 2
	Error Level = 3
)

func (l Level) String() string {
	switch l {
	case Debug:
		return "debug"
	case Info:
		return "info"
	case Warn:
		return "warn"
	case Error:
		return "error"
	}
	return fmt.Sprintf("level(%d)", int32(l))
}

// Errors the host reports. They are wrapped with the operation: errors.Is(err, ErrLimit).
var (
	// ErrBadArgument: the host refused an argument, such as a subject that is not valid
	// UTF-8, or an empty subject in a collector (which has no input subject to inherit).
	ErrBadArgument = errors.New("bad argument")
	// ErrLimit: a per-call or per-instance limit of the host was reached (messages or bytes
	// emitted in this call, state size). Stop emitting; the call may still succeed with what
	// was emitted so far.
	ErrLimit = errors.New("limit reached")
	// ErrNotAllowed: the operation is not allowed here, such as emitting outside a
	// transform or collect call.
	ErrNotAllowed = errors.New("not allowed here")
	// ErrFailed: an HTTPFetch did not get a response: a network, TLS or HTTP error, or its
	// timeout (or the call's deadline) passed.
	ErrFailed = errors.New("failed")
)

// errCallEnded is returned by Emit on an Output whose call has returned.
var errCallEnded = errors.New("guest: emit: the Output's call has ended")

// statusError turns a status code of the host into an error for op.
func statusError(op string, status int32) error {
	switch status {
	case abi.OK:
		return nil
	case abi.BadArgument:
		return fmt.Errorf("guest: %s: %w", op, ErrBadArgument)
	case abi.Limit:
		return fmt.Errorf("guest: %s: %w", op, ErrLimit)
	case abi.NotAllowed:
		return fmt.Errorf("guest: %s: %w", op, ErrNotAllowed)
	case abi.Failed:
		return fmt.Errorf("guest: %s: %w", op, ErrFailed)
	}
	return fmt.Errorf("guest: %s: unexpected status %d from the host", op, status)
}

// The author's functions; each is registered once, from an init function.
var (
	initFunc      func(config []byte) error
	transformFunc func(in Message, out *Output) error
	collectFunc   func(now time.Time, out *Output) error
)

// Init registers f to run once per instance, before any other call, with the instance's
// configuration: a JSON object, "{}" when it has none. An error refuses the configuration,
// and the host reports it without starting the instance. Registering Init is optional.
//
// Call Init, Transform and Collect from an init function of your main package; main itself
// never runs in a WASM plugin. Each panics when f is nil or when one is already registered.
func Init(f func(config []byte) error) {
	mustRegister("Init", f == nil, initFunc != nil)
	initFunc = f
}

// Transform registers f as the module's transform. The host calls it with one message at a
// time; it emits zero, one or many results with out.Emit and returns nil, or returns an
// error, which fails the call and discards what it emitted.
func Transform(f func(in Message, out *Output) error) {
	mustRegister("Transform", f == nil, transformFunc != nil)
	transformFunc = f
}

// Collect registers f as the module's collector. The host calls it every interval (a
// setting of the instance) with the call's time; it emits what it has gathered with out.Emit.
// An error fails the call and discards what it emitted.
func Collect(f func(now time.Time, out *Output) error) {
	mustRegister("Collect", f == nil, collectFunc != nil)
	collectFunc = f
}

func mustRegister(name string, isNil, taken bool) {
	switch {
	case isNil:
		panic("guest: " + name + ": nil function")
	case taken:
		panic("guest: " + name + ": already registered")
	}
}

// Output is where a transform or collector emits its results. It is valid only during the
// call it was passed to.
type Output struct {
	live bool
}

// Emit sends one message on. An empty subject means the input's subject (for a transform;
// a collector must name one). The host copies payload before Emit returns. An error wrapping
// ErrLimit means this call may emit no more.
func (o *Output) Emit(subject string, payload []byte) error {
	if o == nil || !o.live {
		return errCallEnded
	}
	return statusError("emit", sysEmit(subject, payload))
}

// Log writes msg to the host's log at level, attributed to the plugin instance.
func Log(level Level, msg string) {
	sysLog(int32(level), msg)
}

// Now returns the host's clock.
func Now() time.Time {
	return fromUnixNano(sysNow())
}

// StateGet returns a copy of the value stored under key in the plugin instance's state. It
// reports false when there is none (and when the host refuses the key).
func StateGet(key string) ([]byte, bool) {
	val, status := sysStateGet(key)
	return val, status >= 0
}

// StateSet stores a copy of val under key in the plugin instance's state, which every module
// instance of the plugin instance shares and which outlives any one of them. An error wrapping
// ErrLimit means the state would exceed its size limit; nothing was stored.
func StateSet(key string, val []byte) error {
	return statusError("state set", sysStateSet(key, val))
}

// StateDelete removes key from the plugin instance's state; it is not an error when key is
// absent.
func StateDelete(key string) error {
	return statusError("state delete", sysStateDelete(key))
}

func fromUnixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// runInit is sy_init.
func runInit() error {
	if initFunc == nil {
		return nil
	}
	config := sysConfig()
	return guard(func() error { return initFunc(config) })
}

// runTransform is sy_transform.
func runTransform() error {
	if transformFunc == nil {
		return errors.New("guest: no transform registered (call guest.Transform from an init function)")
	}
	in, ok := sysInput()
	if !ok {
		return errors.New("guest: transform: the host gave no input message")
	}
	out := &Output{live: true}
	defer func() { out.live = false }()
	return guard(func() error { return transformFunc(in, out) })
}

// runCollect is sy_collect.
func runCollect() error {
	if collectFunc == nil {
		return errors.New("guest: no collector registered (call guest.Collect from an init function)")
	}
	// The call's time, which the outputs are stamped with; the clock only
	// for a host that does not say (input_time 0).
	now := fromUnixNano(sysInputTime())
	if now.IsZero() {
		now = Now()
	}
	out := &Output{live: true}
	defer func() { out.live = false }()
	return guard(func() error { return collectFunc(now, out) })
}

// guard runs the author's f and turns a panic into an error, so that a bug fails one call
// instead of trapping the instance. The stack is logged at Error level.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			Log(Error, fmt.Sprintf("panic: %v\n%s", r, debug.Stack()))
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return f()
}
