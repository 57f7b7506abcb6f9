package homeassistant

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/switchyard/switchyard/sdk/plugin"
)

// Defaults of the configuration keys.
const (
	DefaultURL              = "http://homeassistant.local:8123"
	DefaultSubjectPrefix    = "ha"
	DefaultPingInterval     = 30 * time.Second
	DefaultTimeout          = 10 * time.Second
	DefaultReconnectInitial = time.Second
	DefaultReconnectMax     = 60 * time.Second
)

// maxCAFile bounds the size of tls.ca_file: a bundle of a few hundred
// certificates fits well within it.
const maxCAFile = 1 << 20

// Duration is a Go duration written as a string in the configuration
// ("30s", "1m", "250ms").
type Duration = plugin.Duration

// Backoff is the reconnect key: the wait before connecting again after a
// failure doubles from Initial up to Max, with jitter.
type Backoff struct {
	Initial Duration `json:"initial"`
	Max     Duration `json:"max"`
}

// TLS is the tls key, for an https:// url.
type TLS struct {
	// CAFile is a PEM file of certificates to trust in addition to the
	// system's (a self-signed Home Assistant certificate, a LAN CA).
	CAFile string `json:"ca_file"`
	// InsecureSkipVerify accepts any server certificate. For tests only.
	InsecureSkipVerify bool `json:"insecure_skip_verify"`
}

// endpoints are what Provision derives from the url key.
type endpoints struct {
	ws     string // ws(s)://host[:port][/prefix]/api/websocket
	states string // http(s)://host[:port][/prefix]/api/states
}

// withDefaults fills in every unset key.
func (c *Collector) withDefaults() {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultSubjectPrefix
	}
	if c.InitialStates == nil {
		yes := true
		c.InitialStates = &yes
	}
	if c.PingInterval == 0 {
		c.PingInterval = Duration(DefaultPingInterval)
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(DefaultTimeout)
	}
	if c.Reconnect.Initial == 0 {
		c.Reconnect.Initial = Duration(DefaultReconnectInitial)
	}
	if c.Reconnect.Max == 0 {
		c.Reconnect.Max = Duration(max(DefaultReconnectMax, time.Duration(c.Reconnect.Initial)))
	}
}

// parseURL checks the url key and derives the WebSocket and REST endpoints.
// A path is kept as a prefix (Home Assistant behind a reverse proxy at
// https://example.org/ha).
func parseURL(raw string) (endpoints, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return endpoints{}, fmt.Errorf("url: want http://host:8123 or https://host:8123, got %q", truncate(raw, 80))
	}
	var wsScheme string
	switch u.Scheme {
	case "http":
		wsScheme = "ws"
	case "https":
		wsScheme = "wss"
	default:
		return endpoints{}, fmt.Errorf("url: want an http:// or https:// address such as http://homeassistant.local:8123 (the WebSocket address is derived from it), got %q", truncate(raw, 80))
	}
	switch {
	case u.Host == "" || u.Hostname() == "":
		return endpoints{}, fmt.Errorf("url: %q has no host", truncate(raw, 80))
	case u.User != nil:
		return endpoints{}, errors.New("url: must not hold a user or password (the token key authenticates)")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return endpoints{}, fmt.Errorf("url: %q must not have a query or fragment", truncate(raw, 80))
	}
	base := *u
	base.Path = strings.TrimRight(u.Path, "/")
	base.RawPath = ""
	ws := base
	ws.Scheme = wsScheme
	ws.Path += "/api/websocket"
	states := base
	states.Path += "/api/states"
	return endpoints{ws: ws.String(), states: states.String()}, nil
}

// tlsConfig builds the client TLS configuration from the tls key, reading
// ca_file.
func (t TLS) tlsConfig() (*tls.Config, error) {
	if t.CAFile != "" && t.InsecureSkipVerify {
		return nil, errors.New("tls: ca_file and insecure_skip_verify exclude each other")
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented as for tests
	if t.CAFile == "" {
		return conf, nil
	}
	f, err := os.Open(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("tls.ca_file: %w", err)
	}
	defer f.Close()
	pem, err := io.ReadAll(io.LimitReader(f, maxCAFile+1))
	if err != nil {
		return nil, fmt.Errorf("tls.ca_file: %w", err)
	}
	if len(pem) > maxCAFile {
		return nil, fmt.Errorf("tls.ca_file: %s is larger than %d bytes", t.CAFile, maxCAFile)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", t.CAFile)
	}
	conf.RootCAs = pool
	return conf, nil
}

// validate checks the configuration after defaults, with token the token
// (from token or token_file); every error names its key. It has no side
// effects.
func (c *Collector) validate(token string) error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if strings.TrimSpace(token) == "" {
		add("token: is required (or token_file): a long-lived access token (Home Assistant: your profile, Security, Long-lived access tokens)")
	} else if strings.ContainsAny(token, "\r\n") {
		add("token: must not contain a line break")
	}
	for i, g := range c.Entities {
		if g == "" {
			add("entities[%d]: must not be empty", i)
		} else if _, err := path.Match(g, ""); err != nil {
			add("entities[%d]: %q is not a valid glob (want e.g. \"sensor.*_temperature\")", i, truncate(g, 80))
		}
	}
	for i, d := range c.Domains {
		if !validToken(d) {
			add("domains[%d]: want a domain such as \"sensor\" (a-z, 0-9, _), got %q", i, truncate(d, 80))
		}
	}
	if err := validPrefix(c.SubjectPrefix); err != nil {
		add("subject_prefix: %v", err)
	}
	if c.PingInterval < 0 {
		add("ping_interval: must be positive, got %s", time.Duration(c.PingInterval))
	}
	if c.Timeout < 0 {
		add("timeout: must be positive, got %s", time.Duration(c.Timeout))
	}
	if c.Reconnect.Initial < 0 {
		add("reconnect.initial: must be positive, got %s", time.Duration(c.Reconnect.Initial))
	}
	if c.Reconnect.Max < c.Reconnect.Initial {
		add("reconnect.max: must be at least reconnect.initial (%s), got %s", time.Duration(c.Reconnect.Initial), time.Duration(c.Reconnect.Max))
	}
	return errors.Join(errs...)
}

// maxTokenFile bounds token_file; Home Assistant's tokens are JWTs of about
// 180 bytes.
const maxTokenFile = 16 << 10

// token returns the token: the token key, or the content of token_file
// with the white space around it trimmed.
func (c *Collector) token() (string, error) {
	if c.TokenFile == "" {
		return c.Token, nil
	}
	if c.Token != "" {
		return "", errors.New("token_file: set token or token_file, not both")
	}
	f, err := os.Open(c.TokenFile)
	if err != nil {
		return "", fmt.Errorf("token_file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("token_file: %w", err)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("token_file: %s is larger than %d bytes", c.TokenFile, maxTokenFile)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token_file: %s is empty", c.TokenFile)
	}
	return tok, nil
}

// validToken reports whether s is a Home Assistant domain or object id:
// one or more of a-z, 0-9 and _.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// validPrefix checks a subject prefix: dotted tokens, none empty, none a
// wildcard, no white space.
func validPrefix(p string) error {
	if strings.ContainsAny(p, " \t\r\n") {
		return fmt.Errorf("%q must not contain white space", truncate(p, 80))
	}
	for tok := range strings.SplitSeq(p, ".") {
		switch tok {
		case "":
			return fmt.Errorf("%q has an empty token", truncate(p, 80))
		case "*", ">":
			return fmt.Errorf("%q: wildcards are not allowed in a subject", truncate(p, 80))
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
