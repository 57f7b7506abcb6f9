package native

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchyard/switchyard/sdk/guest/internal/abi"
)

// HTTPPolicy is what http_fetch may reach, with the host's rules and defaults (sdk/ABI.md):
// Hosts holds "host", "host:port", "*.suffix" or "*.suffix:port", matched against the URL's
// host name, a missing port meaning the scheme's default; zero sizes and timeout take the
// host's defaults. No hosts: every fetch is refused.
type HTTPPolicy struct {
	Hosts       []string
	Timeout     time.Duration
	MaxResponse int64
	MaxRequest  int64
}

type hostRule struct {
	name, port string
	wildcard   bool
}

type httpFetcher struct {
	policy HTTPPolicy
	rules  []hostRule
	client *http.Client
}

// SetHTTP sets what the instance's http_fetch may reach; it checks the host patterns.
func (h *Host) SetHTTP(p HTTPPolicy) error {
	if p.Timeout < 0 || p.MaxResponse < 0 || p.MaxRequest < 0 {
		return errors.New("http_fetch: timeout and sizes must be positive")
	}
	if p.Timeout == 0 {
		p.Timeout = 5 * time.Second
	}
	if p.MaxResponse == 0 {
		p.MaxResponse = 1 << 20
	}
	if p.MaxRequest == 0 {
		p.MaxRequest = 64 << 10
	}
	f := &httpFetcher{policy: p}
	for _, s := range p.Hosts {
		r, err := parseHostRule(s)
		if err != nil {
			return err
		}
		f.rules = append(f.rules, r)
	}
	f.client = &http.Client{
		Transport: &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: p.Timeout}).DialContext},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > 3 {
				return &fetchError{abi.Failed, "stopped after 3 redirects"}
			}
			if fe := f.allowed(req.URL); fe != nil {
				fe.reason = "redirect: " + fe.reason
				return fe
			}
			return nil
		},
	}
	mu.Lock()
	defer mu.Unlock()
	if h.http != nil {
		h.http.client.CloseIdleConnections()
	}
	h.http = f
	if len(f.rules) == 0 {
		h.http = nil
	}
	return nil
}

func parseHostRule(s string) (hostRule, error) {
	orig := s
	s = strings.ToLower(strings.TrimSpace(s))
	bad := fmt.Errorf("http_fetch: host %q: want host, host:port or *.suffix", orig)
	if s == "" || strings.ContainsAny(s, "/?#@ ") {
		return hostRule{}, bad
	}
	var r hostRule
	name := s
	if hh, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return hostRule{}, bad
		}
		name, r.port = hh, strconv.FormatUint(n, 10)
	} else if strings.Count(s, ":") == 1 {
		return hostRule{}, bad
	}
	name = strings.TrimSuffix(strings.Trim(name, "[]"), ".")
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		r.wildcard, name = true, rest
	}
	if name == "" || strings.Contains(name, "*") {
		return hostRule{}, bad
	}
	r.name = name
	return r, nil
}

type fetchError struct {
	status int32
	reason string
}

func (e *fetchError) Error() string { return e.reason }

func (f *httpFetcher) allowed(u *url.URL) *fetchError {
	def := map[string]string{"http": "80", "https": "443"}[u.Scheme]
	if def == "" {
		return &fetchError{abi.NotAllowed, fmt.Sprintf("scheme %q is not allowed: want http or https", u.Scheme)}
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	port := u.Port()
	if port == "" {
		port = def
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if host == "" || err != nil || n == 0 {
		return &fetchError{abi.BadArgument, "url has no host or a bad port"}
	}
	port = strconv.FormatUint(n, 10)
	for _, r := range f.rules {
		portOK := r.port == port || r.port == "" && port == def
		if portOK && (host == r.name || r.wildcard && strings.HasSuffix(host, "."+r.name)) {
			return nil
		}
	}
	return &fetchError{abi.NotAllowed, fmt.Sprintf("host %q is not in the instance's http_fetch hosts", u.Host)}
}

// HTTPFetch is http_fetch with http_response and http_error: it returns the response JSON, or
// a negative status and its reason.
func (h *Host) HTTPFetch(req []byte) ([]byte, int32, string) {
	if h.http == nil {
		return nil, abi.NotAllowed, "http_fetch is not enabled for this instance"
	}
	resp, fe := h.http.fetch(req)
	if fe != nil {
		return nil, fe.status, fe.reason
	}
	return resp, int32(len(resp)), ""
}

func (f *httpFetcher) fetch(raw []byte) ([]byte, *fetchError) {
	if int64(len(raw)) > f.policy.MaxRequest {
		return nil, &fetchError{abi.Limit, fmt.Sprintf("request of %d bytes exceeds the limit of %d", len(raw), f.policy.MaxRequest)}
	}
	bad := func(format string, args ...any) *fetchError {
		return &fetchError{abi.BadArgument, fmt.Sprintf(format, args...)}
	}
	var r struct {
		Method     string            `json:"method"`
		URL        string            `json:"url"`
		Headers    map[string]string `json:"headers"`
		Body       *string           `json:"body"`
		BodyBase64 *string           `json:"body_base64"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, bad("request: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("request: data after the JSON object")
	}
	method := strings.ToUpper(r.Method)
	switch method {
	case "":
		method = http.MethodGet
	case http.MethodGet, http.MethodPost, http.MethodPut:
	default:
		return nil, &fetchError{abi.NotAllowed, fmt.Sprintf("method %s is not allowed: want GET, POST or PUT", method)}
	}
	u, err := url.Parse(r.URL)
	if r.URL == "" || err != nil || !u.IsAbs() {
		return nil, bad("request: url %q: want an absolute URL", r.URL)
	}
	var body []byte
	switch {
	case r.Body != nil && r.BodyBase64 != nil:
		return nil, bad("request: body and body_base64 are exclusive")
	case r.Body != nil:
		body = []byte(*r.Body)
	case r.BodyBase64 != nil:
		if body, err = base64.StdEncoding.DecodeString(*r.BodyBase64); err != nil {
			return nil, bad("request: body_base64: %v", err)
		}
	}
	if fe := f.allowed(u); fe != nil {
		return nil, fe
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.policy.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, bad("request: %v", err)
	}
	for k, v := range r.Headers {
		if strings.EqualFold(k, "Host") {
			return nil, bad("request: header Host is not allowed: the url names the host")
		}
		req.Header.Set(k, v)
	}
	failed := func(err error) *fetchError {
		var fe *fetchError
		switch {
		case errors.As(err, &fe):
			return fe
		case ctx.Err() != nil:
			return &fetchError{abi.Failed, fmt.Sprintf("timed out after %v", f.policy.Timeout)}
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &fetchError{abi.Failed, err.Error()}
	}
	res, err := f.client.Do(req)
	if err != nil {
		return nil, failed(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, f.policy.MaxResponse+1))
	if err != nil {
		return nil, failed(err)
	}
	if int64(len(data)) > f.policy.MaxResponse {
		return nil, &fetchError{abi.Limit, fmt.Sprintf("response body exceeds the limit of %d bytes", f.policy.MaxResponse)}
	}
	out := struct {
		Status     int               `json:"status"`
		Headers    map[string]string `json:"headers"`
		Body       *string           `json:"body,omitempty"`
		BodyBase64 *string           `json:"body_base64,omitempty"`
	}{Status: res.StatusCode, Headers: map[string]string{}}
	for k, v := range res.Header {
		out.Headers[k] = strings.Join(v, ", ")
	}
	s := string(data)
	if !utf8.Valid(data) {
		s = base64.StdEncoding.EncodeToString(data)
		out.BodyBase64 = &s
	} else {
		out.Body = &s
	}
	resp, err := json.Marshal(&out)
	if err != nil {
		return nil, &fetchError{abi.Failed, err.Error()}
	}
	return resp, nil
}
