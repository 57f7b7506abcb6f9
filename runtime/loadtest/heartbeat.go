package loadtest

import (
	"context"
	"maps"
	rand2 "math/rand/v2"
	"strconv"
	"time"
)

// Timed heartbeats: a sample of the connections send
// {"type":"heartbeat","seq":<n>} every SampleInterval and time the relay's
// answer, the heartbeat frame with the same seq (firmware/PROTOCOL.md
// §2.2), from just before the write to the read that brought it. Each
// heartbeat counts in the window that was current when it was sent, so a
// window's figures cover exactly the heartbeats sent in it, whenever their
// answers arrive; the coordinator asks for them a little after the window.

// timedTick is how often the timed heartbeat loop wakes. It is short so
// that each wake sends a few heartbeats, not a burst that would queue
// behind itself at both ends (1,000 devices a second: 5 a wake).
const timedTick = 5 * time.Millisecond

// timedRing is how many heartbeats a sampled connection remembers while it
// waits for their answers: an answer that comes more than timedRing
// intervals late no longer matches, and its heartbeat counts as lost.
const timedRing = 16

// Sampled reports whether connection i of n is one of the sample that
// sends timed heartbeats: the sample is spread evenly over [0, n), so each
// worker and each source address holds its share.
func Sampled(i, sample, n int) bool {
	if sample <= 0 || n <= 0 || i < 0 || i >= n {
		return false
	}
	return (i+1)*sample/n > i*sample/n
}

// timedConn is a sampled connection's heartbeats awaiting an answer, by seq
// modulo timedRing. Its owner's mu guards it.
type timedConn struct {
	next    uint64
	waiting [timedRing]timedSend
}

type timedSend struct {
	seq     uint64
	sent    int64 // Unix nanoseconds
	window  int32
	pending bool
}

// HeartbeatCounts are the timed heartbeats of one window.
type HeartbeatCounts struct {
	Sent     int64 `json:"sent"`
	Answered int64 `json:"answered"`
	// RTT is the spread of send → answer times of the answered ones.
	RTT Histogram `json:"rtt"`
}

// Add adds o to c.
func (c *HeartbeatCounts) Add(o HeartbeatCounts) {
	c.Sent += o.Sent
	c.Answered += o.Answered
	c.RTT.Add(o.RTT)
}

// Lost is the number of heartbeats without an answer (so far).
func (c HeartbeatCounts) Lost() int64 { return max(0, c.Sent-c.Answered) }

// HeartbeatReport is a worker's account of one heartbeat window.
type HeartbeatReport struct {
	Window int             `json:"window"`
	Counts HeartbeatCounts `json:"counts"`
	// Sample counts the sampled connections open now, Open all of them.
	Sample int `json:"sample"`
	Open   int `json:"open"`
	// Unmatched counts answers (in any window) whose seq matched no
	// heartbeat awaiting one.
	Unmatched   int64          `json:"unmatched,omitempty"`
	Disconnects map[string]int `json:"disconnects,omitempty"`
}

// timedHeartbeats sends each sampled connection one timed heartbeat per
// sample interval, spread evenly over the interval, until ctx ends. It
// keeps to the rate when it wakes late (a busy machine delays it, and a
// ticker drops the ticks it missed): each wake sends what is due since the
// sampled set last changed, at most one round of the connections at once.
func (c *clients) timedHeartbeats(ctx context.Context) {
	if c.spec.Sample <= 0 {
		return
	}
	t := time.NewTicker(timedTick)
	defer t.Stop()
	var (
		cursor int
		since  time.Time // when the sampled set last changed
		sent   int64     // sends due since then that were made
		last   int       // size of the sampled set
	)
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-t.C:
		}
		c.mu.Lock()
		conns := c.timedConns
		c.mu.Unlock()
		if len(conns) == 0 {
			continue
		}
		if len(conns) != last {
			since, sent, last = now.Add(-timedTick), 0, len(conns)
		}
		due := timedDue(now.Sub(since), c.spec.SampleInterval, len(conns))
		n := max(0, min(due-sent, int64(len(conns))))
		sent = max(sent, due-int64(len(conns))) + n
		for range n {
			cc := conns[cursor%len(conns)]
			cursor = (cursor + 1) % len(conns)
			if cc.live.Load() {
				cc.sendTimed()
			}
		}
	}
}

// timedDue is how many timed heartbeats are due after elapsed at one per
// interval from each of conns connections.
func timedDue(elapsed, interval time.Duration, conns int) int64 {
	if elapsed <= 0 || interval <= 0 {
		return 0
	}
	return int64(float64(elapsed) / float64(interval) * float64(conns))
}

// sendTimed sends the connection's next timed heartbeat.
func (cc *clientConn) sendTimed() {
	window := cc.c.window.Load()
	cc.mu.Lock()
	tc := cc.timed
	seq := tc.next
	tc.next++
	payload := strconv.AppendUint([]byte(`{"type":"heartbeat","seq":`), seq, 10)
	payload = append(payload, '}')
	frame := appendClientFrame(make([]byte, 0, 14+len(payload)), opText, payload, rand2.Uint32())
	// A heartbeat still waiting timedRing intervals later stays lost.
	tc.waiting[seq%timedRing] = timedSend{seq: seq, sent: time.Now().UnixNano(), window: window, pending: true}
	cc.mu.Unlock()
	cc.c.countSent(window)
	_, _ = cc.nc.Write(frame)
}

// timedAnswer matches the answer to heartbeat seq, received at now, with
// the heartbeat. Callers hold cc.mu.
func (cc *clientConn) timedAnswer(seq uint64, now int64) {
	tc := cc.timed
	if tc == nil {
		cc.c.unmatched.Add(1)
		return
	}
	w := &tc.waiting[seq%timedRing]
	if !w.pending || w.seq != seq {
		cc.c.unmatched.Add(1)
		return
	}
	w.pending = false
	cc.c.countAnswer(w.window, max(now-w.sent, 0))
}

func (c *clients) countSent(window int32) {
	if window == 0 {
		return
	}
	c.hbMu.Lock()
	c.windowCounts(window).Sent++
	c.hbMu.Unlock()
}

func (c *clients) countAnswer(window int32, rtt int64) {
	if window == 0 {
		return
	}
	c.hbMu.Lock()
	w := c.windowCounts(window)
	w.Answered++
	w.RTT.add(histIndex(rtt/1000), 1)
	c.hbMu.Unlock()
}

// windowCounts returns the counts of a window; callers hold hbMu.
func (c *clients) windowCounts(window int32) *HeartbeatCounts {
	if c.hbWindows == nil {
		c.hbWindows = map[int32]*HeartbeatCounts{}
	}
	w := c.hbWindows[window]
	if w == nil {
		w = &HeartbeatCounts{}
		c.hbWindows[window] = w
	}
	return w
}

// heartbeatReport is window's timed heartbeats so far.
func (c *clients) heartbeatReport(window int) HeartbeatReport {
	rep := HeartbeatReport{Window: window, Open: int(c.open.Load()), Unmatched: c.unmatched.Load()}
	c.hbMu.Lock()
	if w := c.hbWindows[int32(window)]; w != nil {
		rep.Counts.Add(*w)
	}
	c.hbMu.Unlock()
	c.mu.Lock()
	for _, cc := range c.timedConns {
		if cc.live.Load() {
			rep.Sample++
		}
	}
	rep.Disconnects = maps.Clone(c.disconnects)
	c.mu.Unlock()
	return rep
}
