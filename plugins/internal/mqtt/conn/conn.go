// Package conn holds what collectors.mqtt and brokers.mqtt share about the
// connection to an MQTT server: the configuration keys (url, client_id,
// credentials, tls, timeouts), their checks, the TLS setup, the dialer, the
// reconnect backoff and the wording of connect errors. It builds an
// autopaho.ClientConfig; it never starts a connection itself.
package conn

import (
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/packets"
)

// Duration is a Go duration in configuration: "30s", "1h".
type Duration time.Duration

// UnmarshalJSON decodes a duration string; negative durations are refused.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"30s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"30s\", got %q", s)
	}
	if v < 0 {
		return fmt.Errorf("want a duration of zero or more, got %q", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON encodes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// TLS configures an mqtts:// connection.
type TLS struct {
	CAFile             string `json:"ca_file"`              // PEM CA bundle to verify the server with (default: the system's)
	CertFile           string `json:"cert_file"`            // PEM client certificate, for servers that require one
	KeyFile            string `json:"key_file"`             // its PEM private key
	ServerName         string `json:"server_name"`          // the name to verify (default: the URL's host)
	InsecureSkipVerify bool   `json:"insecure_skip_verify"` // do not verify the server (tests only)
}

// Options are the connection keys both plugins embed in their configuration.
type Options struct {
	URL            string   `json:"url"`
	ClientID       string   `json:"client_id"`
	Username       string   `json:"username"`
	Password       string   `json:"password"`
	TLS            *TLS     `json:"tls"`
	KeepAlive      Duration `json:"keep_alive"`
	ConnectTimeout Duration `json:"connect_timeout"`
	ReconnectMax   Duration `json:"reconnect_max"`
}

// Defaults of Options.
const (
	DefaultKeepAlive      = 30 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultReconnectMax   = 30 * time.Second
	// firstRetry is the delay before the second attempt after a lost
	// connection; it doubles up to ReconnectMax.
	firstRetry = 250 * time.Millisecond
)

// Link is a checked Options, ready to build clients from.
type Link struct {
	URL            *url.URL
	ClientID       string
	Username       string
	Password       string
	TLS            *tls.Config // nil for mqtt://
	KeepAlive      time.Duration
	ConnectTimeout time.Duration
	ReconnectMax   time.Duration
}

// Prepare checks o, fills in the defaults and loads the TLS files. An empty
// client_id becomes "switchyard-" and random hex.
func (o *Options) Prepare() (*Link, error) {
	u, err := parseURL(o.URL)
	if err != nil {
		return nil, err
	}
	l := &Link{URL: u, ClientID: o.ClientID, Username: o.Username, Password: o.Password,
		KeepAlive: orDefault(o.KeepAlive, DefaultKeepAlive), ConnectTimeout: orDefault(o.ConnectTimeout, DefaultConnectTimeout),
		ReconnectMax: orDefault(o.ReconnectMax, DefaultReconnectMax)}
	switch {
	case len(o.ClientID) > 65535:
		return nil, errors.New("client_id: longer than 65535 bytes")
	case o.Password != "" && o.Username == "":
		return nil, errors.New("password: set without username")
	case l.KeepAlive > 65535*time.Second:
		return nil, errors.New("keep_alive: at most 18h12m15s (65535 s)")
	case l.ReconnectMax < firstRetry:
		return nil, fmt.Errorf("reconnect_max: at least %s", firstRetry)
	}
	if l.ClientID == "" {
		var b [8]byte
		_, _ = crand.Read(b[:])
		l.ClientID = "switchyard-" + hex.EncodeToString(b[:])
	}
	if u.Scheme == "mqtts" {
		l.TLS, err = tlsConfig(o.TLS)
		if err != nil {
			return nil, err
		}
	} else if o.TLS != nil {
		return nil, fmt.Errorf("tls: set, but url %q is not mqtts://", o.URL)
	}
	return l, nil
}

func orDefault(d Duration, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

func parseURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("url: is required, such as mqtt://127.0.0.1:1883")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("url: %q: %v", s, err)
	}
	if u.Scheme != "mqtt" && u.Scheme != "mqtts" {
		return nil, fmt.Errorf("url: want mqtt://host:port or mqtts://host:port, got %q", s)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("url: want only mqtt(s)://host:port (credentials go in username and password), got %q", s)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("url: %q has no host", s)
	}
	if p := u.Port(); p == "" {
		if u.Scheme == "mqtt" {
			u.Host = net.JoinHostPort(u.Hostname(), "1883")
		} else {
			u.Host = net.JoinHostPort(u.Hostname(), "8883")
		}
	} else if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("url: %q: port must be 1 to 65535", s)
	}
	u.Path = ""
	return u, nil
}

func tlsConfig(t *TLS) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t == nil {
		return cfg, nil
	}
	cfg.ServerName = t.ServerName
	cfg.InsecureSkipVerify = t.InsecureSkipVerify
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("tls: cert_file and key_file go together")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Dial opens the network connection of one attempt, bounded by ConnectTimeout.
func (l *Link) Dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, l.ConnectTimeout)
	defer cancel()
	var c net.Conn
	var err error
	if l.TLS != nil {
		d := tls.Dialer{Config: l.TLS}
		c, err = d.DialContext(ctx, "tcp", l.URL.Host)
	} else {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", l.URL.Host)
	}
	if err != nil {
		return nil, err
	}
	return packets.NewThreadSafeConn(c), nil
}

// Backoff is the delay before reconnect attempt n of one outage: none before
// the first, then 250ms doubling up to ReconnectMax, each with up to 20%
// jitter taken off.
func (l *Link) Backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := firstRetry
	for i := 1; i < n && d < l.ReconnectMax; i++ {
		d *= 2
	}
	d = min(d, l.ReconnectMax)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// ClientConfig returns an autopaho configuration for l; the caller adds
// callbacks, session settings and handlers.
func (l *Link) ClientConfig() autopaho.ClientConfig {
	cfg := autopaho.ClientConfig{
		ServerUrls:       []*url.URL{l.URL},
		TlsCfg:           l.TLS,
		KeepAlive:        uint16(l.KeepAlive / time.Second),
		ReconnectBackoff: l.Backoff,
		ConnectTimeout:   l.ConnectTimeout,
		ConnectUsername:  l.Username,
		ConnectPassword:  []byte(l.Password),
		AttemptConnection: func(ctx context.Context, _ autopaho.ClientConfig, _ *url.URL) (net.Conn, error) {
			return l.Dial(ctx)
		},
	}
	cfg.ClientID = l.ClientID
	return cfg
}

// reasons names the CONNACK reason codes of MQTT 5 a server refuses with.
var reasons = map[byte]string{
	0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error",
	0x83: "implementation specific error", 0x84: "unsupported protocol version",
	0x85: "client identifier not valid", 0x86: "bad user name or password", 0x87: "not authorized",
	0x88: "server unavailable", 0x89: "server busy", 0x8A: "banned", 0x8C: "bad authentication method",
	0x90: "topic name invalid", 0x95: "packet too large", 0x97: "quota exceeded",
	0x9C: "use another server", 0x9D: "server moved", 0x9F: "connection rate exceeded",
}

// ReasonText names an MQTT 5 reason code.
func ReasonText(code byte) string {
	if s, ok := reasons[code]; ok {
		return s
	}
	return "reason " + strconv.Itoa(int(code))
}

// ConnectError rewords an error of one connect attempt (as autopaho's
// OnConnectError reports it) for an operator, and reports whether retrying
// cannot help: the server refused the credentials or the client id, or the
// server's certificate does not verify.
func (l *Link) ConnectError(err error) (error, bool) {
	var cerr *autopaho.ConnackError
	if errors.As(err, &cerr) {
		permanent := false
		switch cerr.ReasonCode {
		case 0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C:
			permanent = true
		}
		msg := fmt.Sprintf("%s: connect: refused by the server: %s (reason code 0x%02X)", l.URL, ReasonText(cerr.ReasonCode), cerr.ReasonCode)
		if cerr.Reason != "" {
			msg += ": " + cerr.Reason
		}
		return errors.New(msg), permanent
	}
	var verr *tls.CertificateVerificationError
	if errors.As(err, &verr) {
		return fmt.Errorf("%s: connect: the server's TLS certificate does not verify (set tls.ca_file or tls.server_name): %w", l.URL, verr.Err), true
	}
	return fmt.Errorf("%s: connect: %w", l.URL, err), false
}
