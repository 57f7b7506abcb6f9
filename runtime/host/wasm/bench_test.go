package wasm

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

// BenchmarkTransformNoop256 is one host→guest→host round trip with a warm
// pool: a 256-byte payload copied into the pass-through guest and emitted
// back out (a new 256-byte payload), deadline, metrics and stats included.
func BenchmarkTransformNoop256(b *testing.B) {
	benchTransform256(b, "passthrough", 1)
}

// BenchmarkImportsPerMessage is the host's share of a message inside a
// call: the guest copies a 256-byte input in and emits it back out 64 times
// per call, so ns/msg is input + emit + the loop's termination check, with
// the per-call entry spread over 64 messages.
func BenchmarkImportsPerMessage(b *testing.B) {
	benchTransform256(b, "emit_loop", 64)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(64*b.N), "ns/msg")
}

// BenchmarkTransformGoGuest is BenchmarkTransformNoop256 through the Go
// guest kit's example (a pass-through built with the Go toolchain, whose
// runtime recurses: package termination puts a deadline check after every
// recursive call), with the deadline checks the runtime inserts and
// without them: the difference is their cost.
func BenchmarkTransformGoGuest(b *testing.B) {
	wasm := goGuest(b)
	for _, bc := range []struct {
		name   string
		checks bool
	}{{"checks", true}, {"no-checks", false}} {
		b.Run(bc.name, func(b *testing.B) {
			if !bc.checks {
				defer func(f func([]byte) ([]byte, int, error)) { instrument = f }(instrument)
				instrument = func(m []byte) ([]byte, int, error) { return m, 0, nil }
			}
			rt, _, _ := newRuntime(b, RuntimeOptions{})
			m, err := rt.Compile(context.Background(), wasm)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = m.Close(context.Background()) })
			// A deadline far away: on a loaded machine the Go guest's
			// collector may take a while; this measures cost, not deadlines.
			in := instantiate(b, m, "transforms.example", "bench", "", Limits{CallTimeout: 10 * time.Second})
			msg := input(string(bytes.Repeat([]byte("x"), 256)))
			var n int
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := in.Transform(ctx, msg, func(Message) { n++ }); err != nil {
					b.Fatal(err)
				}
			}
			if n != b.N {
				b.Fatalf("%d outputs for %d calls", n, b.N)
			}
		})
	}
}

// benchTransform256 calls the transform of testdata module name with a
// 256-byte payload in a loop; each call must emit perCall outputs.
func benchTransform256(b *testing.B, name string, perCall int) {
	rt, _, _ := newRuntime(b, RuntimeOptions{})
	in := instantiate(b, compile(b, rt, name), "transforms."+name, "bench", "", Limits{})
	m := input(string(bytes.Repeat([]byte("x"), 256)))
	var n int
	emit := func(Message) { n++ }
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := in.Transform(ctx, m, emit); err != nil {
			b.Fatal(err)
		}
	}
	if n != perCall*b.N {
		b.Fatalf("%d outputs for %d calls, want %d each", n, b.N, perCall)
	}
}

// BenchmarkInstantiate measures the Go guest kit's example (a ~3.4 MB
// module): compiling it with no cache, compiling it again from the on-disk
// compilation cache in a new Runtime, and starting an instance of it
// (instantiation, _initialize and sy_init) from a compiled module.
func BenchmarkInstantiate(b *testing.B) {
	wasm := goGuest(b)
	ctx := context.Background()
	compileIn := func(b *testing.B, dir string) {
		rt, err := NewRuntime(ctx, RuntimeOptions{CacheDir: dir, Logger: slogTo(io.Discard)})
		if err != nil {
			b.Fatal(err)
		}
		m, err := rt.Compile(ctx, wasm)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Close(ctx); err != nil {
			b.Fatal(err)
		}
		if err := rt.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("compile-cold", func(b *testing.B) {
		for b.Loop() {
			compileIn(b, "")
		}
	})
	b.Run("compile-disk-cache", func(b *testing.B) {
		dir := b.TempDir()
		compileIn(b, dir) // fills the cache
		for b.Loop() {
			compileIn(b, dir)
		}
	})
	b.Run("instantiate", func(b *testing.B) {
		rt, _, _ := newRuntime(b, RuntimeOptions{})
		m, err := rt.Compile(ctx, wasm)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = m.Close(ctx) })
		for b.Loop() {
			in, err := m.Instantiate(ctx, InstanceConfig{Tenant: tenant, ID: "bench", Use: "transforms.example", Limits: Limits{PoolSize: 1}})
			if err != nil {
				b.Fatal(err)
			}
			if err := in.Close(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
