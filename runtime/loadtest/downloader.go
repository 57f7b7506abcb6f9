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
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A download worker is a worker process (RunWorker, given a DownloadSpec
// instead of a WorkerSpec) that runs one goroutine per downloader, each a
// loop of whole GETs of one firmware image over its own keep-alive HTTP
// connection, with a device's token, checking the length and SHA-256 of
// every body it receives (firmware/PROTOCOL.md §8.4). It runs in a process
// of its own so that its reading and hashing never share a Go runtime (its
// scheduler, its collector) with the clients that time heartbeats.

// maxDownloaders bounds the downloaders of one worker.
const maxDownloaders = 1024

// downloadReadBuffer is each downloader's read buffer.
const downloadReadBuffer = 64 << 10

// maxRetryAfter caps the wait a 503 too_many_downloads asks for.
const maxRetryAfter = 10 * time.Second

// failureBackoff is the pause after a failed request, so that a relay that
// refuses every request is not asked in a tight loop.
const failureBackoff = 200 * time.Millisecond

// DownloadSpec is what the coordinator tells a download worker.
type DownloadSpec struct {
	// URL is the image's address on the relay's gateway listener:
	// http://<loopback>:<port>/firmware/v1/<sha256>.
	URL string `json:"url"`
	// Tokens holds one device token per downloader.
	Tokens []string `json:"tokens"`
	// Size and SHA256 (lower-case hex) are what every body must match.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Rate, when positive, is how many bytes a second each downloader
	// reads at most, as a device on a slow link would; 0: as fast as it can.
	Rate int64 `json:"rate,omitempty"`
	// ReceiveBuffer, when positive, is each connection's SO_RCVBUF: on
	// loopback the kernel otherwise grows it to megabytes and takes a whole
	// image off the relay at once, where a device's TCP window is a few KiB.
	ReceiveBuffer int `json:"receive_buffer,omitempty"`
	// RequestTimeout bounds one GET, body included.
	RequestTimeout time.Duration `json:"request_timeout"`
	// Lifetime is how long the worker lives at most, whatever it is told.
	Lifetime time.Duration `json:"lifetime"`
}

func (s DownloadSpec) validate() error {
	u, err := url.Parse(s.URL)
	if err != nil {
		return fmt.Errorf("download spec: url: %w", err)
	}
	host, _, err := net.SplitHostPort(u.Host)
	if err != nil {
		return fmt.Errorf("download spec: url %q: %w", s.URL, err)
	}
	ip, err := netip.ParseAddr(host)
	switch {
	case u.Scheme != "http":
		return fmt.Errorf("download spec: url %q is not http://", s.URL)
	case err != nil || !ip.IsLoopback():
		return fmt.Errorf("download spec: url %q: host must be a loopback IP address", s.URL)
	case len(s.Tokens) == 0 || len(s.Tokens) > maxDownloaders:
		return fmt.Errorf("download spec: %d downloaders, want 1 to %d", len(s.Tokens), maxDownloaders)
	case s.Size <= 0:
		return fmt.Errorf("download spec: size %d must be positive", s.Size)
	case s.RequestTimeout <= 0 || s.Lifetime <= 0:
		return errors.New("download spec: request timeout and lifetime must be positive")
	case s.Rate < 0 || s.ReceiveBuffer < 0:
		return fmt.Errorf("download spec: rate %d and receive buffer %d must not be negative", s.Rate, s.ReceiveBuffer)
	}
	if sum, err := hex.DecodeString(s.SHA256); err != nil || len(sum) != sha256.Size || strings.ToLower(s.SHA256) != s.SHA256 {
		return fmt.Errorf("download spec: sha256 %q is not 64 lower-case hex digits", s.SHA256)
	}
	return nil
}

// DownloadReport is a download worker's counters so far; two reports bound
// a measurement window.
type DownloadReport struct {
	// At is when the report was taken, by the worker's clock.
	At time.Time `json:"at"`
	// Running counts the downloaders still looping.
	Running int `json:"running"`
	// Completed counts bodies received whole and verified; Bytes every
	// body byte received, of complete downloads or not.
	Completed int64 `json:"completed"`
	Bytes     int64 `json:"bytes"`
	// Refused counts 503 too_many_downloads answers.
	Refused int64 `json:"refused"`
	// Failures counts every other unsuccessful request, by reason.
	Failures map[string]int64 `json:"failures,omitempty"`
	// Dials counts the TCP connections opened: one per downloader while
	// keep-alive holds.
	Dials int64 `json:"dials"`
	// Duration is the spread of request → verified last byte of the
	// completed downloads.
	Duration Histogram `json:"duration"`
	// CPU is the CPU time the worker process has used so far.
	CPU time.Duration `json:"cpu"`
}

// Sub removes an earlier report of the same worker.
func (r *DownloadReport) Sub(earlier DownloadReport) {
	r.Completed -= earlier.Completed
	r.Bytes -= earlier.Bytes
	r.Refused -= earlier.Refused
	r.Dials -= earlier.Dials
	r.CPU -= earlier.CPU
	r.Duration.Sub(earlier.Duration)
	out := map[string]int64{}
	for k, v := range r.Failures {
		if d := v - earlier.Failures[k]; d != 0 {
			out[k] = d
		}
	}
	r.Failures = out
}

// checkImage compares a received body with the image: its length n, the
// Content-Length the response announced (-1: none) and its SHA-256. It
// returns "" when they match, else a short reason to count it by.
func checkImage(n, contentLength int64, sum []byte, size int64, want []byte) string {
	switch {
	case contentLength >= 0 && contentLength != size:
		return "wrong content-length"
	case n != size:
		return "wrong length"
	case !bytes.Equal(sum, want):
		return "sha256 mismatch"
	}
	return ""
}

// rateDelay is how long a reader that got n bytes in elapsed must wait to
// keep to rate bytes a second (0: no limit).
func rateDelay(n, rate int64, elapsed time.Duration) time.Duration {
	if rate <= 0 {
		return 0
	}
	return max(0, time.Duration(float64(n)/float64(rate)*float64(time.Second))-elapsed)
}

// retryAfter reads a Retry-After header in seconds, capped at
// maxRetryAfter; a missing or unreadable one (or an HTTP date) is 1 s.
func retryAfter(h string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || n < 0 {
		return time.Second
	}
	return min(time.Duration(n)*time.Second, maxRetryAfter)
}

// downloaders are the loops of one download worker.
type downloaders struct {
	spec DownloadSpec
	want []byte
	log  *slog.Logger

	running   atomic.Int64
	completed atomic.Int64
	bytes     atomic.Int64
	refused   atomic.Int64
	dials     atomic.Int64

	mu        sync.Mutex
	failures  map[string]int64
	durations Histogram

	drain chan struct{} // closed: start no new download
	once  sync.Once
	wg    sync.WaitGroup
}

// startDownloaders starts one loop per token of spec; they run until
// drain is called or ctx ends (which cuts the downloads under way).
func startDownloaders(ctx context.Context, spec DownloadSpec, log *slog.Logger) (*downloaders, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	want, _ := hex.DecodeString(spec.SHA256)
	d := &downloaders{spec: spec, want: want, log: log, failures: map[string]int64{}, drain: make(chan struct{})}
	for _, tok := range spec.Tokens {
		d.running.Add(1)
		d.wg.Go(func() {
			defer d.running.Add(-1)
			d.loop(ctx, tok)
		})
	}
	return d, nil
}

// stopDrain tells every loop to start no new download and waits at most
// timeout for those under way.
func (d *downloaders) stopDrain(timeout time.Duration) {
	d.once.Do(func() { close(d.drain) })
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		d.log.Warn("downloads still under way after the drain", "running", d.running.Load())
	}
}

func (d *downloaders) loop(ctx context.Context, token string) {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if d.spec.ReceiveBuffer > 0 {
		dialer.Control = receiveBuffer(d.spec.ReceiveBuffer)
	}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d.dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
		DisableCompression:  true,
		IdleConnTimeout:     30 * time.Second,
	}
	client := &http.Client{Timeout: d.spec.RequestTimeout, Transport: transport}
	defer client.CloseIdleConnections()
	buf := make([]byte, downloadReadBuffer)
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.drain:
			return
		default:
		}
		if wait := d.fetch(ctx, client, token, buf); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-d.drain:
				return
			case <-time.After(wait):
			}
		}
	}
}

// fetch downloads the image once and counts the result; it returns how
// long to wait before the next request.
func (d *downloaders) fetch(ctx context.Context, client *http.Client, token string, buf []byte) time.Duration {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.spec.URL, nil)
	if err != nil {
		d.fail("request: " + err.Error())
		return failureBackoff
	}
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		d.fail("get: " + shortCause(err))
		return failureBackoff
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		var body struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &body)
		if resp.StatusCode == http.StatusServiceUnavailable && body.Error.Code == "too_many_downloads" {
			d.refused.Add(1)
			return retryAfter(resp.Header.Get("Retry-After"))
		}
		d.fail(strings.TrimSpace(fmt.Sprintf("http %d %s", resp.StatusCode, body.Error.Code)))
		return failureBackoff
	}
	h := sha256.New()
	var n int64
	began := time.Now()
	for {
		m, err := resp.Body.Read(buf)
		if m > 0 {
			h.Write(buf[:m])
			n += int64(m)
			d.bytes.Add(int64(m))
			if pause := rateDelay(n, d.spec.Rate, time.Since(began)); pause > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			d.fail("read body: " + shortCause(err))
			return failureBackoff
		}
	}
	if reason := checkImage(n, resp.ContentLength, h.Sum(nil), d.spec.Size, d.want); reason != "" {
		d.fail(reason)
		return failureBackoff
	}
	took := time.Since(start)
	d.completed.Add(1)
	d.mu.Lock()
	d.durations.add(histIndex(took.Microseconds()), 1)
	d.mu.Unlock()
	return 0
}

func (d *downloaders) fail(reason string) {
	d.mu.Lock()
	d.failures[reason]++
	d.mu.Unlock()
}

// report is the counters so far.
func (d *downloaders) report() DownloadReport {
	r := DownloadReport{
		At: time.Now(), Running: int(d.running.Load()), Completed: d.completed.Load(), Bytes: d.bytes.Load(),
		Refused: d.refused.Load(), Dials: d.dials.Load(),
	}
	d.mu.Lock()
	r.Failures = maps.Clone(d.failures)
	r.Duration.Add(d.durations)
	d.mu.Unlock()
	cpu, err := ReadCPU(os.Getpid())
	if err != nil {
		d.log.Warn("download worker cpu", "err", err)
	}
	r.CPU = cpu
	return r
}

// runDownloadWorker is the body of a download worker process: it starts
// the downloaders, reports once they run, then answers cmdDownloads and
// cmdDrain until told to close, in ends, or the spec's lifetime runs out
// (an error). Downloads under way when it returns are cut.
func runDownloadWorker(ctx context.Context, spec DownloadSpec, dec *json.Decoder, enc *json.Encoder, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, spec.Lifetime)
	defer cancel()
	d, err := startDownloaders(ctx, spec, log)
	if err != nil {
		return fmt.Errorf("download worker: %w", err)
	}
	defer d.wg.Wait()
	defer cancel()
	rep := d.report()
	if err := enc.Encode(workerReply{Download: &rep}); err != nil {
		return fmt.Errorf("download worker: write report: %w", err)
	}
	cmds := readCommands(ctx, dec)
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("download worker: %w before the coordinator said close", ctx.Err())
		case req, ok := <-cmds:
			switch {
			case !ok || req.Command == cmdClose:
				return nil
			case req.Command == cmdDownloads || req.Command == cmdDrain:
				if req.Command == cmdDrain {
					d.stopDrain(spec.RequestTimeout)
				}
				rep := d.report()
				if err := enc.Encode(workerReply{Download: &rep}); err != nil {
					return fmt.Errorf("download worker: write report: %w", err)
				}
			default:
				return fmt.Errorf("download worker: unknown command %q", req.Command)
			}
		}
	}
}
