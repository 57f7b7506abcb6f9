package wasm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// goGuest builds the Go guest kit's example plugin (sdk/guest/internal/example,
// a pass-through transform with an optional subject) as the plugin author
// does: GOOS=wasip1 GOARCH=wasm -buildmode=c-shared.
func goGuest(tb testing.TB) []byte {
	tb.Helper()
	return buildGoGuest(tb, "./guest/internal/example")
}

// buildGoGuest builds the Go guest of the package pkg of the sdk module.
func buildGoGuest(tb testing.TB, pkg string) []byte {
	tb.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		tb.Fatalf("the go command builds the Go guest: %v", err)
	}
	sdk, err := filepath.Abs(filepath.Join("..", "..", "..", "sdk"))
	if err != nil {
		tb.Fatal(err)
	}
	out := filepath.Join(tb.TempDir(), "guest.wasm")
	cmd := exec.Command(goTool, "build", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Dir = sdk
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build the Go guest: %v\n%s", err, b)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return wasm
}

// goGuestCache is the compilation cache the repository's tests share
// (bin/wasm-cache-test), kept between runs: compiling the
// 3.4 MB Go guest takes about 1 s, 20 s under -race; wazero names its
// entries by its version, the platform and the module's digest.
func goGuestCache(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "bin", "wasm-cache-test")
}

func TestGoGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and compiles a Go guest (a few seconds)")
	}
	rt, _, _ := newRuntime(t, RuntimeOptions{CacheDir: goGuestCache(t)})
	m, err := rt.Compile(context.Background(), goGuest(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })

	in := instantiate(t, m, "transforms.example", "ex", `{"subject":"displays.text"}`, Limits{})
	for _, payload := range []string{`{"v":1}`, strings.Repeat("x", 5000)} {
		out, err := transform(in, payload)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 1 || out[0].Subject != "displays.text" || string(out[0].Payload) != payload || out[0].Source != "ex" {
			t.Fatalf("outputs %+v", out)
		}
	}
	keep := instantiate(t, m, "transforms.example", "keep", ``, Limits{})
	if out, err := transform(keep, "x"); err != nil || len(out) != 1 || out[0].Subject != "sensors.temp" {
		t.Fatalf("no subject configured: %v, %+v", err, out)
	}

	_, err = m.Instantiate(context.Background(), InstanceConfig{Tenant: tenant, ID: "bad", Use: "transforms.example", Config: []byte(`{"nope":1}`)})
	if err == nil || !strings.Contains(err.Error(), "sy_init refused the configuration") || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown config key: err = %v, want the guest's refusal naming it", err)
	}
}
