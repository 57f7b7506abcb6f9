package gateway

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/firmware"
	"github.com/switchyard/switchyard/graph"
)

// Defaults of DownloadLimits.
const (
	DefaultMaxDownloads  = 32
	DefaultDownloadStall = 30 * time.Second
	// downloadRetryAfter is what a device refused for lack of a slot is
	// told to wait (it adds its own jitter, PROTOCOL.md §6).
	downloadRetryAfter = 5 * time.Second
	// downloadChunk is how much of an image is handed to nbio at once (at
	// nbhttp's packet size, a chunk goes to the socket without a copy into
	// the response's buffer), and downloadWindow how much nbio may hold
	// unsent for one download before the next chunk waits: together below
	// the engine's per-connection write buffer limit.
	downloadChunk  = 64 << 10
	downloadWindow = 64 << 10
	// downloadSendBuffer is the socket send buffer of a download's
	// connection (the kernel doubles it). Left to the kernel, it grows to
	// megabytes: a slow device's whole image would sit in kernel memory,
	// "complete" would mean handed to the kernel, and max_downloads would
	// not bound the transfers in progress.
	downloadSendBuffer = 128 << 10
	// closedPoll is how often a waiting download checks that its
	// connection is still open: nbio reports a closed HTTP connection only
	// after its handler returns.
	closedPoll = 250 * time.Millisecond
)

// chunks recycles the buffers downloads read images into.
var chunks = sync.Pool{New: func() any { b := make([]byte, downloadChunk); return &b }}

// DownloadLimits bound the image downloads the gateway serves.
type DownloadLimits struct {
	// Max is how many downloads are served at once; a device asking for
	// one more gets 503 and Retry-After. Zero: DefaultMaxDownloads.
	Max int
	// Stall cuts off a download that made no progress for this long (the
	// device resumes it). Zero: DefaultDownloadStall.
	Stall time.Duration
}

// Download results (label values).
const (
	downloadComplete = "complete"  // every byte asked for was handed to the socket
	downloadCut      = "cut"       // stalled, or the connection failed mid-way
	downloadBusy     = "busy"      // refused: every slot taken
	downloadNotFound = "not_found" // no such image for this device
	downloadRefused  = "refused"   // not authenticated, wrong method, draining
)

// downloads is the gateway's download state: the slots, the transfers in
// progress by connection (so nbio's write reports reach them), metrics.
type downloads struct {
	limits    DownloadLimits
	slots     chan struct{}
	transfers sync.Map // *nbio.Conn → *transfer
	active    prometheus.Gauge
	results   *prometheus.CounterVec
	bytes     prometheus.Counter
}

func newDownloads(l DownloadLimits, reg prometheus.Registerer) (*downloads, error) {
	if l.Max <= 0 {
		l.Max = DefaultMaxDownloads
	}
	if l.Stall <= 0 {
		l.Stall = DefaultDownloadStall
	}
	d := &downloads{
		limits: l,
		slots:  make(chan struct{}, l.Max),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_gateway_downloads_active",
			Help: "Firmware image downloads being served now.",
		}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_gateway_downloads_total",
			Help: "Firmware image download requests, by result (complete, cut, busy, not_found, refused).",
		}, []string{"result"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_gateway_download_bytes_total",
			Help: "Bytes of firmware images handed to device connections.",
		}),
	}
	for _, r := range []string{downloadComplete, downloadCut, downloadBusy, downloadNotFound, downloadRefused} {
		d.results.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{d.active, d.results, d.bytes} {
			if err := reg.Register(c); err != nil {
				return d, err
			}
		}
	}
	return d, nil
}

// download serves GET and HEAD of firmware.DownloadPath + sha256 to an
// authenticated device (PROTOCOL.md §8.4).
func (g *Gateway) download(w http.ResponseWriter, r *http.Request) {
	refuse := func(status int, result, code, message string) {
		g.dl.results.WithLabelValues(result).Inc()
		writeError(w, r, status, code, message)
		g.log.Debug("gateway: download refused", "status", status, "code", code, "path", r.URL.Path, "remote", r.RemoteAddr)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		refuse(http.StatusMethodNotAllowed, downloadRefused, "method_not_allowed", "firmware images are fetched with GET or HEAD")
		return
	}
	if g.draining.Load() {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(g.hint.Round(time.Second), time.Second)/time.Second)))
		refuse(http.StatusServiceUnavailable, downloadRefused, "shutting_down", "the relay is shutting down; retry in "+g.hint.String())
		return
	}
	id, ok := g.authenticate(r, func(status int, _, code, message string) { refuse(status, downloadRefused, code, message) })
	if !ok {
		return
	}
	sum := strings.TrimPrefix(r.URL.Path, firmware.DownloadPath)
	dev := firmware.Device{Tenant: id.Tenant, ID: id.Device, Model: id.Model, Labels: id.Labels}
	f, rel, err := g.fw.Image(dev, sum)
	switch {
	case errors.Is(err, graph.ErrNotFound):
		refuse(http.StatusNotFound, downloadNotFound, "not_found", "no firmware image "+truncate(sum, 64)+" for this device")
		return
	case err != nil:
		g.log.Warn("gateway: firmware image unreadable", "tenant", id.Tenant, "device", id.Device, "sha256", rel.SHA256, "err", err)
		refuse(http.StatusServiceUnavailable, downloadRefused, "unavailable", "the image cannot be read now; retry later")
		return
	}
	defer f.Close()

	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "private, no-cache")
	h.Set("ETag", `"`+rel.SHA256+`"`)
	if digest, err := hex.DecodeString(rel.SHA256); err == nil {
		h.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(digest)+":")
	}
	if r.Method == http.MethodHead {
		http.ServeContent(w, r, "", rel.CreatedAt, f)
		return
	}
	select {
	case g.dl.slots <- struct{}{}:
	default:
		w.Header().Set("Retry-After", strconv.Itoa(int(downloadRetryAfter/time.Second)))
		refuse(http.StatusServiceUnavailable, downloadBusy, "too_many_downloads",
			fmt.Sprintf("the relay serves its maximum of %d downloads; retry after %s", g.dl.limits.Max, downloadRetryAfter))
		return
	}
	defer func() { <-g.dl.slots }()

	conn := nbioConn(w)
	if conn == nil {
		g.log.Error("gateway: download on a connection that is not nbio's; refused")
		refuse(http.StatusServiceUnavailable, downloadRefused, "unavailable", "the image cannot be served now; retry later")
		return
	}
	_ = conn.SetWriteBuffer(downloadSendBuffer)
	t := &transfer{g: g, conn: conn, wake: make(chan struct{}, 1)}
	g.dl.transfers.Store(conn, t)
	g.dl.active.Inc()
	defer func() {
		g.dl.transfers.Delete(conn)
		g.dl.active.Dec()
		// Back to the engine's idle bound for the connection.
		_ = conn.SetReadDeadline(time.Now().Add(g.cfg.HelloTimeout))
	}()
	fw := &flowWriter{ResponseWriter: w, t: t}
	http.ServeContent(fw, r, "", rel.CreatedAt, f)
	result := downloadComplete
	if fw.err != nil {
		result = downloadCut
		g.log.Debug("gateway: download cut", "tenant", id.Tenant, "device", id.Device, "sha256", rel.SHA256,
			"sent", fw.sent, "err", fw.err)
		_ = conn.Close()
	}
	g.dl.results.WithLabelValues(result).Inc()
}

// nbioConn finds the nbio connection under a response (under TLS too).
func nbioConn(w http.ResponseWriter) *nbio.Conn {
	res, ok := w.(*nbhttp.Response)
	if !ok || res.Parser == nil {
		return nil
	}
	c := res.Parser.Conn
	for range 4 {
		switch v := c.(type) {
		case *nbio.Conn:
			return v
		case *nbhttp.Conn:
			c = v.Conn
		case interface{ Conn() net.Conn }:
			c = v.Conn()
		default:
			return nil
		}
	}
	return nil
}

// transfer is one download in progress: bytes handed to nbio, bytes nbio
// reports written to the socket (headers included, and TLS records' overhead:
// both make it a little generous, never stuck).
type transfer struct {
	g       *Gateway
	conn    *nbio.Conn
	handed  atomic.Int64
	written atomic.Int64
	wake    chan struct{}
	stall   *time.Timer // reused by every wait
}

// onWritten is nbio's report of bytes written for the transfer's
// connection.
func (t *transfer) onWritten(n int) {
	t.written.Add(int64(n))
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// wait blocks until nbio holds at most downloadWindow unsent bytes, the
// download stalls, or the gateway stops.
func (t *transfer) wait() error {
	if t.handed.Load()-t.written.Load() <= downloadWindow {
		return nil
	}
	stall := t.g.dl.limits.Stall
	deadline := time.Now().Add(stall)
	if t.stall == nil {
		t.stall = time.NewTimer(closedPoll)
	} else {
		t.stall.Reset(closedPoll)
	}
	defer t.stall.Stop()
	for t.handed.Load()-t.written.Load() > downloadWindow {
		before := t.written.Load()
		select {
		case <-t.wake:
			if t.written.Load() > before {
				deadline = time.Now().Add(stall)
			}
		case <-t.stall.C:
			if closed, _ := t.conn.IsClosed(); closed {
				return errors.New("the connection closed")
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no progress for %s", stall)
			}
			t.stall.Reset(closedPoll)
		case <-t.g.stop:
			return errors.New("the gateway is stopping")
		}
	}
	return nil
}

// flowWriter hands a response body to nbio a chunk at a time, each once
// the previous ones have mostly left, so a download never holds more than
// about a window of memory and never overruns the connection's write
// buffer. Its ReadFrom replaces nbhttp's (whose sendfile path would bypass
// this accounting, and under TLS buffer a whole image).
type flowWriter struct {
	http.ResponseWriter
	t    *transfer
	sent int64
	err  error
}

// ReadFrom copies a body through Write with a pooled chunk-sized buffer
// (http.ServeContent hands the image to it), instead of io.Copy's buffer
// per download.
func (w *flowWriter) ReadFrom(r io.Reader) (int64, error) {
	buf := chunks.Get().(*[]byte)
	defer chunks.Put(buf)
	var total int64
	for {
		n, err := io.ReadFull(r, *buf)
		if n > 0 {
			m, werr := w.Write((*buf)[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return total, nil
		case err != nil:
			return total, err
		}
	}
}

func (w *flowWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	done := 0
	for done < len(p) {
		n := min(len(p)-done, downloadChunk)
		if _, err := w.ResponseWriter.Write(p[done : done+n]); err != nil {
			w.err = err
			return done, err
		}
		if fl, ok := w.ResponseWriter.(http.Flusher); ok {
			fl.Flush()
		}
		w.t.handed.Add(int64(n))
		done += n
		w.sent += int64(n)
		w.t.g.dl.bytes.Add(float64(n))
		if err := w.t.wait(); err != nil {
			w.err = err
			return done, err
		}
		_ = w.t.conn.SetReadDeadline(time.Now().Add(w.t.g.dl.limits.Stall))
	}
	return done, nil
}
