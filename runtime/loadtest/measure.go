package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"time"
)

// Options configure one measurement run.
type Options struct {
	// N is the number of connections to open.
	N int
	// Hold is how long all connections are held after the connect phase;
	// the server's RSS is sampled during it.
	Hold time.Duration
	// Heartbeat is each connection's heartbeat interval.
	Heartbeat time.Duration
	// PerWorker bounds the connections of one worker process.
	PerWorker int
	// PerSource bounds the connections dialed from one source address.
	PerSource int
	// SourceBase is the first source address (127.0.0.2 by default).
	SourceBase netip.Addr
	// Concurrency bounds the handshakes in flight per worker.
	Concurrency int
	// DialTimeout bounds one connection's dial, upgrade and hello.
	DialTimeout time.Duration
	// ConnectTimeout bounds the connect phase.
	ConnectTimeout time.Duration
	// Samples is the number of RSS samples taken during the hold.
	Samples int
	// Sample connections (spread evenly over the N, see Sampled) send a
	// heartbeat with a seq every SampleInterval and time the answer;
	// zero: none (the downloads command sets them).
	Sample         int
	SampleInterval time.Duration
	// Self re-executes this program as a worker or bare server.
	Self Command
	Log  *slog.Logger
}

// Validate reports the first option that cannot work.
func (o Options) Validate() error {
	switch {
	case o.N <= 0:
		return fmt.Errorf("connections %d must be positive", o.N)
	case o.Hold <= 0 || o.Heartbeat <= 0 || o.DialTimeout <= 0 || o.ConnectTimeout <= 0:
		return errors.New("hold, heartbeat, dial timeout and connect timeout must be positive")
	case o.PerWorker <= 0 || o.PerSource <= 0 || o.Concurrency <= 0 || o.Samples <= 0:
		return errors.New("per-worker, per-source, concurrency and samples must be positive")
	case !o.SourceBase.Is4() || !o.SourceBase.IsLoopback():
		return fmt.Errorf("source %s is not an IPv4 loopback address", o.SourceBase)
	}
	if _, err := Source(o.SourceBase, o.N-1, o.PerSource); err != nil {
		return err
	}
	return nil
}

// Servers is what a measurement runs against.
type Servers struct {
	// Label names the servers in reports ("bare nbio", "switchyard").
	Label string
	// Targets are the ws:// URLs the connections are spread over.
	Targets []string
	// PIDs are the server processes whose RSS is summed; none means the
	// RSS is not measured.
	PIDs []int
	// Tokens holds a device token per connection index, or none.
	Tokens []string
	// Stop, when set, stops the servers once the workers have reported, so
	// the servers close first and TIME_WAIT stays on their side. Its error
	// (an unclean exit) fails the measurement.
	Stop func() error
}

// Result is what one measurement found.
type Result struct {
	Label     string         `json:"label"`
	N         int            `json:"n"`
	Servers   int            `json:"servers"`
	Workers   int            `json:"workers"`
	Connected int            `json:"connected"`
	Failed    int            `json:"failed"`
	Failures  map[string]int `json:"failures,omitempty"`
	// ConnectSeconds is the wall time of the connect phase, from the first
	// worker's start to the last worker's end.
	ConnectSeconds float64 `json:"connect_seconds"`
	// ConnectRate is Connected / ConnectSeconds.
	ConnectRate float64 `json:"connect_rate"`
	// Handshake is the spread of dial-to-welcome times.
	Handshake Latency       `json:"handshake"`
	Hold      time.Duration `json:"hold"`
	// Open counts the connections still open at the end of the hold.
	Open               int            `json:"open"`
	HeartbeatsSent     int64          `json:"heartbeats_sent"`
	HeartbeatsAnswered int64          `json:"heartbeats_answered"`
	Disconnects        map[string]int `json:"disconnects,omitempty"`
	// RSSBefore is the servers' summed RSS just before connecting, RSSAfter
	// the median of RSSSamples taken during the hold (bytes).
	RSSBefore  int64   `json:"rss_before"`
	RSSAfter   int64   `json:"rss_after"`
	RSSSamples []int64 `json:"rss_samples,omitempty"`
	// RSSPerConnKiB is (RSSAfter-RSSBefore)/Connected in KiB.
	RSSPerConnKiB float64 `json:"rss_per_conn_kib"`
	// The same for anonymous memory alone (RssAnon: what the servers
	// allocated, without mapped file pages); 0 when the kernel lacks it.
	AnonBefore     int64   `json:"anon_before"`
	AnonAfter      int64   `json:"anon_after"`
	AnonPerConnKiB float64 `json:"anon_per_conn_kib"`
	// ClientRSS is the workers' summed RSS at the end of the hold.
	ClientRSS int64         `json:"client_rss"`
	Elapsed   time.Duration `json:"elapsed"`
	// Setup says what happened before the connect phase (provisioning).
	Setup string `json:"setup,omitempty"`
}

// Measure opens o.N connections to srv from worker processes, holds them
// for o.Hold while sampling the servers' RSS, and reports. It stops the
// servers (srv.Stop) and the workers before it returns.
func Measure(ctx context.Context, o Options, srv Servers) (Result, error) {
	if err := o.Validate(); err != nil {
		return Result{}, fmt.Errorf("measure: %w", err)
	}
	if o.Self.Path == "" {
		return Result{}, errors.New("measure: no program to re-execute as a worker")
	}
	if len(srv.Targets) == 0 {
		return Result{}, errors.New("measure: no targets")
	}
	if len(srv.Tokens) != 0 && len(srv.Tokens) != o.N {
		return Result{}, fmt.Errorf("measure: %d tokens for %d connections", len(srv.Tokens), o.N)
	}
	stopped := false
	stopServers := func() error {
		if srv.Stop == nil || stopped {
			return nil
		}
		stopped = true
		if err := srv.Stop(); err != nil {
			return fmt.Errorf("stop servers: %w", err)
		}
		return nil
	}
	defer func() { _ = stopServers() }()

	ranges, err := Split(o.N, o.PerWorker)
	if err != nil {
		return Result{}, fmt.Errorf("measure: %w", err)
	}
	res := Result{Label: srv.Label, N: o.N, Servers: len(srv.Targets), Workers: len(ranges), Hold: o.Hold,
		Disconnects: map[string]int{}}

	if len(srv.PIDs) > 0 {
		before, err := sampleResident(ctx, srv.PIDs, 3, 500*time.Millisecond)
		if err != nil {
			return res, fmt.Errorf("measure: rss before: %w", err)
		}
		res.RSSBefore, res.AnonBefore = before.Total, before.Anon
	}

	lifetime := o.ConnectTimeout + o.DialTimeout + o.Hold + time.Minute
	f, err := startFleet(o, srv, ranges, lifetime)
	if err != nil {
		return res, fmt.Errorf("measure: %w", err)
	}
	defer func() { _ = f.close() }()
	o.Log.Info("connecting", "target", srv.Label, "n", o.N, "workers", len(f.workers), "servers", len(srv.Targets))

	cs, err := f.awaitConnect(ctx, o)
	if err != nil {
		return res, fmt.Errorf("measure: %w", err)
	}
	res.Connected, res.Failed, res.Failures = cs.connected, cs.failed, cs.failures
	res.Handshake = latencyOf(cs.handshakes)
	res.ConnectSeconds = cs.seconds
	if res.ConnectSeconds > 0 {
		res.ConnectRate = float64(res.Connected) / res.ConnectSeconds
	}
	o.Log.Info("connected", "target", srv.Label, "connected", res.Connected, "failed", res.Failed,
		"seconds", fmt.Sprintf("%.1f", res.ConnectSeconds))

	// Hold, sampling the RSS at Hold*k/Samples for k = 1..Samples.
	var anon []int64
	holdStart := time.Now()
	for k := 1; k <= o.Samples; k++ {
		at := holdStart.Add(o.Hold * time.Duration(k) / time.Duration(o.Samples))
		if err := sleepUntil(ctx, at); err != nil {
			return res, fmt.Errorf("measure: hold: %w", err)
		}
		if len(srv.PIDs) == 0 {
			continue
		}
		rss, err := ReadResidentSum(srv.PIDs)
		if err != nil {
			return res, fmt.Errorf("measure: hold: %w", err)
		}
		res.RSSSamples = append(res.RSSSamples, rss.Total)
		anon = append(anon, rss.Anon)
	}
	if len(srv.PIDs) > 0 {
		res.RSSAfter, res.AnonAfter = Median(res.RSSSamples), Median(anon)
		if res.Connected > 0 {
			res.RSSPerConnKiB = float64(res.RSSAfter-res.RSSBefore) / 1024 / float64(res.Connected)
			if res.AnonAfter > 0 {
				res.AnonPerConnKiB = float64(res.AnonAfter-res.AnonBefore) / 1024 / float64(res.Connected)
			}
		}
	}

	replies, err := f.ask(ctx, cmdReport, 30*time.Second)
	if err != nil {
		return res, fmt.Errorf("measure: %w", err)
	}
	for _, rep := range replies {
		h := rep.Hold
		res.Open += h.Open
		res.HeartbeatsSent += h.HeartbeatsSent
		res.HeartbeatsAnswered += h.HeartbeatsAnswered
		res.ClientRSS += h.RSS
		for k, v := range h.Disconnects {
			res.Disconnects[k] += v
		}
	}
	if err := errors.Join(stopServers(), f.close()); err != nil {
		return res, fmt.Errorf("measure: %w", err)
	}
	return res, nil
}

// fleet is the client worker processes of one measurement.
type fleet struct {
	workers []*workerProc
}

// startFleet starts one worker per range, each told to live at most
// lifetime.
func startFleet(o Options, srv Servers, ranges []Range, lifetime time.Duration) (*fleet, error) {
	f := &fleet{}
	for k, r := range ranges {
		spec := WorkerSpec{
			First: r.First, Count: r.Count, Targets: srv.Targets,
			SourceBase: o.SourceBase.String(), PerSource: o.PerSource, Concurrency: o.Concurrency,
			DialTimeout: o.DialTimeout, ConnectTimeout: o.ConnectTimeout, Heartbeat: o.Heartbeat, Lifetime: lifetime,
		}
		if o.Sample > 0 {
			spec.Sample, spec.Total, spec.SampleInterval = o.Sample, o.N, o.SampleInterval
		}
		if len(srv.Tokens) > 0 {
			spec.Tokens = srv.Tokens[r.First : r.First+r.Count]
		}
		w, err := startWorker(o.Self, k, spec)
		if err != nil {
			_ = f.close()
			return nil, err
		}
		f.workers = append(f.workers, w)
	}
	return f, nil
}

// connectSummary adds up the workers' connect reports.
type connectSummary struct {
	connected, failed int
	failures          map[string]int
	handshakes        []int64 // microseconds
	seconds           float64 // first worker's start to last worker's end
}

// awaitConnect waits for every worker's connect report.
func (f *fleet) awaitConnect(ctx context.Context, o Options) (connectSummary, error) {
	cs := connectSummary{failures: map[string]int{}}
	var first, last time.Time
	for _, w := range f.workers {
		rep, err := w.await(ctx, o.ConnectTimeout+o.DialTimeout+30*time.Second)
		if err != nil {
			return cs, err
		}
		if rep.Connect == nil {
			return cs, fmt.Errorf("worker %d: expected a connect report", w.index)
		}
		c := rep.Connect
		cs.connected += c.Connected
		cs.handshakes = append(cs.handshakes, c.HandshakeMicros...)
		for k, v := range c.Failures {
			cs.failures[k] += v
			cs.failed += v
		}
		if first.IsZero() || c.Start.Before(first) {
			first = c.Start
		}
		if c.End.After(last) {
			last = c.End
		}
	}
	cs.seconds = last.Sub(first).Seconds()
	return cs, nil
}

// ask sends cmd to every worker, then collects their replies in worker
// order; each must carry the report cmd asks for.
func (f *fleet) ask(ctx context.Context, cmd string, timeout time.Duration) ([]workerReply, error) {
	return f.request(ctx, workerRequest{Command: cmd}, timeout)
}

// request sends req to every worker, then collects their replies in worker
// order; each must carry what req's command asks for.
func (f *fleet) request(ctx context.Context, req workerRequest, timeout time.Duration) ([]workerReply, error) {
	for _, w := range f.workers {
		if err := w.send(req); err != nil {
			return nil, err
		}
	}
	out := make([]workerReply, 0, len(f.workers))
	for _, w := range f.workers {
		rep, err := w.await(ctx, timeout)
		if err != nil {
			return nil, err
		}
		if !rep.has(req.Command) {
			return nil, fmt.Errorf("worker %d: expected a %s report", w.index, req.Command)
		}
		out = append(out, rep)
	}
	return out, nil
}

// pids are the workers' process ids.
func (f *fleet) pids() []int {
	out := make([]int, len(f.workers))
	for i, w := range f.workers {
		out[i] = w.proc.pid()
	}
	return out
}

// close closes every worker, once, and reports the unclean exits.
func (f *fleet) close() error {
	var errs []error
	for _, w := range f.workers {
		errs = append(errs, w.close())
	}
	f.workers = nil
	return errors.Join(errs...)
}

// Latency summarises a set of durations.
type Latency struct {
	P50 time.Duration `json:"p50"`
	P99 time.Duration `json:"p99"`
	Max time.Duration `json:"max"`
}

// latencyOf summarises durations given in microseconds (nearest rank).
func latencyOf(micros []int64) Latency {
	if len(micros) == 0 {
		return Latency{}
	}
	s := slices.Clone(micros)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return time.Duration(s[max(i, 0)]) * time.Microsecond
	}
	return Latency{P50: at(0.50), P99: at(0.99), Max: at(1)}
}

// sampleResident returns the medians of n samples of the summed resident
// memory of pids, taken every interval.
func sampleResident(ctx context.Context, pids []int, n int, interval time.Duration) (Resident, error) {
	total, anon := make([]int64, 0, n), make([]int64, 0, n)
	for i := range n {
		if i > 0 {
			if err := sleepUntil(ctx, time.Now().Add(interval)); err != nil {
				return Resident{}, err
			}
		}
		res, err := ReadResidentSum(pids)
		if err != nil {
			return Resident{}, err
		}
		total, anon = append(total, res.Total), append(anon, res.Anon)
	}
	return Resident{Total: Median(total), Anon: Median(anon)}, nil
}

func sleepUntil(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// workerProc is a worker child and the pipes to it.
type workerProc struct {
	index   int
	proc    *process
	stdin   io.WriteCloser
	enc     *json.Encoder
	replies chan workerReply
}

func startWorker(self Command, index int, spec WorkerSpec) (*workerProc, error) {
	return startWorkerWith(self, index, workerRequest{Spec: &spec})
}

// startWorkerWith starts a worker process and sends it first, its spec.
func startWorkerWith(self Command, index int, first workerRequest) (*workerProc, error) {
	name := fmt.Sprintf("worker %d", index)
	cmd := self.command("worker")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p, stdout, err := startWithStdout(name, cmd)
	if err != nil {
		return nil, err
	}
	w := &workerProc{index: index, proc: p, stdin: stdin, enc: json.NewEncoder(stdin), replies: make(chan workerReply, 2)}
	go func() {
		defer close(w.replies)
		defer stdout.Close()
		dec := json.NewDecoder(stdout)
		for {
			var r workerReply
			if err := dec.Decode(&r); err != nil {
				return
			}
			w.replies <- r
		}
	}()
	if err := w.send(first); err != nil {
		_ = w.close()
		return nil, err
	}
	return w, nil
}

func (w *workerProc) send(req workerRequest) error {
	if err := w.enc.Encode(req); err != nil {
		return fmt.Errorf("worker %d: send: %w", w.index, err)
	}
	return nil
}

// await returns the worker's next reply.
func (w *workerProc) await(ctx context.Context, timeout time.Duration) (workerReply, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r, ok := <-w.replies:
		if !ok {
			<-w.proc.exited
			return workerReply{}, fmt.Errorf("worker %d exited early: %v", w.index, w.proc.err)
		}
		return r, nil
	case <-timer.C:
		return workerReply{}, fmt.Errorf("worker %d: no reply within %s", w.index, timeout)
	case <-ctx.Done():
		return workerReply{}, fmt.Errorf("worker %d: %w", w.index, ctx.Err())
	}
}

// close tells the worker to close its connections and waits for it to
// exit, killing it if it takes longer than its close grace allows. It
// reports an unclean exit.
func (w *workerProc) close() error {
	_ = w.send(workerRequest{Command: cmdClose})
	_ = w.stdin.Close()
	select {
	case <-w.proc.exited:
		return w.proc.exitErr()
	case <-time.After(closeGrace + 5*time.Second):
		_ = w.proc.cmd.Process.Kill()
		<-w.proc.exited
		return fmt.Errorf("worker %d: killed after not exiting within %s", w.index, closeGrace+5*time.Second)
	}
}
