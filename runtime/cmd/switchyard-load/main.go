package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/runtime/loadtest"
)

const usage = `switchyard-load measures device WebSocket servers: idle connections and the server
memory they cost, and message deliveries per second, each side by side with a bare nbio server.

Usage:
  switchyard-load baseline [flags]     idle connections: bare nbio server(s) started by the tool
  switchyard-load relay [flags]        idle connections: Switchyard (-relay-bin, or -target/-api for a running one)
  switchyard-load compare [flags]      idle connections: baseline and relay at each -n; a markdown table
  switchyard-load deliveries [flags]   deliveries/s: a broadcasting bare server, then Switchyard's WASM pipeline
  switchyard-load downloads [flags]    firmware image downloads beside N connected devices, and their heartbeat round trips
  switchyard-load bare-server [flags]  the bare nbio server alone; prints its ws:// address
  switchyard-load worker               internal: a client worker, driven over stdin/stdout

Examples:
  switchyard-load baseline -n 19000 -hold 30s
  switchyard-load relay -n 19000 -hold 30s -relay-bin ./switchyard
  switchyard-load compare -n 1000,10000,19000 -hold 20s -relay-bin ./switchyard
  switchyard-load deliveries -devices 1000 -duration 30s -relay-bin bin/switchyard -plugins bin/plugins
  switchyard-load downloads -devices 10000 -downloaders 0,8,32 -phase 20s -relay-bin bin/switchyard

Run "switchyard-load <command> -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchyard-load: find own executable:", err)
		os.Exit(1)
	}
	code := run(ctx, os.Args[1:], loadtest.Command{Path: self}, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program; it returns the exit status.
func run(ctx context.Context, args []string, self loadtest.Command, stdin io.Reader, stdout, stderr io.Writer) int {
	inv, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "switchyard-load:", err)
		return 2
	}
	level := slog.LevelInfo
	if inv.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	loadtest.RouteNbioLogs(log)
	inv.opts.Self = self
	inv.opts.Log = log

	switch inv.command {
	case "worker":
		err = loadtest.RunWorker(ctx, stdin, stdout, log)
	case "bare-server":
		err = runBareServer(ctx, inv.bare, stdout, log)
	case "baseline":
		var res loadtest.Result
		res, err = loadtest.RunBaseline(ctx, inv.opts, inv.serversFor(inv.opts.N))
		printResult(stdout, res, inv.json, err)
	case "relay":
		var res loadtest.Result
		if inv.external.API != "" {
			res, err = loadtest.RunExternal(ctx, inv.opts, inv.external)
		} else {
			inv.relay.Servers = inv.serversFor(inv.opts.N)
			res, err = loadtest.RunRelay(ctx, inv.opts, inv.relay)
		}
		printResult(stdout, res, inv.json, err)
	case "compare":
		err = runCompare(ctx, inv, stdout, stderr)
	case "deliveries":
		err = runDeliveries(ctx, inv, stdout, stderr)
	case "downloads":
		err = runDownloads(ctx, inv, args, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "switchyard-load:", err)
		return 1
	}
	return 0
}

// printResult writes a result unless the run failed before measuring.
func printResult(w io.Writer, res loadtest.Result, asJSON bool, err error) {
	if err != nil && res.Connected == 0 {
		return
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
		return
	}
	fmt.Fprint(w, res.Text())
}

func runBareServer(ctx context.Context, b bareFlags, stdout io.Writer, log *slog.Logger) error {
	s, err := loadtest.StartBareServer(b.listen, b.path, b.idle, log)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, s.URL())
	if b.lifetime > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.lifetime)
		defer cancel()
	}
	if b.broadcast {
		done := make(chan struct{})
		go func() { defer close(done); s.Broadcast(ctx) }()
		defer func() { <-done }()
	}
	<-ctx.Done()
	log.Debug("bare server stopping", "open", s.Online(), "why", ctx.Err())
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Shutdown(shutdown)
}

func runCompare(ctx context.Context, inv *invocation, stdout, stderr io.Writer) error {
	var pairs []loadtest.Pair
	var err error
	for _, n := range inv.ns {
		o := inv.opts
		o.N = n
		pair := loadtest.Pair{N: n}
		var bare, relay loadtest.Result
		bare, err = loadtest.RunBaseline(ctx, o, inv.serversFor(n))
		if err != nil {
			break
		}
		pair.Bare = &bare
		fmt.Fprintf(stderr, "--- baseline, n=%d\n%s", n, bare.Text())
		ro := inv.relay
		ro.Servers = inv.serversFor(n)
		relay, err = loadtest.RunRelay(ctx, o, ro)
		if err != nil {
			pairs = append(pairs, pair)
			break
		}
		pair.Relay = &relay
		fmt.Fprintf(stderr, "--- relay, n=%d\n%s", n, relay.Text())
		pairs = append(pairs, pair)
	}
	fmt.Fprintf(stdout, "Machine: %s.\n\n", loadtest.DescribeMachine())
	fmt.Fprint(stdout, loadtest.MarkdownTable(pairs))
	return err
}

// runDeliveries runs a delivery measurement at each device count, one
// after the other; each side's summary goes to stderr as it ends, the table
// (or JSON) to stdout at the end.
func runDeliveries(ctx context.Context, inv *invocation, stdout, stderr io.Writer) error {
	var pairs []loadtest.DeliveryPair
	var err error
	for _, n := range inv.ns {
		var pair loadtest.DeliveryPair
		pair, err = loadtest.RunDeliveries(ctx, inv.deliveryOptions(n))
		if pair.Bare != nil {
			fmt.Fprintf(stderr, "--- bare nbio, %d devices\n%s", n, pair.Bare.Text())
		}
		if pair.Relay != nil {
			fmt.Fprintf(stderr, "--- switchyard, %d devices\n%s", n, pair.Relay.Text())
			fmt.Fprintf(stderr, "--- relay / bare: %.1f %%\n", 100*pair.Ratio())
		}
		if pair.Bare != nil {
			pairs = append(pairs, pair)
		}
		if err != nil {
			break
		}
	}
	if inv.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(pairs)
		return err
	}
	if len(pairs) > 0 {
		fmt.Fprintf(stdout, "Machine: %s.\n\n", loadtest.DescribeMachine())
		fmt.Fprint(stdout, loadtest.DeliveryTable(pairs))
	}
	return err
}

// runDownloads runs a downloads measurement; each phase's summary goes to
// stderr as it ends, the table (or JSON) and the command line to stdout.
func runDownloads(ctx context.Context, inv *invocation, args []string, stdout, stderr io.Writer) error {
	o := inv.downloadOptions()
	o.Progress = stderr
	run, err := loadtest.RunDownloads(ctx, o)
	if inv.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(run)
		return err
	}
	if len(run.Phases) > 0 {
		fmt.Fprintf(stdout, "Command: %s\n\n", commandLine(args))
		fmt.Fprintf(stdout, "Machine: %s.\n\n", loadtest.DescribeMachine())
		rate := "as fast as they read"
		if run.Rate > 0 {
			rate = "each at most " + strconv.FormatInt(run.Rate, 10) + " B/s"
		}
		if run.ReceiveBuffer > 0 {
			rate += ", SO_RCVBUF " + strconv.Itoa(run.ReceiveBuffer) + " B"
		}
		fmt.Fprintf(stdout, "%d of %d devices connected, %d sent timed heartbeats every %s; image %d bytes (sha256 %s), downloaders %s, firmware.max_downloads %d. %s.\n\n",
			run.Connected, run.N, run.Sample, run.SampleInterval, run.ImageSize, run.SHA256, rate, run.MaxDownloads, run.Setup)
		fmt.Fprint(stdout, loadtest.DownloadTable(run))
	}
	return err
}

// commandLine writes the arguments as the command that would run them
// again, quoting those a shell would split or expand.
func commandLine(args []string) string {
	out := []string{"switchyard-load"}
	for _, a := range args {
		if a == "" || strings.ContainsFunc(a, func(r rune) bool { return !shellSafe(r) }) {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

func shellSafe(r rune) bool {
	return strings.ContainsRune("-./,_=:+", r) || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
}

// invocation is a parsed command line.
type invocation struct {
	command    string
	opts       loadtest.Options
	ns         []int // compare, deliveries
	servers    int   // 0: one per 19,000 connections
	relay      loadtest.RelayOptions
	external   loadtest.External
	bare       bareFlags
	deliveries loadtest.DeliveryOptions // deliveries: everything but Options, N and Relay
	downloads  loadtest.DownloadOptions // downloads: everything but Options and Relay
	json       bool
	verbose    bool
}

type bareFlags struct {
	listen    string
	path      string
	idle      time.Duration
	lifetime  time.Duration
	broadcast bool
}

func (inv *invocation) serversFor(n int) int {
	if inv.servers > 0 {
		return inv.servers
	}
	return loadtest.ServersFor(n)
}

// parse turns the arguments into an invocation. Usage and flag errors go to
// errOut; -h returns flag.ErrHelp.
func parse(args []string, errOut io.Writer) (*invocation, error) {
	if len(args) == 0 {
		fmt.Fprint(errOut, usage)
		return nil, errors.New("no command")
	}
	inv := &invocation{command: args[0]}
	switch inv.command {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(errOut, usage)
		return nil, flag.ErrHelp
	case "baseline", "relay", "compare", "deliveries", "downloads", "bare-server", "worker":
	default:
		fmt.Fprint(errOut, usage)
		return nil, fmt.Errorf("unknown command %q", inv.command)
	}
	fs := flag.NewFlagSet("switchyard-load "+inv.command, flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.BoolVar(&inv.verbose, "v", false, "debug logging")

	var source, targets, pids, ns, levels, imageSize, rate, rcvbuf string
	o := &inv.opts
	switch inv.command {
	case "baseline", "relay", "compare":
		hold := 30 * time.Second
		if inv.command == "compare" {
			fs.StringVar(&ns, "n", "1000,10000,19000", "connection counts to measure, comma-separated")
			hold = 20 * time.Second
		} else {
			fs.IntVar(&o.N, "n", 1000, "connections to open")
		}
		fs.DurationVar(&o.Hold, "hold", hold, "how long to hold all connections; the server RSS is sampled during it")
		fs.DurationVar(&o.Heartbeat, "heartbeat", 15*time.Second, "heartbeat interval of each connection (servers close after 3 missed)")
		fs.IntVar(&o.PerWorker, "per-worker", 10000, "connections per client worker process")
		fs.IntVar(&o.PerSource, "per-source", 10000, "connections per source address")
		fs.StringVar(&source, "source", "127.0.0.2", "first source address; later ones count up from it")
		fs.IntVar(&o.Concurrency, "concurrency", 64, "handshakes in flight per worker")
		fs.DurationVar(&o.DialTimeout, "dial-timeout", 10*time.Second, "bound on one connection's dial, upgrade and hello")
		fs.DurationVar(&o.ConnectTimeout, "connect-timeout", 2*time.Minute, "bound on the connect phase")
		fs.IntVar(&o.Samples, "samples", 5, "RSS samples taken, evenly spread over the hold; the median is reported")
		fs.IntVar(&inv.servers, "servers", 0, "server processes (bare servers or relays) to start; 0: one per 19,000 connections")
		if inv.command != "compare" {
			fs.BoolVar(&inv.json, "json", false, "print the result as JSON")
		}
	case "deliveries":
		fs.StringVar(&ns, "devices", "1000", "device counts to measure, comma-separated (each at most 19000)")
		fs.DurationVar(&inv.deliveries.Window, "duration", 30*time.Second, "measurement window of each side")
		fs.DurationVar(&inv.deliveries.Warmup, "warmup", 5*time.Second, "time between the last device connecting and the window")
		fs.Float64Var(&inv.deliveries.Offer, "offer", 2, "relay collector rate, as a multiple of the messages/s the bare server got to each device")
		fs.DurationVar(&inv.deliveries.Settle, "settle", 30*time.Second, "with -offer above 1: after the warm-up, wait at most this long for the relay to hold a backlog")
		fs.StringVar(&inv.deliveries.Plugins, "plugins", "bin/plugins", "folder with the WASM modules (make plugins)")
		fs.StringVar(&inv.deliveries.WASMCache, "wasm-cache", "", "the relays' WASM compilation cache (default: a temporary folder)")
		fs.BoolVar(&inv.deliveries.BareOnly, "bare-only", false, "measure the bare ceiling only (no -relay-bin needed)")
		fs.DurationVar(&o.Heartbeat, "heartbeat", 15*time.Second, "heartbeat interval of each device")
		fs.IntVar(&o.PerWorker, "per-worker", 10000, "devices per client worker process")
		fs.IntVar(&o.PerSource, "per-source", 10000, "connections per source address")
		fs.StringVar(&source, "source", "127.0.0.2", "first source address; later ones count up from it")
		fs.IntVar(&o.Concurrency, "concurrency", 64, "handshakes in flight per worker")
		fs.DurationVar(&o.DialTimeout, "dial-timeout", 10*time.Second, "bound on one connection's dial, upgrade and hello")
		fs.DurationVar(&o.ConnectTimeout, "connect-timeout", 2*time.Minute, "bound on the connect phase")
		fs.BoolVar(&inv.json, "json", false, "print the results as JSON")
	case "downloads":
		dl := &inv.downloads
		fs.IntVar(&o.N, "devices", 10000, "devices to provision and keep connected (at most 19000: one relay process)")
		fs.StringVar(&levels, "downloaders", "0,8,32", "concurrent downloaders of each phase, comma-separated; a 0 phase (heartbeats only) runs first unless the list starts with one")
		fs.DurationVar(&dl.Phase, "phase", 20*time.Second, "measurement window of each phase")
		fs.DurationVar(&dl.Settle, "settle", 3*time.Second, "wait before each window once its downloaders run (and after connecting)")
		fs.StringVar(&imageSize, "image-size", "4MiB", "size of the random firmware image (B, KiB, MiB, GiB)")
		fs.IntVar(&dl.MaxDownloads, "max-downloads", 32, "the relay's firmware.max_downloads")
		fs.StringVar(&rate, "download-rate", "0", "most bytes a second each downloader reads, e.g. 1MiB (a device's link); 0: as fast as it can")
		fs.StringVar(&rcvbuf, "download-rcvbuf", "0", "each downloader's socket receive buffer, e.g. 16KiB (a device's TCP window); 0: the kernel's, which on loopback grows to megabytes")
		fs.DurationVar(&dl.RequestTimeout, "request-timeout", time.Minute, "bound on one download")
		fs.IntVar(&o.Sample, "sample", 1000, "devices that send timed heartbeats (spread over all; at most -devices)")
		fs.DurationVar(&o.SampleInterval, "sample-interval", time.Second, "how often each sampled device sends a timed heartbeat")
		fs.DurationVar(&o.Heartbeat, "heartbeat", 15*time.Second, "heartbeat interval of the other devices (and the relay's heartbeat_interval)")
		fs.IntVar(&o.PerWorker, "per-worker", 10000, "devices per client worker process")
		fs.IntVar(&o.PerSource, "per-source", 10000, "connections per source address")
		fs.StringVar(&source, "source", "127.0.0.2", "first source address; later ones count up from it")
		fs.IntVar(&o.Concurrency, "concurrency", 64, "handshakes in flight per worker")
		fs.DurationVar(&o.DialTimeout, "dial-timeout", 10*time.Second, "bound on one connection's dial, upgrade and hello")
		fs.DurationVar(&o.ConnectTimeout, "connect-timeout", 2*time.Minute, "bound on the connect phase")
		fs.BoolVar(&inv.json, "json", false, "print the result as JSON")
	case "bare-server":
		fs.StringVar(&inv.bare.listen, "listen", "127.0.0.1:0", "address to listen on; port 0 picks a free one")
		fs.StringVar(&inv.bare.path, "path", "/ws/device", "WebSocket upgrade path")
		fs.DurationVar(&inv.bare.idle, "idle-timeout", 45*time.Second, "close connections silent for this long")
		fs.DurationVar(&inv.bare.lifetime, "max-lifetime", 0, "exit after this long (0: run until interrupted)")
		fs.BoolVar(&inv.bare.broadcast, "broadcast", false, "send generated message frames to every device, as fast as they are written")
	}
	if inv.command == "relay" || inv.command == "compare" || inv.command == "deliveries" || inv.command == "downloads" {
		fs.StringVar(&inv.relay.Bin, "relay-bin", "", "switchyard binary to start (run -c <generated plugins.yaml>)")
		fs.IntVar(&inv.relay.ProvisionConcurrency, "provision-concurrency", 32, "admin API requests in flight")
		fs.StringVar(&inv.relay.LogLevel, "relay-log", "warn", "log.level of relays started with -relay-bin (debug, info, warn, error)")
		fs.BoolVar(&inv.relay.Keep, "keep", false, "keep the directory (config, store, log) of relays started with -relay-bin")
	}
	if inv.command == "relay" {
		fs.StringVar(&targets, "target", "", "gateway URLs of running relays, comma-separated (instead of -relay-bin)")
		fs.StringVar(&inv.external.API, "api", "", "admin API of the running relays, e.g. http://127.0.0.1:8081 (with -target)")
		fs.StringVar(&inv.external.OperatorKey, "operator-key", "", "operator key for -api (default: $SWITCHYARD_API__OPERATOR_KEY)")
		fs.StringVar(&pids, "relay-pid", "", "pids of the running relays, comma-separated, to measure their RSS (with -target)")
		fs.StringVar(&inv.external.IDPrefix, "id-prefix", fmt.Sprintf("load-%x-", time.Now().Unix()), "device id prefix for -target runs; must be new to the relay")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%s: unexpected argument %q", inv.command, fs.Arg(0))
	}
	if inv.command == "worker" || inv.command == "bare-server" {
		return inv, nil
	}

	var err error
	if o.SourceBase, err = netip.ParseAddr(source); err != nil {
		return nil, fmt.Errorf("-source: %w", err)
	}
	switch inv.command {
	case "compare":
		if inv.ns, err = parseInts(ns); err != nil {
			return nil, fmt.Errorf("-n: %w", err)
		}
		o.N = inv.ns[0]
		for _, n := range inv.ns {
			probe := *o
			probe.N = n
			if err := probe.Validate(); err != nil {
				return nil, err
			}
		}
	case "deliveries":
		if inv.ns, err = parseInts(ns); err != nil {
			return nil, fmt.Errorf("-devices: %w", err)
		}
		o.N = inv.ns[0]
		if inv.deliveries.Plugins, err = filepath.Abs(inv.deliveries.Plugins); err != nil {
			return nil, fmt.Errorf("-plugins: %w", err)
		}
		if inv.deliveries.WASMCache != "" {
			if inv.deliveries.WASMCache, err = filepath.Abs(inv.deliveries.WASMCache); err != nil {
				return nil, fmt.Errorf("-wasm-cache: %w", err)
			}
		}
	case "downloads":
		if inv.downloads.Levels, err = parseCounts(levels); err != nil {
			return nil, fmt.Errorf("-downloaders: %w", err)
		}
		if inv.downloads.ImageSize, err = loadtest.ParseByteSize(imageSize); err != nil {
			return nil, fmt.Errorf("-image-size: %w", err)
		}
		if inv.downloads.Rate, err = loadtest.ParseByteSize(rate); err != nil {
			return nil, fmt.Errorf("-download-rate: %w", err)
		}
		n, err := loadtest.ParseByteSize(rcvbuf)
		if err != nil || n > 64<<20 {
			return nil, fmt.Errorf("-download-rcvbuf: %q: want a size up to 64MiB", rcvbuf)
		}
		inv.downloads.ReceiveBuffer = int(n)
	default:
		if err := o.Validate(); err != nil {
			return nil, err
		}
	}
	if inv.servers < 0 {
		return nil, fmt.Errorf("-servers %d must not be negative", inv.servers)
	}

	if inv.relay.Bin != "" {
		// The relay runs in its own temp folder: a relative path would not resolve there.
		abs, err := filepath.Abs(inv.relay.Bin)
		if err != nil {
			return nil, fmt.Errorf("-relay-bin %s: %w", inv.relay.Bin, err)
		}
		inv.relay.Bin = abs
	}
	switch inv.command {
	case "compare", "deliveries", "downloads":
		if inv.relay.Bin == "" && !inv.deliveries.BareOnly {
			return nil, fmt.Errorf("%s needs -relay-bin", inv.command)
		}
	case "relay":
		if (inv.relay.Bin == "") == (targets == "") {
			return nil, errors.New("relay needs exactly one of -relay-bin and -target")
		}
		if targets != "" {
			if err := inv.parseExternal(targets, pids); err != nil {
				return nil, err
			}
		}
	}
	if inv.command == "relay" || inv.command == "compare" || inv.command == "deliveries" || inv.command == "downloads" {
		if inv.relay.ProvisionConcurrency <= 0 {
			return nil, errors.New("-provision-concurrency must be positive")
		}
		switch inv.relay.LogLevel {
		case "debug", "info", "warn", "error":
		default:
			return nil, fmt.Errorf("-relay-log %q: want debug, info, warn or error", inv.relay.LogLevel)
		}
	}
	if inv.command == "deliveries" {
		for _, n := range inv.ns {
			if err := inv.deliveryOptions(n).Validate(); err != nil {
				return nil, err
			}
		}
	}
	if inv.command == "downloads" {
		// -sample above -devices means all of them.
		inv.opts.Sample = min(inv.opts.Sample, inv.opts.N)
		if err := inv.downloadOptions().Validate(); err != nil {
			return nil, err
		}
	}
	return inv, nil
}

// downloadOptions are the options of a downloads run.
func (inv *invocation) downloadOptions() loadtest.DownloadOptions {
	d := inv.downloads
	d.Options = inv.opts
	d.Relay = inv.relay
	return d
}

// deliveryOptions are the options of a delivery run at n devices.
func (inv *invocation) deliveryOptions(n int) loadtest.DeliveryOptions {
	d := inv.deliveries
	d.Options = inv.opts
	d.N = n
	d.Relay = inv.relay
	return d
}

// parseExternal checks the flags that describe running relays.
func (inv *invocation) parseExternal(targets, pids string) error {
	ex := &inv.external
	for _, t := range strings.Split(targets, ",") {
		if err := checkLoopbackURL(t, "ws"); err != nil {
			return fmt.Errorf("-target: %w", err)
		}
		ex.Targets = append(ex.Targets, t)
	}
	if ex.API == "" {
		return errors.New("-target needs -api to provision devices")
	}
	if err := checkLoopbackURL(ex.API, "http"); err != nil {
		return fmt.Errorf("-api: %w", err)
	}
	ex.API = strings.TrimRight(ex.API, "/")
	if ex.OperatorKey == "" {
		// Read here, not as the flag's default, so that -h never prints it.
		ex.OperatorKey = os.Getenv("SWITCHYARD_API__OPERATOR_KEY")
	}
	if ex.OperatorKey == "" {
		return errors.New("-target needs -operator-key or $SWITCHYARD_API__OPERATOR_KEY")
	}
	if pids != "" {
		var err error
		if ex.PIDs, err = parseInts(pids); err != nil {
			return fmt.Errorf("-relay-pid: %w", err)
		}
	}
	ex.ProvisionConcurrency = inv.relay.ProvisionConcurrency
	return nil
}

// checkLoopbackURL accepts scheme://<loopback IP>:port/…: the clients dial
// from 127.0.0.x, which reaches only loopback destinations.
func checkLoopbackURL(raw, scheme string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != scheme {
		return fmt.Errorf("%q: scheme must be %s", raw, scheme)
	}
	host, _, err := net.SplitHostPort(u.Host)
	if err != nil {
		return fmt.Errorf("%q: %w", raw, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: host must be a loopback IP address", raw)
	}
	return nil
}

// parseCounts reads a comma-separated list of integers that are not
// negative.
func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a whole number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseInts reads a comma-separated list of positive integers.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}
