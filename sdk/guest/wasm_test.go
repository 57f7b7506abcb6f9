//go:build !wasip1

package guest_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// abiImports reads the host functions that sdk/ABI.md specifies from its WAT blocks, name →
// signature, and checks that every mention of one agrees, so that the document is the one
// source of the ABI the kit is held to.
func abiImports(t *testing.T) map[string]string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "ABI.md"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		block    = regexp.MustCompile("(?s)```wat\n(.*?)```")
		comments = regexp.MustCompile(`(?s)\(;.*?;\)|;;[^\n]*`)
		imp      = regexp.MustCompile(`\(import "switchyard_v1" "(\w+)" \(func(?: \$\w+)?((?:\s*\(param(?: \$\w+)?(?: i32| i64)+\))*)(?:\s*\(result (i32|i64)\))?\s*\)\)`)
		param    = regexp.MustCompile(`\(param(?: \$\w+)?((?: i32| i64)+)\)`)
	)
	sigs := map[string]string{}
	for _, b := range block.FindAllSubmatch(doc, -1) {
		wat := strings.Join(strings.Fields(comments.ReplaceAllString(string(b[1]), "")), " ")
		for _, m := range imp.FindAllStringSubmatch(wat, -1) {
			var params []string
			for _, p := range param.FindAllStringSubmatch(m[2], -1) {
				params = append(params, strings.Fields(p[1])...)
			}
			sig := "(" + strings.Join(params, ",") + ")->(" + m[3] + ")"
			if prev, ok := sigs[m[1]]; ok && prev != sig {
				t.Errorf("ABI.md gives switchyard_v1.%s two signatures: %s and %s", m[1], prev, sig)
			}
			sigs[m[1]] = sig
		}
	}
	if len(sigs) == 0 {
		t.Fatal("ABI.md: no switchyard_v1 imports found in its wat blocks")
	}
	return sigs
}

// kitExports are what every module built with the kit exports.
var kitExports = map[string]string{
	"memory":         "memory",
	"_initialize":    "()->()",
	"sy_abi_version": "()->(i32)",
	"sy_init":        "()->(i32)",
	"sy_transform":   "()->(i32)",
	"sy_collect":     "()->(i32)",
}

// TestWASMBuild builds Go guests as the plugin author does and checks that the modules speak
// exactly the ABI: the exports of the kit, and imports only from switchyard_v1 (each with the
// ABI's signature) and wasi_snapshot_preview1.
func TestWASMBuild(t *testing.T) {
	abi := abiImports(t)
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the guests: %v", err)
	}
	tests := []struct {
		pkg string
		// wantAllImports: the guest calls every kit function, so it must import every host
		// function of the ABI.
		wantAllImports bool
	}{
		{pkg: "./internal/example"},
		{pkg: "./internal/kitcheck", wantAllImports: true},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.pkg), func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "guest.wasm")
			cmd := exec.Command(goTool, "build", "-buildmode=c-shared", "-o", out, tt.pkg)
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared %s: %v\n%s", tt.pkg, err, msg)
			}
			bin, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			mod, err := parseModule(bin)
			if err != nil {
				t.Fatalf("parse %s: %v", out, err)
			}

			if !maps.Equal(mod.exports, kitExports) {
				t.Errorf("exports = %v, want %v", mod.exports, kitExports)
			}
			seen := map[string]bool{}
			for _, imp := range mod.imports {
				switch imp.module {
				case "wasi_snapshot_preview1":
				case "switchyard_v1":
					seen[imp.name] = true
					if want, ok := abi[imp.name]; !ok {
						t.Errorf("import switchyard_v1.%s is not in the ABI", imp.name)
					} else if imp.sig != want {
						t.Errorf("import switchyard_v1.%s has signature %s, the ABI says %s", imp.name, imp.sig, want)
					}
				default:
					t.Errorf("import %s.%s is from neither switchyard_v1 nor wasi_snapshot_preview1", imp.module, imp.name)
				}
			}
			if tt.wantAllImports {
				for name := range abi {
					if !seen[name] {
						t.Errorf("switchyard_v1.%s is not imported", name)
					}
				}
			}
		})
	}
}

// wasmModule is what the test needs of a module: its function imports and its exports, each
// export described by its signature or "memory".
type wasmModule struct {
	imports []wasmImport
	exports map[string]string
}

type wasmImport struct {
	module, name, sig string
}

// parseModule reads the type, import, function and export sections of a WebAssembly 1.0
// binary. It accepts function imports only, as the ABI requires.
func parseModule(bin []byte) (*wasmModule, error) {
	if len(bin) < 8 || !bytes.Equal(bin[:8], []byte("\x00asm\x01\x00\x00\x00")) {
		return nil, errors.New("not a WebAssembly 1.0 binary")
	}
	var types []string
	var funcTypes []uint32 // type index of every function, imported ones first
	mod := &wasmModule{exports: map[string]string{}}
	sig := func(typeIdx uint32) (string, error) {
		if int(typeIdx) >= len(types) {
			return "", fmt.Errorf("type index %d out of range", typeIdx)
		}
		return types[typeIdx], nil
	}
	r := &reader{b: bin[8:]}
	for r.err == nil && len(r.b) > 0 {
		id := r.byte()
		sec := &reader{b: r.bytes(r.u32())}
		switch id {
		case 1: // type
			for range sec.count() {
				if sec.byte() != 0x60 {
					return nil, errors.New("type section: not a function type")
				}
				params, results := sec.valTypes(), sec.valTypes()
				types = append(types, "("+params+")->("+results+")")
			}
		case 2: // import
			for range sec.count() {
				imp := wasmImport{module: sec.name(), name: sec.name()}
				if kind := sec.byte(); kind != 0 {
					return nil, fmt.Errorf("import %s.%s is not a function (kind %d)", imp.module, imp.name, kind)
				}
				idx := sec.u32()
				s, err := sig(idx)
				if err != nil {
					return nil, fmt.Errorf("import %s.%s: %w", imp.module, imp.name, err)
				}
				imp.sig = s
				funcTypes = append(funcTypes, idx)
				mod.imports = append(mod.imports, imp)
			}
		case 3: // function
			for range sec.count() {
				funcTypes = append(funcTypes, sec.u32())
			}
		case 7: // export
			for range sec.count() {
				name, kind, idx := sec.name(), sec.byte(), sec.u32()
				switch kind {
				case 0:
					if int(idx) >= len(funcTypes) {
						return nil, fmt.Errorf("export %s: function %d out of range", name, idx)
					}
					s, err := sig(funcTypes[idx])
					if err != nil {
						return nil, fmt.Errorf("export %s: %w", name, err)
					}
					mod.exports[name] = s
				case 2:
					mod.exports[name] = "memory"
				default:
					mod.exports[name] = fmt.Sprintf("kind %d", kind)
				}
			}
		}
		if sec.err != nil {
			return nil, fmt.Errorf("section %d: %w", id, sec.err)
		}
	}
	return mod, r.err
}

// reader decodes the primitives of the binary format; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail(errors.New("unexpected end"))
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) u32() uint32 {
	v, n := binary.Uvarint(r.b) // LEB128, as the format encodes u32
	if n <= 0 || v > 1<<32-1 {
		r.fail(errors.New("bad LEB128 u32"))
		return 0
	}
	r.b = r.b[n:]
	return uint32(v)
}

// count reads the length of a vector, which cannot exceed the bytes left (each element
// takes at least one).
func (r *reader) count() uint32 {
	n := r.u32()
	if uint64(n) > uint64(len(r.b)) {
		r.fail(fmt.Errorf("vector of %d past the end", n))
		return 0
	}
	return n
}

func (r *reader) bytes(n uint32) []byte {
	if uint64(n) > uint64(len(r.b)) {
		r.fail(fmt.Errorf("length %d past the end", n))
		return nil
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}

func (r *reader) name() string { return string(r.bytes(r.u32())) }

func (r *reader) valTypes() string {
	names := map[byte]string{0x7f: "i32", 0x7e: "i64", 0x7d: "f32", 0x7c: "f64"}
	var ts []string
	for range r.count() {
		c := r.byte()
		t, ok := names[c]
		if !ok {
			t = fmt.Sprintf("0x%02x", c)
		}
		ts = append(ts, t)
	}
	return strings.Join(ts, ",")
}
