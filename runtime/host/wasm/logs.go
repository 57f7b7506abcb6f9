package wasm

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Bounds of guest logging, per instance.
const (
	maxLogLine   = 4 << 10 // bytes of one line; longer lines are cut
	logRate      = 50      // lines a second, sustained
	logBurst     = 200     // lines at once
	warnRate     = 1       // host warnings about an instance, a second
	warnBurst    = 10
	truncatedTag = " …[truncated]"
)

// logSink writes a guest's lines (the log import, WASI stdout and stderr)
// to slog, rate-limited; the logger carries tenant, plugin and instance.
type logSink struct {
	log   *slog.Logger
	guest *rate
}

// line logs one guest line; cut marks a line that was longer than
// maxLogLine.
func (k *logSink) line(level slog.Level, text []byte, cut bool, stream string) {
	ctx := context.Background()
	if !k.log.Enabled(ctx, level) {
		return
	}
	ok, dropped := k.guest.allow(time.Now())
	if !ok {
		return
	}
	if dropped > 0 {
		k.log.LogAttrs(ctx, slog.LevelWarn, "plugin log lines dropped: more than the rate limit", slog.Uint64("dropped", dropped))
	}
	msg := boundedText(text, maxLogLine)
	if cut && !strings.HasSuffix(msg, truncatedTag) {
		msg += truncatedTag
	}
	if stream != "" {
		k.log.LogAttrs(ctx, level, msg, slog.String("stream", stream))
		return
	}
	k.log.LogAttrs(ctx, level, msg)
}

// clip bounds a line to maxLogLine bytes.
func clip(text []byte) ([]byte, bool) {
	if len(text) > maxLogLine {
		return text[:maxLogLine], true
	}
	return text, false
}

// boundedText is text as valid UTF-8 of at most max bytes plus a marker
// when it was cut.
func boundedText(text []byte, max int) string {
	if len(text) <= max {
		return strings.ToValidUTF8(string(text), "\uFFFD")
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return strings.ToValidUTF8(string(text[:cut]), "\uFFFD") + truncatedTag
}

// lineWriter turns a WASI stream into log lines, each at most maxLogLine
// bytes. It is used by one module instance, whose calls are sequential.
type lineWriter struct {
	sink     *logSink
	stream   string
	level    slog.Level
	buf      []byte
	skipping bool // the current line was cut: drop the rest up to its newline
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !w.skipping {
			if room := maxLogLine - len(w.buf); len(chunk) > room {
				w.buf = append(w.buf, chunk[:room]...)
				w.sink.line(w.level, w.buf, true, w.stream)
				w.buf, w.skipping = w.buf[:0], true
			} else {
				w.buf = append(w.buf, chunk...)
			}
		}
		if i < 0 {
			break
		}
		if !w.skipping {
			w.sink.line(w.level, w.buf, false, w.stream)
		}
		w.buf, w.skipping = w.buf[:0], false
		p = p[i+1:]
	}
	return n, nil
}

// flush logs a last line that had no newline.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 && !w.skipping {
		w.sink.line(w.level, w.buf, false, w.stream)
	}
	w.buf, w.skipping = nil, false
}

// rate is a token bucket that counts what it refuses.
type rate struct {
	mu      sync.Mutex
	perSec  float64
	burst   float64
	tokens  float64
	last    time.Time
	dropped uint64 // since the last allowed event
	total   uint64 // all refused events
}

func newRate(perSec, burst float64) *rate {
	return &rate{perSec: perSec, burst: burst, tokens: burst}
}

// allow takes a token; it also returns how many events were refused since
// the previous allowed one.
func (r *rate) allow(now time.Time) (ok bool, dropped uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() {
		r.tokens = min(r.burst, r.tokens+now.Sub(r.last).Seconds()*r.perSec)
	}
	r.last = now
	if r.tokens < 1 {
		r.dropped++
		r.total++
		return false, 0
	}
	r.tokens--
	dropped, r.dropped = r.dropped, 0
	return true, dropped
}

func (r *rate) refused() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}
