package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A delivery run measures message frames per second from a server to N
// connected devices. The bare side is the ceiling: a bare nbio server that
// generates messages as fast as it can write them (BareServer.Broadcast).
// The relay side is Switchyard with a WASM pipeline — collectors.synthetic
// → transforms.scale → transforms.format → every device by label — fed
// faster than that ceiling, so whatever the relay delivers is its own
// limit. The clients count the frames and their latency from the frame's
// time member (the emit time; for the relay the collector call's time) to
// their receipt, over a window after a warm-up.

// Names in the relay's generated configuration.
const (
	deliveryCollector = "load-sensors"
	deliveryJunction  = "load-fanout"
	deliveryLabel     = "load" // every provisioned device has load=1
)

// Plugin modules a delivery run needs, in -plugins.
var deliveryModules = []string{"collectors.synthetic.wasm", "transforms.scale.wasm", "transforms.format.wasm"}

// bareSensors is the number of subjects the bare server's messages cycle
// over; every subject has the same length.
const bareSensors = 10

// collectorBaseInterval is the collector interval used whenever the offered
// rate needs at least one sensor per call at it.
const collectorBaseInterval = 10 * time.Millisecond

// maxSensors is the most messages one collector call may emit (the WASM
// host's default emit limit).
const maxSensors = 1024

// DeliveryOptions configure a delivery run.
type DeliveryOptions struct {
	// Options holds the connection settings; N is the number of devices.
	// Hold and Samples are not used.
	Options
	// Warmup runs before the window; Window is what the rates cover.
	Warmup time.Duration
	Window time.Duration
	// Offer is the relay collector's rate as a multiple of the messages per
	// second the bare server got to each device; above 1 it saturates.
	Offer float64
	// Settle bounds the wait, after the warm-up, for the relay's junction
	// backlog to grow when Offer is above 1, so that the window sees the
	// relay saturated (its junction worker never idle) rather than catching
	// up with the devices connecting.
	Settle time.Duration
	// Plugins is the folder with the WASM modules (make plugins: bin/plugins).
	Plugins string
	// WASMCache is the relays' compilation cache; empty: a temporary folder
	// removed at the end of the run.
	WASMCache string
	Relay     RelayOptions
	// BareOnly measures the bare ceiling alone; no relay is needed.
	BareOnly bool
}

// Validate reports the first option that cannot work.
func (o DeliveryOptions) Validate() error {
	probe := o.Options
	probe.Hold, probe.Samples = max(o.Warmup+o.Window, 1), 1
	if err := probe.Validate(); err != nil {
		return err
	}
	switch {
	case o.N > maxPerServer:
		return fmt.Errorf("devices %d: a delivery run uses one server process, at most %d devices", o.N, maxPerServer)
	case o.Warmup < 0 || o.Window <= 0 || o.Settle < 0:
		return errors.New("warm-up and settle must not be negative and the window must be positive")
	case o.BareOnly:
		return nil
	case !(o.Offer > 0) || o.Offer > 100:
		return fmt.Errorf("offer %g must be in (0, 100]", o.Offer)
	case o.Relay.Bin == "":
		return errors.New("no relay binary")
	case o.Plugins == "":
		return errors.New("no plugins folder")
	}
	for _, m := range deliveryModules {
		if _, err := os.Stat(filepath.Join(o.Plugins, m)); err != nil {
			return fmt.Errorf("plugins: %w (make plugins builds them)", err)
		}
	}
	return nil
}

// ServerCounters are what a server says about the window: the bare
// server's /stats or the relay's /metrics, as differences between the start
// and the end of the window.
type ServerCounters struct {
	// Messages: the bare server's generated messages; the relay junction's
	// messages taken in (switchyard_junction_messages_in_total).
	Messages float64 `json:"messages"`
	// Writes: frames handed to device connections (the bare server's
	// writes; switchyard_junction_messages_out_total of the relay).
	Writes float64 `json:"writes"`
	// Drops by where and reason: "busy connection" for the bare server;
	// "junction <reason>" (switchyard_junction_dropped_total) and "gateway
	// <reason>" (switchyard_gateway_send_dropped_total) for the relay.
	Drops map[string]float64 `json:"drops,omitempty"`
}

// backlog is, for counters of a span of time in which every device was
// connected, by how many messages the relay junction's backlog grew: those
// taken in minus those handed to every one of connected devices.
func (c ServerCounters) backlog(connected int) float64 {
	if connected <= 0 {
		return 0
	}
	return c.Messages - c.Writes/float64(connected)
}

// dropJunctionFull is the junction's drop reason when its queue is full
// (junction.DropJunctionFull; the load tool does not import the relay).
const dropJunctionFull = "junction_queue_full"

func (c ServerCounters) sub(earlier ServerCounters) ServerCounters {
	out := ServerCounters{Messages: c.Messages - earlier.Messages, Writes: c.Writes - earlier.Writes, Drops: map[string]float64{}}
	for k, v := range c.Drops {
		if d := v - earlier.Drops[k]; d != 0 {
			out.Drops[k] = d
		}
	}
	return out
}

// DeliverySide is one side of a delivery run.
type DeliverySide struct {
	Label     string         `json:"label"`
	N         int            `json:"n"`
	Connected int            `json:"connected"`
	Failed    int            `json:"failed"`
	Failures  map[string]int `json:"failures,omitempty"`
	Setup     string         `json:"setup,omitempty"`
	// Window is the measurement window (the mean over workers of the time
	// between their two snapshots).
	Window time.Duration `json:"window"`
	// Deliveries counts the message frames the devices received in the
	// window; Rate is deliveries per second, PerDevice messages per second
	// each device got (Rate / Connected).
	Deliveries int64   `json:"deliveries"`
	Rate       float64 `json:"rate"`
	PerDevice  float64 `json:"per_device"`
	// FrameBytes is the mean size of a received message frame's payload.
	FrameBytes float64 `json:"frame_bytes"`
	// Latency is the spread of receipt time minus the frame's time member.
	Latency Latency `json:"latency"`
	// Untimed counts frames whose time did not parse; Early those received
	// before their time (counted as 0 latency).
	Untimed int64 `json:"untimed,omitempty"`
	Early   int64 `json:"early,omitempty"`
	// ServerCPU and ClientCPU are the CPU time used in the window per
	// second of it: 1.0 is one core busy. OtherCPU is the rest of the
	// machine's user and system time in the window (other processes on a
	// shared machine), the same way: above a few hundredths, the window
	// shared the cores.
	ServerCPU float64 `json:"server_cpu"`
	ClientCPU float64 `json:"client_cpu"`
	OtherCPU  float64 `json:"other_cpu"`
	// Server is what the server counted in the window.
	Server ServerCounters `json:"server"`
	// Offered is the relay collector's configured rate in messages per
	// second (Sensors every Interval); 0 for the bare server.
	Offered  float64       `json:"offered,omitempty"`
	Sensors  int           `json:"sensors,omitempty"`
	Interval time.Duration `json:"interval,omitempty"`
	// BacklogGrowth is by how many messages the relay junction's backlog
	// (taken in, not yet handed to every device) grew in the window:
	// messages in minus frames out per device. Positive, or junction
	// queue-full drops, means the junction worker never ran dry: the relay
	// was the bottleneck.
	BacklogGrowth float64 `json:"backlog_growth,omitempty"`

	// Open counts the connections open at the end; Disconnects those lost
	// before it, by reason.
	Open        int            `json:"open"`
	Disconnects map[string]int `json:"disconnects,omitempty"`
	Elapsed     time.Duration  `json:"elapsed"`
}

// DeliveryPair is a delivery run at one N: the bare ceiling and the relay.
// Relay is nil when its side failed.
type DeliveryPair struct {
	N     int           `json:"n"`
	Bare  *DeliverySide `json:"bare"`
	Relay *DeliverySide `json:"relay,omitempty"`
}

// Ratio is the relay's delivery rate over the bare ceiling's, 0 when a side
// is missing.
func (p DeliveryPair) Ratio() float64 {
	if p.Bare == nil || p.Relay == nil || p.Bare.Rate <= 0 {
		return 0
	}
	return p.Relay.Rate / p.Bare.Rate
}

// RunDeliveries measures the bare ceiling at o.N devices, then (unless
// o.BareOnly) the relay fed at o.Offer times the messages per second the
// bare server got to each device.
func RunDeliveries(ctx context.Context, o DeliveryOptions) (DeliveryPair, error) {
	pair := DeliveryPair{N: o.N}
	if err := o.Validate(); err != nil {
		return pair, fmt.Errorf("deliveries: %w", err)
	}
	if o.BareOnly {
		bare, err := runBareDeliveries(ctx, o)
		if err != nil {
			return pair, fmt.Errorf("deliveries: bare: %w", err)
		}
		pair.Bare = &bare
		return pair, nil
	}
	if o.WASMCache == "" {
		dir, err := os.MkdirTemp("", "switchyard-load-wasm-")
		if err != nil {
			return pair, fmt.Errorf("deliveries: %w", err)
		}
		defer os.RemoveAll(dir)
		o.WASMCache = dir
	}
	bare, err := runBareDeliveries(ctx, o)
	if err != nil {
		return pair, fmt.Errorf("deliveries: bare: %w", err)
	}
	pair.Bare = &bare
	if bare.PerDevice <= 0 {
		return pair, errors.New("deliveries: bare: no message reached the devices in the window")
	}
	relay, err := runRelayDeliveries(ctx, o, o.Offer*bare.PerDevice)
	if err != nil {
		return pair, fmt.Errorf("deliveries: relay: %w", err)
	}
	pair.Relay = &relay
	return pair, nil
}

// measurement turns the run's options into a measurement's: the hold is
// the warm-up, the longest settle and the window, which bounds the lives of
// workers and servers.
func (o DeliveryOptions) measurement() Options {
	m := o.Options
	m.Hold, m.Samples = o.Warmup+o.Settle+o.Window, 1
	return m
}

func runBareDeliveries(ctx context.Context, o DeliveryOptions) (DeliverySide, error) {
	start := time.Now()
	m := o.measurement()
	bs, err := startBareServers(m.Self, 1, 3*m.Heartbeat, serverLifetime(m, 0), "-broadcast")
	if err != nil {
		return DeliverySide{}, err
	}
	defer func() { _ = bs.stop() }()
	statsURL := "http" + strings.TrimSuffix(strings.TrimPrefix(bs.urls[0], "ws"), "/ws/device") + StatsPath
	probe := func(ctx context.Context) (ServerCounters, error) { return bareCounters(ctx, statsURL) }
	side, err := measureDeliveries(ctx, o, Servers{Label: "bare nbio", Targets: bs.urls, PIDs: bs.pids(), Stop: bs.stop}, probe, nil)
	side.Elapsed = time.Since(start)
	return side, err
}

func runRelayDeliveries(ctx context.Context, o DeliveryOptions, rate float64) (DeliverySide, error) {
	start := time.Now()
	m := o.measurement()
	sensors, interval := collectorPlan(rate)
	ro := o.Relay
	ro.Extra = deliveryPlugins(o.Plugins, o.WASMCache, sensors, interval)
	r, err := startRelay(ctx, ro, o.N+64, m.Heartbeat, m.Log)
	if err != nil {
		return DeliverySide{}, err
	}
	var once sync.Once
	stop := func() error { once.Do(func() { r.stop(m.Log) }); return nil }
	defer func() { _ = stop() }()
	ids := make([]string, o.N)
	for i := range ids {
		ids[i] = DeviceID("load-", i)
	}
	p := Provisioner{API: r.api, Key: r.key, Tenant: "default", Concurrency: ro.ProvisionConcurrency, Log: m.Log}
	tokens, err := p.Provision(ctx, ids)
	if err != nil {
		return DeliverySide{}, err
	}
	setup := time.Since(start)
	probe := func(ctx context.Context) (ServerCounters, error) { return relayCounters(ctx, r.api+"/metrics") }
	var saturated func(ServerCounters, int) bool
	if o.Offer > 1 {
		saturated = func(d ServerCounters, connected int) bool {
			return d.Drops["junction "+dropJunctionFull] > 0 || d.backlog(connected) >= 1
		}
	}
	side, err := measureDeliveries(ctx, o, Servers{Label: "switchyard", Targets: []string{r.gateway}, PIDs: []int{r.pid()},
		Tokens: tokens, Stop: stop}, probe, saturated)
	side.BacklogGrowth = side.Server.backlog(side.Connected)
	side.Offered = float64(sensors) / interval.Seconds()
	side.Sensors, side.Interval = sensors, interval
	side.Setup = fmt.Sprintf("relay started and %d devices provisioned in %.1f s; collector: %d sensors every %s (%.0f messages/s offered, %.2f× the bare rate per device)",
		o.N, setup.Seconds(), sensors, interval, side.Offered, o.Offer)
	side.Elapsed = time.Since(start)
	return side, err
}

// collectorPlan picks the collector's sensors per call and interval for an
// offered rate in messages per second: every 10 ms as many sensors as the
// rate needs (rounded up), or one sensor at a longer interval below 100/s.
func collectorPlan(rate float64) (sensors int, interval time.Duration) {
	perCall := rate * collectorBaseInterval.Seconds()
	if perCall >= 1 {
		return min(int(math.Ceil(perCall-1e-9)), maxSensors), collectorBaseInterval
	}
	interval = max(time.Duration(float64(time.Second)/rate).Truncate(time.Millisecond), time.Millisecond)
	return 1, interval
}

// deliveryPlugins is the plugins and junctions section of the relay's
// configuration: sensors ramps (0 to 100 °C each minute) collected every
// interval, converted to °F, rendered as display text and sent to every
// device labelled load=1.
func deliveryPlugins(dir, cache string, sensors int, interval time.Duration) string {
	module := func(name string) string { return strconv.Quote(filepath.Join(dir, name)) }
	var b strings.Builder
	fmt.Fprintf(&b, "wasm:\n  cache_dir: %s\n", strconv.Quote(cache))
	fmt.Fprintf(&b, `plugins:
  - id: %s
    use: collectors.synthetic
    runtime: wasm
    module: %s
    interval: %s
    config:
      subject_prefix: %s
      sensors:
`, deliveryCollector, module("collectors.synthetic.wasm"), interval, loadSubjectPrefix)
	for i := range sensors {
		fmt.Fprintf(&b, "        - {name: %s, kind: ramp, min: 0, max: 100, period: %s, unit: \"°C\"}\n", sensorName(i), loadRampPeriod)
	}
	fmt.Fprintf(&b, `  - id: to-fahrenheit
    use: transforms.scale
    runtime: wasm
    module: %s
    config: {preset: c_to_f, round: 1}
  - id: display-text
    use: transforms.format
    runtime: wasm
    module: %s
    config: {template: %s}
junctions:
  - id: %s
    source: %s.>
    collector: %s
    transforms: [to-fahrenheit, display-text]
    targets:
      - selector: {%s: "1"}
`, module("transforms.scale.wasm"), module("transforms.format.wasm"), strconv.Quote(loadTemplate),
		deliveryJunction, loadSubjectPrefix, deliveryCollector, deliveryLabel)
	return b.String()
}

// bareCounters reads a bare server's /stats.
func bareCounters(ctx context.Context, url string) (ServerCounters, error) {
	var st BareStats
	body, err := httpGet(ctx, url)
	if err != nil {
		return ServerCounters{}, err
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return ServerCounters{}, fmt.Errorf("stats: %w", err)
	}
	return ServerCounters{Messages: float64(st.Generated), Writes: float64(st.Writes),
		Drops: map[string]float64{"busy connection": float64(st.Skipped)}}, nil
}

// relayCounters reads the delivery junction's and the gateway's counters
// from a relay's /metrics.
func relayCounters(ctx context.Context, url string) (ServerCounters, error) {
	body, err := httpGet(ctx, url)
	if err != nil {
		return ServerCounters{}, err
	}
	samples, err := parsePromText(strings.NewReader(string(body)))
	if err != nil {
		return ServerCounters{}, err
	}
	return relayCountersOf(samples), nil
}

func relayCountersOf(samples []promSample) ServerCounters {
	c := ServerCounters{Drops: map[string]float64{}}
	for _, s := range samples {
		ours := s.labels["junction"] == deliveryJunction
		switch {
		case s.name == "switchyard_junction_messages_in_total" && ours:
			c.Messages += s.value
		case s.name == "switchyard_junction_messages_out_total" && ours:
			c.Writes += s.value
		case s.name == "switchyard_junction_dropped_total" && ours:
			c.Drops["junction "+s.labels["reason"]] += s.value
		case s.name == "switchyard_gateway_send_dropped_total":
			c.Drops["gateway "+s.labels["reason"]] += s.value
		}
	}
	return c
}

func httpGet(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: http %d", url, resp.StatusCode)
	}
	return body, nil
}

// deliverySnapshot is the state of a run at one instant.
type deliverySnapshot struct {
	at        time.Time
	workers   []DeliveryReport
	serverCPU time.Duration
	server    ServerCounters
}

func takeSnapshot(ctx context.Context, f *fleet, pids []int, probe func(context.Context) (ServerCounters, error)) (deliverySnapshot, error) {
	snap := deliverySnapshot{at: time.Now()}
	var err error
	if snap.serverCPU, err = ReadCPUSum(pids); err != nil {
		return snap, err
	}
	replies, err := f.ask(ctx, cmdDeliveries, 30*time.Second)
	if err != nil {
		return snap, err
	}
	for _, r := range replies {
		snap.workers = append(snap.workers, *r.Deliveries)
	}
	if snap.server, err = probe(ctx); err != nil {
		return snap, err
	}
	return snap, nil
}

// measureDeliveries connects o.N devices to srv from worker processes,
// waits the warm-up — and then, when saturated is given, until it holds for
// the change of the server's counters over half a second, or o.Settle
// passes — and counts what the devices receive in the window. It stops the
// servers (srv.Stop) and the workers before it returns.
func measureDeliveries(ctx context.Context, o DeliveryOptions, srv Servers, probe func(context.Context) (ServerCounters, error),
	saturated func(change ServerCounters, connected int) bool) (DeliverySide, error) {
	m := o.measurement()
	side := DeliverySide{Label: srv.Label, N: o.N, Disconnects: map[string]int{}}
	stopped := false
	stopServers := func() error {
		if srv.Stop == nil || stopped {
			return nil
		}
		stopped = true
		return srv.Stop()
	}
	defer func() { _ = stopServers() }()
	ranges, err := Split(o.N, m.PerWorker)
	if err != nil {
		return side, err
	}
	f, err := startFleet(m, srv, ranges, m.ConnectTimeout+m.DialTimeout+m.Hold+time.Minute)
	if err != nil {
		return side, err
	}
	defer func() { _ = f.close() }()
	m.Log.Info("connecting", "target", srv.Label, "n", o.N, "workers", len(f.workers))
	cs, err := f.awaitConnect(ctx, m)
	if err != nil {
		return side, err
	}
	side.Connected, side.Failed, side.Failures = cs.connected, cs.failed, cs.failures
	if side.Connected == 0 {
		return side, fmt.Errorf("no device connected: %v", cs.failures)
	}
	m.Log.Info("connected; warming up", "target", srv.Label, "connected", side.Connected, "failed", side.Failed, "warmup", o.Warmup)
	if err := sleepUntil(ctx, time.Now().Add(o.Warmup)); err != nil {
		return side, err
	}
	if saturated != nil {
		if err := settle(ctx, o.Settle, probe, func(d ServerCounters) bool { return saturated(d, side.Connected) }); err != nil {
			return side, err
		}
	}

	clientPIDs := f.pids()
	first, err := takeSnapshot(ctx, f, srv.PIDs, probe)
	if err != nil {
		return side, fmt.Errorf("window start: %w", err)
	}
	firstClientCPU, err := ReadCPUSum(clientPIDs)
	if err != nil {
		return side, err
	}
	firstMachineCPU, err := ReadMachineCPU()
	if err != nil {
		return side, err
	}
	m.Log.Info("measuring", "target", srv.Label, "window", o.Window)
	if err := sleepUntil(ctx, first.at.Add(o.Window)); err != nil {
		return side, err
	}
	last, err := takeSnapshot(ctx, f, srv.PIDs, probe)
	if err != nil {
		return side, fmt.Errorf("window end: %w", err)
	}
	lastClientCPU, err := ReadCPUSum(clientPIDs)
	if err != nil {
		return side, err
	}
	lastMachineCPU, err := ReadMachineCPU()
	if err != nil {
		return side, err
	}
	side.summarise(first, last, lastClientCPU-firstClientCPU, lastMachineCPU-firstMachineCPU)

	replies, err := f.ask(ctx, cmdReport, 30*time.Second)
	if err != nil {
		return side, err
	}
	for _, r := range replies {
		side.Open += r.Hold.Open
		for k, v := range r.Hold.Disconnects {
			side.Disconnects[k] += v
		}
	}
	if err := errors.Join(stopServers(), f.close()); err != nil {
		return side, err
	}
	return side, nil
}

// settle polls the server's counters every half second until done holds
// for their change since the previous poll, or limit passes: a server that
// never gets there is measured anyway, and the window's figures tell.
func settle(ctx context.Context, limit time.Duration, probe func(context.Context) (ServerCounters, error), done func(change ServerCounters) bool) error {
	deadline := time.Now().Add(limit)
	prev, err := probe(ctx)
	if err != nil {
		return fmt.Errorf("settle: %w", err)
	}
	for time.Now().Before(deadline) {
		if err := sleepUntil(ctx, time.Now().Add(500*time.Millisecond)); err != nil {
			return err
		}
		cur, err := probe(ctx)
		if err != nil {
			return fmt.Errorf("settle: %w", err)
		}
		if done(cur.sub(prev)) {
			return nil
		}
		prev = cur
	}
	return nil
}

// summarise fills the window's figures from its two snapshots.
func (d *DeliverySide) summarise(first, last deliverySnapshot, clientCPU, machineCPU time.Duration) {
	var counts DeliveryCounts
	var windows time.Duration
	for i, w := range last.workers {
		c := w.Counts
		c.Sub(first.workers[i].Counts)
		counts.Add(c)
		win := w.At.Sub(first.workers[i].At)
		windows += win
		if win > 0 {
			d.Rate += float64(c.Frames) / win.Seconds()
		}
	}
	if n := len(last.workers); n > 0 {
		d.Window = windows / time.Duration(n)
	}
	d.Deliveries = counts.Frames
	if d.Connected > 0 {
		d.PerDevice = d.Rate / float64(d.Connected)
	}
	if counts.Frames > 0 {
		d.FrameBytes = float64(counts.Bytes) / float64(counts.Frames)
	}
	d.Latency = counts.Latency.Summary()
	d.Untimed, d.Early = counts.Untimed, counts.Early
	wall := last.at.Sub(first.at).Seconds()
	if wall > 0 {
		serverCPU := last.serverCPU - first.serverCPU
		d.ServerCPU = serverCPU.Seconds() / wall
		d.ClientCPU = clientCPU.Seconds() / wall
		d.OtherCPU = max(0, (machineCPU-serverCPU-clientCPU).Seconds()/wall)
	}
	d.Server = last.server.sub(first.server)
}

// Text is a human-readable summary of one side.
func (d DeliverySide) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "target      %s: %d of %d devices connected, failed %d%s\n", d.Label, d.Connected, d.N, d.Failed, counts(d.Failures))
	if d.Setup != "" {
		fmt.Fprintf(&b, "setup       %s\n", d.Setup)
	}
	fmt.Fprintf(&b, "deliveries  %d in %.1f s: %.0f/s, %.1f messages/s to each device, %.0f B a frame\n",
		d.Deliveries, d.Window.Seconds(), d.Rate, d.PerDevice, d.FrameBytes)
	fmt.Fprintf(&b, "latency     emit to receipt p50 %s, p99 %s, max %s", roundLatency(d.Latency.P50), roundLatency(d.Latency.P99), roundLatency(d.Latency.Max))
	if d.Untimed > 0 || d.Early > 0 {
		fmt.Fprintf(&b, " (%d frames without a time, %d early)", d.Untimed, d.Early)
	}
	b.WriteByte('\n')
	s := d.Server
	per := d.Window.Seconds()
	if per <= 0 {
		per = 1
	}
	if d.Offered > 0 {
		fmt.Fprintf(&b, "relay       junction took in %.0f messages (%.1f/s of %.1f/s offered), handed %.0f frames to devices (%.0f/s)\n",
			s.Messages, s.Messages/per, d.Offered, s.Writes, s.Writes/per)
		fmt.Fprintf(&b, "backlog     the junction's backlog grew by %.0f messages in the window (in − frames out / devices)\n", d.BacklogGrowth)
	} else {
		fmt.Fprintf(&b, "server      generated %.0f messages (%.1f/s), wrote %.0f frames (%.0f/s)\n", s.Messages, s.Messages/per, s.Writes, s.Writes/per)
	}
	fmt.Fprintf(&b, "drops       %s\n", dropText(s.Drops))
	fmt.Fprintf(&b, "cpu         server %.2f cores, clients %.2f cores, other processes %.2f cores\n", d.ServerCPU, d.ClientCPU, d.OtherCPU)
	fmt.Fprintf(&b, "end         %d open, disconnects %d%s; elapsed %.1f s\n", d.Open, total(d.Disconnects), counts(d.Disconnects), d.Elapsed.Seconds())
	return b.String()
}

func roundLatency(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// dropText renders drops in the window, sorted; "none" when there were none.
func dropText(drops map[string]float64) string {
	if len(drops) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(drops))
	for _, k := range slices.Sorted(maps.Keys(drops)) {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, drops[k]))
	}
	return strings.Join(parts, ", ")
}

// DeliveryTable renders pairs as a table for docs/BENCHMARKS.md.
func DeliveryTable(pairs []DeliveryPair) string {
	var b strings.Builder
	b.WriteString("| devices | bare deliveries/s | relay deliveries/s | relay / bare | latency p50 / p99 bare | latency p50 / p99 relay | relay msgs/s per device: offered → delivered | relay drops in the window | CPU cores server + clients (+ other), bare / relay |\n")
	b.WriteString("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n")
	for _, p := range pairs {
		ratio := "—"
		if r := p.Ratio(); r > 0 {
			ratio = fmt.Sprintf("%.0f %%", 100*r)
		}
		side := func(d *DeliverySide, f func(*DeliverySide) string) string {
			if d == nil {
				return "—"
			}
			return f(d)
		}
		rate := func(d *DeliverySide) string { return thousands(d.Rate) }
		lat := func(d *DeliverySide) string {
			return fmt.Sprintf("%s / %s", roundLatency(d.Latency.P50), roundLatency(d.Latency.P99))
		}
		cpu := func(d *DeliverySide) string {
			return fmt.Sprintf("%.2f + %.2f (+ %.2f)", d.ServerCPU, d.ClientCPU, d.OtherCPU)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n", thousands(float64(p.N)),
			side(p.Bare, rate), side(p.Relay, rate), ratio, side(p.Bare, lat), side(p.Relay, lat),
			side(p.Relay, func(d *DeliverySide) string { return fmt.Sprintf("%.0f → %.0f", d.Offered, d.PerDevice) }),
			side(p.Relay, func(d *DeliverySide) string { return dropText(d.Server.Drops) }),
			side(p.Bare, cpu), side(p.Relay, cpu))
	}
	return b.String()
}

// thousands formats v rounded to a whole number with thousands separators.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
