package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Frames the device sends (§2.1, §8.5).
type (
	helloFrame struct {
		Type         string   `json:"type"`
		Protocol     int      `json:"protocol"`
		Model        string   `json:"model,omitempty"`
		Firmware     string   `json:"firmware,omitempty"`
		Capabilities []string `json:"capabilities"`
	}
	heartbeatFrame struct {
		Type string `json:"type"`
		Seq  uint64 `json:"seq"`
	}
	ackFrame struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	}
	dataFrame struct {
		Type    string          `json:"type"`
		Stream  string          `json:"stream"`
		Payload json.RawMessage `json:"payload"`
		ID      string          `json:"id,omitempty"`
	}
	statusFrame struct {
		Type     string `json:"type"`
		Version  string `json:"version"`
		Status   string `json:"status"`
		Progress *int64 `json:"progress,omitempty"`
		Reason   string `json:"reason,omitempty"`
	}
)

// welcomeFrame is the part of welcome the device uses (§2.2).
type welcomeFrame struct {
	Type                string `json:"type"`
	Protocol            int    `json:"protocol"`
	Session             string `json:"session"`
	Device              string `json:"device"`
	HeartbeatIntervalMS int64  `json:"heartbeat_interval_ms"`
	HeartbeatTimeoutMS  int64  `json:"heartbeat_timeout_ms"`
	MaxFrameSize        int64  `json:"max_frame_size"`
}

// session is one WebSocket connection, from the upgrade to its end. Its
// goroutines: the one that called Run reads frames; a control goroutine
// sends heartbeats and closes the session when Run's context ends or after
// an install; at most one job goroutine acts on an offer. session returns
// after all have ended.
type session struct {
	d    *Device
	conn *websocket.Conn
	log  *slog.Logger
	wmu  sync.Mutex // gorilla allows one writer at a time

	ctx    context.Context // the jobs' context: ends with the session
	cancel context.CancelFunc
	done   chan struct{} // closed when the reader stops

	restart    chan string // buffered: the version a job booted into
	restarting atomic.Bool
	closeTimer atomic.Pointer[time.Timer] // drops the connection 1 s after our close frame
	wg         sync.WaitGroup             // control and job goroutines

	// Owned by the reader goroutine.
	jobVersion string
	jobDone    chan struct{}
}

// session runs one connection and tells Run how it ended.
func (d *Device) session(ctx context.Context) ending {
	h := http.Header{"Authorization": {"Bearer " + d.cfg.Token}}
	dctx, cancel := context.WithTimeout(ctx, d.helloTimeout)
	conn, resp, err := d.dialer.DialContext(dctx, d.wsURL.String(), h)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ending{}
		}
		return d.refused(resp, err)
	}
	s := &session{d: d, conn: conn, log: d.log, done: make(chan struct{}), restart: make(chan string, 1)}
	s.ctx, s.cancel = context.WithCancel(ctx)
	defer s.cancel()
	conn.SetReadLimit(64 << 10)

	// Until the control goroutine takes over, the end of Run's context
	// drops the connection so that no read outlives it.
	unwatch := context.AfterFunc(ctx, func() { conn.Close() })
	fw := d.Firmware()
	if err := s.write(helloFrame{Type: "hello", Protocol: 1, Model: d.cfg.Model, Firmware: fw, Capabilities: d.caps}); err != nil {
		unwatch()
		conn.Close()
		return d.ended(ctx, ending{code: websocket.CloseAbnormalClosure, reason: "hello: " + err.Error()})
	}
	w, err := s.readWelcome()
	unwatch()
	if err != nil {
		e := ending{code: websocket.CloseAbnormalClosure, reason: err.Error()}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			e.code, e.reason = ce.Code, ce.Text
		} else {
			s.conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseProtocolError, "expected welcome"), time.Now().Add(time.Second))
		}
		conn.Close()
		return d.ended(ctx, e)
	}
	interval := time.Duration(w.HeartbeatIntervalMS) * time.Millisecond
	if interval <= 0 {
		interval = defaultHeartbeat
	}
	interval = max(interval, 10*time.Millisecond)
	// The relay answers every heartbeat, so a silence much longer than the
	// interval means the connection is gone.
	readTimeout := time.Duration(w.HeartbeatTimeoutMS) * time.Millisecond
	readTimeout = max(readTimeout, 3*interval) + time.Second
	if w.MaxFrameSize > 0 {
		conn.SetReadLimit(w.MaxFrameSize)
	}
	s.log = d.log.With("device", w.Device, "session", w.Session)
	s.log.Debug("device: connected", "firmware", fw, "heartbeat", interval)
	d.mu.Lock()
	d.cur = s
	d.mu.Unlock()
	d.emit(Event{Kind: EventConnected, Version: fw, Session: w.Session})

	s.wg.Add(1)
	go s.control(ctx, interval)

	var rerr error
	for {
		conn.SetReadDeadline(time.Now().Add(readTimeout))
		mt, b, err := conn.ReadMessage()
		if err != nil {
			rerr = err
			break
		}
		if mt == websocket.TextMessage {
			s.handle(b)
		}
	}
	d.mu.Lock()
	d.cur = nil
	d.mu.Unlock()
	close(s.done)
	s.cancel()
	s.wg.Wait()
	if t := s.closeTimer.Load(); t != nil {
		t.Stop()
	}
	conn.Close()

	e := ending{welcomed: true, code: websocket.CloseAbnormalClosure, reason: rerr.Error(), restart: s.restarting.Load()}
	var ce *websocket.CloseError
	if errors.As(rerr, &ce) {
		e.code, e.reason = ce.Code, ce.Text
	}
	s.log.Debug("device: session ended", "code", e.code, "reason", e.reason)
	return d.ended(ctx, e)
}

// ended reports the end of a connection and passes it on; 4003 and 4004
// stop Run (§4: not reconnecting with this token, or at all).
func (d *Device) ended(ctx context.Context, e ending) ending {
	if (e.code == 4003 || e.code == 4004) && ctx.Err() == nil {
		e.fatal = &CloseError{Code: e.code, Reason: e.reason}
	}
	d.emit(Event{Kind: EventClosed, CloseCode: e.code, Reason: e.reason})
	return e
}

// refused turns a failed upgrade into an ending: a 401 stops Run (§1: no
// retry without a new token), a 503 carries its Retry-After.
func (d *Device) refused(resp *http.Response, err error) ending {
	if resp == nil {
		d.log.Debug("device: connect failed", "err", err)
		d.emit(Event{Kind: EventConnectFailed, Reason: err.Error()})
		return ending{code: websocket.CloseAbnormalClosure, reason: err.Error()}
	}
	re := &RefusedError{Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header)}
	re.Code, re.Message = errorBody(resp)
	if resp.Body != nil {
		resp.Body.Close()
	}
	d.log.Info("device: upgrade refused", "status", re.Status, "code", re.Code)
	d.emit(Event{Kind: EventConnectFailed, CloseCode: re.Status, Reason: re.Error()})
	e := ending{code: websocket.CloseAbnormalClosure, reason: re.Error(), retryAfter: re.RetryAfter}
	if re.Status == http.StatusUnauthorized {
		e.fatal = re
	}
	return e
}

// readWelcome waits for the relay's first text frame, which must be a
// welcome (§2.2).
func (s *session) readWelcome() (welcomeFrame, error) {
	var w welcomeFrame
	s.conn.SetReadDeadline(time.Now().Add(s.d.helloTimeout))
	for {
		mt, b, err := s.conn.ReadMessage()
		if err != nil {
			return w, err
		}
		if mt != websocket.TextMessage {
			continue
		}
		if err := json.Unmarshal(b, &w); err != nil {
			return w, fmt.Errorf("welcome: %v", err)
		}
		if w.Type != "welcome" {
			return w, fmt.Errorf("expected welcome, got %q", clip(w.Type, 32))
		}
		return w, nil
	}
}

// control sends heartbeats and ends the session when Run's context ends
// or a job asks for a restart.
func (s *session) control(ctx context.Context, interval time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	var seq uint64
	for {
		select {
		case <-t.C:
			seq++
			if s.write(heartbeatFrame{Type: "heartbeat", Seq: seq}) != nil {
				return // write closed the connection; the reader ends
			}
		case <-ctx.Done():
			s.closeWith(websocket.CloseNormalClosure, "bye")
			return
		case v := <-s.restart:
			s.closeWith(websocket.CloseNormalClosure, "restarting into "+v)
			return
		case <-s.done:
			return
		}
	}
}

// closeWith sends a close frame and gives the relay 1 s to answer before
// the connection is dropped (§3).
func (s *session) closeWith(code int, reason string) {
	msg := websocket.FormatCloseMessage(code, reason)
	if err := s.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(s.d.writeTimeout)); err != nil {
		s.conn.Close()
		return
	}
	s.closeTimer.Store(time.AfterFunc(time.Second, func() { s.conn.Close() }))
}

// write sends one frame. A failed write closes the connection, which ends
// the reader and so the session.
func (s *session) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.conn.SetWriteDeadline(time.Now().Add(s.d.writeTimeout))
	if err := s.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		s.conn.Close()
		return err
	}
	return nil
}

// handle acts on one frame from the relay. Unknown types and members are
// ignored (§2, §7).
func (s *session) handle(b []byte) {
	var env struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		s.log.Debug("device: unreadable frame ignored", "err", err)
		return
	}
	switch env.Type {
	case "message":
		s.d.emit(Event{Kind: EventMessage, Frame: b})
		var m struct {
			ID  string `json:"id"`
			Ack bool   `json:"ack"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			s.log.Debug("device: message ignored", "err", err)
			return
		}
		if m.Ack && m.ID != "" {
			s.write(ackFrame{Type: "ack", ID: m.ID})
		}
	case "ack":
		s.d.emit(Event{Kind: EventAck, Frame: b})
	case "error":
		var e struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(b, &e)
		s.log.Info("device: relay reported an error", "code", e.Code, "message", e.Message)
		s.d.emit(Event{Kind: EventError, Reason: e.Code + ": " + e.Message, Frame: b})
	case "firmware_offer":
		s.offer(b)
	default: // heartbeat answers, a repeated welcome, frame types of later revisions
	}
}

// offer acts on a firmware_offer: one at a time; a repeat of the offer in
// progress is ignored, as is another offer while one is in progress (the
// relay offers it again after the next hello, §8.5).
func (s *session) offer(b []byte) {
	var o Offer
	if err := json.Unmarshal(b, &o); err != nil {
		s.log.Info("device: malformed firmware_offer ignored", "err", err)
		s.d.emit(Event{Kind: EventOffer, Reason: "malformed offer: " + err.Error()})
		return
	}
	claimed := claimedVersion(o.Manifest)
	switch {
	case s.d.cfg.Slot == "":
		s.d.emit(Event{Kind: EventOffer, Version: claimed, Reason: "ignored: no update slot"})
		return
	case s.restarting.Load():
		s.d.emit(Event{Kind: EventOffer, Version: claimed, Reason: "ignored: restarting"})
		return
	case s.jobDone != nil && !isClosed(s.jobDone):
		reason := "ignored: busy with " + s.jobVersion
		if claimed == s.jobVersion {
			reason = "ignored: already in progress"
		}
		s.d.emit(Event{Kind: EventOffer, Version: claimed, Reason: reason})
		return
	}
	m, err := VerifyOffer(o, s.d.cfg.TrustedKeys, s.d.cfg.Model, s.d.Firmware(), s.d.cfg.MaxImageSize)
	if err != nil {
		s.log.Warn("device: firmware offer refused", "version", claimed, "err", err)
		s.d.emit(Event{Kind: EventOffer, Version: claimed, Reason: "refused: " + err.Error()})
		if claimed != "" {
			// The version is the manifest's claim: the report is about
			// that offer, nothing is decided on it.
			s.status(claimed, "failed", 0, err.Error())
		}
		return
	}
	s.d.emit(Event{Kind: EventOffer, Version: m.Version})
	s.jobVersion = m.Version
	s.jobDone = make(chan struct{})
	s.wg.Add(1)
	go func(done chan struct{}) {
		defer s.wg.Done()
		defer close(done)
		s.runJob(m, o.URL)
	}(s.jobDone)
}

// claimedVersion is the version an unverified manifest claims, to name the
// offer in a failed report; "" when it has none.
func claimedVersion(manifest string) string {
	// A map, not a struct: keys match exactly (PROTOCOL.md §2), where
	// encoding/json would match a struct field whatever its case.
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(manifest), &m) != nil {
		return ""
	}
	var v string
	if json.Unmarshal(m["version"], &v) != nil || !validHelloString(v) {
		return ""
	}
	return v
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// status sends a firmware_status (§8.5) and reports it as an event.
func (s *session) status(version, status string, progress int64, reason string) error {
	f := statusFrame{Type: "firmware_status", Version: version, Status: status}
	if status == "downloading" {
		f.Progress = &progress
	}
	if status == "failed" {
		f.Reason = truncReason(reason)
	}
	if err := s.write(f); err != nil {
		s.log.Debug("device: firmware_status not sent", "status", status, "err", err)
		return err
	}
	s.log.Debug("device: firmware_status", "version", version, "status", status, "progress", progress, "reason", f.Reason)
	s.d.emit(Event{Kind: EventStatus, Version: version, Status: status, Progress: progress, Reason: f.Reason})
	return nil
}
