//go:build !race

package gateway

// raceEnabled reports a -race build; see race_on.go.
const raceEnabled = false

type raceEdge struct{}

func (*raceEdge) release() {}
func (*raceEdge) acquire() {}
