package gateway

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio/nbhttp/websocket"
)

const (
	stateAwaitHello uint32 = iota // upgraded; the device has not said hello yet
	stateReady                    // welcome sent; messages flow
	stateClosing                  // a close frame was sent or received; nothing more is processed
)

// closeLinger is how long the relay waits for a device to answer its close
// frame before it drops the TCP connection.
const closeLinger = time.Second

// session is one device connection. It is kept small (see doc.go): no
// goroutine, no buffer of its own while idle; the send queue is allocated
// only while frames wait.
type session struct {
	g  *Gateway
	ws *websocket.Conn
	// id is the catalog's identity. hello replaces id.Model with the model
	// the device names, under mu and before the session routes any frame:
	// the connection's frames are handled one at a time, and data and acks
	// wait for hello.
	id Identity

	sid       uint64
	connected int64 // unix nanoseconds; immutable

	lastActivity  atomic.Int64 // unix ns of the last frame (any kind) from the device
	reported      atomic.Int64 // lastActivity last passed to SeenRecorder
	closeDeadline atomic.Int64 // unix ns: while closing, drop the TCP connection after this
	// acceptMark, when not 0, is the listener mark after which nbio's late
	// pre-upgrade read deadline must be cleared (see listener.settled).
	acceptMark atomic.Uint64

	// Bytes handed to nbio (websocket framing and TLS included) and bytes
	// nbio reports written to the socket. handed-written is what nbio still
	// buffers for this connection.
	handed, written atomic.Int64
	state           atomic.Uint32
	finished        atomic.Bool
	// blocked: queued frames wait for nbio's buffer to drain; the write
	// callback that sees it drained resumes the flush.
	blocked atomic.Bool
	// tlsOverhead is the bytes a TLS record adds to its plaintext (0: plain
	// TCP). It lets the gateway count exactly what it hands to the socket.
	tlsOverhead uint8

	mu sync.Mutex
	// Guarded by mu. The fields are ordered to keep a session within 256
	// bytes (an allocation size class): it is most of what the relay adds
	// per connection to nbio's own state (docs/BENCHMARKS.md).
	greeted         bool
	closeAfterFlush bool     // send the close frame once the queue is written
	closeCode       uint16   // the code the relay sent or will send
	peerCode        uint16   // the code of a close frame the device sent first
	queue           [][]byte // encoded message frames not yet handed to nbio
	firmware        string
	capabilities    []string
	closeReason     string
}

func (s *session) sessionID() string { return fmt.Sprintf("%016x", s.sid) }

// wireSize is the number of bytes a WebSocket frame with an n-byte payload
// takes on the socket: the server frame header (unmasked) plus, under TLS,
// the overhead of each record of at most 16 KiB. nbio writes every
// WriteMessage as one frame because the engine's frame payload limit is at
// least max_frame_size, and TLS records never exceed 16 KiB because dynamic
// record sizing is off.
func (s *session) wireSize(n int) int64 {
	size := int64(n) + 2
	switch {
	case n > 65535:
		size += 8
	case n > 125:
		size += 2
	}
	if s.tlsOverhead > 0 {
		size += int64(s.tlsOverhead) * ((size + tlsMaxRecord - 1) / tlsMaxRecord)
	}
	return size
}

// pendingLocked returns the bytes nbio still buffers. Bytes written that the
// gateway never handed over (a TLS key update answered by the TLS layer)
// are forgiven so they cannot make the count drift. s.mu must be held:
// handed only changes under it.
func (s *session) pendingLocked() int64 {
	h, w := s.handed.Load(), s.written.Load()
	if w > h {
		s.handed.CompareAndSwap(h, w)
		return 0
	}
	return h - w
}

// writeLocked hands one frame to nbio, which writes it to the socket now
// or buffers what the socket does not take.
func (s *session) writeLocked(kind string, mt websocket.MessageType, b []byte) error {
	s.handed.Add(s.wireSize(len(b)))
	if err := s.ws.WriteMessage(mt, b); err != nil {
		return err
	}
	s.g.m.out[kind].Inc()
	return nil
}

// reply writes a protocol answer (welcome, heartbeat, ack, error, pong). It
// bypasses the message queue: answers are tiny, caused by the device's own
// frames, and bounded by nbio's per-connection write buffer limit.
func (s *session) reply(kind string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.Load() == stateClosing {
		return
	}
	_ = s.writeLocked(kind, websocket.TextMessage, b)
}

// enqueue queues one encoded message frame under the overflow policy and
// writes what the socket takes.
func (s *session) enqueue(frame []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.Load() != stateReady {
		return ErrNotConnected
	}
	g := s.g
	if len(s.queue) >= g.cfg.SendQueue {
		switch g.cfg.SendOverflow {
		case OverflowDropNewest:
			g.m.drop[droppedNewest].Inc()
			return ErrQueueFull
		case OverflowDisconnect:
			g.m.drop[droppedDisconnect].Inc()
			s.closeLocked(CloseQueueOverflow, "send queue overflow", false, time.Now().Add(closeLinger))
			return ErrQueueFull
		default: // OverflowDropOldest
			s.queue[0] = nil
			s.queue = s.queue[1:]
			g.m.drop[droppedOldest].Inc()
		}
	}
	if len(s.queue) == 0 && s.pendingLocked() == 0 {
		// The common case, the device keeping up: straight to nbio, without
		// a queue slice to allocate and release per frame.
		if err := s.writeLocked("message", websocket.TextMessage, frame); err != nil {
			s.dropQueueLocked()
		}
		return nil
	}
	s.queue = append(s.queue, frame)
	s.flushLocked()
	return nil
}

// flushLocked hands queued frames to nbio while nbio buffers nothing for
// this connection, so at most one frame (plus protocol answers) ever sits in
// nbio's buffer and the queue bound is the real bound. When nbio still
// buffers bytes, it sets blocked and returns; onWritten resumes it.
func (s *session) flushLocked() {
	for len(s.queue) > 0 || s.closeAfterFlush {
		if s.pendingLocked() > 0 {
			s.blocked.Store(true)
			// Re-check: the write callback may have drained nbio between
			// the check above and the store.
			if s.pendingLocked() > 0 || !s.blocked.CompareAndSwap(true, false) {
				return
			}
		}
		if len(s.queue) == 0 {
			s.closeAfterFlush = false
			s.sendCloseLocked()
			return
		}
		frame := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		if err := s.writeLocked("message", websocket.TextMessage, frame); err != nil {
			s.dropQueueLocked()
			return
		}
	}
	s.queue = nil // release the backing array while idle
}

// resume continues a flush after nbio drained its buffer.
func (s *session) resume() {
	s.mu.Lock()
	s.flushLocked()
	s.mu.Unlock()
}

func (s *session) dropQueueLocked() {
	if n := len(s.queue); n > 0 {
		s.g.m.drop[droppedSessionClosed].Add(float64(n))
	}
	s.queue = nil
	s.closeAfterFlush = false
}

// close ends the session with a close frame; see closeLocked.
func (s *session) close(code int, reason string, flush bool, deadline time.Time) {
	s.mu.Lock()
	s.closeLocked(code, reason, flush, deadline)
	s.mu.Unlock()
}

// closeLocked sends a close frame with code and reason (after the queued
// frames when flush is set; otherwise they are dropped) and gives the device
// until deadline to answer before the connection is dropped.
func (s *session) closeLocked(code int, reason string, flush bool, deadline time.Time) {
	if s.state.Load() == stateClosing {
		return
	}
	s.state.Store(stateClosing)
	s.closeCode, s.closeReason = uint16(code), truncate(reason, maxCloseReason) // callers pass 1000–4999
	s.closeDeadline.Store(deadline.UnixNano())
	s.g.trackClosing(s)
	if flush && (len(s.queue) > 0 || s.pendingLocked() > 0) {
		s.closeAfterFlush = true
		s.flushLocked()
		return
	}
	s.dropQueueLocked()
	s.sendCloseLocked()
}

func (s *session) sendCloseLocked() {
	payload := make([]byte, 2+len(s.closeReason))
	binary.BigEndian.PutUint16(payload, s.closeCode)
	copy(payload[2:], s.closeReason)
	if err := s.writeLocked("close", websocket.CloseMessage, payload); err != nil {
		// The connection is gone already; nothing waits for an answer.
		s.closeDeadline.Store(0)
	}
}

// info returns the session's public view.
func (s *session) info() SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	si := SessionInfo{
		Device:       s.id.Device,
		Session:      s.sessionID(),
		RemoteAddr:   s.ws.RemoteAddr().String(),
		ConnectedAt:  time.Unix(0, s.connected).UTC(),
		LastSeen:     time.Unix(0, s.lastActivity.Load()).UTC(),
		Model:        s.id.Model,
		Firmware:     s.firmware,
		Capabilities: s.capabilities,
		QueueLength:  len(s.queue),
		PendingBytes: s.pendingLocked(),
	}
	switch s.state.Load() {
	case stateAwaitHello:
		si.State = "awaiting_hello"
	case stateReady:
		si.State = "ready"
	default:
		si.State = "closing"
	}
	return si
}
