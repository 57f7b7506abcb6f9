package native

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/switchyard/switchyard/sdk/guest/internal/abi"
)

// Entry holds the exports of the guest, run in-process. Each returns the error that the WASM
// export would pass to the host's fail import; nil is success.
type Entry struct {
	Init      func() error // sy_init
	Transform func() error // sy_transform
	Collect   func() error // sy_collect
}

// Input is the message in scope of a transform call.
type Input struct {
	Subject, Source string
	Time            int64 // unix nanoseconds; 0 when unknown
	Payload         []byte
}

// Emitted is one message a call emitted, with its subject resolved as the host resolves it.
type Emitted struct {
	Subject string
	Payload []byte
}

// Log is one line the guest logged.
type Log struct {
	Level int32
	Msg   string
}

type phase int

const (
	idle phase = iota
	initPhase
	transformPhase
	collectPhase
)

var (
	entry  Entry
	mu     sync.Mutex // serialises calls: the guest's package state is shared by every Host
	active atomic.Pointer[Host]
)

// Install records the guest's entry points; package guest calls it from init.
func Install(e Entry) { entry = e }

// Active returns the Host of the call in progress, or nil outside a call.
func Active() *Host { return active.Load() }

// Host is one simulated plugin instance.
type Host struct {
	config  []byte
	state   map[string][]byte
	logs    []Log
	phase   phase
	input   Input
	now     int64 // the call's time; 0 means the wall clock
	emitted []Emitted
	http    *httpFetcher // nil: http_fetch refuses every request
}

// New returns a Host whose instance has config as its settings ("{}" when config is empty).
func New(config []byte) *Host {
	if len(config) == 0 {
		config = []byte("{}")
	}
	return &Host{config: config, state: make(map[string][]byte)}
}

// Init runs sy_init.
func (h *Host) Init() error {
	_, err := h.call(initPhase, Input{}, 0, entry.Init)
	return err
}

// Transform runs sy_transform with in in scope and returns what it emitted; nothing when it
// fails.
func (h *Host) Transform(in Input) ([]Emitted, error) {
	return h.call(transformPhase, in, 0, entry.Transform)
}

// Collect runs sy_collect at time now (unix nanoseconds) and returns what it emitted;
// nothing when it fails.
func (h *Host) Collect(now int64) ([]Emitted, error) {
	return h.call(collectPhase, Input{}, now, entry.Collect)
}

func (h *Host) call(p phase, in Input, now int64, export func() error) ([]Emitted, error) {
	if export == nil {
		return nil, errors.New("guest kit not installed: import github.com/switchyard/switchyard/sdk/guest")
	}
	mu.Lock()
	defer mu.Unlock()
	h.phase, h.input, h.now, h.emitted = p, in, now, nil
	active.Store(h)
	defer func() {
		active.Store(nil)
		h.phase, h.input, h.now, h.emitted = idle, Input{}, 0, nil
	}()
	if err := export(); err != nil {
		return nil, err
	}
	return h.emitted, nil
}

// Logs returns the lines logged so far.
func (h *Host) Logs() []Log {
	mu.Lock()
	defer mu.Unlock()
	return append([]Log(nil), h.logs...)
}

// State returns a copy of the value stored under key.
func (h *Host) State(key string) ([]byte, bool) {
	mu.Lock()
	defer mu.Unlock()
	v, ok := h.state[key]
	if !ok {
		return nil, false
	}
	return append([]byte{}, v...), true
}

// What follows are the host imports, called by package guest during a call.

// Config returns a copy of the instance's settings.
func (h *Host) Config() []byte { return append([]byte(nil), h.config...) }

// Log records one line; like the host, it drops a line whose level is not 0 to 3.
func (h *Host) Log(level int32, msg string) {
	if level < 0 || level > 3 {
		return
	}
	h.logs = append(h.logs, Log{Level: level, Msg: msg})
}

// Now returns the call's time, or the wall clock, in unix nanoseconds.
func (h *Host) Now() int64 {
	if h.now != 0 {
		return h.now
	}
	return time.Now().UnixNano()
}

// InputTime is input_time: the input's time in sy_transform, the call's
// time in sy_collect, 0 otherwise (unix nanoseconds).
func (h *Host) InputTime() int64 {
	switch h.phase {
	case transformPhase:
		return h.input.Time
	case collectPhase:
		return h.now
	}
	return 0
}

// Input returns the message in scope; false outside sy_transform.
func (h *Host) Input() (Input, bool) {
	return h.input, h.phase == transformPhase
}

// Emit queues one output and returns a status code of the ABI.
func (h *Host) Emit(subject string, payload []byte) int32 {
	switch h.phase {
	case transformPhase:
		if subject == "" {
			subject = h.input.Subject
		}
	case collectPhase:
		if subject == "" {
			return abi.BadArgument
		}
	default:
		return abi.NotAllowed
	}
	if !utf8.ValidString(subject) {
		return abi.BadArgument
	}
	h.emitted = append(h.emitted, Emitted{Subject: subject, Payload: append([]byte(nil), payload...)})
	return abi.OK
}

// StateGet returns a copy of the value under key and abi.OK, or abi.Absent.
func (h *Host) StateGet(key string) ([]byte, int32) {
	v, ok := h.state[key]
	if !ok {
		return nil, abi.Absent
	}
	return append([]byte{}, v...), abi.OK
}

// StateSet stores a copy of val under key.
func (h *Host) StateSet(key string, val []byte) int32 {
	h.state[key] = append([]byte{}, val...)
	return abi.OK
}

// StateDelete removes key; abi.OK also when it was absent.
func (h *Host) StateDelete(key string) int32 {
	delete(h.state, key)
	return abi.OK
}
