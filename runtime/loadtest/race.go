//go:build race

package loadtest

import (
	"net"
	"sync"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
)

// showAcceptHandoff makes visible to the race detector the hand-off of an
// accepted connection from nbhttp's accept goroutine to a poller goroutine.
// nbio orders the two through epoll_ctl, which the detector cannot see, so
// it reports the poller's first read of the connection's addresses as a race
// (lesismal/nbio#495, open in v1.6.12). The accept goroutine releases a mutex
// after it has set the connection up (OnOpen) and the poller acquires it
// before it handles data. Only -race builds carry this.
func showAcceptHandoff(e *nbhttp.Engine) {
	var mu sync.Mutex
	e.OnOpen(func(net.Conn) {
		mu.Lock()
		//lint:ignore SA2001 the empty critical section is the point: it orders the goroutines
		mu.Unlock()
	})
	// The same hand-off as nbhttp's own data handler, behind the mutex.
	e.Engine.OnData(func(c *nbio.Conn, data []byte) {
		mu.Lock()
		//lint:ignore SA2001 see above
		mu.Unlock()
		c.DataHandler()(c, data)
	})
}

// pollerEdge is the same hand-off on the client side: a worker registers a
// dialed connection with its poller (epoll_ctl) and the poller goroutine
// reads it after epoll_wait, which the detector cannot see; with frames
// arriving at once (a broadcasting server) it reports the connection's
// initialisation as racing with the poller's first read. The connecting
// goroutine releases the edge before it hands the connection over and the
// poller acquires it before it handles data. Only -race builds carry it.
type pollerEdge struct{ mu sync.Mutex }

func (r *pollerEdge) release() { r.mu.Lock(); r.mu.Unlock() } //nolint:staticcheck // an empty critical section is the point
func (r *pollerEdge) acquire() { r.mu.Lock(); r.mu.Unlock() } //nolint:staticcheck // an empty critical section is the point
