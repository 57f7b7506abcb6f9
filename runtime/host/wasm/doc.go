// Package wasm is the WebAssembly plugin host: it compiles guest modules
// with wazero (compiler mode where wazero supports the platform, with an
// on-disk compilation cache), checks them against the switchyard_v1 guest
// ABI (sdk/ABI.md) at load, and runs configured plugin instances as pools of
// module instances, one call per module instance at a time.
//
// It must never trust a guest: every pointer and length a guest passes is
// checked against its memory (a bad one gets status -2, never a host
// panic), every call runs under a deadline (WithCloseOnContextDone, with the
// checks package termination inserts where wazero has none, so loop-free
// code stops too), a module the compiler chokes on is refused, memory is
// capped per instance, emits, output bytes, state and log lines are
// bounded, and a module instance that traps, times out or hits a limit is
// discarded and replaced lazily. Guests get no filesystem, sockets,
// environment or arguments; WASI gives them only a real clock, real random
// bytes, and stdout/stderr that go to slog. The one way out is the
// http_fetch import (httpfetch.go): HTTP(S) requests to the hosts listed in
// the instance's HTTPFetchPolicy, checked by the URL's host name (and on
// every redirect, at most 3), never by resolved address, within the call's
// deadline and the policy's timeout and sizes, with no cookies and no proxy
// from the environment; an instance without listed hosts gets -4. This package never imports the
// sdk (its Message is a plain struct the runtime converts), never calls the
// graph store, and never writes into guest memory outside a (buf, limit)
// the guest named.
//
// # Concurrency and cost
//
// One Runtime serves the process. A Module is compiled once per sha256 of
// its bytes and shared by reference count. An Instance holds a pool of
// Limits.PoolSize module instances (slots); a call takes a slot, copies the
// input into the slot's per-call state (read by the host imports through
// the call's context, never through globals), calls the cached export with
// CallWithStack, and hands the outputs to emit after the slot is back in
// the pool, so emit may call other instances. The deadline is a timer and a
// channel owned by the slot and reused call after call, not a new
// context.WithTimeout per call. Per-instance key/value state lives host-side,
// shared by the pool, and survives the replacement of module instances.
//
// Most of a call's cost is wazero's: with WithCloseOnContextDone, wazero
// v1.12 starts a watchdog goroutine for every call (about 1.3 µs of the
// 2.5–3 µs of BenchmarkTransformNoop256 on 2 cores; a plain call is 17 ns)
// and leaves native code at every loop back-edge to check for closure.
//
// # Limits and defaults
//
// Limits.MemoryBytes (default 16 MiB) is enforced per module instance by a
// memory allocator that refuses growth past it (the guest's memory.grow
// returns -1); RuntimeOptions.MaxMemoryBytes (default 64 MiB) is the
// ceiling compiled into every module with WithMemoryLimitPages.
// CallTimeout defaults to 100 ms, InitTimeout (instantiation, _initialize and
// sy_init) to 1 s, PoolSize to 2, MaxEmits to 1024 and MaxOutputBytes to
// 1 MiB per call, StateMaxBytes to 1 MiB and StateMaxKeys to 4096 per
// instance. A guest's log lines are cut at 4 KiB and limited to 50 a second
// (bursts of 200) per instance; dropped lines are counted and reported.
// Sleeping through WASI poll_oneoff returns at once: a guest cannot hold a
// slot by sleeping, and a busy loop is stopped by the deadline.
package wasm
