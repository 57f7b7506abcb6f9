package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// WorkerSpec is what the coordinator tells one client worker process: which
// connections to open, where to, and for how long the worker may live.
type WorkerSpec struct {
	// First and Count select the connection indices [First, First+Count).
	First int `json:"first"`
	Count int `json:"count"`
	// Targets are ws:// URLs; connection i goes to Targets[i%len(Targets)].
	Targets []string `json:"targets"`
	// Tokens holds one device token per connection of this worker, or none
	// for a server that does not authenticate.
	Tokens []string `json:"tokens,omitempty"`
	// SourceBase and PerSource spread the connections over local addresses
	// (see Source).
	SourceBase string `json:"source_base"`
	PerSource  int    `json:"per_source"`
	// Concurrency bounds the handshakes in flight.
	Concurrency int `json:"concurrency"`
	// DialTimeout bounds one connection's dial, upgrade and hello.
	DialTimeout time.Duration `json:"dial_timeout"`
	// ConnectTimeout bounds the whole connect phase; connections not dialed
	// by then count as failed.
	ConnectTimeout time.Duration `json:"connect_timeout"`
	// Heartbeat is how often each connection sends a heartbeat.
	Heartbeat time.Duration `json:"heartbeat"`
	// Lifetime is how long the worker lives at most, whatever it is told.
	Lifetime time.Duration `json:"lifetime"`
}

func (s WorkerSpec) validate() error {
	switch {
	case s.First < 0 || s.Count <= 0:
		return fmt.Errorf("worker spec: bad range first=%d count=%d", s.First, s.Count)
	case len(s.Targets) == 0:
		return errors.New("worker spec: no targets")
	case len(s.Tokens) != 0 && len(s.Tokens) != s.Count:
		return fmt.Errorf("worker spec: %d tokens for %d connections", len(s.Tokens), s.Count)
	case s.PerSource <= 0 || s.Concurrency <= 0:
		return errors.New("worker spec: per_source and concurrency must be positive")
	case s.DialTimeout <= 0 || s.ConnectTimeout <= 0 || s.Heartbeat <= 0 || s.Lifetime <= 0:
		return errors.New("worker spec: timeouts, heartbeat and lifetime must be positive")
	}
	return nil
}

// ConnectReport is a worker's account of its connect phase.
type ConnectReport struct {
	Connected int            `json:"connected"`
	Failures  map[string]int `json:"failures,omitempty"`
	Start     time.Time      `json:"start"`
	End       time.Time      `json:"end"`
	// HandshakeMicros holds, for each connection that came up, the time
	// from dial to welcome in microseconds.
	HandshakeMicros []int64 `json:"handshake_us,omitempty"`
}

// HoldReport is a worker's account of its connections at the end of the
// hold.
type HoldReport struct {
	Open               int            `json:"open"`
	HeartbeatsSent     int64          `json:"heartbeats_sent"`
	HeartbeatsAnswered int64          `json:"heartbeats_answered"`
	OtherMessages      int64          `json:"other_messages"`
	Disconnects        map[string]int `json:"disconnects,omitempty"`
	RSS                int64          `json:"rss"`
}

// Commands the coordinator sends a worker after its spec.
const (
	cmdReport     = "report"
	cmdDeliveries = "deliveries"
	cmdClose      = "close"
)

// DeliveryReport is a worker's snapshot of the message frames it received
// so far; two snapshots bound a measurement window.
type DeliveryReport struct {
	// At is when the snapshot was taken, by the worker's clock.
	At time.Time `json:"at"`
	// Open counts the connections open at that moment.
	Open int `json:"open"`
	// CPU is the CPU time the worker process has used so far.
	CPU    time.Duration  `json:"cpu"`
	Counts DeliveryCounts `json:"counts"`
}

// workerRequest is one line the coordinator writes to a worker's stdin: the
// spec first, then commands.
type workerRequest struct {
	Spec    *WorkerSpec `json:"spec,omitempty"`
	Command string      `json:"command,omitempty"`
}

// workerReply is one line a worker writes to its stdout.
type workerReply struct {
	Connect    *ConnectReport  `json:"connect,omitempty"`
	Hold       *HoldReport     `json:"hold,omitempty"`
	Deliveries *DeliveryReport `json:"deliveries,omitempty"`
}

// closeGrace is how long a closing worker waits for servers to close their
// side.
const closeGrace = 3 * time.Second

// RunWorker is the body of a worker process. It reads a WorkerSpec from in,
// opens the connections and reports on out; then it holds them with
// heartbeats, answers "report" commands, and returns on "close", at the end
// of in, or when the spec's lifetime runs out (an error).
func RunWorker(ctx context.Context, in io.Reader, out io.Writer, log *slog.Logger) error {
	dec := json.NewDecoder(in)
	var first workerRequest
	if err := dec.Decode(&first); err != nil {
		return fmt.Errorf("worker: read spec: %w", err)
	}
	if first.Spec == nil {
		return errors.New("worker: first request carries no spec")
	}
	spec := *first.Spec
	c, err := newClients(spec, log)
	if err != nil {
		return err
	}
	defer c.close(closeGrace)
	ctx, cancel := context.WithTimeout(ctx, spec.Lifetime)
	defer cancel()
	go c.heartbeats(ctx)

	enc := json.NewEncoder(out)
	report := c.connectAll(ctx)
	if err := enc.Encode(workerReply{Connect: &report}); err != nil {
		return fmt.Errorf("worker: write connect report: %w", err)
	}

	cmds := make(chan string)
	go func() {
		defer close(cmds)
		for {
			var req workerRequest
			if err := dec.Decode(&req); err != nil {
				return
			}
			select {
			case cmds <- req.Command:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("worker: %w before the coordinator said close", ctx.Err())
		case cmd, ok := <-cmds:
			switch {
			case !ok || cmd == cmdClose:
				return nil
			case cmd == cmdReport:
				hold := c.holdReport()
				if err := enc.Encode(workerReply{Hold: &hold}); err != nil {
					return fmt.Errorf("worker: write hold report: %w", err)
				}
			case cmd == cmdDeliveries:
				rep := c.deliveryReport()
				if err := enc.Encode(workerReply{Deliveries: &rep}); err != nil {
					return fmt.Errorf("worker: write delivery report: %w", err)
				}
			default:
				return fmt.Errorf("worker: unknown command %q", cmd)
			}
		}
	}
}
