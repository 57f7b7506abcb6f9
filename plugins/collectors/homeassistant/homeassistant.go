// Package homeassistant is the collectors.homeassistant plugin, a built-in:
// it streams the states of Home Assistant entities into Switchyard. It signs
// in to Home Assistant's WebSocket API (/api/websocket) with a long-lived
// access token, subscribes to state_changed events and emits one message per
// changed entity that passes its filters; on every (re)connect it first
// emits the current state of every matching entity, read from the REST API
// (GET /api/states). A dropped connection or a missing pong reconnects with
// exponential backoff; a refused token (auth_invalid) ends Collect with an
// error, since retrying cannot help.
//
// It never writes to Home Assistant: it sends only auth, subscribe_events
// and ping commands and reads /api/states.
package homeassistant

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchyard/switchyard/sdk/plugin"
)

// Use is the plugin's kind.name in plugins.yaml.
const Use = "collectors.homeassistant"

// Sample is a plugins.yaml entry using the plugin, as shown in the README.
//
//go:embed sample.yaml
var Sample string

func init() {
	plugin.Register(plugin.Info{ID: Use, New: func() any { return new(Collector) }})
}

// Interface guards.
var (
	_ plugin.Collector    = (*Collector)(nil)
	_ plugin.Provisioner  = (*Collector)(nil)
	_ plugin.Validator    = (*Collector)(nil)
	_ plugin.CleanerUpper = (*Collector)(nil)
)

// Limits of what the collector reads.
const (
	maxFrame      = 16 << 20 // one WebSocket message
	maxStatesBody = 64 << 20 // the /api/states response
	frameQueue    = 256      // frames read ahead of the collector's loop
	closeWait     = time.Second
)

// Collector is one configured instance. Its exported fields are the
// configuration (README.md describes each key); the runtime decodes it with
// plugin.DecodeConfig, then calls Provision (which fills in the defaults of
// zero fields), Validate, Collect and finally Cleanup.
type Collector struct {
	URL           string   `json:"url"`
	Token         string   `json:"token"`
	TokenFile     string   `json:"token_file"`
	Entities      []string `json:"entities"`
	Domains       []string `json:"domains"`
	SubjectPrefix string   `json:"subject_prefix"`
	InitialStates *bool    `json:"initial_states"`
	PingInterval  Duration `json:"ping_interval"`
	Timeout       Duration `json:"timeout"`
	Reconnect     Backoff  `json:"reconnect"`
	TLS           TLS      `json:"tls"`

	ends    endpoints
	tok     string // from token or token_file
	mapper  mapper
	dialer  *websocket.Dialer
	client  *http.Client
	log     *slog.Logger
	ready   bool
	running atomic.Bool

	connects, reconnects, events, emitted atomic.Uint64
	connected                             atomic.Bool
	mu                                    sync.Mutex
	lastErr                               string
	lastErrAt                             time.Time
}

// Stats are the instance's counters, for tests and monitoring.
type Stats struct {
	// Connects counts sessions that Home Assistant authenticated (auth_ok).
	Connects uint64
	// Reconnects counts connection attempts after the first one.
	Reconnects uint64
	// Events counts state_changed events received, matching or not.
	Events uint64
	// Emitted counts messages emitted: initial states and changes.
	Emitted uint64
	// Connected is true while a session is authenticated and subscribed.
	Connected bool
	// LastError is the last error that ended a session or a connection
	// attempt, and LastErrorAt when it happened.
	LastError   string
	LastErrorAt time.Time
}

// Stats returns the instance's counters. It is safe to call at any time.
func (c *Collector) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{
		Connects: c.connects.Load(), Reconnects: c.reconnects.Load(),
		Events: c.events.Load(), Emitted: c.emitted.Load(), Connected: c.connected.Load(),
		LastError: c.lastErr, LastErrorAt: c.lastErrAt,
	}
}

func (c *Collector) setErr(err error) {
	c.mu.Lock()
	c.lastErr, c.lastErrAt = err.Error(), time.Now()
	c.mu.Unlock()
}

// Provision applies the defaults, derives the WebSocket and REST addresses
// from url and reads tls.ca_file.
func (c *Collector) Provision(ctx context.Context) error {
	c.withDefaults()
	ends, err := parseURL(c.URL)
	if err != nil {
		return err
	}
	tlsConf, err := c.TLS.tlsConfig()
	if err != nil {
		return err
	}
	token, err := c.token()
	if err != nil {
		return err
	}
	c.tok = token
	timeout := time.Duration(c.Timeout)
	c.ends = ends
	c.mapper = mapper{prefix: c.SubjectPrefix, filter: filter{entities: c.Entities, domains: c.Domains}, now: time.Now}
	c.dialer = &websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		TLSClientConfig:  tlsConf,
		HandshakeTimeout: timeout,
	}
	c.client = &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     tlsConf,
			TLSHandshakeTimeout: timeout,
			MaxIdleConns:        1,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	c.log = plugin.Logger(ctx).With("plugin", Use)
	c.ready = true
	return nil
}

// Validate checks the provisioned configuration; every error names its key.
func (c *Collector) Validate() error {
	if !c.ready {
		return errors.New("not provisioned")
	}
	return c.validate(c.tok)
}

// Cleanup releases the REST client's idle connections.
func (c *Collector) Cleanup() error {
	if c.client != nil {
		c.client.CloseIdleConnections()
	}
	return nil
}

// fatalError ends Collect: retrying cannot help.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// Collect connects to Home Assistant and emits states until ctx ends, then
// closes the WebSocket cleanly and returns nil. It reconnects after any
// failure with backoff, except a refused token (auth_invalid) or a message
// out refused, which end it with an error.
func (c *Collector) Collect(ctx context.Context, out plugin.Emitter) error {
	if !c.ready {
		return errors.New("collect: not provisioned")
	}
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("collect: already running")
	}
	defer c.running.Store(false)
	attempt := 0
	for first := true; ; first = false {
		if !first {
			c.reconnects.Add(1)
		}
		established, err := c.session(ctx, out)
		if ctx.Err() != nil {
			return nil
		}
		c.setErr(err)
		var fatal *fatalError
		if errors.As(err, &fatal) {
			c.log.Error("home assistant collector stopped", "url", c.URL, "err", err)
			return fatal.err
		}
		if established {
			attempt = 0
		}
		wait := c.backoff(attempt)
		attempt++
		c.log.Warn("home assistant session ended; reconnecting", "url", c.URL, "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// backoff is the wait before connection attempt n+1 after n failures in a
// row: reconnect.initial doubled n times, at most reconnect.max, then a
// random point in its upper half (jitter, so that many relays do not knock
// at once after a Home Assistant restart).
func (c *Collector) backoff(n int) time.Duration {
	d, ceil := time.Duration(c.Reconnect.Initial), time.Duration(c.Reconnect.Max)
	for i := 0; i < n && d < ceil; i++ {
		if d > ceil/2 {
			d = ceil // doubling would pass it (or overflow)
			break
		}
		d *= 2
	}
	d = min(d, ceil)
	if half := d / 2; half > 0 {
		d = half + rand.N(half+1)
	}
	return d
}

// conn is one WebSocket session: a reader goroutine hands frames to the
// session's loop, which alone writes.
type conn struct {
	ws     *websocket.Conn
	frames chan []byte
	done   chan struct{} // closed when the reader ends; err says why
	err    error
	stop   chan struct{} // closed to stop the reader handing frames on
	nextID int64
}

func (s *conn) read() {
	defer close(s.done)
	for {
		_, data, err := s.ws.ReadMessage()
		if err != nil {
			s.err = err
			return
		}
		select {
		case s.frames <- data:
		case <-s.stop:
			return
		}
	}
}

// send writes one JSON message.
func (s *conn) send(v any, timeout time.Duration) error {
	_ = s.ws.SetWriteDeadline(time.Now().Add(timeout))
	return s.ws.WriteJSON(v)
}

// next waits for the next frame, at most until deadline (nil: none).
func (s *conn) next(ctx context.Context, deadline <-chan time.Time) ([]byte, error) {
	select {
	case data := <-s.frames:
		return data, nil
	case <-s.done:
		// Frames the reader queued before it ended come first.
		select {
		case data := <-s.frames:
			return data, nil
		default:
		}
		return nil, fmt.Errorf("connection lost: %w", s.err)
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-deadline:
		return nil, errors.New("timed out waiting for home assistant")
	}
}

// close ends the session: when ctx ended, with a close frame (1000) and a
// short wait for the server's answer; otherwise by closing the socket.
func (s *conn) close(clean bool) {
	if clean {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		if s.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeWait)) == nil {
			t := time.NewTimer(closeWait)
			// Drain until the reader sees the server's close frame.
		drain:
			for {
				select {
				case <-s.frames:
				case <-s.done:
					break drain
				case <-t.C:
					break drain
				}
			}
			t.Stop()
		}
	}
	close(s.stop)
	_ = s.ws.Close()
	<-s.done
}

// session runs one connection: dial, authenticate, subscribe, emit the
// initial states, then the events until the connection fails or ctx ends.
// established reports whether it got as far as streaming events.
func (c *Collector) session(ctx context.Context, out plugin.Emitter) (established bool, err error) {
	timeout := time.Duration(c.Timeout)
	dctx, cancel := context.WithTimeout(ctx, timeout)
	ws, resp, err := c.dialer.DialContext(dctx, c.ends.ws, nil)
	cancel()
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			return false, fmt.Errorf("connect %s: %w (HTTP %s)", c.ends.ws, err, resp.Status)
		}
		return false, fmt.Errorf("connect %s: %w", c.ends.ws, err)
	}
	ws.SetReadLimit(maxFrame)
	s := &conn{ws: ws, frames: make(chan []byte, frameQueue), done: make(chan struct{}), stop: make(chan struct{})}
	go s.read()
	defer func() {
		c.connected.Store(false)
		s.close(ctx.Err() != nil)
	}()

	version, err := c.authenticate(ctx, s, timeout)
	if err != nil {
		return false, err
	}
	c.connects.Add(1)
	subID, err := c.subscribe(ctx, s, timeout)
	if err != nil {
		return false, err
	}
	c.connected.Store(true)
	c.log.Info("home assistant connected", "url", c.URL, "ha_version", version)

	var snapshot map[string]time.Time
	if *c.InitialStates {
		if snapshot, err = c.initialStates(ctx, out); err != nil {
			return false, err
		}
	}
	return true, c.stream(ctx, s, out, subID, snapshot)
}

// authenticate runs the authentication phase: auth_required, auth, then
// auth_ok or auth_invalid.
func (c *Collector) authenticate(ctx context.Context, s *conn, timeout time.Duration) (version string, err error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	if _, err := c.expect(ctx, s, deadline.C, "auth_required"); err != nil {
		return "", err
	}
	if err := s.send(map[string]string{"type": "auth", "access_token": c.tok}, timeout); err != nil {
		return "", fmt.Errorf("send auth: %w", err)
	}
	data, err := s.next(ctx, deadline.C)
	if err != nil {
		return "", fmt.Errorf("authentication: %w", err)
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		return "", fmt.Errorf("authentication: invalid frame: %w", err)
	}
	switch f.Type {
	case "auth_ok":
		return f.Version, nil
	case "auth_invalid":
		return "", &fatalError{fmt.Errorf("home assistant at %s refused the token (auth_invalid: %s); not retrying: check the token", c.URL, truncate(f.Message, 200))}
	default:
		return "", fmt.Errorf("authentication: want auth_ok or auth_invalid, got %q", truncate(f.Type, 40))
	}
}

// expect reads one frame and checks its type.
func (c *Collector) expect(ctx context.Context, s *conn, deadline <-chan time.Time, typ string) (frame, error) {
	var f frame
	data, err := s.next(ctx, deadline)
	if err != nil {
		return f, fmt.Errorf("waiting for %s: %w", typ, err)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("waiting for %s: invalid frame: %w", typ, err)
	}
	if f.Type != typ {
		return f, fmt.Errorf("want %s, got %q", typ, truncate(f.Type, 40))
	}
	return f, nil
}

// subscribe sends subscribe_events for state_changed and waits for its
// result; it returns the subscription's id, which events carry.
func (c *Collector) subscribe(ctx context.Context, s *conn, timeout time.Duration) (int64, error) {
	s.nextID++
	id := s.nextID
	cmd := struct {
		ID        int64  `json:"id"`
		Type      string `json:"type"`
		EventType string `json:"event_type"`
	}{id, "subscribe_events", "state_changed"}
	if err := s.send(cmd, timeout); err != nil {
		return 0, fmt.Errorf("send subscribe_events: %w", err)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		data, err := s.next(ctx, deadline.C)
		if err != nil {
			return 0, fmt.Errorf("subscribe_events: %w", err)
		}
		for _, raw := range splitFrames(data) {
			var f frame
			if json.Unmarshal(raw, &f) != nil || f.ID != id || f.Type != "result" {
				continue // nothing else is in flight; ignore what is not ours
			}
			if !f.Success {
				if f.Error != nil {
					return 0, fmt.Errorf("subscribe_events: %s: %s", f.Error.Code, truncate(f.Error.Message, 200))
				}
				return 0, errors.New("subscribe_events: refused")
			}
			return id, nil
		}
	}
}

// initialStates reads /api/states and emits every matching entity. It
// returns the last_updated time of each, so that events queued during the
// fetch that are not newer are not emitted after it.
func (c *Collector) initialStates(ctx context.Context, out plugin.Emitter) (map[string]time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.ends.states, nil)
	if err != nil {
		return nil, fmt.Errorf("initial states: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.tok)
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("initial states: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return nil, fmt.Errorf("initial states: GET %s: HTTP %s: %s", c.ends.states, resp.Status, bytes.TrimSpace(body))
	}
	var states []json.RawMessage
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxStatesBody)).Decode(&states); err != nil {
		return nil, fmt.Errorf("initial states: GET %s: want a JSON array of states: %w", c.ends.states, err)
	}
	snapshot := make(map[string]time.Time)
	for _, raw := range states {
		m, err := c.mapper.fromState(raw)
		if err != nil {
			if !errors.Is(err, errFiltered) {
				c.log.Debug("home assistant state skipped", "err", err)
			}
			continue
		}
		snapshot[m.Subject] = m.Time
		if err := c.emit(out, m); err != nil {
			return nil, err
		}
	}
	return snapshot, nil
}

func (c *Collector) emit(out plugin.Emitter, m plugin.Message) error {
	if err := out.Emit(m); err != nil {
		return &fatalError{fmt.Errorf("emit %s: %w", m.Subject, err)}
	}
	c.emitted.Add(1)
	return nil
}

// stream handles the command phase: events, pongs, and a ping every
// ping_interval; a ping still unanswered at the next one ends the session.
func (c *Collector) stream(ctx context.Context, s *conn, out plugin.Emitter, subID int64, snapshot map[string]time.Time) error {
	interval := time.Duration(c.PingInterval)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var pending int64 // id of the unanswered ping; 0 for none
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
			if pending != 0 {
				// The pong may be queued behind events a slow emitter held up.
				if err := c.drain(out, s, subID, snapshot, &pending); err != nil {
					return err
				}
			}
			if pending != 0 {
				return fmt.Errorf("no pong to ping %d within ping_interval %s", pending, interval)
			}
			s.nextID++
			pending = s.nextID
			if err := s.send(map[string]any{"id": pending, "type": "ping"}, interval); err != nil {
				return fmt.Errorf("send ping: %w", err)
			}
		case <-s.done:
			// Handle what the reader queued before the connection ended.
			if err := c.drain(out, s, subID, snapshot, &pending); err != nil {
				return err
			}
			return fmt.Errorf("connection lost: %w", s.err)
		case data := <-s.frames:
			if err := c.handle(out, data, subID, snapshot, &pending); err != nil {
				return err
			}
		}
	}
}

// drain handles the frames already queued, without waiting for more.
func (c *Collector) drain(out plugin.Emitter, s *conn, subID int64, snapshot map[string]time.Time, pending *int64) error {
	for {
		select {
		case data := <-s.frames:
			if err := c.handle(out, data, subID, snapshot, pending); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// handle processes one WebSocket message of the command phase (which may
// hold a JSON array of messages, as Home Assistant sends when a client
// asked for coalesced messages).
func (c *Collector) handle(out plugin.Emitter, data []byte, subID int64, snapshot map[string]time.Time, pending *int64) error {
	for _, raw := range splitFrames(data) {
		var f frame
		if err := json.Unmarshal(raw, &f); err != nil {
			c.log.Debug("home assistant frame skipped", "err", err)
			continue
		}
		switch {
		case f.Type == "pong" && f.ID == *pending:
			*pending = 0
		case f.Type == "event" && f.ID == subID:
			c.events.Add(1)
			m, err := c.mapper.fromEvent(f.Event)
			if err != nil {
				if !errors.Is(err, errFiltered) {
					c.log.Debug("home assistant event skipped", "err", err)
				}
				continue
			}
			if stale(snapshot, m) {
				continue
			}
			if err := c.emit(out, m); err != nil {
				return err
			}
		}
	}
	return nil
}

// stale reports whether an event's state is no newer than the one the
// initial fetch emitted for the entity (an event queued while /api/states
// was read). An entity's first newer event retires its snapshot entry.
func stale(snapshot map[string]time.Time, m plugin.Message) bool {
	at, ok := snapshot[m.Subject] // the subject names the entity
	if !ok {
		return false
	}
	if !m.Time.After(at) {
		return true
	}
	delete(snapshot, m.Subject)
	return false
}

// splitFrames returns the messages of one WebSocket message: itself, or the
// elements of a JSON array.
func splitFrames(data []byte) [][]byte {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return [][]byte{data}
	}
	var list []json.RawMessage
	if json.Unmarshal(trimmed, &list) != nil {
		return nil
	}
	out := make([][]byte, len(list))
	for i, m := range list {
		out[i] = m
	}
	return out
}
