package termination

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
)

// FuzzInstrument holds Instrument to its contract on any input: it never
// panics; whatever wazero (default features, as the host runs it) compiles,
// Instrument reads (else a module would run without its checks), and
// wazero compiles what it makes of it; a second run changes nothing.
func FuzzInstrument(f *testing.F) {
	var seeds []string
	for _, pattern := range []string{"testdata/*.wasm", "../testdata/*.wasm"} {
		m, _ := filepath.Glob(pattern)
		seeds = append(seeds, m...)
	}
	// The examples, but the Go guests (megabytes: compiling one is a
	// second, slowing every run of the fuzzer).
	for _, file := range shippedModules(f) {
		if fi, err := os.Stat(file); err == nil && fi.Size() < 256<<10 {
			seeds = append(seeds, file)
		}
	}
	for _, file := range seeds {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	f.Cleanup(func() { _ = r.Close(ctx) })
	// compiles reports whether wazero compiles bin. wazero v1.12 panics
	// on some malformed modules (a call of a function whose type index is
	// out of range, validated before that function): that is a refusal.
	compiles := func(bin []byte) (ok bool, err error) {
		defer func() {
			if p := recover(); p != nil {
				ok, err = false, fmt.Errorf("wazero panicked: %v", p)
			}
		}()
		cm, err := r.CompileModule(ctx, bin)
		if err != nil {
			return false, err
		}
		return true, cm.Close(ctx)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, n, err := Instrument(in)
		if !plausible(in) {
			return
		}
		if ok, _ := compiles(in); !ok {
			return // wazero refuses it: Instrument may too
		}
		if err != nil {
			t.Fatalf("wazero compiles the module, Instrument fails: %v", err)
		}
		if n == 0 && !bytes.Equal(out, in) {
			t.Fatal("nothing instrumented, but the module changed")
		}
		if ok, err := compiles(out); !ok {
			t.Fatalf("the instrumented module (%d functions) does not compile: %v", n, err)
		}
		again, n2, err := Instrument(out)
		if err != nil || n2 != 0 || !bytes.Equal(again, out) {
			t.Fatalf("instrumenting again: %d functions, %v", n2, err)
		}
	})
}

// plausible reports whether wazero can be given in without allocating
// what the module's counts ask for before finding they lie: wazero's
// decoder sizes its vectors, names and byte strings by the counts it reads
// (a few bytes can ask for gigabytes, and the fuzzing process runs out of
// memory before wazero finds the bytes missing), and the locals of a body
// by their sum. So every count that sizes an allocation must fit in the
// bytes left, and a body's locals are capped at a million; a module whose
// structure this does not follow is not given to wazero either.
func plausible(in []byte) bool {
	if len(in) < 8 {
		return true
	}
	for pc := 8; pc < len(in); {
		id := in[pc]
		size, p, err := readU32(in, pc+1)
		if err != nil {
			return true // wazero stops there
		}
		// wazero reads a section's content up to the end of the module
		// whatever its size says, and fails afterwards.
		end := min(p+int(size), len(in))
		if !plausibleSection(id, in[p:end], int64(size)) {
			return false
		}
		if end < p+int(size) {
			return true
		}
		pc = end
	}
	return true
}

// counted is a reader of a section's content that fails on a count larger
// than the bytes left.
type counted struct {
	b   []byte
	pc  int
	bad bool
}

func (c *counted) count() uint32 {
	n, p, err := readU32(c.b, c.pc)
	if err != nil || int64(n) > int64(len(c.b)-p) {
		c.bad = true
		return 0
	}
	c.pc = p
	return n
}

func (c *counted) name() {
	if n := c.count(); !c.bad {
		c.pc += int(n)
	}
}

func (c *counted) skip(f func([]byte, int) (int, error)) {
	if c.bad {
		return
	}
	p, err := f(c.b, c.pc)
	if err != nil {
		c.bad = true
		return
	}
	c.pc = p
}

func (c *counted) byte() byte {
	if c.bad || c.pc >= len(c.b) {
		c.bad = true
		return 0
	}
	c.pc++
	return c.b[c.pc-1]
}

func plausibleSection(id byte, content []byte, size int64) bool {
	c := &counted{b: content}
	u32 := func(b []byte, pc int) (int, error) { _, p, err := readU32(b, pc); return p, err }
	switch id {
	case 0: // custom: its name, its data (the name section's maps)
		n, p, err := readU32(content, 0)
		if err != nil || int64(n) > int64(len(content)-p) || size-int64(p)-int64(n) > int64(len(content)) {
			return false
		}
		if string(content[p:p+int(n)]) != "name" {
			return true
		}
		c.pc = p + int(n)
		for c.pc < len(c.b) && !c.bad {
			sub := c.byte()
			l := c.count()
			if c.bad {
				break
			}
			in := &counted{b: c.b[c.pc : c.pc+int(l)]}
			switch sub {
			case 0:
				in.name()
			case 1:
				for i := in.count(); i > 0 && !in.bad; i-- {
					in.skip(u32)
					in.name()
				}
			case 2:
				for i := in.count(); i > 0 && !in.bad; i-- {
					in.skip(u32)
					for j := in.count(); j > 0 && !in.bad; j-- {
						in.skip(u32)
						in.name()
					}
				}
			}
			c.bad = c.bad || in.bad
			c.pc += int(l)
		}
	case 8, 12: // start, data count
	case 1: // types: only functions ([] -> [] forms) are read here
		for i := c.count(); i > 0 && !c.bad; i-- {
			if c.byte() != 0x60 {
				return false
			}
			for range 2 {
				for j := c.count(); j > 0 && !c.bad; j-- {
					c.skip(skipValType)
				}
			}
		}
	case 2: // imports: names and descriptions
		for i := c.count(); i > 0 && !c.bad; i-- {
			c.name()
			c.name()
			switch c.byte() {
			case 0:
				c.skip(u32)
			case 4:
				c.byte()
				c.skip(u32)
			case 1:
				c.skip(skipTableType)
			case 2:
				c.skip(skipLimits)
			case 3:
				c.skip(skipValType)
				c.byte()
			default:
				return false
			}
		}
	case 7: // exports
		for i := c.count(); i > 0 && !c.bad; i-- {
			c.name()
			c.byte()
			c.skip(u32)
		}
	case 9: // elements: 8 encodings, vectors of indexes or expressions
		for i := c.count(); i > 0 && !c.bad; i-- {
			flag, p, err := readU32(c.b, c.pc)
			if err != nil || flag > 7 {
				return false
			}
			c.pc = p
			if flag == 2 || flag == 6 {
				c.skip(u32)
			}
			if flag&1 == 0 {
				c.skip(skipConstExpr)
			}
			if flag&3 != 0 {
				if flag&4 != 0 {
					c.skip(skipValType)
				} else {
					c.byte()
				}
			}
			for j := c.count(); j > 0 && !c.bad; j-- {
				if flag&4 != 0 {
					c.skip(skipConstExpr)
				} else {
					c.skip(u32)
				}
			}
		}
	case 10: // code: each body's locals
		n := c.count()
		if c.bad {
			return false
		}
		return plausibleLocals(c.b, c.pc, n)
	case 11: // data: each segment's bytes
		for i := c.count(); i > 0 && !c.bad; i-- {
			flag, p, err := readU32(c.b, c.pc)
			if err != nil || flag > 2 {
				return false
			}
			c.pc = p
			if flag == 2 {
				c.skip(u32)
			}
			if flag != 1 {
				c.skip(skipConstExpr)
			}
			c.name()
		}
	default: // a vector of fixed structures
		c.count()
	}
	return !c.bad
}

// plausibleLocals reports whether every body of the code section content
// fits in it (wazero allocates its size) and has at most a million locals.
func plausibleLocals(content []byte, pc int, n uint32) bool {
	for i := uint32(0); i < n; i++ {
		size, p, err := readU32(content, pc)
		if err != nil {
			return true
		}
		if uint64(size) > uint64(len(content)-p) {
			return false
		}
		body := content[p : p+int(size)]
		groups, q, err := readU32(body, 0)
		var sum uint64
		for g := uint32(0); err == nil && g < groups; g++ {
			var c uint32
			if c, q, err = readU32(body, q); err == nil {
				sum += uint64(c)
				q, err = skipValType(body, q)
			}
		}
		if sum > 1<<20 {
			return false
		}
		pc = p + int(size)
	}
	return true
}
