//go:build !race

package loadtest

import "github.com/lesismal/nbio/nbhttp"

// showAcceptHandoff is needed only by the race detector; see race.go.
func showAcceptHandoff(*nbhttp.Engine) {}
