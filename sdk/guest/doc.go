// Package guest is the Go guest kit: it lets a Switchyard WASM plugin be written as plain Go
// functions, and speaks the guest ABI (sdk/ABI.md) on their behalf, so that the author never
// sees a pointer, a buffer limit or a status code.
//
// A transform that passes every message through unchanged:
//
//	package main
//
//	import "github.com/switchyard/switchyard/sdk/guest"
//
//	func init() {
//		guest.Transform(func(in guest.Message, out *guest.Output) error {
//			return out.Emit("", in.Payload) // "" keeps the input's subject
//		})
//	}
//
//	func main() {} // never runs in a plugin; required by go build
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o passthrough.wasm .
//
// The module exports memory, _initialize, sy_abi_version, sy_init, sy_transform and
// sy_collect, and imports only switchyard_v1 and wasi_snapshot_preview1 functions. Register
// the functions (Init, Transform, Collect) from init functions: the host runs _initialize,
// which runs them, and then calls sy_init. The kit exports both sy_transform and sy_collect;
// the one whose function is not registered fails every call, naming what is missing.
//
// Rules for the functions:
//   - The host runs a plugin instance (one entry of plugins.yaml) as a small pool of module
//     instances, each with its own memory, each initialised by Init, each handling one call at
//     a time. Package variables belong to one module instance, so they need no locks, and those
//     set in Init hold the configuration. The key/value state (StateGet, StateSet) belongs to
//     the plugin instance and is shared by the whole pool.
//   - Start no goroutines and do not block: the host gives each call a deadline and an
//     instance that traps or times out is discarded.
//   - Message.Payload is valid only during the call; keep a copy (bytes.Clone) to use it later.
//     The kit keeps the largest payload's buffer for reuse, so memory follows the largest
//     message seen.
//   - A returned error, or a panic, fails the call: the host logs the message and discards what
//     the call emitted. A panic also logs its stack. The Go runtime cannot recover from every
//     fault (running out of memory, stack overflow): those trap.
//   - There is no file system, network, environment or argument list; time.Now and
//     crypto/rand work, fmt.Println goes to the host's log. HTTPFetch reaches the HTTP hosts
//     the operator listed for the plugin instance, and no others.
//
// # Testing without WASM
//
// Built for any other platform (go test on the author's machine), the kit runs in-process and
// package guesttest drives the registered functions as the host would:
//
//	out, err := guesttest.RunTransform([]byte(`{"factor":2}`), guest.Message{Subject: "a.b", Payload: []byte("21")})
//
// Outside a guesttest call, Log goes to log/slog's default logger, Now is the wall clock, and
// the state functions fail with ErrNotAllowed.
//
// This package never imports anything of the runtime; only its wasip1 files talk to the host.
package guest
