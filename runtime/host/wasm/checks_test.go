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
