package conform_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/switchyard/switchyard/runtime/host/wasm"
)

// guestLanguages are the same transform, pass-through (emit the input's
// payload on its subject), in every guest language: each binding's minimal
// example (sdk/<language>/example, built by `make examples`), the WAT test
// module and the Go kit's example (built here).
var guestLanguages = []struct{ language, module string }{
	{"WAT", "runtime/host/wasm/testdata/passthrough.wasm"},
	{"C", "sdk/c/example/passthrough.wasm"},
	{"Rust", "sdk/rust/example/passthrough.wasm"},
	{"AssemblyScript", "sdk/assemblyscript/example/passthrough.wasm"},
	{"Go", ""},
}

// BenchmarkGuestLanguages measures, per language, the module's size, the
// time to start a plugin instance (instantiate, _initialize, sy_init) and
// the time of one sy_transform call on a 64-byte payload, host side
// included:
//
//	go test -run '^$' -bench GuestLanguages ./runtime/conform/
func BenchmarkGuestLanguages(b *testing.B) {
	ctx := context.Background()
	rt, err := wasm.NewRuntime(ctx, wasm.RuntimeOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	payload := []byte(`{"value":21.5,"unit":"°C","sensor":"kitchen","seq":12345678}xxx`)[:64]
	goGuest := filepath.Join(b.TempDir(), "passthrough.wasm")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", goGuest, "./guest/internal/example")
	build.Dir, build.Env = filepath.Join(root, "sdk"), append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build the Go guest: %v\n%s", err, out)
	}
	for _, g := range guestLanguages {
		path := filepath.Join(root, g.module)
		if g.module == "" {
			path = goGuest
		}
		code, err := os.ReadFile(path)
		if err != nil {
			b.Fatalf("%s: %v: build it with `make examples`", g.language, err)
		}
		mod, err := rt.Compile(ctx, code)
		if err != nil {
			b.Fatalf("%s: %v", g.language, err)
		}
		cfg := wasm.InstanceConfig{Tenant: "bench", ID: "pass", Use: "transforms.passthrough", Limits: wasm.Limits{PoolSize: 1}}
		b.Run(g.language+"/instantiate", func(b *testing.B) {
			for b.Loop() {
				in, err := mod.Instantiate(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				in.Close(ctx)
			}
			b.ReportMetric(float64(len(code)), "module-bytes") // after the loop, which resets the metrics
		})
		b.Run(g.language+"/call", func(b *testing.B) {
			in, err := mod.Instantiate(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer in.Close(ctx)
			n := 0
			emit := func(m wasm.Message) { n += len(m.Payload) }
			msg := wasm.Message{Tenant: "bench", Subject: "device.s1.telemetry", Payload: payload}
			for b.Loop() {
				if err := in.Transform(ctx, msg, emit); err != nil {
					b.Fatal(err)
				}
			}
			if n != b.N*len(payload) {
				b.Fatalf("%d payload bytes came out of %d calls, want %d each", n, b.N, len(payload))
			}
		})
		mod.Close(ctx)
	}
}
