// Package webhook is the brokers.webhook built-in plugin: it delivers each
// batch of messages as one JSON POST to a URL, retrying with exponential
// backoff and jitter on network errors, 5xx and 429 (honouring Retry-After),
// optionally signed with HMAC-SHA256 of the body.
//
// It is a plain Go package registered with sdk/plugin at init and runs inside
// the relay (runtime: builtin). It reaches only the configured URL and keeps
// no state but its counters: a batch it cannot deliver is counted as
// dead-lettered and reported by Publish's error, never stored.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/plugins/internal/payload"
	"github.com/switchyard/switchyard/plugins/internal/webclient"
	"github.com/switchyard/switchyard/sdk/plugin"
)

// Use is the plugin's kind.name in plugins.yaml.
const Use = "brokers.webhook"

// Sample is a plugins.yaml entry using the plugin, as shown in the README.
//
//go:embed sample.yaml
var Sample string

// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body>" when a
// secret is set.
const SignatureHeader = "X-Switchyard-Signature"

// Defaults of the keys that have one.
const (
	DefaultTimeout        = 5 * time.Second
	DefaultMaxAttempts    = 5
	DefaultInitialBackoff = 200 * time.Millisecond
	DefaultMaxBackoff     = 10 * time.Second
)

// maxErrorBody bounds how much of a refusing response's body an error quotes.
const maxErrorBody = 256

func init() {
	plugin.Register(plugin.Info{ID: Use, New: func() any { return new(Webhook) }})
}

var (
	_ plugin.Broker       = (*Webhook)(nil)
	_ plugin.Provisioner  = (*Webhook)(nil)
	_ plugin.Validator    = (*Webhook)(nil)
	_ plugin.CleanerUpper = (*Webhook)(nil)
)

// Webhook is one configured instance. Its exported fields are its
// configuration, decoded strictly from the instance's JSON object with
// plugin.DecodeConfig; durations are strings ("5s"), read by Provision so
// that an error names its key.
type Webhook struct {
	URL            string            `json:"url"`
	Headers        map[string]string `json:"headers"`
	Timeout        string            `json:"timeout"`
	MaxAttempts    *int              `json:"max_attempts"`
	InitialBackoff string            `json:"initial_backoff"`
	MaxBackoff     string            `json:"max_backoff"`
	Secret         string            `json:"secret"`

	url            *url.URL
	timeout        time.Duration
	maxAttempts    int
	initialBackoff time.Duration
	maxBackoff     time.Duration
	client         *http.Client
	// sleep waits d or until ctx ends; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error

	mu    sync.Mutex
	stats Stats
}

// Stats are an instance's counters since it was made.
type Stats struct {
	DeliveredBatches     uint64    // batches a 2xx answered
	DeliveredMessages    uint64    // messages in them
	Retries              uint64    // attempts after the first of a batch
	DeadLetteredBatches  uint64    // batches given up: every attempt failed, or a status that is not retried
	DeadLetteredMessages uint64    // messages in them
	Canceled             uint64    // batches abandoned because Publish's context ended
	LastError            string    // the last failed attempt, "" if none yet
	LastErrorAt          time.Time // when it happened
}

// StatusError is an answer outside 2xx.
type StatusError struct {
	Code   int    // the HTTP status code
	Status string // "503 Service Unavailable"
	Body   string // the start of the response body, for the log
}

func (e *StatusError) Error() string {
	msg := "status " + e.Status
	if e.Code >= 300 && e.Code < 400 {
		msg += " (redirects are not followed)"
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Retryable reports whether the status is worth another attempt: 429 and
// 5xx.
func (e *StatusError) Retryable() bool {
	return e.Code == http.StatusTooManyRequests || e.Code >= 500
}

// Provision reads the durations and the URL and fills in defaults. It
// refuses values it cannot read; Validate checks the rest.
func (w *Webhook) Provision(context.Context) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	var err error
	if w.timeout, err = parseDuration(w.Timeout, DefaultTimeout); err != nil {
		bad("timeout", "%v", err)
	}
	if w.initialBackoff, err = parseDuration(w.InitialBackoff, DefaultInitialBackoff); err != nil {
		bad("initial_backoff", "%v", err)
	}
	if w.maxBackoff, err = parseDuration(w.MaxBackoff, DefaultMaxBackoff); err != nil {
		bad("max_backoff", "%v", err)
	}
	w.maxAttempts = DefaultMaxAttempts
	if w.MaxAttempts != nil {
		w.maxAttempts = *w.MaxAttempts
	}
	if w.URL != "" {
		if w.url, err = url.Parse(w.URL); err != nil {
			bad("url", "%v", err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	w.client = &http.Client{
		Transport: webclient.NewTransport(),
		// A 301/302/303 would turn the POST into a GET without the batch:
		// a redirect is an answer, and not a 2xx.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if w.sleep == nil {
		w.sleep = sleep
	}
	return nil
}

// Validate checks the provisioned configuration and reports every problem,
// each named by its key.
func (w *Webhook) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if err := webclient.URL(w.URL, w.url); err != nil {
		bad("url", "%v", err)
	}
	for name, value := range w.Headers {
		if err := webclient.Header(name, value); err != nil {
			bad("headers", "%v", err)
		} else if w.Secret != "" && http.CanonicalHeaderKey(name) == SignatureHeader {
			bad("headers", "%s is set from secret; leave it out of headers", SignatureHeader)
		}
	}
	if w.timeout <= 0 {
		bad("timeout", "must be positive, got %s", w.timeout)
	}
	if w.maxAttempts < 1 {
		bad("max_attempts", "must be at least 1, got %d", w.maxAttempts)
	}
	if w.initialBackoff <= 0 {
		bad("initial_backoff", "must be positive, got %s", w.initialBackoff)
	}
	switch {
	case w.maxBackoff <= 0:
		bad("max_backoff", "must be positive, got %s", w.maxBackoff)
	case w.maxBackoff < w.initialBackoff:
		bad("max_backoff", "%s is less than initial_backoff %s", w.maxBackoff, w.initialBackoff)
	}
	return errors.Join(errs...)
}

// Cleanup closes the idle connections of the instance's client.
func (w *Webhook) Cleanup() error {
	if w.client != nil {
		w.client.CloseIdleConnections()
	}
	return nil
}

// Stats returns the instance's counters.
func (w *Webhook) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Publish POSTs batch as one JSON document, retrying what is worth
// retrying. An empty batch sends nothing. The error names the URL and the
// last failure; the batch is then dead-lettered (counted), except when ctx
// ended first.
func (w *Webhook) Publish(ctx context.Context, batch []plugin.Message) error {
	if len(batch) == 0 {
		return nil
	}
	if w.client == nil {
		return errors.New("publish before provision")
	}
	body, err := encode(batch)
	if err != nil {
		return fmt.Errorf("POST %s: encode the batch: %w", w.url.Redacted(), err)
	}
	var signature string
	if w.Secret != "" {
		signature = Sign([]byte(w.Secret), body)
	}
	for attempt := 1; ; attempt++ {
		retryAfter, err := w.post(ctx, body, signature)
		if err == nil {
			w.mu.Lock()
			w.stats.DeliveredBatches++
			w.stats.DeliveredMessages += uint64(len(batch))
			w.mu.Unlock()
			return nil
		}
		w.failed(err)
		if ctx.Err() != nil {
			return w.canceled(ctx, fmt.Sprintf("during attempt %d", attempt))
		}
		var serr *StatusError
		if errors.As(err, &serr) && !serr.Retryable() {
			return w.deadLetter(len(batch), "(status not retried)", err)
		}
		if attempt >= w.maxAttempts {
			return w.deadLetter(len(batch), fmt.Sprintf("after %d attempts", attempt), err)
		}
		wait := w.backoff(attempt)
		if retryAfter >= 0 {
			wait = min(retryAfter, w.maxBackoff)
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
			return w.deadLetter(len(batch), fmt.Sprintf("after %d attempts (the call's deadline comes before the next)", attempt), err)
		}
		w.mu.Lock()
		w.stats.Retries++
		w.mu.Unlock()
		if w.sleep(ctx, wait) != nil {
			return w.canceled(ctx, fmt.Sprintf("waiting to retry after %d attempts (last: %v)", attempt, err))
		}
	}
}

// post makes one attempt. retryAfter is the response's Retry-After, or -1
// when there is none (or no response).
func (w *Webhook) post(ctx context.Context, body []byte, signature string) (retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url.String(), bytes.NewReader(body))
	if err != nil {
		return -1, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "switchyard-brokers.webhook")
	for k, v := range w.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if signature != "" {
		req.Header.Set(SignatureHeader, signature)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return -1, webclient.UnwrapURLError(err)
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return -1, nil
	}
	return parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		&StatusError{Code: resp.StatusCode, Status: resp.Status, Body: printable(head)}
}

func (w *Webhook) failed(err error) {
	w.mu.Lock()
	w.stats.LastError, w.stats.LastErrorAt = err.Error(), time.Now()
	w.mu.Unlock()
}

func (w *Webhook) deadLetter(messages int, why string, err error) error {
	w.mu.Lock()
	w.stats.DeadLetteredBatches++
	w.stats.DeadLetteredMessages += uint64(messages)
	w.mu.Unlock()
	return fmt.Errorf("POST %s: dead-lettered %d messages %s: %w", w.url.Redacted(), messages, why, err)
}

// canceled counts a batch abandoned because ctx ended, when.
func (w *Webhook) canceled(ctx context.Context, when string) error {
	w.mu.Lock()
	w.stats.Canceled++
	w.mu.Unlock()
	return fmt.Errorf("POST %s: gave up %s: %w", w.url.Redacted(), when, context.Cause(ctx))
}

// backoff is the wait after the attempt-th failure: initial_backoff doubled
// per attempt, at most max_backoff, then a random part of its second half
// taken off ("equal jitter"), so that senders spread out and never wait
// less than half the nominal time.
func (w *Webhook) backoff(attempt int) time.Duration {
	d := w.initialBackoff
	for i := 1; i < attempt && d < w.maxBackoff; i++ {
		if d > w.maxBackoff/2 {
			d = w.maxBackoff // and no overflow past it
			break
		}
		d *= 2
	}
	d = min(d, w.maxBackoff)
	half := d / 2
	return d - half + rand.N(half+1)
}

// sleep waits d or until ctx ends, whichever is first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// parseRetryAfter reads a Retry-After value: whole seconds, or an HTTP date
// (a date in the past is 0). It returns -1 when there is none or it cannot be
// read.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return -1
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return -1
		}
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second) // bounded later by max_backoff anyway
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return -1
}

// Sign returns the value of SignatureHeader for body: "sha256=" and the hex
// HMAC-SHA256 of body under secret. A receiver recomputes it over the raw
// body it read and compares with hmac.Equal.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Batch is the JSON document one POST carries.
type Batch struct {
	Messages []Message `json:"messages"`
}

// Message is one message of a Batch. Payload holds a JSON payload as it is;
// one that is not JSON is null there and sent in PayloadBase64 instead.
type Message struct {
	Tenant        string            `json:"tenant,omitempty"`
	Source        string            `json:"source"`
	Subject       string            `json:"subject"`
	Time          time.Time         `json:"time,omitzero"`
	Meta          map[string]string `json:"meta,omitempty"`
	Payload       json.RawMessage   `json:"payload"`
	PayloadBase64 []byte            `json:"payload_base64,omitempty"`
}

// encode writes batch as a Batch document, compact, without HTML escaping.
func encode(batch []plugin.Message) ([]byte, error) {
	doc := Batch{Messages: make([]Message, len(batch))}
	for i, m := range batch {
		wm := Message{Tenant: m.Tenant, Source: m.Source, Subject: m.Subject, Time: m.Time, Meta: m.Meta}
		switch {
		case len(bytes.TrimSpace(m.Payload)) == 0:
		case json.Valid(m.Payload):
			wm.Payload = m.Payload
		default:
			wm.PayloadBase64 = m.Payload
		}
		doc.Messages[i] = wm
	}
	return payload.Marshal(doc)
}

// printable returns b as one line of valid UTF-8 for an error message.
func printable(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(b) == maxErrorBody {
		s += "…"
	}
	return s
}

// parseDuration reads a Go duration; "" is def.
func parseDuration(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as \"5s\", got %q", s)
	}
	return d, nil
}
