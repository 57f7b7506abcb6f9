// Package jsonpath is collectors.jsonpath, an example Go guest: every call
// it GETs one URL through the host's http_fetch, parses the JSON body and
// emits one message per configured path that is present, payload
// {"value": <the JSON value at the path>, "unit": "…"}. With on_change it
// emits a reading only when its value differs from the last one emitted,
// remembered in the instance's state.
//
// The package holds the logic and configuration over plain bytes, so that
// it is tested natively; wasm/ registers it with the Go guest kit
// (sdk/guest) and hands it the host's http_fetch and state.
package jsonpath

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/switchyard/switchyard/sdk/plugin"
)

// Use is the plugin's kind.name in plugins.yaml.
const Use = "collectors.jsonpath"

// Response is what a fetch received.
type Response struct {
	Status int
	Body   []byte
}

// Fetcher GETs url with the given request headers. An error means there
// was no response (refused by the host's policy, a network error, a
// timeout); a 404 or a 500 is a Response.
type Fetcher func(url string, header map[string]string) (Response, error)

// State is the instance's key/value state, which the host keeps.
type State interface {
	Get(key string) ([]byte, bool)
	Set(key string, val []byte) error
}

// StateKey returns the state key holding the hash of the last value
// emitted on subject (with on_change).
func StateKey(subject string) string { return "last." + subject }

// config is the instance's configuration as plugins.yaml writes it.
type config struct {
	URL      string            `json:"url"`
	Headers  map[string]string `json:"headers"`
	Readings []readingConfig   `json:"readings"`
	OnChange bool              `json:"on_change"`
}

type readingConfig struct {
	Path    string `json:"path"`
	Subject string `json:"subject"`
	Unit    string `json:"unit"`
}

type reading struct {
	path    Path
	text    string // the path as configured, for messages
	subject string
	unit    string
}

// Collector is one configured instance.
type Collector struct {
	url      string
	shown    string // url as error messages show it: see shownURL
	header   map[string]string
	readings []reading
	onChange bool
}

// Reading is one message a call emits.
type Reading struct {
	Subject string
	Payload []byte

	hash []byte // with on_change: what Remember stores under StateKey(Subject)
}

// Result is what one call gathered.
type Result struct {
	// Readings are the messages to emit, in the order the readings are
	// configured.
	Readings []Reading
	// Absent are the configured paths the body did not have.
	Absent []string
}

// New decodes the instance's configuration (a JSON object) strictly: an
// unknown key, a value of the wrong type and every problem below are
// refused, each named.
func New(raw []byte) (*Collector, error) {
	var cfg config
	if err := plugin.DecodeConfig(raw, &cfg); err != nil {
		return nil, err
	}
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }

	c := &Collector{url: cfg.URL, onChange: cfg.OnChange, header: map[string]string{}}
	if cfg.URL == "" {
		bad(`url: required, e.g. "http://192.168.1.40/status"`)
	} else if err := checkURL(cfg.URL); err != nil {
		bad("url: %v", err)
	} else {
		c.shown = shownURL(cfg.URL)
	}
	seen := map[string]string{} // canonical header name → the name as written
	for _, name := range slices.Sorted(maps.Keys(cfg.Headers)) {
		val := cfg.Headers[name]
		canon := strings.ToLower(name)
		switch {
		case !validToken(name):
			bad("headers: %q is not a valid header name", name)
		case canon == "host":
			bad("headers.%s: not allowed: the url names the host", name)
		case strings.ContainsAny(val, "\r\n\x00"):
			bad("headers.%s: the value must not contain CR, LF or NUL", name)
		case seen[canon] != "":
			bad("headers.%s: given twice (also as %q)", name, seen[canon])
		}
		seen[canon] = name
		c.header[name] = val
	}
	if seen["accept"] == "" {
		c.header["Accept"] = "application/json"
	}
	if len(cfg.Readings) == 0 {
		bad(`readings: required: at least one {path, subject}`)
	}
	subjects := map[string]int{}
	for i, rc := range cfg.Readings {
		at := fmt.Sprintf("readings[%d]", i)
		r := reading{text: rc.Path, subject: rc.Subject, unit: rc.Unit}
		if rc.Path == "" {
			bad(`%s.path: required, e.g. "main.temp" or "sensors[2].value"`, at)
		} else if p, err := ParsePath(rc.Path); err != nil {
			bad("%s.path %q: %v", at, rc.Path, err)
		} else {
			r.path = p
		}
		if err := checkSubject(rc.Subject); err != nil {
			bad("%s.subject: %v", at, err)
		} else if j, dup := subjects[rc.Subject]; dup {
			bad("%s.subject: %q is already the subject of readings[%d]", at, rc.Subject, j)
		} else {
			subjects[rc.Subject] = i
		}
		c.readings = append(c.readings, r)
	}
	if len(probs) > 0 {
		return nil, errors.New("config: " + strings.Join(probs, "; "))
	}
	return c, nil
}

// Collect fetches the URL and returns the readings present in its body.
// With on_change, a reading whose value equals the last one emitted on its
// subject is left out; call Remember with what was emitted. A failed fetch,
// a status other than 2xx and a body that is not JSON are errors naming the
// URL.
func (c *Collector) Collect(fetch Fetcher, st State) (Result, error) {
	resp, err := fetch(c.url, c.header)
	if err != nil {
		return Result{}, fmt.Errorf("fetch %s: %s", c.shown, strings.TrimPrefix(err.Error(), "guest: http fetch: "))
	}
	if resp.Status < 200 || resp.Status > 299 {
		return Result{}, fmt.Errorf("GET %s: HTTP status %d%s", c.shown, resp.Status, excerpt(resp.Body))
	}
	doc, err := decode(resp.Body)
	if err != nil {
		return Result{}, fmt.Errorf("GET %s: %v", c.shown, err)
	}
	var res Result
	for _, r := range c.readings {
		v, ok := Lookup(doc, r.path)
		if !ok {
			res.Absent = append(res.Absent, r.text)
			continue
		}
		val, err := marshal(v)
		if err != nil { // cannot happen: the value was decoded from JSON
			return Result{}, fmt.Errorf("path %s: %w", r.text, err)
		}
		out := Reading{Subject: r.subject}
		if c.onChange {
			h := fnv.New64a()
			h.Write(val)
			out.hash = []byte(strconv.FormatUint(h.Sum64(), 16))
			if last, ok := st.Get(StateKey(r.subject)); ok && bytes.Equal(last, out.hash) {
				continue
			}
		}
		if out.Payload, err = marshal(payload{Value: val, Unit: r.unit}); err != nil {
			return Result{}, fmt.Errorf("path %s: %w", r.text, err)
		}
		res.Readings = append(res.Readings, out)
	}
	return res, nil
}

// Remember records, with on_change, the values of readings Collect
// returned and the host delivered, so that the next calls leave them out
// until they change. An error (the state is full) leaves the reading to be
// emitted again next call.
func (c *Collector) Remember(st State, emitted []Reading) error {
	var errs []error
	for _, r := range emitted {
		if r.hash == nil {
			continue
		}
		if err := st.Set(StateKey(r.Subject), r.hash); err != nil {
			errs = append(errs, fmt.Errorf("on_change: remember %s: %w", r.Subject, err))
		}
	}
	return errors.Join(errs...)
}

type payload struct {
	Value json.RawMessage `json:"value"`
	Unit  string          `json:"unit,omitempty"`
}

// decode parses a body that must be exactly one JSON value (a leading UTF-8
// byte order mark is skipped). Numbers are kept as written.
func decode(body []byte) (any, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("empty body, want JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		var syn *json.SyntaxError
		switch {
		case errors.As(err, &syn):
			// Offset counts the bytes read, the offending one included.
			return nil, fmt.Errorf("body is not JSON: %v (at byte %d)%s", err, max(syn.Offset-1, 0), excerpt(body))
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fmt.Errorf("body is not JSON: it ends after %d bytes, in the middle of a value", len(body))
		}
		return nil, fmt.Errorf("body is not JSON: %v", err)
	}
	rest := body[dec.InputOffset():]
	if after := bytes.TrimLeft(rest, " \t\r\n"); len(after) > 0 {
		return nil, fmt.Errorf("body is not JSON: data after the value at byte %d", len(body)-len(after))
	}
	return doc, nil
}

// marshal encodes v as compact JSON, object keys sorted, "<" and "&" kept.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// excerpt quotes the start of a body for an error message; "" for none.
func excerpt(body []byte) string {
	const max = 64
	if len(body) == 0 {
		return ""
	}
	s := body
	if len(s) > max {
		s = s[:max]
		for len(s) > 0 && !utf8.Valid(s) { // do not cut a character in two
			s = s[:len(s)-1]
		}
		return fmt.Sprintf(": body %q…", s)
	}
	return fmt.Sprintf(": body %q", s)
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %v", s, errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Opaque != "" {
		return fmt.Errorf("want an absolute http:// or https:// URL, got %q", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	return nil
}

// shownURL is a valid url as messages, which the host logs, show it: any
// password replaced by "xxxxx" and the query string, which often holds an
// API key, by "?…".
func shownURL(s string) string {
	u, _ := url.Parse(s) // checkURL parsed it
	q := u.RawQuery != "" || u.ForceQuery
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	if q {
		return u.Redacted() + "?…"
	}
	return u.Redacted()
}

// checkSubject checks a subject to emit on: dotted tokens, none empty, none
// a wildcard, no spaces or control characters.
func checkSubject(s string) error {
	if s == "" {
		return errors.New(`required, e.g. "weather.temp"`)
	}
	for tok := range strings.SplitSeq(s, ".") {
		switch {
		case tok == "":
			return fmt.Errorf("%q has an empty token", s)
		case tok == "*" || tok == ">":
			return fmt.Errorf("%q: wildcards are only allowed in patterns", s)
		case strings.IndexFunc(tok, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
			return fmt.Errorf("%q must not contain spaces or control characters", s)
		}
	}
	return nil
}

// validToken reports whether s is an HTTP token (RFC 9110), as header
// names are.
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
