//go:build !race

package wasm

// raceEnabled: this test binary runs under the race detector.
const raceEnabled = false
