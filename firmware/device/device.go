package device

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Config describes one device.
type Config struct {
	// URL is the relay's device endpoint: ws://host:port/ws/device or wss://….
	URL string
	// Token is the device token, sent as "Authorization: Bearer <token>" on
	// the upgrade and on downloads.
	Token string
	// Model and Firmware are said in hello. Firmware is the running version
	// at start; after an install it becomes what Boot returns.
	Model    string
	Firmware string
	// Capabilities are said in hello; "ota" is added when Slot is set.
	Capabilities []string
	// TrustedKeys are the Ed25519 keys a manifest may be signed with; the
	// offer names one by manifest.KeyID.
	TrustedKeys []ed25519.PublicKey
	// Slot is the file an image is downloaded into; a partial download is
	// resumed from it (Slot+".meta" records which image the bytes belong
	// to). Empty: the device does not do OTA ("ota" is not said and offers
	// are ignored).
	Slot string
	// MaxImageSize is the update slot's size: an offer for a larger image is
	// refused (0: DefaultMaxImageSize).
	MaxImageSize int64
	// HTTPClient downloads images. Nil: a shared client with connect,
	// TLS and response-header timeouts that does not follow redirects.
	HTTPClient *http.Client
	// TLSConfig is used for wss:// (and, when HTTPClient is nil, for https
	// downloads). Nil: the system roots.
	TLSConfig *tls.Config
	// Install is called with the verified image in slot, after the device
	// reported "installing". Nil: succeed. An error is reported as
	// "failed" with reason "install: <error>".
	Install func(m Manifest, slot string) error
	// Boot returns the version the device comes back with after Install
	// succeeded (a bootloader that rolls back returns the old one). Nil or
	// an empty result: m.Version.
	Boot func(m Manifest) string
	// OnEvent, when set, is told of every connection, close, offer, status
	// sent, boot, relay message and relay error. It is called synchronously
	// from the device's goroutines (one event at a time per device, in
	// order) and must return quickly.
	OnEvent func(Event)
	// Logger receives the device's logs. Nil: discarded.
	Logger *slog.Logger
}

// Event kinds.
const (
	EventConnected     = "connected"      // welcome received; Version is the firmware said in hello, Session the session id
	EventConnectFailed = "connect_failed" // the upgrade failed; Reason says why, CloseCode is the HTTP status (0: no answer)
	EventClosed        = "closed"         // the session ended; CloseCode (1006 when no close frame came) and Reason
	EventOffer         = "offer"          // a firmware_offer arrived; Version as claimed by the manifest, Reason empty when acted on, else why not
	EventStatus        = "status"         // a firmware_status was sent; Version, Status, Progress, Reason as sent
	EventBooted        = "booted"         // the device "restarted" after an install; Version is what Boot returned, Reason says when it is not the manifest's
	EventMessage       = "message"        // a message frame arrived; Frame holds it
	EventAck           = "ack"            // the relay acknowledged a data frame; Frame holds it
	EventError         = "error"          // the relay sent an error frame; Reason is "code: message", Frame holds it
)

// Event is something a device did or saw, for tests and tools.
type Event struct {
	Kind      string
	Version   string
	Status    string
	Progress  int64
	Reason    string
	CloseCode int
	Session   string
	Frame     []byte // message, ack, error: the frame as received
	Time      time.Time
}

// CloseError is returned by Run when the relay closed the session with a
// code that forbids reconnecting with the same token (4003) or at all
// (4004).
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("device: closed by the relay with %d %q; not reconnecting", e.Code, e.Reason)
}

// RefusedError is an upgrade the relay refused (§1). Run returns it for a
// 401, which must not be retried without a new token; it retries others.
type RefusedError struct {
	Status     int    // HTTP status
	Code       string // error.code of the body, when there was one
	Message    string // error.message of the body
	RetryAfter time.Duration
}

func (e *RefusedError) Error() string {
	s := fmt.Sprintf("upgrade refused: %d %s", e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		s += " (" + e.Code
		if e.Message != "" {
			s += ": " + e.Message
		}
		s += ")"
	}
	return s
}

// ErrNotConnected is returned by Send when the device has no session.
var ErrNotConnected = errors.New("device: not connected")

// Device is one device speaking protocol v1. Create it with New and start
// it with Run.
type Device struct {
	cfg     Config
	wsURL   *url.URL
	httpURL *url.URL // the download base: the endpoint with http(s)
	dialer  *websocket.Dialer
	client  *http.Client
	log     *slog.Logger
	caps    []string

	firmware atomic.Pointer[string]
	running  atomic.Bool

	mu  sync.Mutex
	cur *session // the session that got a welcome, for Send

	evMu sync.Mutex // serializes OnEvent

	// Tunables; tests shorten them.
	backoffBase  time.Duration // first reconnect delay (§6: 1 s)
	backoffMax   time.Duration // (§6: 60 s)
	retryBase    time.Duration // first delay before resuming a cut download
	writeTimeout time.Duration
	helloTimeout time.Duration
	stallTimeout time.Duration // a download with no byte for this long is cut
}

// Limits of hello's members (§2.1).
const (
	maxStringLen     = 64
	maxCapabilities  = 32
	maxReasonLen     = 256
	maxDownloadCuts  = 10 // resumptions after a cut or a 5xx, then failed
	maxDownloadBusy  = 30 // 503 answers honoured, then failed
	maxRetryAfter    = 10 * time.Minute
	defaultHeartbeat = 30 * time.Second
)

var (
	// sharedWriteBuffers lets idle devices hold no write buffer.
	sharedWriteBuffers = &sync.Pool{}

	defaultDialer = &websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   2048,
		WriteBufferSize:  2048,
		WriteBufferPool:  sharedWriteBuffers,
	}
	defaultClient = newHTTPClient(nil)
)

func newHTTPClient(tc *tls.Config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       tc,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   16,
			ForceAttemptHTTP2:     true,
		},
		// The image is on the endpoint's host and port (§8.4): the token
		// is not sent anywhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// New checks c and returns a device ready to Run.
func New(c Config) (*Device, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("device: URL: %v", err)
	}
	hu := *u
	switch u.Scheme {
	case "ws":
		hu.Scheme = "http"
	case "wss":
		hu.Scheme = "https"
	default:
		return nil, fmt.Errorf("device: URL %q: scheme must be ws or wss", c.URL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("device: URL %q has no host", c.URL)
	}
	hu.Path, hu.RawPath, hu.RawQuery, hu.Fragment = "", "", "", ""
	if c.Token == "" {
		return nil, errors.New("device: Token is required")
	}
	for name, s := range map[string]string{"Model": c.Model, "Firmware": c.Firmware} {
		if s != "" && !validHelloString(s) {
			return nil, fmt.Errorf("device: %s %q must be 1-64 bytes without control characters", name, s)
		}
	}
	caps := append([]string{}, c.Capabilities...) // [] rather than null in hello
	if c.Slot != "" && !slices.Contains(caps, "ota") {
		caps = append(caps, "ota")
	}
	if len(caps) > maxCapabilities {
		return nil, fmt.Errorf("device: at most %d capabilities", maxCapabilities)
	}
	for _, s := range caps {
		if !validHelloString(s) {
			return nil, fmt.Errorf("device: capability %q must be 1-64 bytes without control characters", s)
		}
	}
	if c.MaxImageSize <= 0 {
		c.MaxImageSize = DefaultMaxImageSize
	}
	d := &Device{
		cfg: c, wsURL: u, httpURL: &hu, caps: caps,
		dialer: defaultDialer, client: c.HTTPClient, log: c.Logger,
		backoffBase: time.Second, backoffMax: 60 * time.Second, retryBase: 250 * time.Millisecond,
		writeTimeout: 10 * time.Second, helloTimeout: 10 * time.Second, stallTimeout: 60 * time.Second,
	}
	if c.TLSConfig != nil {
		dl := *defaultDialer
		dl.TLSClientConfig = c.TLSConfig
		d.dialer = &dl
	}
	if d.client == nil {
		d.client = defaultClient
		if c.TLSConfig != nil {
			d.client = newHTTPClient(c.TLSConfig)
		}
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	fw := c.Firmware
	d.firmware.Store(&fw)
	return d, nil
}

func validHelloString(s string) bool {
	if len(s) == 0 || len(s) > maxStringLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// Firmware returns the running version: Config.Firmware until an install,
// then what Boot returned.
func (d *Device) Firmware() string { return *d.firmware.Load() }

// Send sends a data frame on the current session (§2.1): payload is
// encoded as JSON; id, when not empty, asks the relay for an ack (an
// EventAck). It fails with ErrNotConnected between sessions.
func (d *Device) Send(stream string, payload any, id string) error {
	d.mu.Lock()
	s := d.cur
	d.mu.Unlock()
	if s == nil {
		return ErrNotConnected
	}
	p, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("device: payload: %w", err)
	}
	return s.write(dataFrame{Type: "data", Stream: stream, Payload: p, ID: id})
}

func (d *Device) emit(e Event) {
	if d.cfg.OnEvent == nil {
		return
	}
	e.Time = time.Now()
	d.evMu.Lock()
	defer d.evMu.Unlock()
	d.cfg.OnEvent(e)
}

// Run connects, says hello, heartbeats at the welcome's interval, answers
// frames and acts on firmware offers, and reconnects as §4 and §6 ask:
// with exponential backoff (1 s doubling to 60 s, plus up to half again of
// jitter) after a failure, after the hinted delay plus jitter after a 1001,
// at once after 4008 or 4029, after Retry-After for a 503. After an install
// it closes with 1000 and reconnects at once, saying hello with the version
// Boot returned.
//
// Run returns nil when ctx ends (after closing the session with 1000), a
// *CloseError when the relay closed with 4003 or 4004, and a *RefusedError
// when the upgrade was refused with 401. It returns only after every
// goroutine it started has ended. A Device runs at most one Run at a time.
func (d *Device) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("device: Run is already running")
	}
	defer d.running.Store(false)
	fails := 0
	for {
		e := d.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if e.fatal != nil {
			return e.fatal
		}
		if !sleep(ctx, d.reconnectDelay(e, &fails)) {
			return nil
		}
	}
}

// ending is how a session ended.
type ending struct {
	welcomed   bool
	code       int // close code received; 1006 when none
	reason     string
	retryAfter time.Duration // from a 503 refusal
	restart    bool          // the device installed an image and "restarted"
	fatal      error         // Run must stop
}

var reconnectIn = regexp.MustCompile(`reconnect in ([0-9][0-9a-zµ.]*)`)

// reconnectDelay applies §4 and §6 to how a session ended. fails counts
// the failures since the last good session.
func (d *Device) reconnectDelay(e ending, fails *int) time.Duration {
	if e.restart {
		*fails = 0
		return 0
	}
	if e.welcomed {
		switch e.code {
		case 4008, 4029: // reconnect at once
			*fails = 0
			return 0
		case websocket.CloseGoingAway:
			*fails = 0
			if m := reconnectIn.FindStringSubmatch(e.reason); m != nil {
				if hint, err := time.ParseDuration(strings.TrimRight(m[1], ".")); err == nil && hint >= 0 {
					hint = min(hint, time.Hour)
					return hint + jitter(hint)
				}
			}
			*fails = 1
		case websocket.CloseProtocolError, websocket.CloseUnsupportedData, websocket.CloseInvalidFramePayloadData, 4000, 4002:
			// The relay objects to this firmware: keep backing off, a
			// reconnect would end the same way.
			*fails++
		default:
			*fails = 1
		}
	} else {
		*fails++
		if e.retryAfter > 0 {
			return e.retryAfter + jitter(e.retryAfter)
		}
	}
	return d.backoff(*fails)
}

// backoff is the delay before attempt n (n ≥ 1): base·2^(n-1) up to the
// maximum, plus a jitter of up to half of it.
func (d *Device) backoff(n int) time.Duration {
	delay := d.backoffBase
	for i := 1; i < n && delay < d.backoffMax; i++ {
		delay *= 2
	}
	delay = min(delay, d.backoffMax)
	return delay + jitter(delay/2)
}

// jitter is a random duration in [0, max].
func jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return rand.N(max + 1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// parseRetryAfter reads a Retry-After header: delta-seconds or an HTTP
// date; 0 when absent or unreadable.
func parseRetryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		return min(time.Duration(n)*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), maxRetryAfter)
	}
	return 0
}

// truncReason makes s a valid firmware_status reason: 1–256 bytes, cut on
// a UTF-8 boundary.
func truncReason(s string) string {
	if s == "" {
		return "unknown error"
	}
	if len(s) <= maxReasonLen {
		return s
	}
	cut := maxReasonLen
	for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		cut--
	}
	return s[:cut]
}
