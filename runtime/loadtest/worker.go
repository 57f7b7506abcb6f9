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
	// Sample and Total pick the connections that send timed heartbeats
	// (see Sampled): connection i is one when Sampled(i, Sample, Total).
	// They send a heartbeat with a seq every SampleInterval instead of the
	// plain one every Heartbeat, and time the relay's answer. Zero: none.
	Sample         int           `json:"sample,omitempty"`
	Total          int           `json:"total,omitempty"`
	SampleInterval time.Duration `json:"sample_interval,omitempty"`
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
	case s.Sample < 0 || s.Sample > s.Total || (s.Sample > 0 && s.First+s.Count > s.Total):
		return fmt.Errorf("worker spec: sample %d of %d devices does not fit connections [%d, %d)", s.Sample, s.Total, s.First, s.First+s.Count)
	case s.Sample > 0 && s.SampleInterval < heartbeatTick:
		return fmt.Errorf("worker spec: sample interval %s is below %s", s.SampleInterval, heartbeatTick)
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
	// cmdWindow starts heartbeat window Window (0: none); the worker
	// answers with an ack. cmdHeartbeats asks for window Window's timed
	// heartbeats.
	cmdWindow     = "window"
	cmdHeartbeats = "heartbeats"
	// cmdDownloads asks a download worker for its counters; cmdDrain tells
	// it to start no new download, waits for those under way, and answers
	// with its counters.
	cmdDownloads = "downloads"
	cmdDrain     = "drain"
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
// spec first (a client worker's Spec or a download worker's Download),
// then commands.
type workerRequest struct {
	Spec     *WorkerSpec   `json:"spec,omitempty"`
	Download *DownloadSpec `json:"download,omitempty"`
	Command  string        `json:"command,omitempty"`
	// Window is the heartbeat window of cmdWindow and cmdHeartbeats.
	Window int `json:"window,omitempty"`
}

// workerReply is one line a worker writes to its stdout.
type workerReply struct {
	Connect    *ConnectReport   `json:"connect,omitempty"`
	Hold       *HoldReport      `json:"hold,omitempty"`
	Deliveries *DeliveryReport  `json:"deliveries,omitempty"`
	Heartbeats *HeartbeatReport `json:"heartbeats,omitempty"`
	Download   *DownloadReport  `json:"download,omitempty"`
	// Ack answers a command that reports nothing (cmdWindow).
	Ack string `json:"ack,omitempty"`
}

// has reports whether r carries what cmd asks for.
func (r workerReply) has(cmd string) bool {
	switch cmd {
	case cmdReport:
		return r.Hold != nil
	case cmdDeliveries:
		return r.Deliveries != nil
	case cmdHeartbeats:
		return r.Heartbeats != nil
	case cmdDownloads, cmdDrain:
		return r.Download != nil
	case cmdWindow:
		return r.Ack == cmdWindow
	}
	return false
}

// closeGrace is how long a closing worker waits for servers to close their
// side.
const closeGrace = 3 * time.Second

// RunWorker is the body of a worker process. It reads a WorkerSpec from in,
// opens the connections and reports on out; then it holds them with
// heartbeats (timed ones from the sampled connections), answers the
// coordinator's commands, and returns on "close", at the end of in, or when
// the spec's lifetime runs out (an error). Given a DownloadSpec instead, it
// is a download worker (runDownloadWorker).
func RunWorker(ctx context.Context, in io.Reader, out io.Writer, log *slog.Logger) error {
	dec := json.NewDecoder(in)
	var first workerRequest
	if err := dec.Decode(&first); err != nil {
		return fmt.Errorf("worker: read spec: %w", err)
	}
	if first.Download != nil {
		return runDownloadWorker(ctx, *first.Download, dec, json.NewEncoder(out), log)
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
	go c.timedHeartbeats(ctx)

	enc := json.NewEncoder(out)
	report := c.connectAll(ctx)
	if err := enc.Encode(workerReply{Connect: &report}); err != nil {
		return fmt.Errorf("worker: write connect report: %w", err)
	}

	cmds := readCommands(ctx, dec)
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("worker: %w before the coordinator said close", ctx.Err())
		case req, ok := <-cmds:
			cmd := req.Command
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
			case cmd == cmdWindow:
				c.window.Store(int32(req.Window))
				if err := enc.Encode(workerReply{Ack: cmdWindow}); err != nil {
					return fmt.Errorf("worker: write ack: %w", err)
				}
			case cmd == cmdHeartbeats:
				rep := c.heartbeatReport(req.Window)
				if err := enc.Encode(workerReply{Heartbeats: &rep}); err != nil {
					return fmt.Errorf("worker: write heartbeat report: %w", err)
				}
			default:
				return fmt.Errorf("worker: unknown command %q", cmd)
			}
		}
	}
}

// readCommands decodes the coordinator's requests after the spec until in
// ends (the channel is then closed) or ctx does.
func readCommands(ctx context.Context, dec *json.Decoder) <-chan workerRequest {
	cmds := make(chan workerRequest)
	go func() {
		defer close(cmds)
		for {
			var req workerRequest
			if err := dec.Decode(&req); err != nil {
				return
			}
			select {
			case cmds <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	return cmds
}
