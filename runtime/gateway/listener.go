package gateway

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// listener wraps the TCP listener nbhttp accepts from. nbhttp's accept loop
// only ends when its engine stops and retries at once on any error other
// than a timeout, so this wrapper
//   - backs off (5 ms doubling to 1 s) on errors such as EMFILE instead of
//     letting the loop spin, and
//   - lets the gateway stop accepting (the port is released and new
//     connections are refused by the kernel) while the engine keeps serving
//     the devices already connected: after stopAccepting, Accept blocks
//     until Close, and
//   - tells the gateway when nbio has finished setting up a connection it
//     returned (see settled).
type listener struct {
	net.Listener
	log *slog.Logger

	// entered counts calls of Accept, returned the connections it returned.
	entered, returned atomic.Uint64

	stopped   atomic.Bool
	closed    chan struct{}
	closeOnce sync.Once
}

func newListener(ln net.Listener, log *slog.Logger) *listener {
	return &listener{Listener: ln, log: log, closed: make(chan struct{})}
}

func (l *listener) Accept() (net.Conn, error) {
	l.entered.Add(1)
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			l.returned.Add(1)
			return c, nil
		}
		if l.stopped.Load() || errors.Is(err, net.ErrClosed) {
			<-l.closed
			return nil, net.ErrClosed
		}
		if delay == 0 {
			delay = 5 * time.Millisecond
			l.log.Warn("gateway: accept failed; backing off", "err", err)
		} else if delay *= 2; delay > time.Second {
			delay = time.Second
		}
		select {
		case <-time.After(delay):
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
}

// mark returns a value for settled, taken after a connection was accepted.
func (l *listener) mark() uint64 { return l.returned.Load() }

// settled reports whether nbio's accept goroutine has finished setting up
// every connection accepted before mark was taken. That goroutine accepts
// and sets up one connection at a time, so once it has entered Accept again
// it is done with all the connections it returned before.
//
// It matters because nbio arms a connection's first read deadline
// (nbhttp.Config.KeepaliveTime) only after registering the connection with
// its poller: the handshake can run, upgrade and clear the deadline first,
// and the late deadline then drops a healthy device. The gateway clears the
// deadline again once the connection has settled.
func (l *listener) settled(mark uint64) bool { return l.entered.Load() > mark }

// stopAccepting closes the socket; Accept then waits for Close.
func (l *listener) stopAccepting() {
	l.stopped.Store(true)
	_ = l.Listener.Close()
}

// Close is called by the engine when it stops.
func (l *listener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	l.stopped.Store(true)
	err := l.Listener.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
