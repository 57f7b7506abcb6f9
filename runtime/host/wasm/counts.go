package wasm

import "fmt"

// maxLocals bounds the locals of one function, as V8 does (50,000): wazero
// allocates a function's locals from their declared count.
const maxLocals = 50000

// vectorSections are the sections that begin with a count of entries.
var vectorSections = map[byte]string{1: "type", 2: "import", 3: "function", 4: "table", 5: "memory",
	6: "global", 7: "export", 9: "element", 10: "code", 11: "data"}

// checkCounts refuses a module whose sections declare more entries than they
// have bytes for, or a function more than maxLocals locals, before wazero
// reads it: wazero v1.12 allocates a vector of the declared count before
// reading its entries, so a 15-byte module declaring 2^32-1 imports
// exhausts the host's memory, a fatal error no recover catches. Anything
// else malformed is left to wazero's own decoder, which names it.
func checkCounts(b []byte) error {
	if len(b) < 8 {
		return nil
	}
	r := reader{b: b, i: 8}
	for r.i < len(b) {
		id := r.b[r.i]
		r.i++
		size, ok := r.u32()
		if !ok || uint64(size) > uint64(len(b)-r.i) {
			return nil
		}
		sec := reader{b: b[r.i : r.i+int(size)]}
		r.i += int(size)
		if id == 0 {
			if err := sec.nameSection(); err != nil {
				return err
			}
			continue
		}
		name, ok := vectorSections[id]
		if !ok {
			continue
		}
		n, ok := sec.u32()
		if !ok {
			continue
		}
		if int64(n) > int64(len(sec.b)-sec.i) {
			return fmt.Errorf("malformed module: section %s declares %d entries in %d bytes", name, n, len(sec.b)-sec.i)
		}
		if id == 10 {
			if err := sec.locals(n); err != nil {
				return err
			}
		}
	}
	return nil
}

// nameSection checks the counts of a custom section named "name", which
// wazero decodes too: its function names (subsection 1) and local names
// (subsection 2, a vector of vectors).
func (r *reader) nameSection() error {
	n, ok := r.u32()
	if !ok || uint64(n) > uint64(len(r.b)-r.i) || string(r.b[r.i:r.i+int(n)]) != "name" {
		return nil
	}
	r.i += int(n)
	for r.i < len(r.b) {
		sub := r.b[r.i]
		r.i++
		size, ok := r.u32()
		if !ok || uint64(size) > uint64(len(r.b)-r.i) {
			return nil
		}
		s := reader{b: r.b[r.i : r.i+int(size)]}
		r.i += int(size)
		if sub != 1 && sub != 2 {
			continue
		}
		count, ok := s.u32()
		if !ok {
			continue
		}
		if int64(count) > int64(len(s.b)-s.i) {
			return fmt.Errorf("malformed module: name section declares %d names in %d bytes", count, len(s.b)-s.i)
		}
		for range count * uint32(sub-1) { // local names: per function, a vector of names
			if _, ok := s.u32(); !ok {
				break
			}
			inner, ok := s.u32()
			if !ok {
				break
			}
			if int64(inner) > int64(len(s.b)-s.i) {
				return fmt.Errorf("malformed module: name section declares %d local names in %d bytes", inner, len(s.b)-s.i)
			}
			for range inner { // index, then a name: length and bytes
				if _, ok := s.u32(); !ok {
					break
				}
				l, ok := s.u32()
				if !ok || uint64(l) > uint64(len(s.b)-s.i) {
					break
				}
				s.i += int(l)
			}
		}
	}
	return nil
}

// reader reads LEB128 numbers from b at i.
type reader struct {
	b []byte
	i int
}

func (r *reader) u32() (uint32, bool) {
	var v uint32
	for shift := 0; shift < 35 && r.i < len(r.b); shift += 7 {
		c := r.b[r.i]
		r.i++
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, true
		}
	}
	return 0, false
}

// locals checks the locals declared by each of the n function bodies.
func (r *reader) locals(n uint32) error {
	for f := range n {
		size, ok := r.u32()
		if !ok || uint64(size) > uint64(len(r.b)-r.i) {
			return nil
		}
		body := reader{b: r.b[r.i : r.i+int(size)]}
		r.i += int(size)
		groups, ok := body.u32()
		if !ok {
			continue
		}
		total := uint64(0)
		for range groups {
			count, ok := body.u32()
			if !ok || body.i >= len(body.b) {
				break
			}
			body.i++ // the type
			if total += uint64(count); total > maxLocals {
				return fmt.Errorf("malformed module: function %d of the code section declares over %d locals", f, maxLocals)
			}
		}
	}
	return nil
}
