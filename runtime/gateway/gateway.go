package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/firmware"
	"github.com/switchyard/switchyard/runtime/config"
)

// Errors of the gateway's API, for errors.Is.
var (
	// ErrUnknownToken: an Authenticator knows no device with this token.
	ErrUnknownToken = errors.New("unknown device token")
	// ErrRevoked: an Authenticator knows the token, but its device is revoked.
	ErrRevoked = errors.New("device revoked")
	// ErrNotConnected: the device has no session that completed its hello.
	ErrNotConnected = errors.New("device not connected")
	// ErrQueueFull: the device's send queue is full (drop_newest and
	// disconnect policies).
	ErrQueueFull = errors.New("device send queue full")
	// ErrTooLarge: the encoded message frame exceeds max_frame_size.
	ErrTooLarge = errors.New("message frame larger than max_frame_size")
	// ErrInvalidMessage: an Outbound lacks a field or its payload is not JSON.
	ErrInvalidMessage = errors.New("invalid message")
)

// Overflow policies (config key gateway.send_overflow).
const (
	OverflowDropOldest = "drop_oldest"
	OverflowDropNewest = "drop_newest"
	OverflowDisconnect = "disconnect"
)

// DefaultReconnectHint is the delay a shutting-down relay tells devices to
// wait before reconnecting when Options.ReconnectHint is zero.
const DefaultReconnectHint = 5 * time.Second

const (
	// tlsMaxRecord is the largest TLS record plaintext (RFC 8446 5.1).
	tlsMaxRecord = 16 << 10
	// handshakeHeadroom is how many TCP connections beyond MaxConnections
	// nbio accepts, so that handshakes over the limit still get their 503.
	handshakeHeadroom = 256
)

// Identity is the device a token belongs to.
type Identity struct {
	Tenant, Device, Model string
	// Labels are read for SendMatching for as long as the session lasts; an
	// Authenticator must not modify a map it has returned.
	Labels map[string]string
}

// Authenticator resolves a bearer token from memory. It returns
// ErrUnknownToken or ErrRevoked (possibly wrapped); any other error refuses
// the handshake with 503. It must be safe for concurrent use and must not
// block: it runs on nbio's handler goroutines.
type Authenticator interface {
	Authenticate(token string) (Identity, error)
}

// SeenRecorder receives liveness: at hello (with the firmware the device
// reported), at most once per LastSeenFlush while the device is active, and
// when its session ends. firmware is empty when unchanged. The caller
// batches writes to the store. It must be safe for concurrent use.
type SeenRecorder interface {
	Seen(tenant, device string, at time.Time, firmware string)
}

// DataHandler receives data frames from devices (subject
// DataSubject(id.Device, stream)). It must not block and must be safe for
// concurrent use; payload is the caller's to keep.
type DataHandler interface {
	DeviceData(id Identity, stream string, payload json.RawMessage, at time.Time)
}

// AckHandler receives a device's ack of a message sent with Ack set.
type AckHandler interface {
	DeviceAck(id Identity, messageID string, at time.Time)
}

// Options configure a Gateway.
type Options struct {
	Config config.Gateway
	Auth   Authenticator // required
	Seen   SeenRecorder  // required
	Data   DataHandler   // required
	Acks   AckHandler    // optional: acks are then only counted
	// Firmware, when set, is the update service: devices are offered
	// firmware, report on it, and download images from this listener.
	Firmware Firmware
	// Downloads bound the image downloads served at once (with Firmware).
	Downloads DownloadLimits
	Logger    *slog.Logger // nil: slog.Default()
	// Registerer receives the gateway's metrics; nil: they are not exported.
	Registerer prometheus.Registerer
	// ReconnectHint is announced in the 1001 close at shutdown; zero:
	// DefaultReconnectHint.
	ReconnectHint time.Duration
}

// Outbound is a message for a device; it becomes a "message" frame.
type Outbound struct {
	ID      string          // required: 1–64 bytes; the device acks with it
	Subject string          // required
	Time    time.Time       // zero: now
	Payload json.RawMessage // required: any JSON value
	Ack     bool            // ask the device to ack
}

// SessionInfo describes one device session.
type SessionInfo struct {
	Device       string    `json:"device"`
	Session      string    `json:"session"`
	RemoteAddr   string    `json:"remote_addr"`
	ConnectedAt  time.Time `json:"connected_at"`
	LastSeen     time.Time `json:"last_seen"`
	State        string    `json:"state"` // awaiting_hello, ready or closing
	Model        string    `json:"model,omitempty"`
	Firmware     string    `json:"firmware,omitempty"`
	Capabilities []string  `json:"capabilities,omitempty"`
	QueueLength  int       `json:"queue_length"`  // message frames waiting in the relay
	PendingBytes int64     `json:"pending_bytes"` // bytes handed to the socket layer, not yet sent
}

// Gateway is the device WebSocket server.
type Gateway struct {
	cfg      config.Gateway
	auth     Authenticator
	seen     SeenRecorder
	data     DataHandler
	acks     AckHandler
	fw       Firmware
	dl       *downloads
	log      *slog.Logger
	m        *metrics
	hint     time.Duration
	tls      *tls.Config
	upgrader *websocket.Upgrader
	tick     time.Duration

	engine *nbhttp.Engine
	ln     *listener
	race   raceEdge // only in -race builds; see race_on.go

	mu      sync.RWMutex
	tenants map[string]map[string]*session // tenant → device → session
	started bool
	// startedAt is when the engine started (see engineSettle).
	startedAt time.Time
	stopping  bool

	// closingMu is a leaf lock (taken under session.mu).
	closingMu sync.Mutex
	closing   map[*session]struct{}

	draining  atomic.Bool
	reserved  atomic.Int64 // admitted handshakes + sessions not yet finished
	active    atomic.Int64 // upgraded sessions not yet finished
	drained   chan struct{}
	drainOnce sync.Once
	stop      chan struct{}
	swept     chan struct{}
}

// New checks the options and returns a gateway that is not listening yet.
func New(o Options) (*Gateway, error) {
	if o.Auth == nil || o.Seen == nil || o.Data == nil {
		return nil, errors.New("gateway: Options.Auth, Options.Seen and Options.Data are required")
	}
	if err := validate(o.Config); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g := &Gateway{
		cfg:     o.Config,
		auth:    o.Auth,
		seen:    o.Seen,
		data:    o.Data,
		acks:    o.Acks,
		fw:      o.Firmware,
		log:     o.Logger,
		hint:    o.ReconnectHint,
		tenants: map[string]map[string]*session{},
		closing: map[*session]struct{}{},
		drained: make(chan struct{}),
		stop:    make(chan struct{}),
		swept:   make(chan struct{}),
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	if g.hint <= 0 {
		g.hint = DefaultReconnectHint
	}
	if c := o.Config.TLS; c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("gateway: tls: load %s and %s: %w", c.CertFile, c.KeyFile, err)
		}
		g.tls = &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
			// AEAD suites only, and fixed-size records: the overhead of
			// every record is then known (see session.wireSize).
			CipherSuites: []uint16{
				tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
				tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
				tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,
			},
			DynamicRecordSizingDisabled: true,
		}
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.m = m
	g.tick = sweepTick(o.Config)
	if g.fw != nil {
		if g.dl, err = newDownloads(o.Downloads, o.Registerer); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}

	u := websocket.NewUpgrader()
	u.KeepaliveTime = 0 // liveness is the sweeper's job: no timer per connection
	u.MessageLengthLimit = int(o.Config.MaxFrameSize)
	u.ReleasePayload = true
	// Devices authenticate with a token, never with ambient cookies, so a
	// browser's Origin carries no authority: any origin may connect.
	u.CheckOrigin = func(*http.Request) bool { return true }
	u.OnMessage(g.onMessage)
	u.OnClose(g.onClose)
	u.SetPingHandler(g.onPing)
	u.SetPongHandler(g.onPong)
	u.SetCloseHandler(g.onPeerClose)
	g.upgrader = u
	return g, nil
}

func validate(c config.Gateway) error {
	switch {
	case c.Listen == "":
		return errors.New("listen is required")
	case !strings.HasPrefix(c.Path, "/"):
		return fmt.Errorf("path %q must start with \"/\"", c.Path)
	case c.MaxConnections < 1:
		return fmt.Errorf("max_connections must be at least 1, got %d", c.MaxConnections)
	case c.MaxFrameSize < 1<<10 || c.MaxFrameSize > 1<<30:
		return fmt.Errorf("max_frame_size must be between 1KiB and 1GiB, got %d bytes", c.MaxFrameSize)
	case c.SendQueue < 1:
		return fmt.Errorf("send_queue must be at least 1, got %d", c.SendQueue)
	case c.HeartbeatInterval <= 0:
		return fmt.Errorf("heartbeat_interval must be positive, got %s", c.HeartbeatInterval)
	case c.HeartbeatTimeout <= c.HeartbeatInterval:
		return fmt.Errorf("heartbeat_timeout (%s) must be longer than heartbeat_interval (%s)", c.HeartbeatTimeout, c.HeartbeatInterval)
	case c.HelloTimeout <= 0:
		return fmt.Errorf("hello_timeout must be positive, got %s", c.HelloTimeout)
	case c.DrainTimeout <= 0:
		return fmt.Errorf("drain_timeout must be positive, got %s", c.DrainTimeout)
	case c.LastSeenFlush <= 0:
		return fmt.Errorf("last_seen_flush must be positive, got %s", c.LastSeenFlush)
	case (c.TLS.CertFile == "") != (c.TLS.KeyFile == ""):
		return errors.New("tls.cert_file and tls.key_file must be set together")
	}
	switch c.SendOverflow {
	case OverflowDropOldest, OverflowDropNewest, OverflowDisconnect:
	default:
		return fmt.Errorf("send_overflow %q must be %s, %s or %s", c.SendOverflow, OverflowDropOldest, OverflowDropNewest, OverflowDisconnect)
	}
	return nil
}

// sweepTick is how often the sweeper checks timeouts: an eighth of the
// shortest timeout, between 5 ms and 250 ms.
func sweepTick(c config.Gateway) time.Duration {
	return min(max(min(c.HelloTimeout, c.HeartbeatTimeout, closeLinger)/8, 5*time.Millisecond), 250*time.Millisecond)
}

// Start listens on Config.Listen and serves devices until Shutdown.
func (g *Gateway) Start() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.stopping:
		return errors.New("gateway: shut down; create a new gateway")
	case g.started:
		return errors.New("gateway: already started")
	}
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("gateway: listen on %s: %w", g.cfg.Listen, err)
	}
	g.ln = newListener(ln, g.log)
	frame := int(g.cfg.MaxFrameSize)
	conf := nbhttp.Config{
		Name:          "switchyard-gateway",
		Network:       "tcp",
		Listen:        func(string, string) (net.Listener, error) { return g.ln, nil },
		MaxLoad:       g.cfg.MaxConnections + handshakeHeadroom,
		KeepaliveTime: g.cfg.HelloTimeout, // bounds a connection that has not upgraded
		// The bytes nbio may hold unparsed: an incomplete frame (header
		// included) plus one read.
		ReadLimit:         frame + 14 + nbio.DefaultReadBufferSize,
		MaxHTTPBodySize:   4 << 10,
		SupportServerOnly: true,
		// One frame per WriteMessage (see session.wireSize).
		MaxWebsocketFramePayloadSize: frame,
		// The hard cap behind the send queue: at most one queued frame and
		// the protocol answers sit in nbio's buffer. A device that sends but
		// never reads is cut off (without a close frame) beyond it.
		MaxWriteBufferSize:      2*frame + 64<<10,
		ReleaseWebsocketPayload: true,
		Handler:                 http.HandlerFunc(g.handshake),
	}
	if g.tls != nil {
		conf.AddrsTLS = []string{ln.Addr().String()}
		conf.TLSConfig = g.tls
	} else {
		conf.Addrs = []string{ln.Addr().String()}
	}
	e := nbhttp.NewEngine(conf)
	// UTF-8 is checked by the frame decoder, which closes with 1007 (nbio
	// would close with 1002).
	e.CheckUtf8 = func([]byte) bool { return true }
	e.OnWrittenSize(g.onWritten)
	if raceEnabled {
		e.OnOpen(func(net.Conn) { g.race.release() })
		e.Engine.OnData(func(c *nbio.Conn, data []byte) {
			g.race.acquire()
			c.DataHandler()(c, data)
		})
	}
	g.upgrader.Engine = e
	g.engine = e // before Start: onWritten reads it from nbio's goroutines
	if err := e.Start(); err != nil {
		_ = g.ln.Close()
		g.engine, g.ln = nil, nil
		return fmt.Errorf("gateway: start engine: %w", err)
	}
	g.started, g.startedAt = true, time.Now()
	go g.sweep()
	g.log.Info("gateway listening", "addr", ln.Addr().String(), "path", g.cfg.Path, "tls", g.tls != nil,
		"max_connections", g.cfg.MaxConnections, "send_overflow", g.cfg.SendOverflow)
	return nil
}

// engineSettle is how long after Start the engine may be stopped: time for
// nbio's poller goroutines to begin (see Shutdown).
const engineSettle = 100 * time.Millisecond

// Addr returns the bound address, or nil before Start.
func (g *Gateway) Addr() net.Addr {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.ln == nil {
		return nil
	}
	return g.ln.Addr()
}

// Connections returns the number of open device sessions.
func (g *Gateway) Connections() int { return int(g.active.Load()) }

// Shutdown stops accepting, sends every device a 1001 close whose reason
// carries the reconnect hint (after the frames already queued for it), and
// waits for the devices to close, at most DrainTimeout or until ctx ends;
// then it drops the remaining connections and stops the engine. It returns
// ctx's error if ctx ended first. Calling it again, or before Start, does
// nothing.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	wasRunning := g.started && !g.stopping
	g.stopping = true
	if !wasRunning {
		g.mu.Unlock()
		return nil
	}
	g.draining.Store(true)
	var open []*session
	for _, devices := range g.tenants {
		for _, s := range devices {
			open = append(open, s)
		}
	}
	g.mu.Unlock()
	g.ln.stopAccepting()

	deadline := time.Now().Add(g.cfg.DrainTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	g.log.Info("gateway draining", "sessions", len(open), "deadline", deadline.Format(time.RFC3339Nano))
	reason := "shutdown; reconnect in " + g.hint.String()
	for _, s := range open {
		s.close(CloseGoingAway, reason, true, deadline)
	}
	if g.active.Load() == 0 {
		g.drainOnce.Do(func() { close(g.drained) })
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-g.drained:
	case <-timer.C:
	case <-ctx.Done():
	}

	close(g.stop)
	<-g.swept
	left := g.snapshot()
	if len(left) > 0 {
		g.log.Warn("gateway: devices did not close in time; dropping them", "sessions", len(left))
	}
	for _, s := range left {
		g.finish(s, nil)
		_ = s.ws.Close()
	}

	// nbio's poller loops clear their shutdown flag when they begin (v1.6.12
	// and its main branch, poller_epoll.go): a Stop that comes before each
	// poller goroutine has first run is lost, and Stop never returns.
	if wait := time.Until(g.startedAt.Add(engineSettle)); wait > 0 {
		time.Sleep(wait)
	}
	stopped := make(chan struct{})
	go func() {
		g.engine.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
		g.log.Info("gateway stopped")
	case <-ctx.Done():
		g.log.Warn("gateway: engine did not stop before the shutdown deadline")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	// The drain timer and ctx's own may fire at the same instant: past
	// ctx's deadline is past it, whether or not ctx has noticed yet.
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return fmt.Errorf("gateway: shutdown: %w", context.DeadlineExceeded)
	}
	return nil
}

// snapshot returns every session not finished yet.
func (g *Gateway) snapshot() []*session {
	var all []*session
	g.mu.RLock()
	for _, devices := range g.tenants {
		for _, s := range devices {
			all = append(all, s)
		}
	}
	g.mu.RUnlock()
	g.closingMu.Lock()
	for s := range g.closing {
		if s.state.Load() == stateClosing && !slices.Contains(all, s) {
			all = append(all, s)
		}
	}
	g.closingMu.Unlock()
	return all
}

// Send queues m for one device.
func (g *Gateway) Send(tenant, device string, m Outbound) error {
	frame, err := g.encodeMessage(m)
	if err != nil {
		return fmt.Errorf("gateway: send to %s/%s: %w", tenant, device, err)
	}
	s := g.lookup(tenant, device)
	if s == nil {
		return fmt.Errorf("gateway: send to %s/%s: %w", tenant, device, ErrNotConnected)
	}
	if err := s.enqueue(frame); err != nil {
		return fmt.Errorf("gateway: send to %s/%s: %w", tenant, device, err)
	}
	return nil
}

// SendMatching queues m for every ready device of tenant whose labels
// contain all of selector (an empty selector matches every device) and
// returns how many devices accepted it. m is encoded once; all devices share
// the frame. A message that cannot be encoded reaches nobody (0).
func (g *Gateway) SendMatching(tenant string, selector map[string]string, m Outbound) int {
	frame, err := g.encodeMessage(m)
	if err != nil {
		g.log.Warn("gateway: message not sent", "tenant", tenant, "err", err)
		return 0
	}
	var targets []*session
	g.mu.RLock()
	for _, s := range g.tenants[tenant] {
		if matches(s.id.Labels, selector) {
			targets = append(targets, s)
		}
	}
	g.mu.RUnlock()
	n := 0
	for _, s := range targets {
		if s.enqueue(frame) == nil {
			n++
		}
	}
	return n
}

func matches(labels, selector map[string]string) bool {
	for k, v := range selector {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

// Disconnect closes a device's session with code and reason (at most 123
// bytes); queued frames are dropped. It reports whether there was a session.
// A code the protocol cannot send (outside 1000, 1001, 1008, 1011,
// 3000–4999) is replaced by 1008 (policy violation).
func (g *Gateway) Disconnect(tenant, device string, code int, reason string) bool {
	s := g.lookup(tenant, device)
	if s == nil {
		return false
	}
	if !(code == CloseNormal || code == CloseGoingAway || code == 1008 || code == 1011 || (code >= 3000 && code <= 4999)) {
		g.log.Warn("gateway: invalid close code replaced by 1008", "code", code, "tenant", tenant, "device", device)
		code = 1008
	}
	s.close(code, reason, false, time.Now().Add(closeLinger))
	return true
}

// Sessions lists the sessions of tenant, ordered by device.
func (g *Gateway) Sessions(tenant string) []SessionInfo {
	g.mu.RLock()
	list := make([]SessionInfo, 0, len(g.tenants[tenant]))
	for _, s := range g.tenants[tenant] {
		list = append(list, s.info())
	}
	g.mu.RUnlock()
	slices.SortFunc(list, func(a, b SessionInfo) int { return strings.Compare(a.Device, b.Device) })
	return list
}

func (g *Gateway) lookup(tenant, device string) *session {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.tenants[tenant][device]
}

func (g *Gateway) encodeMessage(m Outbound) ([]byte, error) {
	switch {
	case checkText(m.ID) != nil:
		return nil, fmt.Errorf("%w: id must be 1-%d bytes without control characters", ErrInvalidMessage, maxTextField)
	case m.Subject == "":
		return nil, fmt.Errorf("%w: subject is required", ErrInvalidMessage)
	case len(m.Payload) == 0:
		return nil, fmt.Errorf("%w: payload is required (any JSON value)", ErrInvalidMessage)
	}
	t := m.Time
	if t.IsZero() {
		t = time.Now()
	}
	frame, err := json.Marshal(messageFrame{Type: "message", ID: m.ID, Subject: m.Subject, Time: formatTime(t), Payload: m.Payload, Ack: m.Ack})
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not valid JSON", ErrInvalidMessage)
	}
	if int64(len(frame)) > int64(g.cfg.MaxFrameSize) {
		return nil, fmt.Errorf("%w: %d bytes, max_frame_size is %d", ErrTooLarge, len(frame), g.cfg.MaxFrameSize)
	}
	return frame, nil
}

// handshake authenticates an upgrade request and upgrades it. Every refusal
// is an HTTP error with a JSON body, before any WebSocket frame.
func (g *Gateway) handshake(w http.ResponseWriter, r *http.Request) {
	if g.fw != nil && strings.HasPrefix(r.URL.Path, firmware.DownloadPath) {
		g.download(w, r)
		return
	}
	if r.URL.Path != g.cfg.Path {
		g.refuse(w, r, http.StatusNotFound, refusedNotFound, "not_found", fmt.Sprintf("no device endpoint at %q", r.URL.Path))
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		g.refuse(w, r, http.StatusMethodNotAllowed, refusedBadRequest, "method_not_allowed", "the device endpoint only accepts GET with a WebSocket upgrade")
		return
	}
	if g.draining.Load() {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(g.hint.Round(time.Second), time.Second)/time.Second)))
		g.refuse(w, r, http.StatusServiceUnavailable, refusedShuttingDown, "shutting_down", "the relay is shutting down; reconnect in "+g.hint.String())
		return
	}
	id, ok := g.authenticate(r, func(status int, reason, code, message string) {
		g.refuse(w, r, status, reason, code, message)
	})
	if !ok {
		return
	}
	if problem := upgradeProblem(r); problem != "" {
		g.refuse(w, r, http.StatusBadRequest, refusedBadRequest, "bad_request", problem)
		return
	}
	if g.reserved.Add(1) > int64(g.cfg.MaxConnections) {
		g.reserved.Add(-1)
		g.refuse(w, r, http.StatusServiceUnavailable, refusedTooMany, "too_many_connections",
			fmt.Sprintf("the relay holds its maximum of %d device connections", g.cfg.MaxConnections))
		return
	}
	ws, err := g.upgrader.Upgrade(w, r, nil)
	if err != nil {
		g.reserved.Add(-1)
		g.m.refused.WithLabelValues(refusedBadRequest).Inc()
		g.log.Debug("gateway: upgrade failed", "tenant", id.Tenant, "device", id.Device, "err", err)
		return
	}
	now := time.Now()
	s := &session{g: g, ws: ws, id: id, sid: rand.Uint64(), connected: now.UnixNano(), tlsOverhead: tlsOverhead(ws)}
	s.lastActivity.Store(now.UnixNano())
	// Upgrade cleared the pre-upgrade read deadline; nbio may arm it again
	// late (see listener.settled). Clear it again now if nbio is done with
	// this connection, else let the sweeper do it once it is.
	if mark := g.ln.mark(); g.ln.settled(mark) {
		_ = ws.SetReadDeadline(time.Time{})
	} else {
		s.acceptMark.Store(mark)
	}
	ws.SetSession(s)
	g.active.Add(1)
	g.m.connections.Inc()
	g.register(s)
	g.log.Debug("device connected", "tenant", id.Tenant, "device", id.Device, "session", s.sessionID(), "remote", r.RemoteAddr)
}

// register enters s in the session table. A previous session of the same
// device is closed with 4004: the newer connection wins. A session that
// arrives while the gateway drains is closed with 1001 at once.
func (g *Gateway) register(s *session) {
	g.mu.Lock()
	devices := g.tenants[s.id.Tenant]
	if devices == nil {
		devices = map[string]*session{}
		g.tenants[s.id.Tenant] = devices
	}
	old := devices[s.id.Device]
	devices[s.id.Device] = s
	draining := g.stopping
	g.mu.Unlock()
	if old != nil {
		old.close(CloseReplaced, "replaced by a newer connection", false, time.Now().Add(closeLinger))
	}
	if draining {
		s.close(CloseGoingAway, "shutdown; reconnect in "+g.hint.String(), false, time.Now().Add(closeLinger))
	}
}

func (g *Gateway) trackClosing(s *session) {
	g.closingMu.Lock()
	g.closing[s] = struct{}{}
	g.closingMu.Unlock()
}

// finish releases everything a session holds; it runs once, when nbio
// reports the connection closed or when Shutdown drops it.
func (g *Gateway) finish(s *session, err error) {
	if !s.finished.CompareAndSwap(false, true) {
		return
	}
	s.mu.Lock()
	s.state.Store(stateClosing)
	s.dropQueueLocked()
	greeted := s.greeted
	code := int(s.closeCode)
	if code == 0 {
		code = int(s.peerCode)
	}
	s.mu.Unlock()
	if code == 0 {
		code = 1006 // no close frame either way
		if errors.Is(err, websocket.ErrMessageTooLarge) || errors.Is(err, websocket.ErrControlMessageTooBig) {
			code = CloseTooBig // nbio sent it while parsing
		}
	}

	g.mu.Lock()
	current := false
	if devices := g.tenants[s.id.Tenant]; devices[s.id.Device] == s {
		current = true
		delete(devices, s.id.Device)
		if len(devices) == 0 {
			delete(g.tenants, s.id.Tenant)
		}
	}
	g.mu.Unlock()
	if current && greeted && g.fw != nil {
		// A replaced session is not the device leaving: its successor
		// already said, or will say, hello.
		g.fw.Gone(firmware.Device{Tenant: s.id.Tenant, ID: s.id.Device})
	}
	g.closingMu.Lock()
	delete(g.closing, s)
	g.closingMu.Unlock()

	g.m.connections.Dec()
	g.m.closes.WithLabelValues(closeCodeLabel(code)).Inc()
	last := s.lastActivity.Load()
	if greeted {
		g.seen.Seen(s.id.Tenant, s.id.Device, time.Unix(0, last), "")
	}
	g.log.Debug("device disconnected", "tenant", s.id.Tenant, "device", s.id.Device, "session", s.sessionID(),
		"code", code, "duration", time.Since(time.Unix(0, s.connected)).Round(time.Millisecond))
	g.reserved.Add(-1)
	if g.active.Add(-1) == 0 && g.draining.Load() {
		g.drainOnce.Do(func() { close(g.drained) })
	}
}

// refuse answers a handshake with an HTTP error and a JSON body
// {"error":{"code":…,"message":…}}, then closes the connection.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, status int, reason, code, message string) {
	g.m.refused.WithLabelValues(reason).Inc()
	writeError(w, r, status, code, message)
	g.log.Debug("gateway: handshake refused", "status", status, "code", code, "remote", r.RemoteAddr)
}

// writeError answers with {"error":{"code":…,"message":…}} and closes the
// connection after the response.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	body, _ := json.Marshal(map[string]map[string]string{"error": {"code": code, "message": message}})
	r.Close = true // nbhttp answers with "Connection: close" and closes after the response
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Connection", "close")
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="switchyard"`)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// refusal answers a request with an error: its HTTP status, the metric
// reason, and the code and message of the JSON body.
type refusal func(status int, reason, code, message string)

// authenticate finds the device of a request's token, or refuses the
// request and returns false.
func (g *Gateway) authenticate(r *http.Request, refuse refusal) (Identity, bool) {
	token, problem := bearerToken(r)
	if token == "" {
		refuse(http.StatusUnauthorized, refusedUnauthorized, "unauthorized", problem)
		return Identity{}, false
	}
	id, err := g.auth.Authenticate(token)
	switch {
	case errors.Is(err, ErrRevoked):
		refuse(http.StatusUnauthorized, refusedRevoked, "device_revoked", "this device has been revoked")
		return id, false
	case errors.Is(err, ErrUnknownToken):
		refuse(http.StatusUnauthorized, refusedUnauthorized, "unauthorized", "unknown device token")
		return id, false
	case err != nil:
		g.log.Warn("gateway: authenticator failed", "err", err)
		refuse(http.StatusServiceUnavailable, refusedUnavailable, "unavailable", "device authentication is unavailable; retry later")
		return id, false
	case id.Tenant == "" || id.Device == "":
		g.log.Error("gateway: authenticator returned an identity without tenant or device", "tenant", id.Tenant, "device", id.Device)
		refuse(http.StatusServiceUnavailable, refusedUnavailable, "unavailable", "device authentication is unavailable; retry later")
		return id, false
	}
	return id, true
}

// bearerToken returns the request's device token, or "" and why not. The
// Authorization header wins over the token query parameter.
func bearerToken(r *http.Request) (string, string) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", `the Authorization header must be "Bearer <token>"`
		}
		if token = strings.TrimSpace(token); token == "" {
			return "", "the Authorization header carries no token"
		}
		return token, ""
	}
	if token := r.URL.Query().Get("token"); token != "" {
		return token, ""
	}
	return "", `a device token is required: send "Authorization: Bearer <token>" or ?token=<token>`
}

// upgradeProblem checks the WebSocket upgrade headers (RFC 6455 4.2.1).
func upgradeProblem(r *http.Request) string {
	switch {
	case !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket"):
		return `a WebSocket upgrade is required ("Connection: Upgrade", "Upgrade: websocket")`
	case r.Header.Get("Sec-Websocket-Version") != "13":
		return `"Sec-WebSocket-Version: 13" is required`
	case r.Header.Get("Sec-Websocket-Key") == "":
		return `"Sec-WebSocket-Key" is required`
	}
	return ""
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// tlsOverhead returns the bytes each TLS record adds on this connection
// (0 for plain TCP): TLS 1.3 adds a 5-byte header, the inner content type
// and a 16-byte tag; TLS 1.2 adds the header, the tag and, for AES-GCM, an
// 8-byte explicit nonce. Only AEAD suites are offered (see New).
func tlsOverhead(ws *websocket.Conn) uint8 {
	hc, ok := ws.Conn.(*nbhttp.Conn)
	if !ok {
		return 0
	}
	tc, ok := hc.Conn.(*tls.Conn)
	if !ok {
		return 0
	}
	st := tc.ConnectionState()
	switch {
	case st.Version == tls.VersionTLS13:
		return 5 + 1 + 16
	case st.CipherSuite == tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305 || st.CipherSuite == tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305:
		return 5 + 16
	default:
		return 5 + 8 + 16
	}
}

// onWritten is nbio's report of bytes written to a socket. It runs under
// nbio's connection lock, so it only touches atomics and hands a resumed
// flush to the engine's task pool.
func (g *Gateway) onWritten(c *nbio.Conn, _ []byte, n int) {
	ws, ok := c.Session().(*websocket.Conn)
	if !ok {
		if g.fw != nil {
			if t, ok := g.dl.transfers.Load(c); ok {
				t.(*transfer).onWritten(n)
			}
		}
		return
	}
	s, ok := ws.Session().(*session)
	if !ok {
		return
	}
	if s.written.Add(int64(n)) >= s.handed.Load() && s.blocked.CompareAndSwap(true, false) {
		g.engine.Execute(s.resume)
	}
}

// sweep is the one goroutine that enforces hello and heartbeat timeouts,
// drops connections that did not answer a close in time, and reports
// liveness to the SeenRecorder every LastSeenFlush.
func (g *Gateway) sweep() {
	defer close(g.swept)
	t := time.NewTicker(g.tick)
	defer t.Stop()
	nextSeen := time.Now().Add(g.cfg.LastSeenFlush)
	for {
		select {
		case <-g.stop:
			return
		case now := <-t.C:
			report := !now.Before(nextSeen)
			if report {
				nextSeen = now.Add(g.cfg.LastSeenFlush)
			}
			g.sweepOnce(now, report)
		}
	}
}

func (g *Gateway) sweepOnce(now time.Time, reportSeen bool) {
	var helloLate, silent, seen, overdue, unsettled []*session
	nowNS := now.UnixNano()
	g.mu.RLock()
	for _, devices := range g.tenants {
		for _, s := range devices {
			if mark := s.acceptMark.Load(); mark != 0 && g.ln.settled(mark) {
				unsettled = append(unsettled, s)
			}
			switch s.state.Load() {
			case stateAwaitHello:
				if nowNS-s.connected > int64(g.cfg.HelloTimeout) {
					helloLate = append(helloLate, s)
				}
			case stateReady:
				last := s.lastActivity.Load()
				if nowNS-last > int64(g.cfg.HeartbeatTimeout) {
					silent = append(silent, s)
				} else if reportSeen && last > s.reported.Load() {
					seen = append(seen, s)
				}
			}
		}
	}
	g.mu.RUnlock()
	g.closingMu.Lock()
	for s := range g.closing {
		if nowNS > s.closeDeadline.Load() {
			overdue = append(overdue, s)
		}
	}
	g.closingMu.Unlock()

	for _, s := range unsettled {
		_ = s.ws.SetReadDeadline(time.Time{})
		s.acceptMark.Store(0)
	}
	linger := now.Add(closeLinger)
	for _, s := range helloLate {
		s.close(CloseTimeout, "hello timeout", false, linger)
	}
	for _, s := range silent {
		s.close(CloseTimeout, "heartbeat timeout", false, linger)
	}
	for _, s := range overdue {
		_ = s.ws.Close() // nbio reports the close; finish runs then
	}
	for _, s := range seen {
		last := s.lastActivity.Load()
		s.reported.Store(last)
		g.seen.Seen(s.id.Tenant, s.id.Device, time.Unix(0, last), "")
	}
}

func sessionOf(c *websocket.Conn) *session {
	s, _ := c.Session().(*session)
	return s
}

// onMessage handles one complete message from a device. nbio runs the
// messages of one connection one after another.
func (g *Gateway) onMessage(c *websocket.Conn, mt websocket.MessageType, data []byte) {
	s := sessionOf(c)
	if s == nil {
		return
	}
	now := time.Now()
	s.lastActivity.Store(now.UnixNano())
	if s.state.Load() == stateClosing {
		return
	}
	if mt != websocket.TextMessage {
		g.m.in[frameTypeUnknown].Inc()
		s.close(CloseUnsupportedData, "binary frames are not supported; send JSON text frames", false, now.Add(closeLinger))
		return
	}
	f, ferr := decodeFrame(data)
	switch f.Type {
	case "hello", "heartbeat", "data", "ack", "error", "firmware_status":
		g.m.in[f.Type].Inc()
	default: // malformed, not UTF-8, or an unknown type
		g.m.in[frameTypeUnknown].Inc()
	}
	if ferr != nil && ferr.Close != 0 {
		s.close(ferr.Close, ferr.Reason, false, now.Add(closeLinger))
		return
	}
	if s.state.Load() == stateAwaitHello && f.Type != "hello" {
		s.close(CloseProtocolError, fmt.Sprintf("expected hello as the first frame, got %q", f.Type), false, now.Add(closeLinger))
		return
	}
	if ferr != nil {
		s.reply("error", encodeError(ferr))
		return
	}
	switch f.Type {
	case "hello":
		g.hello(s, f, now)
	case "heartbeat":
		s.reply("heartbeat", encodeHeartbeat(f, now))
	case "data":
		g.data.DeviceData(s.id, f.Stream, f.Payload, now)
		if f.ID != "" {
			s.reply("ack", encodeAck(f.ID))
		}
	case "ack":
		if g.acks != nil {
			g.acks.DeviceAck(s.id, f.ID, now)
		}
	case "error":
		g.log.Debug("device reported an error", "tenant", s.id.Tenant, "device", s.id.Device,
			"code", f.Code, "message", f.Message, "ref", f.Ref)
	case "firmware_status":
		g.firmwareStatus(s, f)
	}
}

func (g *Gateway) hello(s *session, f inFrame, now time.Time) {
	s.mu.Lock()
	if s.state.Load() != stateAwaitHello {
		closing := s.state.Load() == stateClosing
		s.mu.Unlock()
		if !closing {
			s.reply("error", encodeError(recoverable(ErrCodeDuplicateHello, "", "hello was already accepted for this session")))
		}
		return
	}
	recordModel := s.id.Model
	if f.Model != "" {
		s.id.Model = f.Model
	}
	s.firmware, s.capabilities = f.Firmware, f.Capabilities
	welcome := mustEncode(welcomeFrame{
		Type:                "welcome",
		Protocol:            ProtocolVersion,
		Session:             s.sessionID(),
		Device:              s.id.Device,
		HeartbeatIntervalMS: g.cfg.HeartbeatInterval.Milliseconds(),
		HeartbeatTimeoutMS:  g.cfg.HeartbeatTimeout.Milliseconds(),
		MaxFrameSize:        int64(g.cfg.MaxFrameSize),
		Time:                formatTime(now),
	})
	if err := s.writeLocked("welcome", websocket.TextMessage, welcome); err != nil {
		s.mu.Unlock()
		return
	}
	s.greeted = true
	s.state.Store(stateReady)
	s.mu.Unlock()
	s.reported.Store(now.UnixNano())
	g.seen.Seen(s.id.Tenant, s.id.Device, now, f.Firmware)
	if g.fw != nil {
		g.fw.Hello(firmware.Device{Tenant: s.id.Tenant, ID: s.id.Device, Model: recordModel, Labels: s.id.Labels},
			firmware.Hello{Model: f.Model, Firmware: f.Firmware, Capabilities: f.Capabilities})
	}
	g.log.Debug("device said hello", "tenant", s.id.Tenant, "device", s.id.Device, "session", s.sessionID(),
		"model", f.Model, "firmware", f.Firmware)
}

func (g *Gateway) onPing(c *websocket.Conn, appData string) {
	g.m.in["ping"].Inc()
	s := sessionOf(c)
	if s == nil {
		return
	}
	s.lastActivity.Store(time.Now().UnixNano())
	s.mu.Lock()
	if s.state.Load() != stateClosing {
		_ = s.writeLocked("pong", websocket.PongMessage, []byte(appData))
	}
	s.mu.Unlock()
}

func (g *Gateway) onPong(c *websocket.Conn, _ string) {
	g.m.in["pong"].Inc()
	if s := sessionOf(c); s != nil {
		s.lastActivity.Store(time.Now().UnixNano())
	}
}

// onPeerClose handles a close frame from the device: if the relay had not
// sent one, it answers with the same code; nbio then closes the connection.
func (g *Gateway) onPeerClose(c *websocket.Conn, code int, _ string) {
	s := sessionOf(c)
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.Load() == stateClosing && s.closeCode != 0 {
		return // the device answered the relay's close
	}
	s.state.Store(stateClosing)
	s.peerCode = uint16(code) // a close frame carries 2 bytes of code
	s.dropQueueLocked()
	var payload []byte
	if code != 1005 { // 1005: the device's close carried no code
		payload = []byte{byte(code >> 8), byte(code)}
	}
	_ = s.writeLocked("close", websocket.CloseMessage, payload)
}

func (g *Gateway) onClose(c *websocket.Conn, err error) {
	if s := sessionOf(c); s != nil {
		g.finish(s, err)
	}
}
