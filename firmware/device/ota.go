package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// runJob takes a verified offer through §8: download (resuming), verify,
// install, restart. Every failure is reported as failed, except the end of
// the session: the relay offers again after the next hello and the
// download resumes from the slot.
func (s *session) runJob(m Manifest, ref string) {
	d := s.d
	fail := func(err error) { s.status(m.Version, "failed", 0, err.Error()) }
	u, err := d.imageURL(ref)
	if err != nil {
		fail(err)
		return
	}
	j := &job{s: s, m: m, reported: -1}
	if err := j.download(s.ctx, u); err != nil {
		if s.ctx.Err() != nil {
			s.log.Debug("device: download interrupted by the end of the session", "version", m.Version)
			return
		}
		s.log.Warn("device: download failed", "version", m.Version, "err", err)
		fail(err)
		return
	}
	s.status(m.Version, "downloaded", 0, "")
	if err := VerifyImage(m, d.cfg.Slot); err != nil {
		discardSlot(d.cfg.Slot) // never resume from bytes that do not verify
		s.log.Warn("device: image refused", "version", m.Version, "err", err)
		fail(err)
		return
	}
	s.status(m.Version, "verified", 0, "")
	if s.ctx.Err() != nil {
		return
	}
	// From here on the device is committed: it writes the boot slot and
	// restarts even if the session ends meanwhile.
	s.status(m.Version, "installing", 0, "")
	if d.cfg.Install != nil {
		if err := d.cfg.Install(m, d.cfg.Slot); err != nil {
			s.log.Warn("device: install failed", "version", m.Version, "err", err)
			fail(fmt.Errorf("install: %w", err))
			return
		}
	}
	booted := m.Version
	if d.cfg.Boot != nil {
		if v := d.cfg.Boot(m); v != "" {
			booted = v
		}
	}
	d.firmware.Store(&booted)
	ev := Event{Kind: EventBooted, Version: booted}
	if booted != m.Version {
		ev.Reason = fmt.Sprintf("installed %s, restarted on %s", m.Version, booted)
	}
	s.log.Info("device: restarting", "installed", m.Version, "running", booted)
	d.emit(ev)
	s.restarting.Store(true)
	select {
	case s.restart <- booted:
	default:
	}
}

// imageURL resolves an offer's url against the device endpoint (§8.4). It
// must be an absolute path: the token is sent with the request, so it goes
// to the endpoint's host and port and nowhere else.
func (d *Device) imageURL(ref string) (string, error) {
	r, err := url.Parse(ref)
	if err != nil || r.Scheme != "" || r.Host != "" || r.User != nil || strings.HasPrefix(ref, "//") || !strings.HasPrefix(r.Path, "/") {
		return "", fmt.Errorf("url %q is not an absolute path", clip(ref, 64))
	}
	return d.httpURL.ResolveReference(r).String(), nil
}

// slotMeta is kept next to the slot (Slot+".meta") and says which image
// the slot's bytes belong to, and its ETag for If-Range.
type slotMeta struct {
	SHA256 string `json:"sha256"`
	ETag   string `json:"etag,omitempty"`
}

func readMeta(slot string) slotMeta {
	var m slotMeta
	if b, err := os.ReadFile(slot + ".meta"); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	return m
}

func writeMeta(slot string, m slotMeta) error {
	b, _ := json.Marshal(m)
	tmp := slot + ".meta.tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("slot: %v", err)
	}
	if err := os.Rename(tmp, slot+".meta"); err != nil {
		return fmt.Errorf("slot: %v", err)
	}
	return nil
}

func discardSlot(slot string) {
	_ = os.Remove(slot + ".meta")
	_ = os.Truncate(slot, 0)
}

// job is one download.
type job struct {
	s          *session
	m          Manifest
	buf        []byte
	lastReport time.Time
	reported   int64
}

// report sends downloading with the bytes held: always when forced, else
// at most once a second and only when they changed (§8.5).
func (j *job) report(have int64, force bool) {
	now := time.Now()
	if !force && (have == j.reported || now.Sub(j.lastReport) < time.Second) {
		return
	}
	j.lastReport, j.reported = now, have
	j.s.status(j.m.Version, "downloading", have, "")
}

var errStalled = errors.New("no data for too long")

// outcome of one download request.
type outcome int

const (
	outDone  outcome = iota // the slot holds Size bytes
	outRetry                // cut, 5xx, or the partial was dropped: try again after a short backoff
	outBusy                 // 503: try again after Retry-After
	outFatal                // report failed
)

// download fills the slot with the image, resuming from what it holds.
func (j *job) download(ctx context.Context, u string) error {
	slot := j.s.d.cfg.Slot
	f, err := os.OpenFile(slot, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("slot: %v", err)
	}
	defer f.Close()
	meta := readMeta(slot)
	var have int64
	if meta.SHA256 == j.m.SHA256 {
		if st, err := f.Stat(); err == nil && st.Size() <= j.m.Size {
			have = st.Size()
		}
	}
	if have == j.m.Size {
		if VerifyImage(j.m, slot) == nil {
			j.report(have, true)
			return nil // downloaded earlier, e.g. before a session ended
		}
		have = 0
	}
	if have == 0 {
		// Truncate first, then claim the slot for this image: the sidecar
		// never vouches for bytes of another image.
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("slot: %v", err)
		}
		meta = slotMeta{SHA256: j.m.SHA256}
		if err := writeMeta(slot, meta); err != nil {
			return err
		}
	}
	j.report(have, true)
	j.buf = make([]byte, 32<<10)
	defer func() { j.buf = nil }()
	cuts, busy := 0, 0
	for {
		oc, wait, err := j.attempt(ctx, f, u, &have, &meta)
		switch oc {
		case outDone:
			if err := f.Sync(); err != nil {
				return fmt.Errorf("slot: %v", err)
			}
			return nil
		case outFatal:
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		j.report(have, false)
		if oc == outBusy {
			if busy++; busy > maxDownloadBusy {
				return err
			}
			if wait <= 0 {
				wait = j.retryDelay(busy)
			}
		} else {
			if cuts++; cuts > maxDownloadCuts {
				return err
			}
			wait = j.retryDelay(cuts)
		}
		j.s.log.Debug("device: download retry", "version", j.m.Version, "have", have, "wait", wait, "err", err)
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// retryDelay is the short backoff between download attempts.
func (j *job) retryDelay(n int) time.Duration {
	d := j.s.d.retryBase
	for i := 1; i < n && d < 8*time.Second; i++ {
		d *= 2
	}
	d = min(d, 8*time.Second)
	return d + jitter(d/2)
}

// attempt makes one request for the bytes the slot lacks and appends what
// arrives.
func (j *job) attempt(ctx context.Context, f *os.File, u string, have *int64, meta *slotMeta) (outcome, time.Duration, error) {
	d := j.s.d
	slot := d.cfg.Slot
	restart := func() error { // drop the partial image
		*have = 0
		meta.ETag = ""
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("slot: %v", err)
		}
		return writeMeta(slot, *meta)
	}

	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(d.stallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
	if err != nil {
		return outFatal, 0, fmt.Errorf("download: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+d.cfg.Token)
	req.Header.Set("Accept-Encoding", "identity") // byte offsets must be the image's
	if *have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(*have, 10)+"-")
		if meta.ETag != "" && !strings.HasPrefix(meta.ETag, "W/") {
			req.Header.Set("If-Range", meta.ETag) // a changed image comes whole
		}
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return outRetry, 0, fmt.Errorf("download: %v", stalled(rctx, err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.ContentLength >= 0 && resp.ContentLength != j.m.Size {
			return outFatal, 0, fmt.Errorf("size mismatch: the relay serves %d bytes, manifest says %d", resp.ContentLength, j.m.Size)
		}
		if err := restart(); err != nil {
			return outFatal, 0, err
		}
		if meta.ETag = resp.Header.Get("ETag"); meta.ETag != "" {
			if err := writeMeta(slot, *meta); err != nil {
				return outFatal, 0, err
			}
		}
	case http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		first, total, ok := parseContentRange(cr)
		if ok && total >= 0 && total != j.m.Size {
			return outFatal, 0, fmt.Errorf("size mismatch: the relay serves %d bytes, manifest says %d", total, j.m.Size)
		}
		if !ok || first != *have {
			want := *have
			if err := restart(); err != nil {
				return outFatal, 0, err
			}
			return outRetry, 0, fmt.Errorf("download: Content-Range %q does not start at %d", clip(cr, 64), want)
		}
		if etag := resp.Header.Get("ETag"); etag != "" && etag != meta.ETag {
			meta.ETag = etag
			if err := writeMeta(slot, *meta); err != nil {
				return outFatal, 0, err
			}
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if err := restart(); err != nil {
			return outFatal, 0, err
		}
		return outRetry, 0, fmt.Errorf("download: %s", describe(resp))
	case http.StatusServiceUnavailable:
		return outBusy, parseRetryAfter(resp.Header), fmt.Errorf("download: %s", describe(resp))
	default:
		if resp.StatusCode >= 500 {
			return outRetry, 0, fmt.Errorf("download: %s", describe(resp))
		}
		return outFatal, 0, fmt.Errorf("download: %s", describe(resp))
	}

	if _, err := f.Seek(*have, io.SeekStart); err != nil {
		return outFatal, 0, fmt.Errorf("slot: %v", err)
	}
	for {
		// Ask for one byte more than is missing, to notice an image longer
		// than the manifest says.
		n, rerr := resp.Body.Read(j.buf[:min(int64(len(j.buf)), j.m.Size-*have+1)])
		if n > 0 {
			stall.Reset(d.stallTimeout)
			if *have+int64(n) > j.m.Size {
				return outFatal, 0, fmt.Errorf("size mismatch: the image is longer than the manifest's %d bytes", j.m.Size)
			}
			if _, err := f.Write(j.buf[:n]); err != nil {
				return outFatal, 0, fmt.Errorf("slot: %v", err)
			}
			*have += int64(n)
			j.report(*have, false)
		}
		switch {
		case rerr == io.EOF && *have == j.m.Size:
			return outDone, 0, nil
		case rerr == io.EOF:
			return outRetry, 0, fmt.Errorf("download: the body ended at byte %d of %d", *have, j.m.Size)
		case rerr != nil:
			return outRetry, 0, fmt.Errorf("download: %v", stalled(rctx, rerr))
		}
	}
}

// stalled names a request cut by the stall timer as such.
func stalled(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errStalled) {
		return errStalled
	}
	return err
}

// parseContentRange reads "bytes first-last/size" (size may be "*": -1).
func parseContentRange(s string) (first, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, size, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first {
		return 0, 0, false
	}
	total = -1
	if size != "*" {
		t, err := strconv.ParseInt(size, 10, 64)
		if err != nil || t <= last {
			return 0, 0, false
		}
		total = t
	}
	return first, total, true
}

// describe names a refused download: "404 not_found: <message>" from the
// JSON error body of §1, or the status line.
func describe(resp *http.Response) string {
	s := strconv.Itoa(resp.StatusCode)
	code, message := errorBody(resp)
	if code == "" {
		return s + " " + http.StatusText(resp.StatusCode)
	}
	s += " " + code
	if message != "" {
		s += ": " + message
	}
	return s
}

// errorBody reads the code and message of a refusal's JSON body (§1),
// empty when the body is not one.
func errorBody(resp *http.Response) (code, message string) {
	if resp.Body == nil {
		return "", ""
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if json.Unmarshal(b, &body) != nil {
		return "", ""
	}
	return body.Error.Code, body.Error.Message
}
