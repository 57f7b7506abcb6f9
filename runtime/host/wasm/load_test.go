package wasm

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
)

func TestCompileRefuses(t *testing.T) {
	rt, _, _ := newRuntime(t, RuntimeOptions{})
	tests := []struct {
		module string
		want   []string
	}{
		{"no_version", []string{`missing export "sy_abi_version": want (func (export "sy_abi_version") (result i32))`}},
		{"version2", []string{`sy_abi_version returned 2: this host implements ABI version 1`}},
		{"version_trap", []string{`sy_abi_version trapped`, `unreachable`}},
		{"bad_signature", []string{`export "sy_transform" has signature (func (export "sy_transform") (param i32) (result i32)), want (func (export "sy_transform") (result i32))`}},
		{"env_import", []string{`import env.foo is not allowed: a module may import only switchyard_v1 and wasi_snapshot_preview1 functions`}},
		{"bad_import_signature", []string{`import switchyard_v1.emit has signature (func (param i32) (result i32)), want (func (param i32 i32 i32 i32) (result i32))`}},
		{"unknown_host_import", []string{`import switchyard_v1.tcp_connect: switchyard_v1 has no function "tcp_connect"`}},
		{"no_memory", []string{`missing export "memory"`}},
		{"import_memory", []string{`import env.memory is not allowed: the module must define and export its own memory`}},
		{"no_entry", []string{`missing export "sy_transform" or "sy_collect"`}},
	}
	for _, tt := range tests {
		t.Run(tt.module, func(t *testing.T) {
			_, err := rt.Compile(context.Background(), readModule(t, tt.module))
			if err == nil {
				t.Fatal("module accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %s", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "wasm module sha256:") {
				t.Errorf("err = %v, want it to name the module", err)
			}
		})
	}
	if _, err := rt.Compile(context.Background(), []byte("not wasm")); err == nil || !strings.Contains(err.Error(), "compile:") {
		t.Errorf("garbage: err = %v", err)
	}
}

func TestInstantiateRefuses(t *testing.T) {
	rt, _, _ := newRuntime(t, RuntimeOptions{})
	collector := compile(t, rt, "collector")
	pass := compile(t, rt, "passthrough")
	tests := []struct {
		name string
		mod  *Module
		cfg  InstanceConfig
		want string
	}{
		{"transform without sy_transform", collector, InstanceConfig{Tenant: tenant, ID: "x", Use: "transforms.x"},
			`transforms.x "x": missing export "sy_transform" required for transforms: want (func (export "sy_transform") (result i32))`},
		{"collector without sy_collect", pass, InstanceConfig{Tenant: tenant, ID: "x", Use: "collectors.x"},
			`collectors.x "x": missing export "sy_collect" required for collectors: want (func (export "sy_collect") (result i32))`},
		{"kind without WASM", pass, InstanceConfig{Tenant: tenant, ID: "x", Use: "brokers.mqtt"},
			`plugin "brokers.mqtt": want transforms.<name> or collectors.<name>`},
		{"use without name", pass, InstanceConfig{Tenant: tenant, ID: "x", Use: "transforms"},
			`want transforms.<name> or collectors.<name>`},
		{"no tenant", pass, InstanceConfig{ID: "x", Use: "transforms.x"}, `tenant and instance id are required`},
		{"negative timeout", pass, InstanceConfig{Tenant: tenant, ID: "x", Use: "transforms.x", Limits: Limits{CallTimeout: -1}},
			`limits: timeouts must be positive`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.mod.Instantiate(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to contain %s", err, tt.want)
			}
		})
	}
}

func TestCompileOncePerDigest(t *testing.T) {
	rt, _, _ := newRuntime(t, RuntimeOptions{})
	wasm := readModule(t, "passthrough")
	const n = 4
	mods := make([]*Module, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m, err := rt.Compile(context.Background(), wasm)
			if err != nil {
				t.Error(err)
			}
			mods[i] = m
		})
	}
	wg.Wait()
	for _, m := range mods[1:] {
		if m != mods[0] {
			t.Fatal("identical bytes compiled to different modules")
		}
	}
	if len(mods[0].Digest()) != 64 {
		t.Fatalf("digest %q", mods[0].Digest())
	}
	for _, m := range mods {
		if err := m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := mods[0].Close(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Close past the last reference: %v, want ErrClosed", err)
	}
	again := compile(t, rt, "passthrough")
	if again == mods[0] {
		t.Fatal("a released module was handed out again")
	}
}

func TestCompilationCacheOnDisk(t *testing.T) {
	dir := t.TempDir()
	wasm := readModule(t, "passthrough")
	for i := range 2 {
		rt, _, _ := newRuntime(t, RuntimeOptions{CacheDir: dir})
		m, err := rt.Compile(context.Background(), wasm)
		if err != nil {
			t.Fatalf("runtime %d: %v", i, err)
		}
		in := instantiate(t, m, "transforms.pass", "pass", "", Limits{})
		if out, err := transform(in, "x"); err != nil || len(out) != 1 {
			t.Fatalf("runtime %d: %v", i, err)
		}
		if err := m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) == 0 {
			t.Fatalf("runtime %d: cache dir empty (%v)", i, err)
		}
	}
}

func TestRuntimeClosed(t *testing.T) {
	rt, _, _ := newRuntime(t, RuntimeOptions{})
	if err := rt.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Compile(context.Background(), readModule(t, "passthrough")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Compile after Close: %v, want ErrClosed", err)
	}
}
