package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	rand2 "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lesismal/nbio"
)

// Protocol v1 frames the clients send (firmware/PROTOCOL.md).
var (
	helloPayload     = []byte(`{"type":"hello","protocol":1,"model":"load","firmware":"1.0.0","capabilities":[]}`)
	heartbeatPayload = []byte(`{"type":"heartbeat"}`)
)

// clientReadBuffer is the poller's read buffer, shared by all connections
// of a worker.
const clientReadBuffer = 64 << 10

// heartbeatTick is how often the heartbeat loop wakes; each tick sends to
// the slice of connections due, so heartbeats are spread over the interval.
const heartbeatTick = 100 * time.Millisecond

// websocketGUID is the RFC 6455 constant used to compute Sec-WebSocket-Accept.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// envelope is the part of a protocol frame the clients look at.
type envelope struct {
	Type string  `json:"type"`
	Code string  `json:"code"`
	Time string  `json:"time"`
	Seq  *uint64 `json:"seq"`
}

// failure is why a connection did not come up or went down. Its reason is
// short and drawn from a small set so that failures can be counted by it.
type failure struct {
	phase string
	err   error
}

func (f *failure) Error() string { return f.phase + ": " + f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// reason is the counting key: the phase and a short cause without addresses
// or ports.
func (f *failure) reason() string { return f.phase + ": " + shortCause(f.err) }

// shortCause names an error without the addresses and ports that would make
// every failure distinct.
func shortCause(err error) string {
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed by peer"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// clientHandshake upgrades conn to a WebSocket on u, says hello and waits for
// the welcome. It returns the bytes read past the welcome frame. The caller
// sets the deadline.
func clientHandshake(conn net.Conn, u *url.URL, token string) ([]byte, error) {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:]) // crypto/rand.Read never fails on Linux
	key := base64.StdEncoding.EncodeToString(nonce[:])
	var req strings.Builder
	req.WriteString("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n")
	if token != "" {
		req.WriteString("Authorization: Bearer " + token + "\r\n")
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(conn, req.String()); err != nil {
		return nil, &failure{"upgrade", err}
	}

	br := bufio.NewReaderSize(conn, 1024)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return nil, &failure{"upgrade", err}
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, &failure{"upgrade", fmt.Errorf("http %d", resp.StatusCode)}
	}
	sum := sha1.Sum([]byte(key + websocketGUID))
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") ||
		resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		return nil, &failure{"upgrade", errors.New("bad upgrade response headers")}
	}

	if _, err := conn.Write(appendClientFrame(nil, opText, helloPayload, rand2.Uint32())); err != nil {
		return nil, &failure{"hello", err}
	}
	buffered, _ := br.Peek(br.Buffered())
	buf := append(make([]byte, 0, 512), buffered...)
	for {
		f, n, err := parseFrame(buf)
		if err != nil {
			return nil, &failure{"hello", err}
		}
		if n == 0 {
			buf = slices.Grow(buf, 512)
			m, err := conn.Read(buf[len(buf):cap(buf)])
			if err != nil {
				return nil, &failure{"hello", err}
			}
			buf = buf[:len(buf)+m]
			continue
		}
		rest := buf[n:]
		switch f.op {
		case opText:
			if !f.fin {
				return nil, &failure{"hello", errors.New("fragmented reply")}
			}
			var env envelope
			if err := json.Unmarshal(f.payload, &env); err != nil {
				return nil, &failure{"hello", errors.New("reply is not json")}
			}
			switch env.Type {
			case "welcome":
				return rest, nil
			case "error":
				return nil, &failure{"hello", fmt.Errorf("error %s", env.Code)}
			}
		case opPing:
			if _, err := conn.Write(appendClientFrame(nil, opPong, f.payload, rand2.Uint32())); err != nil {
				return nil, &failure{"hello", err}
			}
		case opClose:
			code, _ := parseClosePayload(f.payload)
			return nil, &failure{"hello", fmt.Errorf("closed %d", code)}
		}
		buf = append(buf[:0], rest...)
	}
}

// clients dials and holds the connections of one worker process. Idle
// connections live in one nbio poller: no goroutine per connection.
type clients struct {
	spec    WorkerSpec
	targets []*url.URL
	base    netip.Addr
	engine  *nbio.Engine
	log     *slog.Logger

	mu          sync.Mutex
	conns       []*clientConn
	handshakes  []int64 // microseconds from dial to welcome, per connection
	failures    map[string]int
	disconnects map[string]int

	open          atomic.Int64
	hbSent        atomic.Int64
	hbAnswered    atomic.Int64
	otherMessages atomic.Int64
	closing       atomic.Bool

	deliveries deliveryCounter
	edge       pollerEdge // -race builds only: see race.go

	// Timed heartbeats (heartbeat.go): the sampled connections, the
	// window their heartbeats count in now (0: none), and the counts by
	// window, guarded by hbMu.
	timedConns []*clientConn // guarded by mu
	window     atomic.Int32
	hbMu       sync.Mutex
	hbWindows  map[int32]*HeartbeatCounts
	unmatched  atomic.Int64 // answers whose seq matched no heartbeat awaiting one
}

// clientConn is one held connection. mu guards the parse state; live is
// true from registration with the poller until the connection closes.
type clientConn struct {
	c    *clients
	nc   *nbio.Conn
	live atomic.Bool
	// timed is set on a sampled connection before the connection is
	// shared, and never changed; what it points to is guarded by mu.
	timed *timedConn

	mu          sync.Mutex
	pending     []byte // an incomplete frame
	message     []byte // a fragmented message being assembled
	fragmented  bool
	closeReason string
}

func newClients(spec WorkerSpec, log *slog.Logger) (*clients, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	base, err := netip.ParseAddr(spec.SourceBase)
	if err != nil {
		return nil, fmt.Errorf("worker: source base: %w", err)
	}
	c := &clients{
		spec:        spec,
		base:        base,
		log:         log,
		failures:    map[string]int{},
		disconnects: map[string]int{},
	}
	for _, t := range spec.Targets {
		u, err := url.Parse(t)
		if err != nil || u.Scheme != "ws" || u.Host == "" {
			return nil, fmt.Errorf("worker: target %q is not a ws:// URL", t)
		}
		c.targets = append(c.targets, u)
	}
	// One poller; its read buffer is shared by every connection, so a large
	// one costs nothing per connection and lets a client that fell behind
	// take many frames in one read.
	c.engine = nbio.NewEngine(nbio.Config{Name: "switchyard-load", NPoller: 1, ReadBufferSize: clientReadBuffer})
	c.engine.OnData(c.onData)
	c.engine.OnClose(c.onClose)
	if err := c.engine.Start(); err != nil {
		return nil, fmt.Errorf("worker: start poller: %w", err)
	}
	return c, nil
}

// connectAll dials every connection of the spec with bounded concurrency
// and stops dialing when the connect timeout passes.
func (c *clients) connectAll(ctx context.Context) ConnectReport {
	ctx, cancel := context.WithTimeout(ctx, c.spec.ConnectTimeout)
	defer cancel()
	start := time.Now()
	forEach(c.spec.Count, c.spec.Concurrency, func(j int) bool {
		if ctx.Err() != nil {
			c.fail("not dialed: connect timeout")
		} else if f := c.connect(ctx, j); f != nil {
			c.fail(f.reason())
		}
		return true
	}, func(done int64) {
		c.log.Info("connecting", "done", done, "of", c.spec.Count, "open", c.open.Load())
	})
	end := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	return ConnectReport{Connected: len(c.conns), Failures: maps.Clone(c.failures), Start: start, End: end,
		HandshakeMicros: slices.Clone(c.handshakes)}
}

func (c *clients) fail(reason string) {
	c.mu.Lock()
	c.failures[reason]++
	c.mu.Unlock()
}

// connect brings up connection j of the spec: dial from its source address,
// upgrade, hello, welcome, then hand the socket to the poller.
func (c *clients) connect(ctx context.Context, j int) *failure {
	i := c.spec.First + j
	src, err := Source(c.base, i, c.spec.PerSource)
	if err != nil {
		return &failure{"plan", err}
	}
	target := c.targets[Target(i, len(c.targets))]
	var token string
	if len(c.spec.Tokens) > 0 {
		token = c.spec.Tokens[j]
	}
	ctx, cancel := context.WithTimeout(ctx, c.spec.DialTimeout)
	defer cancel()
	began := time.Now()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Control: bindNoPort}
	conn, err := d.DialContext(ctx, "tcp", target.Host)
	if err != nil {
		return &failure{"dial", err}
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	rest, err := clientHandshake(conn, target, token)
	if err != nil {
		_ = conn.Close()
		var f *failure
		if errors.As(err, &f) {
			return f
		}
		return &failure{"handshake", err}
	}
	took := time.Since(began)
	_ = conn.SetDeadline(time.Time{})
	nc, err := nbio.NBConn(conn)
	if err != nil {
		_ = conn.Close()
		return &failure{"poller", err}
	}
	cc := &clientConn{c: c, nc: nc, pending: rest}
	if c.spec.Sample > 0 && Sampled(i, c.spec.Sample, c.spec.Total) {
		cc.timed = &timedConn{}
	}
	nc.SetSession(cc)
	cc.live.Store(true)
	c.open.Add(1)
	c.edge.release()
	if _, err := c.engine.AddConn(nc); err != nil {
		if cc.live.CompareAndSwap(true, false) {
			c.open.Add(-1)
		}
		return &failure{"poller", err}
	}
	c.mu.Lock()
	c.conns = append(c.conns, cc)
	if cc.timed != nil {
		c.timedConns = append(c.timedConns, cc)
	}
	c.handshakes = append(c.handshakes, took.Microseconds())
	c.mu.Unlock()
	cc.mu.Lock()
	cc.consume(nil, time.Now().UnixNano()) // frames that arrived with the welcome
	cc.mu.Unlock()
	return nil
}

func (c *clients) onData(nc *nbio.Conn, data []byte) {
	c.edge.acquire()
	cc, ok := nc.Session().(*clientConn)
	if !ok {
		return
	}
	now := time.Now().UnixNano() // one receive time per read
	cc.mu.Lock()
	cc.consume(data, now)
	cc.mu.Unlock()
}

func (c *clients) onClose(nc *nbio.Conn, err error) {
	cc, ok := nc.Session().(*clientConn)
	if !ok || !cc.live.CompareAndSwap(true, false) {
		return
	}
	c.open.Add(-1)
	if c.closing.Load() {
		return
	}
	cc.mu.Lock()
	reason := cc.closeReason
	cc.mu.Unlock()
	if reason == "" {
		reason = "closed: " + shortCause(err)
	}
	c.mu.Lock()
	c.disconnects[reason]++
	c.mu.Unlock()
}

// consume parses data (after any pending partial frame), received at now
// (Unix nanoseconds), and handles every whole frame. Callers hold cc.mu.
func (cc *clientConn) consume(data []byte, now int64) {
	buf := data
	if len(cc.pending) > 0 {
		cc.pending = append(cc.pending, data...)
		buf = cc.pending
	}
	for {
		f, n, err := parseFrame(buf)
		if err != nil {
			cc.protocolError(err)
			return
		}
		if n == 0 {
			break
		}
		buf = buf[n:]
		if err := cc.handle(f, now); err != nil {
			cc.protocolError(err)
			return
		}
	}
	if len(buf) == 0 {
		cc.pending = nil
		return
	}
	cc.pending = append(cc.pending[:0], buf...)
}

func (cc *clientConn) handle(f frame, now int64) error {
	switch f.op {
	case opText, opBinary:
		if cc.fragmented {
			return errors.New("new message inside a fragmented one")
		}
		if !f.fin {
			cc.fragmented = true
			cc.message = append(cc.message[:0], f.payload...)
			return nil
		}
		if seq, ok := cc.c.onMessage(f.payload, now); ok {
			cc.timedAnswer(seq, now)
		}
	case opContinuation:
		if !cc.fragmented {
			return errors.New("continuation without a message")
		}
		cc.message = append(cc.message, f.payload...)
		if len(cc.message) > maxFramePayload {
			return fmt.Errorf("message exceeds %d bytes", maxFramePayload)
		}
		if f.fin {
			if seq, ok := cc.c.onMessage(cc.message, now); ok {
				cc.timedAnswer(seq, now)
			}
			cc.fragmented, cc.message = false, nil
		}
	case opPing:
		cc.write(opPong, f.payload)
	case opClose:
		code, _ := parseClosePayload(f.payload)
		cc.closeReason = fmt.Sprintf("close frame: %d", code)
		cc.write(opClose, f.payload)
	}
	return nil
}

func (cc *clientConn) protocolError(err error) {
	cc.closeReason = "protocol: " + err.Error()
	cc.pending, cc.message = nil, nil
	_ = cc.nc.Close()
}

// write sends one masked frame; a failed write closes the connection, which
// onClose records.
func (cc *clientConn) write(op byte, payload []byte) {
	_, _ = cc.nc.Write(appendClientFrame(make([]byte, 0, 14+len(payload)), op, payload, rand2.Uint32()))
}

// onMessage counts one text message received at now. Message frames, the
// bulk of a delivery run, are recognised by their first bytes and only
// their time member is read; other frames are decoded. For a heartbeat
// answer that carries a seq it returns the seq and true.
func (c *clients) onMessage(p []byte, now int64) (seq uint64, timed bool) {
	if bytes.HasPrefix(p, messagePrefix) {
		emit, ok := messageTime(p)
		c.deliveries.record(len(p), emit, ok, now)
		return 0, false
	}
	var env envelope
	if json.Unmarshal(p, &env) != nil {
		c.otherMessages.Add(1)
		return 0, false
	}
	switch env.Type {
	case "heartbeat":
		c.hbAnswered.Add(1)
		if env.Seq != nil {
			return *env.Seq, true
		}
	case "message": // members in an order other than the gateway's
		emit, ok := parseTime([]byte(env.Time))
		c.deliveries.record(len(p), emit, ok, now)
	default:
		c.otherMessages.Add(1)
	}
	return 0, false
}

// heartbeats sends each open connection one heartbeat per interval, spread
// evenly over the interval, until ctx ends. Sampled connections are left
// to timedHeartbeats.
func (c *clients) heartbeats(ctx context.Context) {
	steps := max(1, int(c.spec.Heartbeat/heartbeatTick))
	t := time.NewTicker(heartbeatTick)
	defer t.Stop()
	cursor := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		conns := c.conns
		c.mu.Unlock()
		if len(conns) == 0 {
			continue
		}
		for range (len(conns) + steps - 1) / steps {
			cc := conns[cursor%len(conns)]
			cursor = (cursor + 1) % len(conns)
			if cc.live.Load() && cc.timed == nil {
				cc.write(opText, heartbeatPayload)
				c.hbSent.Add(1)
			}
		}
	}
}

// holdReport is the state of the worker's connections now.
func (c *clients) holdReport() HoldReport {
	c.mu.Lock()
	disconnects := maps.Clone(c.disconnects)
	c.mu.Unlock()
	rss, err := ReadRSS(os.Getpid())
	if err != nil {
		c.log.Warn("client rss", "err", err)
	}
	return HoldReport{
		Open:               int(c.open.Load()),
		HeartbeatsSent:     c.hbSent.Load(),
		HeartbeatsAnswered: c.hbAnswered.Load(),
		OtherMessages:      c.otherMessages.Load(),
		Disconnects:        disconnects,
		RSS:                rss,
	}
}

// deliveryReport is a snapshot of the message frames received so far.
func (c *clients) deliveryReport() DeliveryReport {
	rep := DeliveryReport{At: time.Now(), Open: int(c.open.Load()), Counts: c.deliveries.snapshot()}
	cpu, err := ReadCPU(os.Getpid())
	if err != nil {
		c.log.Warn("client cpu", "err", err)
	}
	rep.CPU = cpu
	return rep
}

// close says goodbye on every open connection, gives the servers up to
// grace to close their side (so TIME_WAIT lands on the server, not on the
// client's source ports), then stops the poller.
func (c *clients) close(grace time.Duration) {
	c.closing.Store(true)
	c.mu.Lock()
	conns := c.conns
	c.mu.Unlock()
	bye := closePayload(1000, "load test done")
	for _, cc := range conns {
		if cc.live.Load() {
			cc.write(opClose, bye)
		}
	}
	deadline := time.Now().Add(grace)
	for c.open.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	c.engine.Stop()
}
