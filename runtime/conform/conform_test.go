package conform_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/runtime/apptest"
	"github.com/switchyard/switchyard/runtime/conform"
	"github.com/switchyard/switchyard/runtime/host/wasm"
	"github.com/switchyard/switchyard/sdk/plugintest"
)

// root is the repository's top folder.
const root = "../.."

// TestEveryGuestConforms runs the kit over every example and every shipped
// WASM plugin: each must pass every case. The examples' modules come from
// `make examples` (scripts/examples.sh), which `make test` runs first.
func TestEveryGuestConforms(t *testing.T) {
	var dirs []string
	for _, pattern := range []string{"examples/*", "plugins/*/*"} {
		m, _ := filepath.Glob(filepath.Join(root, pattern))
		dirs = append(dirs, m...)
	}
	profiles, err := conform.Profiles(dirs)
	if err != nil {
		t.Fatal(err)
	}
	var languages []string
	for _, p := range profiles {
		languages = append(languages, p.Language)
		if p.Module == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(p.Dir, p.Module)); err != nil {
			t.Fatalf("%s: %v: build the examples first with `make examples`", p.Dir, err)
		}
	}
	for _, lang := range []string{"C", "Rust", "AssemblyScript", "WAT", "Go"} {
		if !slices.Contains(languages, lang) {
			t.Errorf("no guest in %s among %d profiles (%v)", lang, len(profiles), languages)
		}
	}
	ctx := context.Background()
	h, err := conform.NewHost(ctx, conform.Options{Modules: apptest.Plugins(t), CacheDir: apptest.WASMCache(),
		// Generous: the cases check behaviour, not speed (CI runs them under
		// -race beside other packages' tests on 2 cores).
		Limits: wasm.Limits{CallTimeout: 10 * time.Second, InitTimeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	reports := h.Run(ctx, profiles)
	var table strings.Builder
	_ = plugintest.WriteTable(&table, reports)
	t.Log("\n" + table.String())
	for _, r := range reports {
		if !r.Passed() {
			t.Errorf("%s (%s) does not conform", r.Profile.Use, r.Profile.Dir)
		}
	}
}

// The adapter tells the kit how each call ended, from the host's error
// classes: ops.wasm does what its payload's first byte says.
func TestOutcomes(t *testing.T) {
	ctx := context.Background()
	h, err := conform.NewHost(ctx, conform.Options{Limits: wasm.Limits{CallTimeout: 50 * time.Millisecond, MemoryBytes: 4 << 16}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	g, err := h.Load(ctx, plugintest.GuestSpec{Use: "transforms.ops", Module: "../host/wasm/testdata/ops.wasm"})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	in, out, err := g.Start(ctx, []byte(`{}`))
	if err != nil {
		t.Fatalf("start: %v %v", out, err)
	}
	defer in.Close()
	for op, want := range map[string]plugintest.Outcome{
		"p": plugintest.Succeeded, "x": plugintest.Reported, "u": plugintest.Trapped,
		"l": plugintest.TimedOut, "g": plugintest.LimitHit, "f": plugintest.LimitHit,
	} {
		res := in.Transform(ctx, plugintest.Message{Subject: "s", Payload: []byte(op)})
		if res.Outcome != want {
			t.Errorf("op %q: %v (%v), want %v", op, res.Outcome, res.Err, want)
		}
	}
	if !slices.Contains(g.Imports(), "switchyard_v1.emit") {
		t.Errorf("imports %v lack switchyard_v1.emit", g.Imports())
	}

	refusing, err := h.Load(ctx, plugintest.GuestSpec{Use: "transforms.config", Module: "../host/wasm/testdata/config.wasm"})
	if err != nil {
		t.Fatal(err)
	}
	defer refusing.Close()
	if _, out, err := refusing.Start(ctx, []byte(`{}`)); out != plugintest.Reported || !errors.Is(err, wasm.ErrGuestFailed) {
		t.Errorf("a refused configuration: %v %v", out, err)
	}
}
