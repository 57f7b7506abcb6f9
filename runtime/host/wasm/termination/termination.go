// Package termination inserts deadline checks into WebAssembly modules so
// that every guest call can be stopped soon after its deadline.
//
// The host stops a call with wazero's WithCloseOnContextDone, and wazero
// (v1.12, optimizing compiler) notices a closed module only where its
// compiled code checks for it: at the header of every loop
// (ensureTermination in internal/engine/wazevo/frontend/lower.go). Code
// without loops is never interrupted: a loop-free infinite recursion runs
// until its stack reaches wazero's 400 MB ceiling, a second later; a
// loop-free call tree that fans out (each function calling the next one
// many times) runs for as long as its size allows, minutes or years; so
// does loop-free work done by every frame of a deep recursion as it
// unwinds.
//
// Instrument closes that gap by inserting an empty loop (loop, empty block
// type, end: 0x03 0x40 0x0b) where a check is needed. It changes nothing
// else: the loop does nothing and takes and leaves no values, so it is
// valid at any instruction boundary. A check costs a call of wazero's
// exit-code trampoline, which leaves native code for Go (about 50 ns), so
// checks go only where they are needed:
//
//   - recursion. The functions are taken in the order a depth-first search
//     of the direct call graph finishes them (from the exported functions;
//     calls followed by unreachable, which do not come back, last), so
//     that a direct call goes to a function already planned unless it is
//     one of the calls that close the cycles of the graph. Those calls,
//     and the indirect ones (call_indirect, call_ref and their return_
//     tail-call forms: the target is unknown), are the recursive calls:
//     each gets a check right before it, unless every path from the entry
//     already passed one (the Go compiler starts every function with its
//     resumption loop), so that each turn of a recursion is checked; and
//     right after it, so that each frame is checked again as it unwinds.
//   - loop-free work. A forward dataflow over each body computes, at every
//     point, the most work (weighted instructions; a call counts what the
//     callee can do before its first check, without one, or after its
//     last one, from its plan) that can have run since the last check on
//     any path, and inserts a check where that exceeds half of budget; a
//     function that can do more than that before its first check gets one
//     at its entry. Every stretch of guest code that runs without a check
//     is thus bounded, whatever the module, by about budget weighted
//     instructions (a fraction of a millisecond), plus a host call, plus a
//     few bulk memory instructions of unknown length (whose cost grows
//     with the memory).
//
// The decoder covers every instruction wazero v1.12 decodes (the
// WebAssembly 2.0 core: MVP, sign extension, non-trapping float-to-int,
// bulk memory, reference types, multi-value, SIMD; and the proposals wazero
// knows behind experimental flags: tail calls, typed function references,
// exception handling, threads), with wazero's own reading of the encoding
// where it differs from the specification (a SIMD or atomic sub-opcode is
// one byte; a 33-bit signed LEB may end after five bytes). A module wazero
// accepts is therefore one Instrument reads (the fuzz test holds it to
// that); anything it cannot read is an error, never a panic, and no count
// read from the module sizes an allocation beyond what the remaining bytes
// can hold.
package termination

import (
	"errors"
	"fmt"
	"math"
)

// Section ids of the binary format.
const (
	secCustom   = 0
	secImport   = 2
	secFunction = 3
	secExport   = 7
	secStart    = 8
	secCode     = 10
	secMax      = 13 // tag (exception handling)
)

// check is the inserted instruction sequence: an empty loop.
var check = [3]byte{0x03, 0x40, 0x0b}

// module is what Instrument reads of a binary module.
type module struct {
	bin []byte
	// imports is the number of imported functions: defined function i has
	// index imports+i.
	imports uint32
	// declared is the function section's count (-1: no function section).
	declared int64
	// codeID is the offset of the code section's id byte, codeStart and
	// codeEnd the bounds of its content; codeID < 0: no code section.
	codeID, codeStart, codeEnd int
	// countEnd is where the code section's vector count ends.
	countEnd int
	funcs    []function
	// edges holds the direct callees (defined functions only, as indexes
	// into funcs) of every function: funcs[i].edges[0:1] bound its slice.
	// cold marks the calls followed by unreachable: calls that do not
	// come back (abort, panic), whose callee is visited last.
	edges []uint32
	cold  []bool
	// roots are the exported functions and the start function (function
	// indexes): the call graph's search starts there.
	roots []uint32
	// frames is the dataflow's block stack, kept from one function to the
	// next.
	frames []frame
}

// function is one body of the code section.
type function struct {
	entry     int    // offset of the body's size
	locals    int    // offset of its locals declarations
	code      int    // offset of its first instruction
	end       int    // offset after its last byte
	edges     [2]int // bounds in module.edges
	exception bool   // uses try_table, throw or throw_ref
	// The plan: a check at the start of the body, and after the
	// instructions ending at these offsets (relative to code).
	atEntry bool
	after   []int
	sum     summary
}

// errMalformed is wrapped by every error about the module's bytes.
var errMalformed = errors.New("malformed module")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
}

// Instrument returns module with the checks described in the package
// documentation inserted, and the number of functions that received one.
// Sections other than the code section are kept byte for byte, custom
// sections included; so are the bodies that need no check. A module
// without a code section, or that needs no check, is returned as is with 0.
// A module Instrument cannot read is an error; wazero would refuse it too
// (the fuzz test holds Instrument to that).
//
// Instrument is idempotent: an inserted check is seen as a loop header by
// a second run, which then inserts nothing.
func Instrument(module []byte) (out []byte, instrumented int, err error) {
	m, err := parse(module)
	if err != nil {
		return nil, 0, err
	}
	if m.codeID < 0 || len(m.funcs) == 0 {
		return module, 0, nil
	}
	if err := m.plan(); err != nil {
		return nil, 0, err
	}
	for i := range m.funcs {
		if f := &m.funcs[i]; f.atEntry || len(f.after) > 0 {
			instrumented++
		}
	}
	if instrumented == 0 {
		return module, 0, nil
	}
	if out, err = m.rewrite(); err != nil {
		return nil, 0, err
	}
	return out, instrumented, nil
}

// parse reads the module's sections: the imports (for the number of
// imported functions), the function section's count and the code section's
// bodies, which it decodes once to find each function's direct callees and
// to check that the body is a well-nested sequence of instructions.
func parse(bin []byte) (*module, error) {
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" {
		return nil, malformed("no wasm magic number")
	}
	if string(bin[4:8]) != "\x01\x00\x00\x00" {
		return nil, malformed("binary format version %x, want 1", bin[4:8])
	}
	m := &module{bin: bin, declared: -1, codeID: -1}
	var seen [secMax + 1]bool
	pc := 8
	for pc < len(bin) {
		idAt := pc
		id := bin[pc]
		size, p, err := readU32(bin, pc+1)
		if err != nil {
			return nil, malformed("section id %d at offset %d: size: %v", id, idAt, err)
		}
		if uint64(size) > uint64(len(bin)-p) {
			return nil, malformed("section id %d at offset %d: %d bytes past the end of the module", id, idAt, uint64(size)-uint64(len(bin)-p))
		}
		start, end := p, p+int(size)
		if id > secMax {
			return nil, malformed("unknown section id %d at offset %d", id, idAt)
		}
		if id != secCustom {
			if seen[id] {
				return nil, malformed("section id %d repeated at offset %d", id, idAt)
			}
			seen[id] = true
		}
		switch id {
		case secImport:
			if m.imports, err = readImports(bin[:end], start); err != nil {
				return nil, err
			}
		case secFunction:
			n, _, err := readU32(bin[:end], start)
			if err != nil {
				return nil, malformed("function section: count: %v", err)
			}
			m.declared = int64(n)
		case secExport:
			m.roots = append(m.roots, exportedFuncs(bin[:end], start)...)
		case secStart:
			if f, _, err := readU32(bin[:end], start); err == nil {
				m.roots = append(m.roots, f)
			}
		case secCode:
			m.codeID, m.codeStart, m.codeEnd = idAt, start, end
			if err := m.readCode(); err != nil {
				return nil, err
			}
		}
		pc = end
	}
	if m.declared < 0 {
		m.declared = 0
	}
	if int64(len(m.funcs)) != m.declared {
		return nil, malformed("%d function bodies for %d declared functions", len(m.funcs), m.declared)
	}
	return m, nil
}

// readImports returns the number of imported functions of the import
// section at bin[pc:], reading every import as wazero does.
func readImports(bin []byte, pc int) (uint32, error) {
	n, pc, err := readU32(bin, pc)
	if err != nil {
		return 0, malformed("import section: count: %v", err)
	}
	var funcs uint32
	for i := uint32(0); i < n; i++ {
		for range 2 { // module and name
			l, p, err := readU32(bin, pc)
			if err != nil || uint64(l) > uint64(len(bin)-p) {
				return 0, malformed("import %d: name runs past its section", i)
			}
			pc = p + int(l)
		}
		if pc >= len(bin) {
			return 0, malformed("import %d: no kind", i)
		}
		kind := bin[pc]
		pc++
		switch kind {
		case 0x00: // function: type index
			if _, pc, err = readU32(bin, pc); err != nil {
				return 0, malformed("import %d: function type: %v", i, err)
			}
			funcs++
		case 0x01: // table
			if pc, err = skipTableType(bin, pc); err != nil {
				return 0, malformed("import %d: table: %v", i, err)
			}
		case 0x02: // memory
			if pc, err = skipLimits(bin, pc); err != nil {
				return 0, malformed("import %d: memory: %v", i, err)
			}
		case 0x03: // global: value type, mutability
			if pc, err = skipValType(bin, pc); err != nil {
				return 0, malformed("import %d: global: %v", i, err)
			}
			if pc >= len(bin) {
				return 0, malformed("import %d: global: no mutability", i)
			}
			pc++
		case 0x04: // tag: attribute, type index
			if pc >= len(bin) {
				return 0, malformed("import %d: tag: no attribute", i)
			}
			if _, pc, err = readU32(bin, pc+1); err != nil {
				return 0, malformed("import %d: tag type: %v", i, err)
			}
		default:
			return 0, malformed("import %d: kind %#x", i, kind)
		}
	}
	if pc != len(bin) {
		return 0, malformed("import section: %d bytes after the last import", len(bin)-pc)
	}
	return funcs, nil
}

// exportedFuncs returns the indexes of the functions the export section
// at bin[pc:] exports, in its order. They only order the call graph's
// search: what cannot be read is left to wazero to refuse.
func exportedFuncs(bin []byte, pc int) []uint32 {
	n, pc, err := readU32(bin, pc)
	if err != nil {
		return nil
	}
	var funcs []uint32
	for i := uint32(0); i < n; i++ {
		l, p, err := readU32(bin, pc)
		if err != nil || uint64(l) >= uint64(len(bin)-p) {
			return funcs
		}
		kind := bin[p+int(l)]
		idx, p, err := readU32(bin, p+int(l)+1)
		if err != nil {
			return funcs
		}
		if kind == 0x00 {
			funcs = append(funcs, idx)
		}
		pc = p
	}
	return funcs
}

// skipTableType reads a table type as wazero's decodeTable does: an
// optional 0x40 0x00 prefix announcing an initializer, the reference type,
// the limits, and the initializer.
func skipTableType(bin []byte, pc int) (int, error) {
	if pc >= len(bin) {
		return 0, errEOF
	}
	init := bin[pc] == 0x40
	if init {
		if pc+1 >= len(bin) || bin[pc+1] != 0x00 {
			return 0, errors.New("0x40 not followed by 0x00")
		}
		pc += 2
	}
	pc, err := skipValType(bin, pc)
	if err != nil {
		return 0, err
	}
	if pc, err = skipLimits(bin, pc); err != nil {
		return 0, err
	}
	if init {
		return skipConstExpr(bin, pc)
	}
	return pc, nil
}

// skipLimits reads limits: a flag (bit 0: a maximum follows; bit 1: shared)
// and one or two u32.
func skipLimits(bin []byte, pc int) (int, error) {
	if pc >= len(bin) {
		return 0, errEOF
	}
	flag := bin[pc]
	if flag > 3 {
		return 0, fmt.Errorf("limits flag %#x", flag)
	}
	_, pc, err := readU32(bin, pc+1)
	if err == nil && flag&1 != 0 {
		_, pc, err = readU32(bin, pc)
	}
	return pc, err
}

// skipValType reads a value type: one byte, or a reference type prefix
// (0x63 nullable, 0x64 not) and its heap type.
func skipValType(bin []byte, pc int) (int, error) {
	if pc >= len(bin) {
		return 0, errEOF
	}
	if b := bin[pc]; b == 0x63 || b == 0x64 {
		_, p, err := readS33(bin, pc+1)
		return p, err
	}
	return pc + 1, nil
}

// skipConstExpr reads a constant expression up to its end.
func skipConstExpr(bin []byte, pc int) (int, error) {
	for {
		in, err := decode(bin, pc)
		if err != nil {
			return 0, err
		}
		pc = in.next
		switch in.kind {
		case kEnd:
			return pc, nil
		case kBlock, kLoop, kIf, kTry, kElse:
			return 0, errors.New("block in a constant expression")
		}
	}
}

// readCode reads the code section: every body's bounds, locals and
// instructions, and the direct calls in it.
func (m *module) readCode() error {
	bin := m.bin[:m.codeEnd]
	n, pc, err := readU32(bin, m.codeStart)
	if err != nil {
		return malformed("code section: count: %v", err)
	}
	m.countEnd = pc
	// A body takes at least 3 bytes (its size, no locals, end): the count
	// cannot ask for more than the section holds.
	if int64(n) > int64(len(bin)-pc)/3 {
		return malformed("code section: %d bodies in %d bytes", n, len(bin)-pc)
	}
	m.funcs = make([]function, n)
	for i := range m.funcs {
		f := &m.funcs[i]
		f.entry = pc
		size, p, err := readU32(bin, pc)
		if err != nil {
			return malformed("body %d: size: %v", i, err)
		}
		if uint64(size) > uint64(len(bin)-p) {
			return malformed("body %d: %d bytes past the end of the code section", i, uint64(size)-uint64(len(bin)-p))
		}
		f.locals, f.end = p, p+int(size)
		body := bin[:f.end]
		groups, p, err := readU32(body, p)
		if err != nil {
			return malformed("body %d: locals: %v", i, err)
		}
		for g := uint32(0); g < groups; g++ {
			if _, p, err = readU32(body, p); err == nil {
				p, err = skipValType(body, p)
			}
			if err != nil {
				return malformed("body %d: locals: %v", i, err)
			}
		}
		f.code = p
		f.edges[0] = len(m.edges)
		if err := m.scan(i, bin[f.code:f.end]); err != nil {
			return malformed("body %d (function %d): %v", i, uint64(m.imports)+uint64(i), err)
		}
		f.edges[1] = len(m.edges)
		pc = f.end
	}
	if pc != len(bin) {
		return malformed("code section: %d bytes after the last body", len(bin)-pc)
	}
	return nil
}

// scan decodes the instructions of body i: they must nest, and the last
// must be the end of the body. It records the direct calls to defined
// functions and whether the body calls indirectly.
func (m *module) scan(i int, code []byte) error {
	f := &m.funcs[i]
	total := uint64(m.imports) + uint64(len(m.funcs))
	depth := 1
	for pc := 0; pc < len(code); {
		in, err := decode(code, pc)
		if err != nil {
			return fmt.Errorf("offset %d: %w", pc, err)
		}
		switch in.kind {
		case kBlock, kLoop, kIf:
			depth++
		case kTry:
			depth++
			f.exception = true
		case kThrow:
			f.exception = true
		case kEnd:
			depth--
			if depth == 0 && in.next != len(code) {
				return fmt.Errorf("offset %d: the body ends before its last byte", pc)
			}
		case kCall, kReturnCall:
			if uint64(in.imm) >= total {
				return fmt.Errorf("offset %d: call of function %d of %d", pc, in.imm, total)
			}
			if in.imm >= m.imports {
				m.edges = append(m.edges, in.imm-m.imports)
				m.cold = append(m.cold, in.next < len(code) && code[in.next] == 0x00)
			}
		}
		pc = in.next
	}
	if depth != 0 {
		return errors.New("the body does not end with end")
	}
	return nil
}

// rewrite returns the module with the planned checks inserted.
func (m *module) rewrite() ([]byte, error) {
	bin := m.bin
	size := uint64(m.countEnd - m.codeStart)
	for i := range m.funcs {
		f := &m.funcs[i]
		if n := f.inserts(); n > 0 {
			body := uint64(f.end - f.locals + n*len(check))
			if body > math.MaxUint32 {
				return nil, fmt.Errorf("body %d: %d bytes once instrumented, over the format's limit", i, body)
			}
			size += uint64(lebLen(body)) + body
		} else {
			size += uint64(f.end - f.entry)
		}
	}
	if size > math.MaxUint32 {
		return nil, fmt.Errorf("code section: %d bytes once instrumented, over the format's limit", size)
	}
	out := make([]byte, 0, len(bin)-(m.codeEnd-m.codeStart)+int(size)+5)
	out = append(out, bin[:m.codeID]...)
	out = append(out, secCode)
	out = appendU32(out, uint32(size))
	out = append(out, bin[m.codeStart:m.countEnd]...)
	for i := range m.funcs {
		f := &m.funcs[i]
		n := f.inserts()
		if n == 0 {
			out = append(out, bin[f.entry:f.end]...)
			continue
		}
		out = appendU32(out, uint32(f.end-f.locals+n*len(check)))
		out = append(out, bin[f.locals:f.code]...)
		if f.atEntry {
			out = append(out, check[:]...)
		}
		at := f.code
		for _, off := range f.after {
			out = append(out, bin[at:f.code+off]...)
			out = append(out, check[:]...)
			at = f.code + off
		}
		out = append(out, bin[at:f.end]...)
	}
	return append(out, bin[m.codeEnd:]...), nil
}

// inserts is the number of checks planned in f.
func (f *function) inserts() int {
	n := len(f.after)
	if f.atEntry {
		n++
	}
	return n
}
