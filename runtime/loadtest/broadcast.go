package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// StatsPath is where a bare server answers GET with its BareStats.
const StatsPath = "/stats"

// The messages of a delivery run. The relay's pipeline (see
// deliveryPlugins) and the bare server produce frames of the same shape and
// size: subject load.s0001, load.s0002, …; a payload {"text":"Load 70.3 °F"}
// where the value is a ramp from 0 to 100 °C each minute, in °F with one
// decimal; the time member is when the message was emitted.
const (
	loadSubjectPrefix = "load"
	loadRampPeriod    = time.Minute
	loadTemplate      = `Load {{.value | printf "%.1f"}} {{.unit}}`
)

// sensorName is the subject token of sensor i (counting from 0).
func sensorName(i int) string { return fmt.Sprintf("s%04d", i+1) }

// rampFahrenheit is the value the relay's pipeline renders for a message
// emitted at t: the collector's ramp (0 to 100 °C each period, rounded to
// two decimals), converted to °F and rounded to one.
func rampFahrenheit(t time.Time) float64 {
	period := loadRampPeriod.Nanoseconds()
	frac := float64(t.UnixNano()%period) / float64(period)
	c := math.RoundToEven(frac*100*100) / 100
	return math.RoundToEven((c*9/5+32)*10) / 10
}

// appendLoadMessage appends the message frame of message seq (counting from
// 1) emitted at t, cycling over sensors subjects, as the gateway encodes it.
func appendLoadMessage(dst []byte, boot string, seq uint64, sensors int, t time.Time) []byte {
	dst = append(dst, `{"type":"message","id":"`...)
	dst = append(dst, boot...)
	dst = append(dst, '-')
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `","subject":"`+loadSubjectPrefix+`.`...)
	dst = append(dst, sensorName(int((seq-1)%uint64(max(sensors, 1))))...)
	dst = append(dst, `","time":"`...)
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","payload":{"text":"Load `...)
	dst = strconv.AppendFloat(dst, rampFahrenheit(t), 'f', 1, 64)
	dst = append(dst, ` °F"}}`...)
	return dst
}

// bareConn is one connection of the bare server and its write accounting:
// handed counts the bytes given to nbio, written those nbio reports on the
// socket, so handed > written means nbio buffers bytes the socket did not
// take yet (the same accounting as the relay's gateway).
type bareConn struct {
	ws      *websocket.Conn
	log     *slog.Logger
	handed  atomic.Int64
	written atomic.Int64
	closed  atomic.Bool
}

// write sends one text frame; a failed write ends the connection, which
// nbio reports to OnClose.
func (c *bareConn) write(b []byte) {
	c.handed.Add(serverWireSize(len(b)))
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.log.Debug("bare server: write", "err", err)
	}
}

// busy reports whether nbio still buffers bytes for c. Bytes written that
// were never handed (the upgrade response, a close frame nbio answers by
// itself) are forgiven so the count cannot drift.
func (c *bareConn) busy() bool {
	h, w := c.handed.Load(), c.written.Load()
	if w > h {
		c.handed.CompareAndSwap(h, w)
		return false
	}
	return h > w
}

// serverWireSize is the size on the socket of an unmasked frame with an
// n-byte payload.
func serverWireSize(n int) int64 {
	size := int64(n) + 2
	switch {
	case n > 65535:
		size += 8
	case n > 125:
		size += 2
	}
	return size
}

// connOf returns the bareConn of c, making it on first use: the upgrade
// handler and the first message may race for it.
func (s *BareServer) connOf(c *websocket.Conn) *bareConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if bc, ok := c.Session().(*bareConn); ok {
		return bc
	}
	bc := &bareConn{ws: c, log: s.log}
	c.SetSession(bc)
	return bc
}

// onWritten is nbio's report of bytes written to a socket.
func (s *BareServer) onWritten(c *nbio.Conn, _ []byte, n int) {
	ws, ok := c.Session().(*websocket.Conn)
	if !ok {
		return
	}
	bc, ok := ws.Session().(*bareConn)
	if !ok {
		return
	}
	if bc.written.Add(int64(n)) >= bc.handed.Load() {
		signal(s.drained)
	}
}

// setReady adds a connection that said hello to the broadcast set, or
// removes one that closed.
func (s *BareServer) setReady(bc *bareConn, ready bool) {
	s.mu.Lock()
	if ready && !bc.closed.Load() {
		s.ready[bc] = struct{}{}
	} else {
		bc.closed.Store(true)
		delete(s.ready, bc)
	}
	s.version.Add(1)
	s.mu.Unlock()
	signal(s.changed)
}

// readyConns returns the connections that said hello.
func (s *BareServer) readyConns() []*bareConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*bareConn, 0, len(s.ready))
	for bc := range s.ready {
		out = append(out, bc)
	}
	return out
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// bareStats are the bare server's counters.
type bareStats struct {
	generated atomic.Int64
	writes    atomic.Int64
	skipped   atomic.Int64
}

// BareStats is what GET /stats answers.
type BareStats struct {
	// Ready counts the connections that said hello and are open.
	Ready int `json:"ready"`
	// Generated counts the messages generated, Writes the frames handed to
	// connections, Skipped the frames not handed because the connection's
	// socket had not taken the previous one yet.
	Generated int64 `json:"generated"`
	Writes    int64 `json:"writes"`
	Skipped   int64 `json:"skipped"`
}

// Stats returns the server's counters.
func (s *BareServer) Stats() BareStats {
	s.mu.Lock()
	ready := len(s.ready)
	s.mu.Unlock()
	return BareStats{Ready: ready, Generated: s.stats.generated.Load(), Writes: s.stats.writes.Load(), Skipped: s.stats.skipped.Load()}
}

func (s *BareServer) serveStats(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Stats())
}

// idleWait bounds how long the broadcast loop sleeps when it has nobody to
// write to, before it looks again.
const idleWait = 10 * time.Millisecond

// Broadcast generates messages as fast as it can until ctx ends: each gets
// its emit time and goes, as one message frame, to every connection that
// said hello — except a connection whose socket has not taken the previous
// frame yet, which skips it. That is the least a relay can do per delivery
// (encode once, one WebSocket write per device, drop instead of queueing),
// so the delivery rate the clients see is the ceiling of this machine.
func (s *BareServer) Broadcast(ctx context.Context) {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	boot := hex.EncodeToString(b[:])
	timer := time.NewTimer(idleWait)
	defer timer.Stop()
	wait := func(ch chan struct{}) bool {
		timer.Reset(idleWait)
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		case <-timer.C:
		}
		return true
	}

	var (
		conns   []*bareConn
		version = ^uint64(0)
		frame   []byte
		seq     uint64
	)
	for ctx.Err() == nil {
		if v := s.version.Load(); v != version {
			version, conns = v, s.readyConns()
		}
		if len(conns) == 0 {
			if !wait(s.changed) {
				return
			}
			continue
		}
		seq++
		frame = appendLoadMessage(frame[:0], boot, seq, bareSensors, time.Now())
		var sent, skipped int64
		for _, bc := range conns {
			if bc.closed.Load() || bc.busy() {
				skipped++
				continue
			}
			bc.write(frame) // nbio copies the frame
			sent++
		}
		s.stats.generated.Add(1)
		s.stats.writes.Add(sent)
		s.stats.skipped.Add(skipped)
		if sent == 0 && !wait(s.drained) {
			return
		}
	}
}
