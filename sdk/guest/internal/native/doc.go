// Package native stands in for the Switchyard WASM host when a Go guest runs in-process (any
// GOOS but wasip1), so that plugin authors can unit-test their functions with plain go test.
//
// A Host simulates one plugin instance: its configuration, its key/value state, its log and the
// messages one call emits, with the host's rules (no emit from sy_init, an empty subject is the
// input's, a subject must be valid UTF-8, the outputs of a failed call are discarded), and
// answers http_fetch with real requests under the host's policy rules (SetHTTP). Package
// guest installs its entry points with Install and reaches the Host of the call in progress
// with Active; package guesttest drives Hosts. Calls are serialised, because every Host shares
// the guest's package-level state as the one module in a test binary.
//
// This package is for tests: it never talks to a WASM host and enforces no resource limits
// but those of http_fetch.
package native
