//go:build !wasip1

package guesttest

import (
	"time"

	"github.com/switchyard/switchyard/sdk/guest"
	"github.com/switchyard/switchyard/sdk/guest/internal/native"
)

// Instance is one simulated plugin instance: its configuration, state and log.
type Instance struct {
	host *native.Host
}

// New creates an instance with config as its settings (a JSON object; empty means "{}") and
// runs the registered Init function, if any, as the host does once per instance. It returns
// Init's error. Its guest.HTTPFetch is refused, as the host refuses it to an instance
// without listed hosts; see NewWithOptions.
func New(config []byte) (*Instance, error) {
	return NewWithOptions(config, Options{})
}

// Options are the host's settings of an instance besides its configuration.
type Options struct {
	// HTTP is what guest.HTTPFetch may reach.
	HTTP HTTP
}

// HTTP is an instance's http_fetch policy, as the host applies it (sdk/ABI.md): Hosts lists
// what guest.HTTPFetch may reach, each "host" (on the scheme's default port), "host:port",
// "*.example.com" or "*.example.com:port", matched against the URL's host name, also on every
// redirect (at most 3). Zero Timeout, MaxResponse and MaxRequest take the host's defaults: 5 s,
// 1 MiB of response body, 64 KiB of request JSON. No Hosts: every fetch fails with
// guest.ErrNotAllowed.
//
// The fetches are real HTTP requests: point them at a server the test starts, such as an
// httptest.Server, and list its host:port.
type HTTP struct {
	Hosts       []string
	Timeout     time.Duration
	MaxResponse int64
	MaxRequest  int64
}

// NewWithOptions is New with the host's settings of the instance; it refuses a malformed
// host pattern.
func NewWithOptions(config []byte, opts Options) (*Instance, error) {
	i := &Instance{host: native.New(config)}
	p := opts.HTTP
	if err := i.host.SetHTTP(native.HTTPPolicy{Hosts: p.Hosts, Timeout: p.Timeout, MaxResponse: p.MaxResponse, MaxRequest: p.MaxRequest}); err != nil {
		return nil, err
	}
	if err := i.host.Init(); err != nil {
		return nil, err
	}
	return i, nil
}

// Transform calls the registered transform with in and returns what it emitted, in order.
// Each output has the subject the host would give it, the input's Time and a copy of the
// payload; Source is left empty (the host sets it to the instance id).
func (i *Instance) Transform(in guest.Message) ([]guest.Message, error) {
	var ns int64
	if !in.Time.IsZero() {
		ns = in.Time.UnixNano()
	}
	emitted, err := i.host.Transform(native.Input{Subject: in.Subject, Source: in.Source, Time: ns, Payload: in.Payload})
	if err != nil {
		return nil, err
	}
	return messages(emitted, in.Time), nil
}

// Collect calls the registered collector as the host does at time now (also what guest.Now
// returns during the call) and returns what it emitted, in order, each with Time now and
// Source empty.
func (i *Instance) Collect(now time.Time) ([]guest.Message, error) {
	emitted, err := i.host.Collect(now.UnixNano())
	if err != nil {
		return nil, err
	}
	return messages(emitted, now), nil
}

func messages(emitted []native.Emitted, t time.Time) []guest.Message {
	if len(emitted) == 0 {
		return nil
	}
	out := make([]guest.Message, len(emitted))
	for k, e := range emitted {
		out[k] = guest.Message{Subject: e.Subject, Time: t, Payload: e.Payload}
	}
	return out
}

// State returns a copy of the value stored under key in the instance's state.
func (i *Instance) State(key string) ([]byte, bool) {
	return i.host.State(key)
}

// Log is one line the plugin logged.
type Log struct {
	Level guest.Level
	Msg   string
}

// Logs returns the lines the plugin has logged in this instance, oldest first.
func (i *Instance) Logs() []Log {
	lines := i.host.Logs()
	out := make([]Log, len(lines))
	for k, l := range lines {
		out[k] = Log{Level: guest.Level(l.Level), Msg: l.Msg}
	}
	return out
}

// RunTransform creates an instance with config and calls its transform once with in.
func RunTransform(config []byte, in guest.Message) ([]guest.Message, error) {
	i, err := New(config)
	if err != nil {
		return nil, err
	}
	return i.Transform(in)
}

// RunCollect creates an instance with config and calls its collector once at now.
func RunCollect(config []byte, now time.Time) ([]guest.Message, error) {
	i, err := New(config)
	if err != nil {
		return nil, err
	}
	return i.Collect(now)
}
