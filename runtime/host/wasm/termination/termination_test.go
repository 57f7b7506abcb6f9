package termination

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// The test modules are written in WAT; their assembled .wasm is committed
// next to them so tests need no tools. Reassemble after editing a .wat
// (wat2wasm is in Debian's wabt package):
//
//go:generate sh testdata/assemble.sh

func readModule(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// call is an exported function called with args, before and after.
type call struct {
	name string
	args []uint64
}

// planned is the checks of one function: at its entry, and how many
// between instructions (a recursive call has one before and one after).
type planned struct {
	entry bool
	after int
}

var instrumentCases = []struct {
	module string
	// features beyond wazero's defaults the module needs.
	features api.CoreFeatures
	// instrumented is what Instrument must return; plan, when set, the
	// checks of every function (by index in the code section).
	instrumented int
	plan         map[int]planned
	calls        []call
}{
	{module: "self_recursion", instrumented: 1, plan: map[int]planned{0: {false, 2}},
		calls: []call{{"fact", []uint64{10}}, {"fact", []uint64{1}}, {"square", []uint64{12}}}},
	// even calls odd first, so odd's call of even closes the cycle.
	{module: "mutual_recursion", instrumented: 1, plan: map[int]planned{1: {false, 2}},
		calls: []call{{"even", []uint64{10}}, {"even", []uint64{7}}, {"odd", []uint64{7}}}},
	{module: "call_indirect", instrumented: 1, plan: map[int]planned{2: {false, 2}},
		calls: []call{{"apply", []uint64{0, 6, 7}}, {"apply", []uint64{1, 6, 7}}}},
	{module: "acyclic", instrumented: 0, calls: []call{{"a", []uint64{5}}}},
	// $sum is function 2 (after two imports), body 0.
	{module: "imports", instrumented: 1, plan: map[int]planned{0: {false, 2}, 1: {false, 0}},
		calls: []call{{"sum", []uint64{10}}, {"twice", []uint64{21}}}},
	{module: "features", instrumented: 1, plan: map[int]planned{4: {false, 2}},
		calls: []call{{"simd", []uint64{9}}, {"bulk", nil}, {"refs", nil}, {"multi", []uint64{0}},
			{"multi", []uint64{1}}, {"multi", []uint64{2}}, {"multi", []uint64{7}}, {"rec", []uint64{5}}}},
	// Each level multiplies the work by 8: f1's 8 calls of f2 are over
	// the budget, so f1 has checks between them.
	{module: "fanout", instrumented: 1, calls: []call{{"f1", []uint64{3}}}},
	// return_call and return_call_indirect: a check before, none after
	// (the call does not return here).
	{module: "tail_call", features: experimental.CoreFeaturesTailCall, instrumented: 2,
		plan:  map[int]planned{0: {false, 1}, 1: {false, 1}},
		calls: []call{{"sum", []uint64{100000, 0}}, {"sum_indirect", []uint64{1000}}}},
	{module: "threads", features: experimental.CoreFeaturesThreads, instrumented: 1, plan: map[int]planned{0: {false, 2}},
		calls: []call{{"count", []uint64{10}}}},
	{module: "unwind", instrumented: 1, plan: map[int]planned{0: {false, 2}},
		calls: []call{{"r", []uint64{1000, 3}}}},
}

// TestInstrument instruments each test module, checks where the checks
// went, that every section but the code is kept byte for byte, that
// wazero compiles the result and that every exported function returns
// what it returned before; and that a second run changes nothing.
func TestInstrument(t *testing.T) {
	for _, tc := range instrumentCases {
		t.Run(tc.module, func(t *testing.T) {
			in := readModule(t, tc.module)
			out, n, err := Instrument(in)
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.instrumented {
				t.Errorf("%d functions instrumented, want %d", n, tc.instrumented)
			}
			if n == 0 && !bytes.Equal(out, in) {
				t.Error("nothing instrumented, but the module changed")
			}
			if tc.plan != nil {
				m := mustPlan(t, in)
				for i, f := range m.funcs {
					got := planned{f.atEntry, len(f.after)}
					if got != tc.plan[i] {
						t.Errorf("body %d: entry check %v and %d after, want %v and %d", i, got.entry, got.after, tc.plan[i].entry, tc.plan[i].after)
					}
				}
			}
			keptSections(t, in, out)

			again, n2, err := Instrument(out)
			if err != nil || n2 != 0 || !bytes.Equal(again, out) {
				t.Errorf("instrumenting again: %d functions, %v (changed: %v)", n2, err, !bytes.Equal(again, out))
			}

			cfg := wazero.NewRuntimeConfig().WithCoreFeatures(api.CoreFeaturesV2 | tc.features)
			for _, c := range tc.calls {
				want, err := callExport(t, cfg, in, c)
				if err != nil {
					t.Fatalf("%s%v before: %v", c.name, c.args, err)
				}
				got, err := callExport(t, cfg, out, c)
				if err != nil {
					t.Fatalf("%s%v after: %v", c.name, c.args, err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s%v = %v, was %v", c.name, c.args, got, want)
				}
			}
		})
	}
}

func mustPlan(t testing.TB, bin []byte) *module {
	t.Helper()
	m, err := parse(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.plan(); err != nil {
		t.Fatal(err)
	}
	return m
}

// callExport instantiates bin (with an "env" module for imports.wat) and
// calls one of its exported functions.
func callExport(t *testing.T, cfg wazero.RuntimeConfig, bin []byte, c call) ([]uint64, error) {
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, cfg)
	defer r.Close(ctx)
	var trace []uint64
	_, err := r.NewHostModuleBuilder("env").
		NewFunctionBuilder().WithFunc(func(x uint32) uint32 { return 2 * x }).Export("double").
		NewFunctionBuilder().WithFunc(func(x uint32) { trace = append(trace, uint64(x)) }).Export("trace").
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := r.Instantiate(ctx, bin)
	if err != nil {
		return nil, err
	}
	res, err := mod.ExportedFunction(c.name).Call(ctx, c.args...)
	// What the host saw is part of the behaviour.
	return append(res, trace...), err
}

// sections returns the module's sections: id and content.
func sections(t testing.TB, bin []byte) (ids []byte, contents [][]byte) {
	t.Helper()
	for pc := 8; pc < len(bin); {
		size, p, err := readU32(bin, pc+1)
		if err != nil || uint64(size) > uint64(len(bin)-p) {
			t.Fatalf("section at %d: size %d, %v", pc, size, err)
		}
		ids = append(ids, bin[pc])
		contents = append(contents, bin[p:p+int(size)])
		pc = p + int(size)
	}
	return ids, contents
}

// keptSections checks that out has in's sections in the same order, all
// but the code section byte for byte.
func keptSections(t testing.TB, in, out []byte) {
	t.Helper()
	if !bytes.Equal(in[:8], out[:8]) {
		t.Errorf("header % x, was % x", out[:8], in[:8])
	}
	ids, contents := sections(t, in)
	outIDs, outContents := sections(t, out)
	if !bytes.Equal(ids, outIDs) {
		t.Fatalf("sections %v, were %v", outIDs, ids)
	}
	for i, id := range ids {
		if id != secCode && !bytes.Equal(contents[i], outContents[i]) {
			t.Errorf("section %d (id %d) changed", i, id)
		}
	}
}

// customSection encodes a custom section.
func customSection(name string, data []byte) []byte {
	content := appendU32(nil, uint32(len(name)))
	content = append(append(content, name...), data...)
	return append(appendU32([]byte{secCustom}, uint32(len(content))), content...)
}

// Custom sections, before and after the code section, are kept byte for
// byte, and wazero reads them from the instrumented module.
func TestCustomSectionsKept(t *testing.T) {
	in := readModule(t, "self_recursion")
	first, last := customSection("first", []byte{1, 2, 3}), customSection("last", bytes.Repeat([]byte{0xfd}, 300))
	mod := slices.Concat(in[:8], first, in[8:], last)
	out, n, err := Instrument(mod)
	if err != nil || n != 1 {
		t.Fatalf("Instrument: %d functions, %v", n, err)
	}
	keptSections(t, mod, out)
	if !bytes.Equal(out[8:8+len(first)], first) || !bytes.HasSuffix(out, last) {
		t.Error("the custom sections moved or changed")
	}
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCustomSections(true))
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range cm.CustomSections() {
		names = append(names, fmt.Sprintf("%s:%d", s.Name(), len(s.Data())))
	}
	if got := strings.Join(names, " "); got != "first:3 last:300" {
		t.Errorf("wazero reads the custom sections %s", got)
	}
}

// A module without a code section, or with nothing to instrument, comes
// back as it was.
func TestNothingToInstrument(t *testing.T) {
	for name, mod := range map[string][]byte{
		"header only":  []byte("\x00asm\x01\x00\x00\x00"),
		"custom only":  slices.Concat([]byte("\x00asm\x01\x00\x00\x00"), customSection("x", nil)),
		"no recursion": readModule(t, "acyclic"),
	} {
		out, n, err := Instrument(mod)
		if err != nil || n != 0 || !bytes.Equal(out, mod) {
			t.Errorf("%s: %d functions, %v, changed %v", name, n, err, !bytes.Equal(out, mod))
		}
	}
}

// module0 assembles a module of one function of type [] -> [] with the
// given body (locals and instructions), a table, a memory and a passive
// data segment.
func module0(body []byte) []byte {
	sec := func(id byte, content ...byte) []byte {
		return append(appendU32([]byte{id}, uint32(len(content))), content...)
	}
	return slices.Concat([]byte("\x00asm\x01\x00\x00\x00"),
		sec(1, 1, 0x60, 0, 0), // type: [] -> []
		sec(3, 1, 0),          // function: type 0
		sec(4, 1, 0x70, 0, 1), // table: 1 funcref
		sec(5, 1, 0x01, 1, 1), // memory: 1 page, max 1
		sec(12, 1),            // data count: 1
		sec(10, append(appendU32([]byte{1}, uint32(len(body))), body...)...),
		sec(11, 1, 1, 0)) // data: one passive, empty
}

// Malformed modules are errors, not panics, and counts from the module
// allocate nothing they cannot back with bytes.
func TestMalformed(t *testing.T) {
	ok := module0([]byte{0, 0x0b})
	if _, _, err := Instrument(ok); err != nil {
		t.Fatalf("the well-formed base: %v", err)
	}
	for name, mod := range map[string][]byte{
		"empty":              nil,
		"no magic":           []byte("\x00wasm\x01\x00\x00"),
		"version 2":          []byte("\x00asm\x02\x00\x00\x00"),
		"section too long":   []byte("\x00asm\x01\x00\x00\x00\x01\x05\x00"),
		"size LEB too long":  []byte("\x00asm\x01\x00\x00\x00\x01\x80\x80\x80\x80\x80\x00"),
		"unknown section":    []byte("\x00asm\x01\x00\x00\x00\x0e\x00"),
		"two code sections":  []byte("\x00asm\x01\x00\x00\x00\x0a\x01\x00\x0a\x01\x00"),
		"huge body count":    []byte("\x00asm\x01\x00\x00\x00\x03\x01\x00\x0a\x06\xff\xff\xff\xff\x0f\x00"),
		"huge import count":  []byte("\x00asm\x01\x00\x00\x00\x02\x05\xff\xff\xff\xff\x0f"),
		"bodies ≠ functions": []byte("\x00asm\x01\x00\x00\x00\x03\x02\x01\x00"),
		"no end":             module0([]byte{0, 0x01}),
		"end too early":      module0([]byte{0, 0x0b, 0x01, 0x0b}),
		"unknown opcode":     module0([]byte{0, 0x27, 0x0b}),
		"unknown SIMD":       module0([]byte{0, 0xfd, 0xa2, 0x0b}),
		"unknown misc":       module0([]byte{0, 0xfc, 0x12, 0x0b}),
		"legacy try":         module0([]byte{0, 0x06, 0x40, 0x0b, 0x0b}),
		"call out of range":  module0([]byte{0, 0x10, 0x05, 0x0b}),
		"truncated LEB":      module0([]byte{0, 0x41, 0x80, 0x80}),
		"i32.const too long": module0([]byte{0, 0x41, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x1a, 0x0b}),
		"huge br_table":      module0([]byte{0, 0x02, 0x40, 0x41, 0, 0x0e, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0x0b, 0x0b}),
		"huge locals count":  module0([]byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x7f, 0x0b}),
		"branch too far":     module0([]byte{0, 0x0c, 0x01, 0x0b}),
		"else outside if":    module0([]byte{0, 0x02, 0x40, 0x05, 0x0b, 0x0b}),
		"select of 2 types":  module0([]byte{0, 0x1c, 0x02, 0x7f, 0x7f, 0x0b}),
		"v128.const cut":     module0([]byte{0, 0xfd, 0x0c, 1, 2, 3}),
	} {
		out, n, err := Instrument(mod)
		if err == nil {
			t.Errorf("%s: no error (%d functions, %d bytes)", name, n, len(out))
		} else if !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v does not wrap errMalformed", name, err)
		}
	}
	// Every cut of a real module is an error or a module, never a panic.
	full := readModule(t, "features")
	for i := range full {
		_, _, _ = Instrument(full[:i])
	}
}

// The opcodes decode knows are the ones wazero knows: for every opcode,
// SIMD, misc and atomic sub-opcode, a function starting with it makes
// wazero (every feature it has enabled) say it does not know the
// instruction exactly when decode says so.
func TestOpcodesAsWazero(t *testing.T) {
	ctx := context.Background()
	all := api.CoreFeaturesV2 | experimental.CoreFeaturesThreads | experimental.CoreFeaturesTailCall |
		experimental.CoreFeaturesExceptionHandling | experimental.CoreFeaturesTypedFunctionReferences |
		experimental.CoreFeaturesExtendedConst
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(all))
	defer r.Close(ctx)
	unknownToWazero := func(instr []byte) (bool, string) {
		body := slices.Concat([]byte{0}, instr, make([]byte, 20), []byte{0x0b})
		_, err := r.CompileModule(ctx, module0(body))
		if err == nil {
			return false, ""
		}
		msg := err.Error()
		for _, s := range []string{"invalid instruction", "unknown SIMD instruction", "unknown misc opcode",
			"invalid atomic opcode", "legacy exception handling instruction"} {
			if strings.Contains(msg, s) {
				return true, msg
			}
		}
		return false, msg
	}
	check := func(instr []byte) {
		wz, msg := unknownToWazero(instr)
		_, err := decode(slices.Concat(instr, make([]byte, 20)), 0)
		mine := err != nil && strings.Contains(err.Error(), "unknown opcode")
		if wz != mine {
			t.Errorf("% x: wazero unknown %v (%s), decode unknown %v (%v)", instr, wz, msg, mine, err)
		}
	}
	for op := range 256 {
		switch op {
		case 0xfc, 0xfd, 0xfe:
			for sub := range 256 {
				if op == 0xfc && sub >= 0x80 {
					continue // a LEB: 0x80 and up continue it
				}
				check([]byte{byte(op), byte(sub)})
			}
		default:
			check([]byte{byte(op)})
		}
	}
}

// The stretch between two checks is bounded whatever the call tree: in
// the fan-out and unwinding modules, no function lets more than about a
// budget of work run without a check, and no summary exceeds it.
func TestBoundedStretches(t *testing.T) {
	for _, name := range []string{"fanout", "endless_fanout", "endless_unwind", "features", "unwind"} {
		m := mustPlan(t, readModule(t, name))
		done := make([]bool, len(m.funcs))
		for _, i := range m.postorder() {
			f := &m.funcs[i]
			r, err := m.flow(int(i), m.bin[f.code:f.end], done, f.atEntry)
			if err != nil {
				t.Fatal(err)
			}
			done[i] = true
			if most := max(r.inner, r.sum.pre, r.sum.pass, r.sum.post); most > budget+budget/2 {
				t.Errorf("%s body %d: %d of work without a check, over 1.5 budget (%+v, inner %d)", name, i, most, r.sum, r.inner)
			}
		}
	}
}

// The endless modules, instrumented, are stopped by their deadline within
// a few milliseconds; wazero alone stops the recursion at its 400 MB stack
// ceiling only, and the others not for minutes.
func TestStopsAtDeadline(t *testing.T) {
	const deadline = 50 * time.Millisecond
	for _, name := range []string{"endless_recursion", "endless_fanout", "endless_unwind"} {
		t.Run(name, func(t *testing.T) {
			out, n, err := Instrument(readModule(t, name))
			if err != nil || n == 0 {
				t.Fatalf("Instrument: %d functions, %v", n, err)
			}
			ctx := context.Background()
			r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(true))
			defer r.Close(ctx)
			mod, err := r.Instantiate(ctx, out)
			if err != nil {
				t.Fatal(err)
			}
			run := mod.ExportedFunction("run")
			var args []uint64
			if len(run.Definition().ParamTypes()) == 1 {
				args = []uint64{1}
			}
			callCtx, cancel := context.WithTimeout(ctx, deadline)
			defer cancel()
			began := time.Now()
			_, err = run.Call(callCtx, args...)
			took := time.Since(began)
			if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
				t.Fatalf("err = %v, want the deadline", err)
			}
			t.Logf("stopped after %v (deadline %v)", took.Round(100*time.Microsecond), deadline)
			// The bound tells a stop at the deadline from wazero's own
			// (the recursion reaching 400 MB takes 0.7 s and more) on two
			// shared cores under -race.
			if took > deadline+400*time.Millisecond {
				t.Errorf("stopped after %v, deadline %v", took, deadline)
			}
		})
	}
}

// shippedModules are the modules of the repository's examples and the
// shipped plugins (make examples, make plugins), when built.
func shippedModules(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"../../../../examples/*/*.wasm", "../../../../bin/plugins/*.wasm"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	return files
}

// Every module the repository builds is instrumented (when built): the
// figures are logged; the small ones are compiled (the Go guests are, by
// the wasm package's tests).
func TestShippedModules(t *testing.T) {
	files := shippedModules(t)
	if len(files) == 0 {
		t.Skip("no example or plugin module built (make examples plugins)")
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	for _, file := range files {
		in, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		out, n, err := Instrument(in)
		took := time.Since(began)
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		m := mustPlan(t, in)
		var entries, after int
		for _, f := range m.funcs {
			after += len(f.after)
			if f.atEntry {
				entries++
			}
		}
		t.Logf("%s: %d of %d functions instrumented (%d entry checks, %d after an instruction), %d → %d bytes, in %v",
			strings.TrimPrefix(file, "../../../../"), n, len(m.funcs), entries, after, len(in), len(out), took.Round(time.Millisecond))
		if again, n2, err := Instrument(out); err != nil || n2 != 0 || !bytes.Equal(again, out) {
			t.Errorf("%s: instrumenting again: %d functions, %v", file, n2, err)
		}
		if len(in) < 1<<20 {
			if _, err := r.CompileModule(ctx, out); err != nil {
				t.Errorf("%s: the instrumented module does not compile: %v", file, err)
			}
		}
	}
}

// BenchmarkInstrument instruments the largest module the repository
// builds (a Go guest, when built): what loading a module adds to wazero's
// compilation.
func BenchmarkInstrument(b *testing.B) {
	var in []byte
	for _, file := range shippedModules(b) {
		if bin, err := os.ReadFile(file); err == nil && len(bin) > len(in) {
			in = bin
		}
	}
	if in == nil {
		b.Skip("no example or plugin module built (make examples plugins)")
	}
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, _, err := Instrument(in); err != nil {
			b.Fatal(err)
		}
	}
}
