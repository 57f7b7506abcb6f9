package wasm

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tetratelabs/wazero/api"
)

// Defaults of HTTPFetchPolicy.
const (
	DefaultHTTPFetchTimeout     = 5 * time.Second
	DefaultHTTPFetchMaxResponse = 1 << 20
	DefaultHTTPFetchMaxRequest  = 64 << 10
)

// maxRedirects is how many redirects one http_fetch follows, each checked
// against the policy.
const maxRedirects = 3

// maxHTTPReason bounds the text http_error gives.
const maxHTTPReason = 256

// HTTPFetchPolicy is what an instance may reach through the http_fetch
// import. The zero value turns the capability off.
type HTTPFetchPolicy struct {
	// Hosts the guest may fetch from, matched against the URL's host (never
	// against the addresses it resolves to): "api.example.com" (the
	// scheme's default port, 80 or 443), "api.example.com:8443" (that port
	// only), "*.example.com" (any subdomain, not example.com itself, default
	// port) or "*.example.com:8443". IPv6 literals in brackets: "[::1]:8080".
	// Names compare case-insensitively. Empty: http_fetch returns -4.
	Hosts []string
	// Timeout bounds one fetch, redirects and body included; the call's own
	// deadline bounds it too. Zero: DefaultHTTPFetchTimeout.
	Timeout time.Duration
	// MaxResponse is the most bytes of response body one fetch may
	// receive (after decompression). Zero: DefaultHTTPFetchMaxResponse.
	MaxResponse int64
	// MaxRequest is the most bytes of the request JSON. Zero:
	// DefaultHTTPFetchMaxRequest.
	MaxRequest int64
}

func (p HTTPFetchPolicy) withDefaults() HTTPFetchPolicy {
	if p.Timeout == 0 {
		p.Timeout = DefaultHTTPFetchTimeout
	}
	if p.MaxResponse == 0 {
		p.MaxResponse = DefaultHTTPFetchMaxResponse
	}
	if p.MaxRequest == 0 {
		p.MaxRequest = DefaultHTTPFetchMaxRequest
	}
	return p
}

// hostRule is one entry of HTTPFetchPolicy.Hosts.
type hostRule struct {
	name     string // lower case, without brackets or trailing dot; the suffix after "*." for a wildcard
	port     string // "" for the scheme's default port
	wildcard bool
}

func parseHostRule(s string) (hostRule, error) {
	orig := s
	s = strings.ToLower(strings.TrimSpace(s))
	bad := func(why string) (hostRule, error) {
		return hostRule{}, fmt.Errorf("http_fetch: host %q: %s", orig, why)
	}
	if s == "" {
		return bad("empty")
	}
	if strings.ContainsAny(s, "/?#@ ") {
		return bad("want host or host:port, not a URL")
	}
	var r hostRule
	name := s
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, perr := strconv.ParseUint(p, 10, 16)
		if perr != nil || n == 0 {
			return bad("bad port")
		}
		name, r.port = h, strconv.FormatUint(n, 10)
	} else if strings.Count(s, ":") == 1 {
		return bad("bad port")
	}
	name = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]"), ".")
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		r.wildcard, name = true, rest
	}
	if name == "" || strings.Contains(name, "*") || strings.ContainsAny(name, "[]") {
		return bad(`want an exact name or a "*.example.com" suffix`)
	}
	r.name = name
	return r, nil
}

// match reports whether the rule allows host (lower case) on port, which is
// the scheme's default when isDefault.
func (r hostRule) match(host, port string, isDefault bool) bool {
	if r.port == "" && !isDefault || r.port != "" && r.port != port {
		return false
	}
	if r.wildcard {
		return strings.HasSuffix(host, "."+r.name)
	}
	return host == r.name
}

// fetcher serves the http_fetch of one instance: its policy, its rules and
// its own connection pool.
type fetcher struct {
	policy HTTPFetchPolicy
	rules  []hostRule
	client *http.Client
}

// newFetcher compiles a policy; nil when the capability is off.
func newFetcher(p HTTPFetchPolicy) (*fetcher, error) {
	if p.Timeout < 0 || p.MaxResponse < 0 || p.MaxRequest < 0 {
		return nil, errors.New("http_fetch: timeout and sizes must be positive")
	}
	if len(p.Hosts) == 0 {
		return nil, nil
	}
	f := &fetcher{policy: p.withDefaults()}
	for _, h := range p.Hosts {
		r, err := parseHostRule(h)
		if err != nil {
			return nil, err
		}
		f.rules = append(f.rules, r)
	}
	dialer := &net.Dialer{Timeout: f.policy.Timeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:                  nil, // never from the environment
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           8,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        30 * time.Second,
		TLSHandshakeTimeout:    f.policy.Timeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	f.client = &http.Client{
		Transport: transport, // no Jar: no cookies are kept
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return &fetchError{statusFailed, fmt.Sprintf("stopped after %d redirects", maxRedirects)}
			}
			if fe := f.allowed(req.URL); fe != nil {
				fe.reason = "redirect: " + fe.reason
				return fe
			}
			return nil
		},
	}
	return f, nil
}

func (f *fetcher) close() {
	if f != nil {
		f.client.CloseIdleConnections()
	}
}

// fetchError is a refused or failed fetch: the status for the guest and the
// reason http_error gives.
type fetchError struct {
	status int32
	reason string
}

func (e *fetchError) Error() string { return e.reason }

// allowed checks a URL's scheme and host (the name, not what it resolves
// to) against the policy.
func (f *fetcher) allowed(u *url.URL) *fetchError {
	var def string
	switch u.Scheme {
	case "http":
		def = "80"
	case "https":
		def = "443"
	default:
		return &fetchError{statusNotAllowed, fmt.Sprintf("scheme %q is not allowed: want http or https", u.Scheme)}
	}
	port := u.Port()
	if port == "" {
		port = def
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "" {
		return &fetchError{statusBadArgument, "url has no host"}
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return &fetchError{statusBadArgument, fmt.Sprintf("url has a bad port %q", port)}
	}
	port = strconv.FormatUint(n, 10)
	for _, r := range f.rules {
		if r.match(host, port, port == def) {
			return nil
		}
	}
	return &fetchError{statusNotAllowed, fmt.Sprintf("host %q is not in the instance's http_fetch hosts", u.Host)}
}

// fetchRequest is the JSON a guest passes to http_fetch.
type fetchRequest struct {
	Method     string            `json:"method"`
	URL        string            `json:"url"`
	Headers    map[string]string `json:"headers"`
	Body       *string           `json:"body"`
	BodyBase64 *string           `json:"body_base64"`
}

// fetchResponse is the JSON http_response gives: body as text when it is
// valid UTF-8, else body_base64.
type fetchResponse struct {
	Status     int               `json:"status"`
	Headers    map[string]string `json:"headers"`
	Body       *string           `json:"body,omitempty"`
	BodyBase64 *string           `json:"body_base64,omitempty"`
}

// parseFetchRequest decodes and checks a guest's request: a bad one is a
// statusBadArgument (or statusNotAllowed for a method the ABI does not
// allow).
func parseFetchRequest(raw []byte) (*http.Request, []byte, *fetchError) {
	bad := func(format string, args ...any) (*http.Request, []byte, *fetchError) {
		return nil, nil, &fetchError{statusBadArgument, fmt.Sprintf(format, args...)}
	}
	var fr fetchRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fr); err != nil {
		return bad("request: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("request: data after the JSON object")
	}
	method := strings.ToUpper(fr.Method)
	switch method {
	case "":
		method = http.MethodGet
	case http.MethodGet, http.MethodPost, http.MethodPut:
	default:
		if !validToken(method) {
			return bad("request: bad method %q", fr.Method)
		}
		return nil, nil, &fetchError{statusNotAllowed, fmt.Sprintf("method %s is not allowed: want GET, POST or PUT", method)}
	}
	if fr.URL == "" {
		return bad("request: url is required")
	}
	u, err := url.Parse(fr.URL)
	if err != nil {
		return bad("request: url: %v", errors.Unwrap(err))
	}
	if !u.IsAbs() {
		return bad("request: url %q is not absolute", fr.URL)
	}
	var body []byte
	switch {
	case fr.Body != nil && fr.BodyBase64 != nil:
		return bad("request: body and body_base64 are exclusive")
	case fr.Body != nil:
		body = []byte(*fr.Body)
	case fr.BodyBase64 != nil:
		if body, err = base64.StdEncoding.DecodeString(*fr.BodyBase64); err != nil {
			return bad("request: body_base64: %v", err)
		}
	}
	req := &http.Request{Method: method, URL: u, Header: make(http.Header, len(fr.Headers)), Host: u.Host}
	for k, v := range fr.Headers {
		if !validToken(k) || strings.ContainsAny(v, "\r\n\x00") {
			return bad("request: bad header %q", k)
		}
		if strings.EqualFold(k, "Host") {
			return bad("request: header Host is not allowed: the url names the host")
		}
		req.Header.Set(k, v)
	}
	return req, body, nil
}

// validToken reports whether s is an HTTP token (RFC 9110), as header names
// and methods are.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// fetch performs one request under ctx (the call's) and the policy, and
// returns the response JSON.
func (f *fetcher) fetch(ctx context.Context, raw []byte) (resp []byte, host string, fe *fetchError) {
	if int64(len(raw)) > f.policy.MaxRequest {
		return nil, "", &fetchError{statusLimit, fmt.Sprintf("request of %d bytes exceeds the limit of %d", len(raw), f.policy.MaxRequest)}
	}
	req, body, fe := parseFetchRequest(raw)
	if fe != nil {
		return nil, "", fe
	}
	host = req.URL.Host
	if fe := f.allowed(req.URL); fe != nil {
		return nil, host, fe
	}
	fctx, cancel := context.WithTimeout(ctx, f.policy.Timeout)
	defer cancel()
	req = req.WithContext(fctx)
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	failed := func(err error) *fetchError {
		var fe *fetchError
		switch {
		case errors.As(err, &fe):
			return fe
		case ctx.Err() != nil:
			return &fetchError{statusFailed, "the call's deadline was reached"}
		case fctx.Err() != nil:
			return &fetchError{statusFailed, fmt.Sprintf("timed out after %v", f.policy.Timeout)}
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &fetchError{statusFailed, boundedText([]byte(err.Error()), maxHTTPReason)}
	}
	r, err := f.client.Do(req)
	if err != nil {
		return nil, host, failed(err)
	}
	defer r.Body.Close()
	limit := f.policy.MaxResponse
	tooBig := &fetchError{statusLimit, fmt.Sprintf("response body exceeds the limit of %d bytes", limit)}
	if r.ContentLength > limit {
		return nil, host, tooBig
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, host, failed(err)
	}
	if int64(len(data)) > limit {
		return nil, host, tooBig
	}
	out := fetchResponse{Status: r.StatusCode, Headers: make(map[string]string, len(r.Header))}
	for k, v := range r.Header {
		out.Headers[k] = strings.Join(v, ", ")
	}
	if utf8.Valid(data) {
		s := string(data)
		out.Body = &s
	} else {
		s := base64.StdEncoding.EncodeToString(data)
		out.BodyBase64 = &s
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&out); err != nil {
		return nil, host, &fetchError{statusFailed, "encode response: " + err.Error()}
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), host, nil
}

// hostHTTPFetch is http_fetch(req, req_len) → len or status. It replaces
// what the call's previous http_fetch kept.
func hostHTTPFetch(ctx context.Context, mod api.Module, stack []uint64) {
	s := callerSlot(ctx)
	if s == nil {
		stack[0] = status(statusNotAllowed)
		return
	}
	s.httpResp, s.httpErr = nil, ""
	raw, ok := mod.Memory().Read(u32(stack[0]), u32(stack[1]))
	var (
		resp []byte
		host string
		fe   *fetchError
	)
	switch {
	case !ok:
		fe = &fetchError{statusBadArgument, "request out of bounds"}
	case s.inst == nil || s.inst.fetcher == nil:
		fe = &fetchError{statusNotAllowed, "http_fetch is not enabled for this instance"}
	default:
		resp, host, fe = s.inst.fetcher.fetch(ctx, raw)
	}
	if fe != nil {
		s.httpErr = fe.reason
		if fe.status == statusBadArgument {
			s.badCall()
		}
		if s.inst != nil {
			s.inst.fetchRefused(fe, host)
		}
		stack[0] = status(fe.status)
		return
	}
	s.inst.countFetch(fetchOK)
	s.httpResp = resp
	stack[0] = status(trueLen(len(resp)))
}

// hostHTTPResponse is http_response(buf, limit) → len or -1.
func hostHTTPResponse(ctx context.Context, mod api.Module, stack []uint64) {
	s := callerSlot(ctx)
	if s == nil {
		stack[0] = status(statusNotAllowed)
		return
	}
	s.copyOut(mod.Memory(), stack, s.httpResp != nil, s.httpResp)
}

// hostHTTPError is http_error(buf, limit) → len or -1.
func hostHTTPError(ctx context.Context, mod api.Module, stack []uint64) {
	s := callerSlot(ctx)
	if s == nil {
		stack[0] = status(statusNotAllowed)
		return
	}
	s.copyOut(mod.Memory(), stack, s.httpErr != "", []byte(s.httpErr))
}

// copyOut answers a (buf, limit) import with v: its true length, -1 when
// !present, -2 for a buffer outside memory.
func (s *slot) copyOut(mem api.Memory, stack []uint64, present bool, v []byte) {
	view, ok := mem.Read(u32(stack[0]), u32(stack[1]))
	switch {
	case !ok:
		stack[0] = status(s.bad())
	case !present:
		stack[0] = status(statusAbsent)
	default:
		copy(view, v)
		stack[0] = status(trueLen(len(v)))
	}
}

// Results of http_fetch, the result label of its counter.
type fetchResult int

const (
	fetchOK fetchResult = iota
	fetchNotAllowed
	fetchLimit
	fetchBadArgument
	fetchFailed
	numFetchResults
)

var fetchResultLabels = [numFetchResults]string{"ok", "not_allowed", "limit", "bad_argument", "failed"}

func (in *Instance) countFetch(r fetchResult) {
	if in != nil && in.metrics.fetches[r] != nil {
		in.metrics.fetches[r].Inc()
	}
}

// fetchRefused counts and logs a refused or failed fetch: refusals of the
// policy at Warn (rate-limited), the rest at Debug. host is the URL's host
// (never the whole URL, which may carry secrets).
func (in *Instance) fetchRefused(fe *fetchError, host string) {
	r, level := fetchFailed, slog.LevelDebug
	switch fe.status {
	case statusNotAllowed:
		r, level = fetchNotAllowed, slog.LevelWarn
	case statusLimit:
		r, level = fetchLimit, slog.LevelWarn
	case statusBadArgument:
		r = fetchBadArgument
	}
	in.countFetch(r)
	ctx := context.Background()
	if !in.sink.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.String("result", fetchResultLabels[r]), slog.String("err", fe.reason)}
	if host != "" {
		attrs = append(attrs, slog.String("host", host))
	}
	msg := "plugin http_fetch failed"
	if level == slog.LevelWarn {
		ok, dropped := in.warn.allow(time.Now())
		if !ok {
			return
		}
		msg = "plugin http_fetch refused"
		attrs = append(attrs, slog.Uint64("warnings_dropped", dropped))
	}
	in.sink.log.LogAttrs(ctx, level, msg, attrs...)
}
