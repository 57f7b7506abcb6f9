package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/runtime/host/wasm/termination"
	"github.com/tetratelabs/wazero"
)

// A module is compiled with the deadline checks of package termination,
// but keeps the digest of the bytes it was given (the hot-reload logic
// compares it with the file's).
func TestCompiledWithChecksDigestOfTheOriginal(t *testing.T) {
	rt, logs, _ := newRuntime(t, RuntimeOptions{})
	code := readModule(t, "hostile_recursion")
	if _, n, err := termination.Instrument(code); err != nil || n == 0 {
		t.Fatalf("Instrument: %d functions, %v; the test wants a module that gets checks", n, err)
	}
	m := compile(t, rt, "hostile_recursion")
	sum := sha256.Sum256(code)
	if m.Digest() != hex.EncodeToString(sum[:]) {
		t.Errorf("digest %s, want the original bytes' %x", m.Digest(), sum)
	}
	again := compile(t, rt, "hostile_recursion")
	if again != m {
		t.Error("the same bytes compiled twice give two modules")
	}
	if slices.Contains(msgs(t, logs.String()), checksSkipped) {
		t.Errorf("warned of a module without checks: %s", logs)
	}
}

const checksSkipped = "wasm module compiled without deadline checks: a loop-free recursion may run past its deadline"

// Bytes the instrumenter cannot read are compiled as they are: wazero's
// error is the module's, and nothing is logged.
func TestUnreadableModuleGetsWazerosError(t *testing.T) {
	rt, logs, _ := newRuntime(t, RuntimeOptions{})
	ctx := context.Background()
	wz := wazero.NewRuntime(ctx)
	defer wz.Close(ctx)
	for name, code := range map[string][]byte{
		"not wasm":   []byte("#!/bin/sh\necho hello\n"),
		"truncated":  readModule(t, "passthrough")[:60],
		"bad opcode": []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x05\x01\x03\x00\xff\x0b"),
	} {
		if _, _, err := termination.Instrument(code); err == nil {
			t.Fatalf("%s: the instrumenter reads it", name)
		}
		_, want := wz.CompileModule(ctx, code)
		if want == nil {
			t.Fatalf("%s: wazero compiles it", name)
		}
		_, err := rt.Compile(ctx, code)
		if err == nil || !strings.Contains(err.Error(), want.Error()) {
			t.Errorf("%s: err = %v, want wazero's %q", name, err, want)
		}
	}
	if logs.String() != "" {
		t.Errorf("logged: %s", logs)
	}
}

// Should the instrumenter fail on a module wazero accepts (its fuzz test
// says it does not), the module runs without checks, and a warning says
// so.
func TestUninstrumentedModuleWarns(t *testing.T) {
	defer func(f func([]byte) ([]byte, int, error)) { instrument = f }(instrument)
	instrument = func([]byte) ([]byte, int, error) { return nil, 0, errors.New("cannot read it") }
	rt, logs, _ := newRuntime(t, RuntimeOptions{})
	in := instantiate(t, compile(t, rt, "passthrough"), "transforms.pass", "p", "", Limits{})
	if out, err := transform(in, "x"); err != nil || len(out) != 1 {
		t.Fatalf("transform: %v, %d outputs", err, len(out))
	}
	if !slices.Contains(msgs(t, logs.String()), checksSkipped) || !strings.Contains(logs.String(), "cannot read it") {
		t.Errorf("no warning: %s", logs)
	}
}

// wazero v1.12 panics compiling a call to a function declared with a type
// index out of range; the module is refused by name, and the host lives on.
func TestCompilerPanicRefusesTheModule(t *testing.T) {
	rt, _, _ := newRuntime(t, RuntimeOptions{})
	mod := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 4, 1, 0x60, 0, 0, // types: () -> ()
		3, 3, 2, 0, 7, // functions: two, of types 0 and 7 (there is no 7)
		10, 9, 2, 4, 0, 0x10, 1, 0x0b, 2, 0, 0x0b} // code: function 0 calls function 1
	_, err := rt.Compile(context.Background(), mod)
	if err == nil || !strings.Contains(err.Error(), "malformed module: the compiler failed on it") {
		t.Fatalf("err = %v, want the module refused as malformed", err)
	}
}

// A few bytes declaring billions of entries are refused before wazero
// allocates for them (which would end the process: out of memory is
// fatal in Go). Found by fuzzing; each of these killed the host before.
func TestHugeDeclaredCountsAreRefused(t *testing.T) {
	rt, _, _ := newRuntime(t, RuntimeOptions{})
	header := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	huge := []byte{0xff, 0xff, 0xff, 0xff, 0x0f} // 2^32-1
	section := func(id byte, body ...byte) []byte { return append([]byte{id, byte(len(body))}, body...) }
	module := func(sections ...[]byte) []byte {
		m := append([]byte{}, header...)
		for _, s := range sections {
			m = append(m, s...)
		}
		return m
	}
	oneFunc := [][]byte{section(1, 1, 0x60, 0, 0), section(3, 1, 0)}
	tests := []struct {
		name   string
		module []byte
		want   string
	}{
		{"imports", module(section(2, huge...)), "section import declares 4294967295 entries in 0 bytes"},
		{"functions", module(section(1, 1, 0x60, 0, 0), section(3, huge...)), "section function declares 4294967295 entries"},
		{"types", module(section(1, huge...)), "section type declares"},
		{"data", module(section(11, huge...)), "section data declares"},
		{"function names", module(section(0, append([]byte{4, 'n', 'a', 'm', 'e', 1, 5}, huge...)...)), "name section declares 4294967295 names"},
		{"local names", module(section(0, append([]byte{4, 'n', 'a', 'm', 'e', 2, 5}, huge...)...)), "name section declares 4294967295 names"},
		{"locals", module(oneFunc[0], oneFunc[1], section(10, 1, 8, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x7f, 0x0b)),
			"function 0 of the code section declares over 50000 locals"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rt.Compile(context.Background(), tt.module)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
