// Package plugintest is the guest conformance kit: one set of cases run
// against every WASM guest, whatever language it was written in. A guest's
// profile (conformance.yaml, see README.md) says what goes in and what must
// come out in each case; the kit runs the cases through a Host, checks every
// call, and prints a pass/fail table per guest.
//
// The kit does not depend on the host: `switchyard conform` and the
// repository's tests give it the real WASM host (runtime/conform).
package plugintest

import (
	"context"
	"encoding/json"
	"time"
)

// Message is one message into or out of a guest.
type Message struct {
	Subject, Source string
	Time            time.Time
	Payload         []byte
}

// Outcome is how a call (or a start) ended.
type Outcome int

const (
	// Succeeded: the guest returned 0.
	Succeeded Outcome = iota
	// Reported: the guest failed the call itself, returning non-zero (with
	// fail's message); at start, sy_init refused the configuration.
	Reported
	// Trapped: the guest trapped or exited.
	Trapped
	// TimedOut: the call ran past its deadline.
	TimedOut
	// LimitHit: the call hit a host limit (memory, emits, output bytes).
	LimitHit
)

func (o Outcome) String() string {
	switch o {
	case Succeeded:
		return "succeeded"
	case Reported:
		return "reported an error"
	case Trapped:
		return "trapped"
	case TimedOut:
		return "timed out"
	case LimitHit:
		return "hit a host limit"
	}
	return "unknown outcome"
}

// Result is the end of one call: the outputs of a successful call, or the
// error and how the call ended.
type Result struct {
	Outputs []Message
	Outcome Outcome
	Err     error
}

// Host loads guests. An implementation runs them the way the relay does.
type Host interface {
	// Load loads the module of g; its instances may fetch only from the
	// origins in g.Fetch.
	Load(ctx context.Context, g GuestSpec) (Guest, error)
}

// GuestSpec is what Host.Load needs.
type GuestSpec struct {
	Use    string // kind.name
	Module string // the module's path; empty: the host's default for Use
	// Fetch is the origins (http://127.0.0.1:PORT) instances may reach with
	// http_fetch; none: fetching is refused.
	Fetch []string
}

// Guest is a loaded module.
type Guest interface {
	// Start starts a fresh plugin instance with config (a JSON object). A
	// guest that refuses it returns Reported with its message.
	Start(ctx context.Context, config json.RawMessage) (Instance, Outcome, error)
	// Imports lists the module's imports as "module.name".
	Imports() []string
	Close() error
}

// Instance is one plugin instance.
type Instance interface {
	Transform(ctx context.Context, m Message) Result
	Collect(ctx context.Context, now time.Time) Result
	Close() error
}
