// Package plugins_test holds the contract test of the shipped plugins: every
// plugin's golden testcases run through the real WASM host with the module
// `make plugins` builds — the same cases each plugin's own tests run
// natively over its logic, so the two can never drift apart.
package plugins_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/plugins/internal/plugintest"
	"github.com/switchyard/switchyard/runtime/apptest"
	"github.com/switchyard/switchyard/runtime/host/wasm"
)

func TestShippedPluginsInTheHost(t *testing.T) {
	modules := apptest.Plugins(t)
	ctx := context.Background()
	rt, err := wasm.NewRuntime(ctx, wasm.RuntimeOptions{CacheDir: apptest.WASMCache(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })

	folders, err := filepath.Glob(filepath.Join("*", "*", "testcases"))
	if err != nil || len(folders) < 4 {
		t.Fatalf("found %d plugin folders with testcases, want the 4 shipped ones (err %v)", len(folders), err)
	}
	for _, tc := range folders {
		dir := filepath.Dir(tc)
		use := strings.Replace(filepath.ToSlash(dir), "/", ".", 1) // collectors/synthetic → collectors.synthetic
		t.Run(use, func(t *testing.T) {
			code, err := os.ReadFile(filepath.Join(modules, use+".wasm"))
			if err != nil {
				t.Fatal(err)
			}
			mod, err := rt.Compile(ctx, code)
			if err != nil {
				t.Fatalf("compile %s: %v", use, err)
			}
			t.Cleanup(func() { mod.Close(ctx) })
			for _, c := range plugintest.CasesIn(t, dir, use) {
				t.Run(c.Name, func(t *testing.T) { run(t, mod, use, c) })
			}
		})
	}
}

// run feeds one case to a fresh instance (state carries from line to line)
// and compares every output, in order, with expected.jsonl.
func run(t *testing.T, mod *wasm.Module, use string, c plugintest.Case) {
	ctx := context.Background()
	in, err := mod.Instantiate(ctx, wasm.InstanceConfig{Tenant: "golden", ID: "case", Use: use, Config: c.Config,
		// Generous: the case checks values, not speed (CI runs it under -race
		// beside other packages' tests on 2 cores).
		Limits: wasm.Limits{CallTimeout: 5 * time.Second, InitTimeout: 10 * time.Second}})
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	defer in.Close(ctx)
	var got []plugintest.Message
	keep := func(m wasm.Message) {
		got = append(got, plugintest.Message{Subject: m.Subject, Payload: json.RawMessage(m.Payload)})
	}
	if strings.HasPrefix(use, "collectors.") {
		for _, now := range c.Ticks(t) {
			if err := in.Collect(ctx, now, keep); err != nil {
				t.Fatalf("collect at %v: %v", now, err)
			}
		}
	} else {
		for _, m := range c.Messages(t) {
			msg := wasm.Message{Tenant: "golden", Source: m.Source, Subject: m.Subject, Time: m.Time, Payload: m.Payload}
			if err := in.Transform(ctx, msg, keep); err != nil {
				t.Fatalf("transform %s: %v", m.Payload, err)
			}
		}
	}
	c.Expect(t, got)
}
