package loadtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A downloads run measures firmware image downloads served by a relay while
// N devices stay connected, and what they do to the devices' heartbeat
// round trips. One relay, one fleet of N connected devices; a sample of
// them sends a heartbeat with a seq every SampleInterval and times the
// answer. Then one phase per level of Levels, one after the other: a
// download worker with that many downloaders (none for 0, the baseline)
// starts, the run waits Settle, and a window of Phase counts the
// heartbeats sent in it, the downloads completed, the bytes received and
// the relay's CPU and RSS.

// The release the run uploads and downloads.
const (
	loadModel   = "load" // the model Provisioner gives every device
	loadVersion = "1.0.1"
	loadTenant  = "default"
)

// Bounds of a downloads run.
const (
	maxImageSize = 256 << 20
	maxLevels    = 16
	// heartbeatGrace is how long after a window's end its heartbeats may
	// still be answered before the window is reported.
	heartbeatGrace = 2 * time.Second
	// rssEvery is how often the relay's RSS is sampled in a window.
	rssEvery = time.Second
	// maxTimedRate bounds the timed heartbeats a second.
	maxTimedRate = 20000
)

// DownloadOptions configure a downloads run.
type DownloadOptions struct {
	// Options holds the connection settings; N is the number of devices,
	// Sample and SampleInterval the timed heartbeats. Hold and Samples
	// are not used.
	Options
	// Levels are the downloaders of each phase, in order; a 0 phase (the
	// baseline, heartbeats only) runs first when Levels does not start
	// with one.
	Levels []int
	// Phase is each phase's measurement window; Settle the wait before it,
	// once the phase's downloaders run (and, before the first phase, once
	// every device connected).
	Phase  time.Duration
	Settle time.Duration
	// ImageSize is the size of the random image uploaded as a release.
	ImageSize int64
	// MaxDownloads is the relay's firmware.max_downloads.
	MaxDownloads int
	// Rate, when positive, caps each downloader at this many bytes a
	// second (a device's link); 0: as fast as it reads.
	Rate int64
	// ReceiveBuffer, when positive, is each downloader's SO_RCVBUF (see
	// DownloadSpec).
	ReceiveBuffer int
	// RequestTimeout bounds one download.
	RequestTimeout time.Duration
	Relay          RelayOptions
	// Progress, when set, gets each phase's summary as it ends.
	Progress io.Writer
}

// Validate reports the first option that cannot work.
func (o DownloadOptions) Validate() error {
	probe := o.Options
	probe.Hold, probe.Samples = max(o.Phase, 1), 1
	if err := probe.Validate(); err != nil {
		return err
	}
	switch {
	case o.N > maxPerServer:
		return fmt.Errorf("devices %d: a downloads run uses one relay process, at most %d devices", o.N, maxPerServer)
	case len(o.Levels) == 0 || len(withBaseline(o.Levels)) > maxLevels:
		return fmt.Errorf("%d download levels, want 1 to %d (with the baseline)", len(o.Levels), maxLevels)
	case o.Phase <= 0 || o.Settle < 0 || o.RequestTimeout <= 0:
		return errors.New("phase and request timeout must be positive, settle not negative")
	case o.ImageSize <= 0 || o.ImageSize > maxImageSize:
		return fmt.Errorf("image size %d must be from 1 B to %d MiB", o.ImageSize, maxImageSize>>20)
	case o.MaxDownloads <= 0:
		return fmt.Errorf("max downloads %d must be positive", o.MaxDownloads)
	case o.Rate < 0 || o.ReceiveBuffer < 0 || o.ReceiveBuffer > 64<<20:
		return fmt.Errorf("download rate %d must not be negative, receive buffer %d from 0 to 64 MiB", o.Rate, o.ReceiveBuffer)
	case o.Rate > 0 && rateDelay(o.ImageSize, o.Rate, 0) > o.RequestTimeout/2:
		return fmt.Errorf("a %s download at %s/s takes %s, more than half the request timeout %s",
			sizeText(o.ImageSize), sizeText(o.Rate), rateDelay(o.ImageSize, o.Rate, 0).Round(time.Second), o.RequestTimeout)
	case o.Sample <= 0 || o.Sample > o.N:
		return fmt.Errorf("sample %d must be from 1 to the %d devices", o.Sample, o.N)
	case o.SampleInterval < heartbeatTick:
		return fmt.Errorf("sample interval %s must be at least %s", o.SampleInterval, heartbeatTick)
	case float64(o.Sample)/o.SampleInterval.Seconds() > maxTimedRate:
		return fmt.Errorf("%d timed heartbeats every %s is more than %d a second", o.Sample, o.SampleInterval, maxTimedRate)
	case o.Relay.Bin == "":
		return errors.New("no relay binary")
	}
	for _, l := range o.Levels {
		if l < 0 || l > maxDownloaders {
			return fmt.Errorf("downloaders %d must be from 0 to %d", l, maxDownloaders)
		}
	}
	return nil
}

// withBaseline returns levels with a 0 in front unless they start with one.
func withBaseline(levels []int) []int {
	if len(levels) > 0 && levels[0] == 0 {
		return levels
	}
	return append([]int{0}, levels...)
}

// lifetime bounds the run's workers: connecting, the first settle, and
// each phase with its settle, drain and grace, plus a margin.
func (o DownloadOptions) lifetime() time.Duration {
	levels := time.Duration(len(withBaseline(o.Levels)))
	return o.ConnectTimeout + o.DialTimeout + o.Settle + levels*(o.Settle+o.Phase+o.RequestTimeout+heartbeatGrace+time.Minute) + time.Minute
}

// DownloadPhase is what one phase measured.
type DownloadPhase struct {
	Downloaders int `json:"downloaders"`
	// Window is the wall time between the window's two snapshots.
	Window time.Duration `json:"window"`

	// Timed heartbeats sent in the window, and their round trips.
	Sample    int              `json:"sample"`
	Heartbeat HeartbeatSummary `json:"heartbeat"`
	Unmatched int64            `json:"unmatched,omitempty"`

	// Downloads, as the downloaders saw them in the window: bodies received
	// whole and verified, body bytes received (of any download) per second,
	// 503 too_many_downloads answers, other failures, TCP connections opened,
	// and the time of a whole download.
	Completed    int64            `json:"completed"`
	Bytes        int64            `json:"bytes"`
	MBPerSecond  float64          `json:"mb_per_second"`
	Refused      int64            `json:"refused"`
	Failures     map[string]int64 `json:"failures,omitempty"`
	Dials        int64            `json:"dials"`
	DownloadTime Latency          `json:"download_time"`
	// Relay's counters in the window (switchyard_gateway_download_bytes_total
	// and switchyard_gateway_downloads_total by result).
	RelayBytes   float64            `json:"relay_bytes"`
	RelayResults map[string]float64 `json:"relay_results,omitempty"`
	// ActiveMedian and ActiveMax are the relay's downloads in progress
	// (switchyard_gateway_downloads_active), sampled every second.
	ActiveMedian int64 `json:"active_median"`
	ActiveMax    int64 `json:"active_max"`

	// The relay's VmRSS sampled every second of the window (median, max),
	// its heap in use and goroutines at the window's end (/metrics).
	RSSMedian  int64   `json:"rss_median"`
	RSSMax     int64   `json:"rss_max"`
	RSSSamples []int64 `json:"rss_samples,omitempty"`
	HeapInuse  float64 `json:"heap_inuse"`
	Goroutines float64 `json:"goroutines"`
	RelayCPU   float64 `json:"relay_cpu_seconds"`
	// RelayCPUPerGB is the relay's CPU seconds above the baseline phase's
	// (its cores times this window) per 10⁹ bytes it handed to download
	// connections in the window: what serving the bytes cost (0 without
	// downloads).
	RelayCPUPerGB float64 `json:"relay_cpu_per_gb,omitempty"`
	RelayCores    float64 `json:"relay_cores"`
	ClientCores   float64 `json:"client_cores"`     // the heartbeat clients' workers
	LoaderCores   float64 `json:"downloader_cores"` // the download worker
	OtherCores    float64 `json:"other_cores"`      // the rest of the machine

	// Open counts the devices connected at the report; Disconnects those
	// lost since the run began, by reason.
	Open        int            `json:"open"`
	Disconnects map[string]int `json:"disconnects,omitempty"`
}

// HeartbeatSummary is a window's timed heartbeats.
type HeartbeatSummary struct {
	Sent     int64         `json:"sent"`
	Answered int64         `json:"answered"`
	Lost     int64         `json:"lost"`
	P50      time.Duration `json:"p50"`
	P90      time.Duration `json:"p90"`
	P99      time.Duration `json:"p99"`
	Max      time.Duration `json:"max"`
}

func summariseHeartbeats(c HeartbeatCounts) HeartbeatSummary {
	return HeartbeatSummary{Sent: c.Sent, Answered: c.Answered, Lost: c.Lost(),
		P50: c.RTT.Quantile(0.50), P90: c.RTT.Quantile(0.90), P99: c.RTT.Quantile(0.99), Max: c.RTT.Quantile(1)}
}

// DownloadRun is a whole downloads run.
type DownloadRun struct {
	N              int             `json:"n"`
	Connected      int             `json:"connected"`
	Failed         int             `json:"failed"`
	Failures       map[string]int  `json:"failures,omitempty"`
	Workers        int             `json:"workers"`
	Sample         int             `json:"sample"`
	SampleInterval time.Duration   `json:"sample_interval"`
	Heartbeat      time.Duration   `json:"heartbeat"`
	ImageSize      int64           `json:"image_size"`
	SHA256         string          `json:"sha256"`
	MaxDownloads   int             `json:"max_downloads"`
	Rate           int64           `json:"rate,omitempty"`
	ReceiveBuffer  int             `json:"receive_buffer,omitempty"`
	Setup          string          `json:"setup,omitempty"`
	Phases         []DownloadPhase `json:"phases"`
	Elapsed        time.Duration   `json:"elapsed"`
}

// RunDownloads starts a relay, provisions o.N devices, uploads a random
// image, connects the devices, and measures one phase per level. It stops
// the relay and every worker before it returns; the phases measured before
// an error are in the result.
func RunDownloads(ctx context.Context, o DownloadOptions) (run DownloadRun, err error) {
	run = DownloadRun{N: o.N, Sample: o.Sample, SampleInterval: o.SampleInterval, Heartbeat: o.Heartbeat,
		ImageSize: o.ImageSize, MaxDownloads: o.MaxDownloads, Rate: o.Rate, ReceiveBuffer: o.ReceiveBuffer}
	if err := o.Validate(); err != nil {
		return run, fmt.Errorf("downloads: %w", err)
	}
	start := time.Now()
	defer func() { run.Elapsed = time.Since(start) }()
	levels := withBaseline(o.Levels)
	m := o.Options
	m.Hold, m.Samples = o.lifetime(), 1
	log := m.Log

	ro := o.Relay
	ro.Extra += firmwareConfig(o.MaxDownloads, o.ImageSize)
	r, err := startRelay(ctx, ro, o.N+64+maxOf(levels), m.Heartbeat, log)
	if err != nil {
		return run, fmt.Errorf("downloads: %w", err)
	}
	var once sync.Once
	stopRelay := func() { once.Do(func() { r.stop(log) }) }
	defer stopRelay()

	ids := make([]string, o.N)
	for i := range ids {
		ids[i] = DeviceID("load-", i)
	}
	p := Provisioner{API: r.api, Key: r.key, Tenant: loadTenant, Concurrency: ro.ProvisionConcurrency, Log: log}
	tokens, err := p.Provision(ctx, ids)
	if err != nil {
		return run, fmt.Errorf("downloads: %w", err)
	}
	provisioned := time.Since(start)
	image := randomImage(o.ImageSize, uint64(start.UnixNano()))
	if run.SHA256, err = uploadRelease(ctx, r.api, r.key, loadTenant, loadModel, loadVersion, image); err != nil {
		return run, fmt.Errorf("downloads: %w", err)
	}
	run.Setup = fmt.Sprintf("relay started and %d devices provisioned in %.1f s; a %s image uploaded as release %s %s in %.1f s",
		o.N, provisioned.Seconds(), sizeText(o.ImageSize), loadModel, loadVersion, (time.Since(start) - provisioned).Seconds())
	log.Info("release uploaded", "sha256", run.SHA256, "size", o.ImageSize)

	ranges, err := Split(o.N, m.PerWorker)
	if err != nil {
		return run, fmt.Errorf("downloads: %w", err)
	}
	f, err := startFleet(m, Servers{Label: "switchyard", Targets: []string{r.gateway}, PIDs: []int{r.pid()}, Tokens: tokens},
		ranges, o.lifetime())
	if err != nil {
		return run, fmt.Errorf("downloads: %w", err)
	}
	defer func() { _ = f.close() }()
	run.Workers = len(f.workers)
	log.Info("connecting", "n", o.N, "workers", len(f.workers), "sample", o.Sample)
	cs, err := f.awaitConnect(ctx, m)
	if err != nil {
		return run, fmt.Errorf("downloads: %w", err)
	}
	run.Connected, run.Failed, run.Failures = cs.connected, cs.failed, cs.failures
	if run.Connected == 0 {
		return run, fmt.Errorf("downloads: no device connected: %v", cs.failures)
	}
	log.Info("connected", "connected", run.Connected, "failed", run.Failed, "seconds", fmt.Sprintf("%.1f", cs.seconds))
	if err := sleepUntil(ctx, time.Now().Add(o.Settle)); err != nil {
		return run, err
	}

	env := phaseEnv{o: o, r: r, f: f, tokens: tokens, sha: run.SHA256,
		url: "http" + strings.TrimSuffix(strings.TrimPrefix(r.gateway, "ws"), "/ws/device") + "/firmware/v1/" + run.SHA256}
	for k, level := range levels {
		ph, err := env.measure(ctx, k+1, level)
		if err != nil {
			return run, fmt.Errorf("downloads: phase %d (%d downloaders): %w", k+1, level, err)
		}
		if base := run.Phases; len(base) > 0 && ph.RelayBytes > 0 {
			extra := ph.RelayCPU - base[0].RelayCores*ph.Window.Seconds()
			ph.RelayCPUPerGB = max(0, extra) / (ph.RelayBytes / 1e9)
		}
		run.Phases = append(run.Phases, ph)
		if o.Progress != nil {
			fmt.Fprint(o.Progress, ph.Text())
		}
	}
	// The relay first, so that TIME_WAIT stays on its side.
	stopRelay()
	if err := f.close(); err != nil {
		return run, fmt.Errorf("downloads: %w", err)
	}
	return run, nil
}

func maxOf(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// phaseEnv is what every phase of a run measures with.
type phaseEnv struct {
	o      DownloadOptions
	r      *relay
	f      *fleet
	tokens []string
	url    string // the image's download URL
	sha    string // the image's SHA-256
}

// phaseSnapshot is the state of a run at one instant.
type phaseSnapshot struct {
	at                         time.Time
	relayCPU, clientCPU, dlCPU time.Duration
	machineCPU                 time.Duration
	download                   DownloadReport
	relay                      relayDownloads
}

func (e *phaseEnv) snapshot(ctx context.Context, dl *workerProc) (phaseSnapshot, error) {
	s := phaseSnapshot{at: time.Now()}
	var err error
	if s.relayCPU, err = ReadCPU(e.r.pid()); err != nil {
		return s, err
	}
	if s.clientCPU, err = ReadCPUSum(e.f.pids()); err != nil {
		return s, err
	}
	if s.machineCPU, err = ReadMachineCPU(); err != nil {
		return s, err
	}
	if dl != nil {
		if s.dlCPU, err = ReadCPU(dl.proc.pid()); err != nil {
			return s, err
		}
		if s.download, err = askDownloads(ctx, dl, cmdDownloads, 30*time.Second); err != nil {
			return s, err
		}
	}
	if s.relay, err = relayDownloadCounters(ctx, e.r.api+"/metrics"); err != nil {
		return s, err
	}
	return s, nil
}

func askDownloads(ctx context.Context, dl *workerProc, cmd string, timeout time.Duration) (DownloadReport, error) {
	if err := dl.send(workerRequest{Command: cmd}); err != nil {
		return DownloadReport{}, err
	}
	rep, err := dl.await(ctx, timeout)
	if err != nil {
		return DownloadReport{}, err
	}
	if rep.Download == nil {
		return DownloadReport{}, fmt.Errorf("download worker: expected a %s report", cmd)
	}
	return *rep.Download, nil
}

// downloaderTokens picks the tokens of n downloaders: the last devices',
// counting down (and round again when n exceeds the devices).
func downloaderTokens(tokens []string, n int) []string {
	out := make([]string, n)
	for d := range out {
		out[d] = tokens[len(tokens)-1-d%len(tokens)]
	}
	return out
}

// measure runs phase window with level downloaders.
func (e *phaseEnv) measure(ctx context.Context, window, level int) (DownloadPhase, error) {
	o := e.o
	ph := DownloadPhase{Downloaders: level}
	var dl *workerProc
	if level > 0 {
		spec := DownloadSpec{URL: e.url, Tokens: downloaderTokens(e.tokens, level), Size: o.ImageSize, SHA256: e.sha,
			Rate: o.Rate, ReceiveBuffer: o.ReceiveBuffer, RequestTimeout: o.RequestTimeout, Lifetime: o.Settle + o.Phase + 2*o.RequestTimeout + time.Minute}
		var err error
		if dl, err = startWorkerWith(o.Self, 100+window, workerRequest{Download: &spec}); err != nil {
			return ph, err
		}
		defer func() { _ = dl.close() }()
		rep, err := dl.await(ctx, 30*time.Second)
		if err != nil {
			return ph, err
		}
		if rep.Download == nil {
			return ph, errors.New("download worker: expected its first report")
		}
	}
	o.Log.Info("phase", "window", window, "downloaders", level, "settle", o.Settle, "phase", o.Phase)
	if err := sleepUntil(ctx, time.Now().Add(o.Settle)); err != nil {
		return ph, err
	}
	first, err := e.snapshot(ctx, dl)
	if err != nil {
		return ph, fmt.Errorf("window start: %w", err)
	}
	// The heartbeat window opens after the first snapshot and closes
	// before the last, so it lies inside the measured one.
	if _, err := e.f.request(ctx, workerRequest{Command: cmdWindow, Window: window}, 10*time.Second); err != nil {
		return ph, err
	}
	// Every second, and at the end: the relay's RSS and, with downloaders,
	// the downloads it serves at that moment.
	var active []int64
	sample := func() error {
		rss, err := ReadRSS(e.r.pid())
		if err != nil {
			return err
		}
		ph.RSSSamples = append(ph.RSSSamples, rss)
		if level > 0 {
			c, err := relayDownloadCounters(ctx, e.r.api+"/metrics")
			if err != nil {
				return err
			}
			active = append(active, int64(c.Active))
		}
		return nil
	}
	for at := first.at.Add(rssEvery); at.Before(first.at.Add(o.Phase)); at = at.Add(rssEvery) {
		if err := sleepUntil(ctx, at); err != nil {
			return ph, err
		}
		if err := sample(); err != nil {
			return ph, err
		}
	}
	if err := sleepUntil(ctx, first.at.Add(o.Phase)); err != nil {
		return ph, err
	}
	if err := sample(); err != nil {
		return ph, err
	}
	ph.ActiveMedian = Median(active)
	for _, a := range active {
		ph.ActiveMax = max(ph.ActiveMax, a)
	}
	if _, err := e.f.request(ctx, workerRequest{Command: cmdWindow, Window: 0}, 10*time.Second); err != nil {
		return ph, err
	}
	end := time.Now()
	last, err := e.snapshot(ctx, dl)
	if err != nil {
		return ph, fmt.Errorf("window end: %w", err)
	}
	if dl != nil {
		if _, err := askDownloads(ctx, dl, cmdDrain, o.RequestTimeout+30*time.Second); err != nil {
			return ph, err
		}
		if err := dl.close(); err != nil {
			return ph, err
		}
	}
	if err := sleepUntil(ctx, end.Add(heartbeatGrace)); err != nil {
		return ph, err
	}
	replies, err := e.f.request(ctx, workerRequest{Command: cmdHeartbeats, Window: window}, 30*time.Second)
	if err != nil {
		return ph, err
	}
	var counts HeartbeatCounts
	ph.Disconnects = map[string]int{}
	for _, rep := range replies {
		h := rep.Heartbeats
		counts.Add(h.Counts)
		ph.Sample += h.Sample
		ph.Open += h.Open
		ph.Unmatched += h.Unmatched
		for k, v := range h.Disconnects {
			ph.Disconnects[k] += v
		}
	}
	ph.Heartbeat = summariseHeartbeats(counts)
	ph.summarise(first, last)
	if len(ph.Disconnects) == 0 {
		ph.Disconnects = nil
	}
	return ph, nil
}

// summarise fills the window's figures from its two snapshots and its RSS
// samples.
func (ph *DownloadPhase) summarise(first, last phaseSnapshot) {
	ph.Window = last.at.Sub(first.at)
	wall := ph.Window.Seconds()
	d := last.download
	d.Sub(first.download)
	ph.Completed, ph.Bytes, ph.Refused, ph.Dials = d.Completed, d.Bytes, d.Refused, d.Dials
	if len(d.Failures) > 0 {
		ph.Failures = d.Failures
	}
	if span := last.download.At.Sub(first.download.At).Seconds(); span > 0 {
		ph.MBPerSecond = float64(d.Bytes) / 1e6 / span
	}
	ph.DownloadTime = d.Duration.Summary()
	rel := last.relay.sub(first.relay)
	ph.RelayBytes, ph.RelayResults = rel.Bytes, rel.Results
	ph.HeapInuse, ph.Goroutines = last.relay.HeapInuse, last.relay.Goroutines
	ph.RSSMedian = Median(ph.RSSSamples)
	for _, s := range ph.RSSSamples {
		ph.RSSMax = max(ph.RSSMax, s)
	}
	relayCPU := last.relayCPU - first.relayCPU
	clientCPU := last.clientCPU - first.clientCPU
	dlCPU := last.dlCPU - first.dlCPU
	ph.RelayCPU = relayCPU.Seconds()
	if wall > 0 {
		ph.RelayCores = relayCPU.Seconds() / wall
		ph.ClientCores = clientCPU.Seconds() / wall
		ph.LoaderCores = dlCPU.Seconds() / wall
		ph.OtherCores = max(0, (last.machineCPU-first.machineCPU-relayCPU-clientCPU-dlCPU).Seconds()/wall)
	}
}

// relayDownloads are the relay's download counters and a few gauges of its
// runtime, from /metrics.
type relayDownloads struct {
	Bytes      float64
	Results    map[string]float64
	Active     float64
	HeapInuse  float64
	Goroutines float64
}

func relayDownloadCounters(ctx context.Context, url string) (relayDownloads, error) {
	body, err := httpGet(ctx, url)
	if err != nil {
		return relayDownloads{}, err
	}
	samples, err := parsePromText(bytes.NewReader(body))
	if err != nil {
		return relayDownloads{}, err
	}
	return relayDownloadsOf(samples), nil
}

func relayDownloadsOf(samples []promSample) relayDownloads {
	c := relayDownloads{Results: map[string]float64{}}
	for _, s := range samples {
		switch s.name {
		case "switchyard_gateway_download_bytes_total":
			c.Bytes += s.value
		case "switchyard_gateway_downloads_total":
			c.Results[s.labels["result"]] += s.value
		case "switchyard_gateway_downloads_active":
			c.Active = s.value
		case "go_memstats_heap_inuse_bytes":
			c.HeapInuse = s.value
		case "go_goroutines":
			c.Goroutines = s.value
		}
	}
	return c
}

// sub is the change of the counters since earlier; results that did not
// change are left out.
func (c relayDownloads) sub(earlier relayDownloads) relayDownloads {
	out := relayDownloads{Bytes: c.Bytes - earlier.Bytes, Results: map[string]float64{}}
	for k, v := range c.Results {
		if d := v - earlier.Results[k]; d != 0 {
			out.Results[k] = d
		}
	}
	return out
}

// firmwareConfig is the firmware section of the relay's configuration.
func firmwareConfig(maxDownloads int, imageSize int64) string {
	return fmt.Sprintf("firmware:\n  max_downloads: %d\n  max_image_size: %dB\n", maxDownloads, max(imageSize, 64<<20))
}

// randomImage is size pseudo-random bytes from seed.
func randomImage(size int64, seed uint64) []byte {
	var key [32]byte
	for i := range 4 {
		seed = seed*6364136223846793005 + 1442695040888963407
		for j := range 8 {
			key[i*8+j] = byte(seed >> (8 * j))
		}
	}
	img := make([]byte, size)
	_, _ = rand.NewChaCha8(key).Read(img) // never fails
	return img
}

// uploadRelease uploads image as release model/version of tenant through
// the admin API (multipart/form-data: model, version, then image) and
// returns its SHA-256 as the relay computed it, after checking it against
// the image's.
func uploadRelease(ctx context.Context, api, key, tenant, model, version string, image []byte) (string, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("model", model) // writes to a bytes.Buffer do not fail
	_ = mw.WriteField("version", version)
	part, _ := mw.CreateFormFile("image", model+"-"+version+".bin")
	_, _ = part.Write(image)
	_ = mw.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api+"/api/v1/tenants/"+tenant+"/firmware", &body)
	if err != nil {
		return "", fmt.Errorf("upload release: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("upload release: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("upload release: read response: %w", err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("upload release: http %d: %s", resp.StatusCode, bytes.TrimSpace(raw[:min(len(raw), 512)]))
	}
	var rel struct {
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	}
	if err := json.Unmarshal(raw, &rel); err != nil {
		return "", fmt.Errorf("upload release: decode response: %w", err)
	}
	sum := sha256.Sum256(image)
	if want := hex.EncodeToString(sum[:]); rel.SHA256 != want || rel.Size != int64(len(image)) {
		return "", fmt.Errorf("upload release: the relay stored %d bytes with sha256 %q, sent %d with %s", rel.Size, rel.SHA256, len(image), want)
	}
	return rel.SHA256, nil
}

// ParseByteSize reads a size as the relay's configuration writes it: a
// whole number of bytes and an optional unit B, KiB, MiB or GiB ("4MiB",
// "512KiB", "1000").
func ParseByteSize(s string) (int64, error) {
	text := strings.TrimSpace(s)
	end := 0
	for end < len(text) && text[end] >= '0' && text[end] <= '9' {
		end++
	}
	n, err := strconv.ParseInt(text[:end], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: want a whole number of bytes and B, KiB, MiB or GiB, e.g. 4MiB", s)
	}
	units := map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
	mult, ok := units[strings.TrimSpace(text[end:])]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit (use B, KiB, MiB or GiB)", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}

// sizeText writes a size in the largest binary unit that holds it whole.
func sizeText(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " B"
}

// Text is a human-readable summary of one phase.
func (ph DownloadPhase) Text() string {
	var b strings.Builder
	h := ph.Heartbeat
	fmt.Fprintf(&b, "--- %d downloaders, window %.1f s\n", ph.Downloaders, ph.Window.Seconds())
	fmt.Fprintf(&b, "heartbeats  %d sampled devices: %d sent, %d answered, %d lost; round trip p50 %s, p90 %s, p99 %s, max %s",
		ph.Sample, h.Sent, h.Answered, h.Lost, roundLatency(h.P50), roundLatency(h.P90), roundLatency(h.P99), roundLatency(h.Max))
	if ph.Unmatched > 0 {
		fmt.Fprintf(&b, " (%d answers matched no heartbeat)", ph.Unmatched)
	}
	b.WriteByte('\n')
	if ph.Downloaders > 0 {
		fmt.Fprintf(&b, "downloads   %d completed, %.1f MB/s received, %d refused (503), %d TCP connections opened, whole download p50 %s, p99 %s, max %s\n",
			ph.Completed, ph.MBPerSecond, ph.Refused, ph.Dials, roundLatency(ph.DownloadTime.P50), roundLatency(ph.DownloadTime.P99), roundLatency(ph.DownloadTime.Max))
		if len(ph.Failures) > 0 {
			fmt.Fprintf(&b, "failures    %s\n", failureText(ph.Failures))
		}
	}
	fmt.Fprintf(&b, "relay       handed %.1f MB to download connections (%.2f CPU s per GB); downloads by result: %s; in progress median %d, max %d\n",
		ph.RelayBytes/1e6, ph.RelayCPUPerGB, dropText(ph.RelayResults), ph.ActiveMedian, ph.ActiveMax)
	fmt.Fprintf(&b, "relay mem   VmRSS median %.1f MiB, max %.1f MiB (%d samples); heap in use %.1f MiB, %.0f goroutines at the end\n",
		float64(ph.RSSMedian)/mib, float64(ph.RSSMax)/mib, len(ph.RSSSamples), ph.HeapInuse/mib, ph.Goroutines)
	fmt.Fprintf(&b, "cpu         relay %.1f s (%.2f cores); heartbeat clients %.2f, downloaders %.2f, other processes %.2f cores\n",
		ph.RelayCPU, ph.RelayCores, ph.ClientCores, ph.LoaderCores, ph.OtherCores)
	fmt.Fprintf(&b, "devices     %d open, disconnects since the start %d%s\n", ph.Open, total(ph.Disconnects), counts(ph.Disconnects))
	return b.String()
}

func failureText(m map[string]int64) string {
	f := make(map[string]float64, len(m))
	for k, v := range m {
		f[k] = float64(v)
	}
	return dropText(f)
}

// Text is a human-readable summary of the run.
func (r DownloadRun) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "devices     %d of %d connected (%d worker(s)), failed %d%s\n", r.Connected, r.N, r.Workers, r.Failed, counts(r.Failures))
	if r.Setup != "" {
		fmt.Fprintf(&b, "setup       %s\n", r.Setup)
	}
	for _, ph := range r.Phases {
		b.WriteString(ph.Text())
	}
	fmt.Fprintf(&b, "elapsed     %.1f s\n", r.Elapsed.Seconds())
	return b.String()
}

// DownloadTable renders a run's phases as a table for docs/BENCHMARKS.md.
func DownloadTable(r DownloadRun) string {
	var b strings.Builder
	b.WriteString("| downloaders | heartbeats answered / sent (lost) | heartbeat RTT p50 / p90 / p99 / max | downloads completed | MB/s served | refused (503) | relay RSS median / max (MiB) | relay CPU s (cores) | relay CPU s per GB above the baseline | CPU cores: heartbeat clients / downloaders / other |\n")
	b.WriteString("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, ph := range r.Phases {
		h := ph.Heartbeat
		dl := func(s string) string {
			if ph.Downloaders == 0 {
				return "—"
			}
			return s
		}
		fmt.Fprintf(&b, "| %d | %s / %s (%s) | %s / %s / %s / %s | %s | %s | %s | %.1f / %.1f | %.1f (%.2f) | %s | %.2f / %s / %.2f |\n",
			ph.Downloaders, thousands(float64(h.Answered)), thousands(float64(h.Sent)), thousands(float64(h.Lost)),
			roundLatency(h.P50), roundLatency(h.P90), roundLatency(h.P99), roundLatency(h.Max),
			dl(thousands(float64(ph.Completed))), dl(fmt.Sprintf("%.1f", ph.MBPerSecond)), dl(thousands(float64(ph.Refused))),
			float64(ph.RSSMedian)/mib, float64(ph.RSSMax)/mib, ph.RelayCPU, ph.RelayCores, dl(fmt.Sprintf("%.2f", ph.RelayCPUPerGB)),
			ph.ClientCores, dl(fmt.Sprintf("%.2f", ph.LoaderCores)), ph.OtherCores)
	}
	return b.String()
}
