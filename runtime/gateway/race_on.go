//go:build race

package gateway

import "sync"

// raceEnabled reports a -race build.
const raceEnabled = true

// raceEdge gives the race detector the happens-before edge nbio creates
// through the kernel: a connection is accepted on nbio's listener goroutine
// and registered with epoll, and its poller goroutine reads it after
// epoll_wait. The detector cannot see that hand-off and reports nbio's own
// accept-time writes (the remote address, the connection struct) as racing
// with the poller's reads. In -race builds the gateway releases this edge
// when nbio opens a connection and acquires it before nbio handles data, so
// that -race reports races in the gateway rather than this false positive.
// Normal builds compile none of it (race_off.go).
type raceEdge struct{ mu sync.Mutex }

func (r *raceEdge) release() { r.mu.Lock(); r.mu.Unlock() } //nolint:staticcheck // an empty critical section is the point
func (r *raceEdge) acquire() { r.mu.Lock(); r.mu.Unlock() } //nolint:staticcheck // an empty critical section is the point
