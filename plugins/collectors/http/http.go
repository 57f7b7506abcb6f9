// Package http is the collectors.http built-in plugin: it polls a URL that
// answers JSON on an interval and emits one message per configured sensor,
// the value found at the sensor's path, on <subject_prefix>.<name>.
//
// It is a plain Go package registered with sdk/plugin at init and runs inside
// the relay (runtime: builtin). It reaches only the configured URL, keeps no
// state but its counters, and never stops collecting because the endpoint
// failed: a failed poll is counted (Stats) and the next one comes one
// interval later.
package http

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/switchyard/switchyard/plugins/internal/payload"
	"github.com/switchyard/switchyard/plugins/internal/webclient"
	"github.com/switchyard/switchyard/sdk/plugin"
)

// Use is the plugin's kind.name in plugins.yaml.
const Use = "collectors.http"

// Sample is a plugins.yaml entry using the plugin, as shown in the README.
//
//go:embed sample.yaml
var Sample string

// Defaults of the keys that have one.
const (
	DefaultInterval    = 10 * time.Second
	DefaultTimeout     = 5 * time.Second
	DefaultMaxBodySize = 1 << 20 // 1MiB
)

func init() {
	plugin.Register(plugin.Info{ID: Use, New: func() any { return new(Collector) }})
}

var (
	_ plugin.Collector    = (*Collector)(nil)
	_ plugin.Provisioner  = (*Collector)(nil)
	_ plugin.Validator    = (*Collector)(nil)
	_ plugin.CleanerUpper = (*Collector)(nil)
)

// Sensor picks one value out of the polled document.
type Sensor struct {
	Name string `json:"name"`
	Path string `json:"path"`
	Unit string `json:"unit"`
}

// Stats are an instance's counters since it started.
type Stats struct {
	Polls       uint64    // polls attempted
	Failures    uint64    // polls that failed: network error, timeout, non-2xx status, body too large, invalid JSON
	Messages    uint64    // messages emitted and accepted
	Missing     uint64    // sensor values skipped because their path was not in the document
	EmitErrors  uint64    // polls cut short because the runtime refused a message
	LastError   string    // the last poll failure, "" if none yet
	LastErrorAt time.Time // when it happened
}

// Collector is one configured instance. Its exported fields are its
// configuration, decoded strictly from the instance's JSON object with
// plugin.DecodeConfig. Durations and sizes are strings ("10s", "1MiB"), read
// by Provision so that an error names its key.
type Collector struct {
	URL           string            `json:"url"`
	Headers       map[string]string `json:"headers"`
	Interval      string            `json:"interval"`
	Timeout       string            `json:"timeout"`
	MaxBodySize   string            `json:"max_body_size"`
	SubjectPrefix string            `json:"subject_prefix"`
	Sensors       []Sensor          `json:"sensors"`

	url         *url.URL
	interval    time.Duration
	timeout     time.Duration
	maxBodySize int64
	paths       []path
	client      *http.Client
	log         *slog.Logger

	mu      sync.Mutex
	stats   Stats
	failing bool // the last poll failed; a change is logged once
}

// Provision reads the durations, the size, the URL and the sensor paths and
// fills in defaults. It refuses values it cannot read; Validate checks the
// rest.
func (c *Collector) Provision(ctx context.Context) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	var err error
	if c.interval, err = parseDuration(c.Interval, DefaultInterval); err != nil {
		bad("interval", "%v", err)
	}
	if c.timeout, err = parseDuration(c.Timeout, DefaultTimeout); err != nil {
		bad("timeout", "%v", err)
	}
	c.maxBodySize = DefaultMaxBodySize
	if c.MaxBodySize != "" {
		if c.maxBodySize, err = parseSize(c.MaxBodySize); err != nil {
			bad("max_body_size", "%v", err)
		}
	}
	if c.URL != "" {
		if c.url, err = url.Parse(c.URL); err != nil {
			bad("url", "%v", err)
		}
	}
	c.paths = make([]path, len(c.Sensors))
	for i, s := range c.Sensors {
		if c.paths[i], err = parsePath(s.Path); err != nil {
			bad(fmt.Sprintf("sensors[%d].path", i), "%v", err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	c.client = &http.Client{Transport: webclient.NewTransport()}
	c.log = plugin.Logger(ctx).With("plugin", Use)
	if c.url != nil {
		c.log = c.log.With("url", c.url.Redacted())
	}
	return nil
}

// Validate checks the provisioned configuration and reports every problem,
// each named by its key.
func (c *Collector) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if err := webclient.URL(c.URL, c.url); err != nil {
		bad("url", "%v", err)
	}
	for name, value := range c.Headers {
		if err := webclient.Header(name, value); err != nil {
			bad("headers", "%v", err)
		}
	}
	if c.interval <= 0 {
		bad("interval", "must be positive, got %s", c.interval)
	}
	if c.timeout <= 0 {
		bad("timeout", "must be positive, got %s", c.timeout)
	}
	if c.maxBodySize <= 0 {
		bad("max_body_size", "must be positive")
	}
	if c.SubjectPrefix == "" {
		bad("subject_prefix", "is required: subjects are <subject_prefix>.<sensor name>")
	} else {
		for _, tok := range strings.Split(c.SubjectPrefix, ".") {
			if err := validToken(tok); err != nil {
				bad("subject_prefix", "%q: a token %v", c.SubjectPrefix, err)
				break
			}
		}
	}
	if len(c.Sensors) == 0 {
		bad("sensors", "is required: at least one sensor")
	}
	seen := map[string]int{}
	for i, s := range c.Sensors {
		if err := validToken(s.Name); err != nil {
			bad(fmt.Sprintf("sensors[%d].name", i), "%v", err)
		} else if first, dup := seen[s.Name]; dup {
			bad(fmt.Sprintf("sensors[%d].name", i), "%q is already sensors[%d]", s.Name, first)
		} else {
			seen[s.Name] = i
		}
	}
	return errors.Join(errs...)
}

// Cleanup closes the idle connections of the instance's client.
func (c *Collector) Cleanup() error {
	if c.client != nil {
		c.client.CloseIdleConnections()
	}
	return nil
}

// Collect polls at once and then every interval until ctx ends, emitting one
// message per sensor found. A failed poll is counted and the next one waits
// the full interval. It returns nil when ctx ends.
func (c *Collector) Collect(ctx context.Context, out plugin.Emitter) error {
	if c.client == nil {
		return errors.New("collect before provision")
	}
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	for {
		c.poll(ctx, out)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Stats returns the instance's counters.
func (c *Collector) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// poll fetches the document once and emits what the sensors select.
func (c *Collector) poll(ctx context.Context, out plugin.Emitter) {
	if ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	c.stats.Polls++
	c.mu.Unlock()
	now := time.Now()
	doc, err := c.fetch(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: not the endpoint's failure
		}
		c.failed(err, now)
		return
	}
	c.recovered()
	msgs, missing := c.readings(doc, now)
	c.mu.Lock()
	c.stats.Missing += uint64(missing)
	c.mu.Unlock()
	for _, m := range msgs {
		if err := out.Emit(m); err != nil {
			c.mu.Lock()
			c.stats.EmitErrors++
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		c.stats.Messages++
		c.mu.Unlock()
	}
}

// readings builds one message per sensor whose path is in doc, in the order
// configured, and counts the others.
func (c *Collector) readings(doc any, now time.Time) (msgs []plugin.Message, missing int) {
	for i, s := range c.Sensors {
		v, ok := c.paths[i].lookup(doc)
		if !ok {
			missing++
			continue
		}
		p, err := payload.Marshal(reading{Value: v, Unit: s.Unit})
		if err != nil { // cannot happen: v came from a JSON decoder
			missing++
			continue
		}
		msgs = append(msgs, plugin.Message{Subject: c.SubjectPrefix + "." + s.Name, Time: now, Payload: p})
	}
	return msgs, missing
}

type reading struct {
	Value any    `json:"value"`
	Unit  string `json:"unit,omitempty"`
}

func (c *Collector) failed(err error, at time.Time) {
	c.mu.Lock()
	c.stats.Failures++
	c.stats.LastError, c.stats.LastErrorAt = err.Error(), at
	first := !c.failing
	c.failing = true
	c.mu.Unlock()
	if first {
		c.log.Warn("poll failed; retrying every interval", "err", err, "interval", c.interval)
	}
}

func (c *Collector) recovered() {
	c.mu.Lock()
	was := c.failing
	c.failing = false
	c.mu.Unlock()
	if was {
		c.log.Info("poll succeeded again")
	}
}

// fetch GETs the URL under the timeout and decodes the body as one JSON
// value, numbers kept as written.
func (c *Collector) fetch(ctx context.Context) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", c.url.Redacted(), err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "switchyard-collectors.http")
	for k, v := range c.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", c.url.Redacted(), webclient.UnwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
		return nil, fmt.Errorf("GET %s: status %s", c.url.Redacted(), resp.Status)
	}
	if resp.ContentLength > c.maxBodySize {
		return nil, fmt.Errorf("GET %s: response body of %d bytes is larger than max_body_size %s", c.url.Redacted(), resp.ContentLength, formatSize(c.maxBodySize))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBodySize+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", c.url.Redacted(), err)
	}
	if int64(len(body)) > c.maxBodySize {
		return nil, fmt.Errorf("GET %s: response body is larger than max_body_size %s", c.url.Redacted(), formatSize(c.maxBodySize))
	}
	doc, err := decodeJSON(body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: response is not valid JSON: %w", c.url.Redacted(), err)
	}
	return doc, nil
}

// decodeJSON decodes exactly one JSON value, numbers as json.Number.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty body")
		}
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("unexpected data after the value at byte %d", dec.InputOffset())
	}
	return v, nil
}

// path is a parsed sensor path: object keys and array indexes, in order.
type path []step

type step struct {
	key   string
	index int // used when key is "" and isIndex
	isIdx bool
}

// maxPathSteps bounds a path's length.
const maxPathSteps = 64

// parsePath reads a dotted path into a JSON document: object keys separated
// by '.', each optionally followed by array indexes in brackets
// ("data.temps[0].value", "[2].v", "matrix[1][0]"). Keys cannot contain '.',
// '[' or ']'.
func parsePath(s string) (path, error) {
	if s == "" {
		return nil, errors.New("is required")
	}
	var p path
	i := 0
	for {
		// one segment: an optional key, then any number of [n]
		start := i
		for i < len(s) && s[i] != '.' && s[i] != '[' {
			if s[i] == ']' {
				return nil, fmt.Errorf("%q: unexpected ']' at byte %d", s, i)
			}
			i++
		}
		key := s[start:i]
		if key != "" {
			p = append(p, step{key: key})
		}
		idxs := 0
		for i < len(s) && s[i] == '[' {
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("%q: '[' at byte %d is not closed", s, i)
			}
			digits := s[i+1 : i+end]
			n, err := strconv.Atoi(digits)
			if err != nil || n < 0 || digits[0] == '+' || digits[0] == '-' {
				return nil, fmt.Errorf("%q: want a whole number index such as [0], got [%s]", s, digits)
			}
			p = append(p, step{index: n, isIdx: true})
			idxs++
			i += end + 1
		}
		if key == "" && idxs == 0 {
			return nil, fmt.Errorf("%q: empty key at byte %d", s, i)
		}
		if len(p) > maxPathSteps {
			return nil, fmt.Errorf("%q: more than %d steps", s, maxPathSteps)
		}
		if i == len(s) {
			return p, nil
		}
		if s[i] != '.' {
			return nil, fmt.Errorf("%q: want '.' or '[' after ']' at byte %d, got %q", s, i, s[i])
		}
		i++ // the dot
		if i == len(s) {
			return nil, fmt.Errorf("%q: ends with '.'", s)
		}
	}
}

// String writes p back in the form parsePath reads.
func (p path) String() string {
	var b strings.Builder
	for i, st := range p {
		if st.isIdx {
			fmt.Fprintf(&b, "[%d]", st.index)
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(st.key)
	}
	return b.String()
}

// lookup returns the value at p in doc (as decoded by decodeJSON), or false
// when a key is absent, an index is out of range or a step meets a value of
// the other kind.
func (p path) lookup(doc any) (any, bool) {
	v := doc
	for _, st := range p {
		if st.isIdx {
			arr, ok := v.([]any)
			if !ok || st.index >= len(arr) {
				return nil, false
			}
			v = arr[st.index]
			continue
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = obj[st.key]; !ok {
			return nil, false
		}
	}
	return v, true
}

// parseDuration reads a Go duration; "" is def.
func parseDuration(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as \"10s\", got %q", s)
	}
	return d, nil
}

// sizeUnits are the binary units a size may end with, largest first.
var sizeUnits = []struct {
	name string
	size int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}

// parseSize reads a whole number of bytes with an optional binary unit
// ("1MiB", "512KiB", "4096"), as runtime/config does.
func parseSize(s string) (int64, error) {
	text := strings.TrimSpace(s)
	end := 0
	for end < len(text) && text[end] >= '0' && text[end] <= '9' {
		end++
	}
	if end == 0 {
		return 0, fmt.Errorf("want a size such as \"1MiB\", got %q", s)
	}
	n, err := strconv.ParseInt(text[:end], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	unit := strings.TrimSpace(text[end:])
	for _, u := range sizeUnits {
		if unit == u.name {
			if n > (1<<62)/u.size {
				return 0, fmt.Errorf("size %q is too large", s)
			}
			return n * u.size, nil
		}
	}
	return 0, fmt.Errorf("size %q has unknown unit %q (use B, KiB, MiB or GiB)", s, unit)
}

// formatSize writes n in the largest binary unit that holds it exactly.
func formatSize(n int64) string {
	for _, u := range sizeUnits[:3] {
		if n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// validToken checks a subject token: not empty, no '.', no wildcard, no
// space or control character.
func validToken(tok string) error {
	switch {
	case tok == "":
		return errors.New("must not be empty")
	case tok == "*" || tok == ">":
		return fmt.Errorf("%q is a wildcard, not a subject token", tok)
	case strings.Contains(tok, "."):
		return fmt.Errorf("%q must not contain '.'", tok)
	case strings.IndexFunc(tok, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("%q must not contain spaces or control characters", tok)
	}
	return nil
}
