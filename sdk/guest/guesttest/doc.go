//go:build !wasip1

// Package guesttest runs a Go guest's registered functions in-process, as the Switchyard host
// would run the WASM module, so that plugin authors can unit-test them with plain go test:
// no WASM build, no runtime.
//
//	func TestDouble(t *testing.T) {
//		out, err := guesttest.RunTransform([]byte(`{"factor":2}`), guest.Message{Subject: "a.b", Payload: []byte("21")})
//		if err != nil || len(out) != 1 || string(out[0].Payload) != "42" {
//			t.Fatalf("got %v, %v", out, err)
//		}
//	}
//
// An Instance is one plugin instance run by one module instance; it keeps its state and log
// across calls, for plugins that remember. The host's
// rules are kept: the configuration is "{}" when empty; an empty subject is the input's; a
// subject must be valid UTF-8; emitting outside a call is not allowed; a failed call (an
// error or a panic) emits nothing; guest.HTTPFetch reaches only the hosts listed in
// Options.HTTP, with the host's checks, redirects, timeout and size limits, and is refused
// without them. The host's other resource limits (memory, call deadline, emits per call) are
// not simulated.
//
// The plugin is one set of package-level functions and variables, as a WASM module is, so
// calls from several Instances or goroutines are serialised, and an Instance's Init sets the
// package variables that every Instance then sees: use one Instance at a time.
//
// This package is for tests only; it never talks to a WASM host.
package guesttest
