//go:build !race

package loadtest

import "github.com/lesismal/nbio/nbhttp"

// showAcceptHandoff is needed only by the race detector; see race.go.
func showAcceptHandoff(*nbhttp.Engine) {}

// pollerEdge is needed only by the race detector; see race.go.
type pollerEdge struct{}

func (*pollerEdge) release() {}
func (*pollerEdge) acquire() {}
