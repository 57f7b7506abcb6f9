package termination

import (
	"errors"
	"fmt"
)

// The work model. Every instruction weighs 1 but nop and the structure
// (block, loop, end, else) weigh 0, and the bulk instructions, whose cost
// grows with their length operand (memory.copy, memory.fill, memory.init,
// memory.grow, table.copy, table.init, table.fill, table.grow): 1 per 16
// bytes when the length is a constant (the i32.const just before: Go
// zeroes its structures with memory.fill of a constant length), bulkWeight
// when it is not. A check is inserted wherever more than half a budget of
// work can have run since the last check; a stretch without a check is
// then bounded by about a budget: at a few ns an instruction at worst, a
// fraction of a millisecond, plus the copies of up to four bulk
// instructions of unknown length.
const (
	budget     = 1 << 18
	half       = budget / 2
	bulkWeight = budget / 4
	// saturate caps the sums: a call tree that fans out multiplies them.
	saturate = 1 << 50
)

// state is, at a point of a body, the most work that can have run on a
// path reaching it: u on the paths that have not passed a check since the
// function's entry, c since the last check on the others. -1: no such
// path.
type state struct{ u, c int64 }

var dead = state{-1, -1}

func add(a, w int64) int64 {
	if a < 0 {
		return -1
	}
	return min(a+w, saturate)
}

func (s state) add(w int64) state  { return state{add(s.u, w), add(s.c, w)} }
func (s state) join(o state) state { return state{max(s.u, o.u), max(s.c, o.c)} }
func (s state) live() bool         { return s.u >= 0 || s.c >= 0 }
func (s state) most() int64        { return max(s.u, s.c) }

// summary is what a call of a function adds to its caller's state: pass,
// the most work on a path from its entry to its return that passes no
// check; pre, the most work from its entry to its first check; post, the
// most work from its last check to its return. -1: no such path.
type summary struct{ pass, pre, post int64 }

var (
	// A host function: the call itself. The host bounds its own time.
	importSummary = summary{pass: 1, pre: -1, post: -1}
	// A callee not known yet (a recursive or indirect call): what every
	// function is held to by its own checks.
	unknownSummary = summary{pass: half + 1, pre: half, post: half + 1}
)

// plan decides the checks of every function. Functions are taken in the
// order a depth-first search of the direct call graph finishes them, so
// that a direct call uses the callee's summary unless the callee is not
// done yet: every cycle of calls has such a call, and those calls and the
// indirect ones are the recursive calls, handled as the package
// documentation says. The search does not follow cold calls (abort,
// panic: followed by unreachable), so that the call that closes a cycle
// through the error path of a small function everything calls
// (AssemblyScript's stack check calls abort, which formats its message,
// which allocates, which checks the stack) is the cold one, rather than
// every call of the small function.
func (m *module) plan() error {
	done := make([]bool, len(m.funcs))
	for _, i := range m.postorder() {
		f := &m.funcs[i]
		code := m.bin[f.code:f.end]
		r, err := m.flow(int(i), code, done, false)
		if err == nil && r.sum.pre > half {
			r, err = m.flow(int(i), code, done, true)
			f.atEntry = true
		}
		if err != nil {
			return malformed("body %d (function %d): %v", i, uint64(m.imports)+uint64(i), err)
		}
		f.after, f.sum = r.after, r.sum
		done[i] = true
	}
	return nil
}

// postorder returns the functions in the order a depth-first search of
// the direct call graph finishes them: a function comes after every
// callee it reaches by an edge that is not a back edge. Cold calls are not
// followed: their callees are searched from the roots after the others.
// The search keeps its own stack: its depth comes from the module.
func (m *module) postorder() []uint32 {
	visited := make([]bool, len(m.funcs))
	order := make([]uint32, 0, len(m.funcs))
	type call struct {
		v    uint32
		edge int
	}
	var calls []call
	// From the entry points first: a call from a function back towards
	// them is then the back edge, rather than one on their hot paths.
	starts := make([]uint32, 0, len(m.roots)+len(m.funcs))
	for _, f := range m.roots {
		if f >= m.imports && uint64(f-m.imports) < uint64(len(m.funcs)) {
			starts = append(starts, f-m.imports)
		}
	}
	for s := range m.funcs {
		starts = append(starts, uint32(s))
	}
	for _, s := range starts {
		if visited[s] {
			continue
		}
		visited[s] = true
		calls = append(calls, call{s, m.funcs[s].edges[0]})
		for len(calls) > 0 {
			top := &calls[len(calls)-1]
			if top.edge < m.funcs[top.v].edges[1] {
				w, cold := m.edges[top.edge], m.cold[top.edge]
				top.edge++
				if !visited[w] && !cold {
					visited[w] = true
					calls = append(calls, call{w, m.funcs[w].edges[0]})
				}
				continue
			}
			order = append(order, top.v)
			calls = calls[:len(calls)-1]
		}
	}
	return order
}

// frame is an open block of the dataflow.
type frame struct {
	kind    kind  // kBlock (the function's body too), kLoop, kIf, kTry
	out     state // the states that branch to its end
	saved   state // if: the state when the condition is false
	hasElse bool
	// try_table: the most work seen in its body (where an exception may
	// be thrown) and the frames its catch clauses branch to.
	thrown  state
	catches []int
}

// flowResult is the plan of one function.
type flowResult struct {
	sum summary
	// after: the offsets (in the code) of the instructions before which a
	// check goes (after the one ending there).
	after []int
	// inner is the most work that can run between two checks inside the
	// function (callees' own stretches are theirs).
	inner int64
}

var errLabel = errors.New("branch to a label that does not exist")

// flow runs the dataflow over function i's code (with a check at its
// entry if entry is set) and plans its checks.
func (m *module) flow(i int, code []byte, done []bool, entry bool) (flowResult, error) {
	f := &m.funcs[i]
	r := flowResult{sum: summary{pre: -1}, inner: -1}
	st := state{u: 0, c: -1}
	if entry {
		st = state{u: -1, c: 0}
		r.sum.pre = 0
	}
	// arrive ends the stretches of s at a check.
	arrive := func(s state) {
		r.sum.pre = max(r.sum.pre, s.u)
		r.inner = max(r.inner, s.c)
	}
	// The block stack; its array is kept for the next function.
	stack := append(m.frames[:0], frame{kind: kBlock, out: dead})
	defer func() { m.frames = stack[:0] }()
	var tries []int // the try_table frames on the stack
	exit := dead
	branch := func(label uint32, s state) error {
		if uint64(label) >= uint64(len(stack)) {
			return errLabel
		}
		fr := &stack[len(stack)-1-int(label)]
		if fr.kind == kLoop {
			arrive(s) // the loop's header: a check
		} else {
			fr.out = fr.out.join(s)
		}
		return nil
	}
	call := func(s state, callee summary) state {
		if !s.live() {
			return s
		}
		n := dead
		if callee.pass >= 0 {
			n = s.add(callee.pass)
		}
		if callee.pre >= 0 {
			arrive(s.add(callee.pre))
			n.c = max(n.c, callee.post)
		}
		return n
	}
	// last is the instruction before, an empty loop (a check) aside: the
	// same instruction whether Instrument put a check between them or not.
	var last inst
	checkEnd := false // the instruction is the end of an empty loop
	for pc := 0; pc < len(code); {
		if len(stack) == 0 {
			return r, errors.New("instructions after the end of the body")
		}
		in, err := decode(code, pc)
		if err != nil {
			return r, fmt.Errorf("offset %d: %w", pc, err)
		}
		recursive := false // a call that returns here and may recurse
		switch in.kind {
		case kPlain, kConst:
			st = st.add(1)
		case kFree:
		case kBulk:
			w := int64(bulkWeight)
			if last.kind == kConst { // the length
				w = 1 + int64(last.imm)*int64(in.scale)/16
			}
			st = st.add(w)
		case kBlock:
			stack = append(stack, frame{kind: kBlock, out: dead})
		case kLoop:
			arrive(st)
			st = state{u: -1, c: 0}
			stack = append(stack, frame{kind: kLoop, out: dead})
		case kIf:
			st = st.add(1)
			stack = append(stack, frame{kind: kIf, out: dead, saved: st})
		case kTry:
			fr := frame{kind: kTry, out: dead, thrown: st}
			for j, p := uint32(0), in.lab; j < in.imm; j++ {
				var label uint32
				if label, p, err = readCatch(code, p); err != nil {
					return r, err
				}
				if uint64(label) >= uint64(len(stack)) {
					return r, fmt.Errorf("offset %d: %w", pc, errLabel)
				}
				fr.catches = append(fr.catches, len(stack)-1-int(label))
			}
			stack = append(stack, fr)
			tries = append(tries, len(stack)-1)
		case kElse:
			top := &stack[len(stack)-1]
			if top.kind != kIf || top.hasElse {
				return r, fmt.Errorf("offset %d: else outside if", pc)
			}
			top.out = top.out.join(st)
			st, top.hasElse = top.saved, true
		case kEnd:
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			switch top.kind {
			case kLoop: // its label is its header: only the fallthrough leaves
			case kIf:
				st = st.join(top.out)
				if !top.hasElse {
					st = st.join(top.saved)
				}
			case kTry:
				tries = tries[:len(tries)-1]
				// An exception thrown in the body, maybe by a callee
				// after some work of its own, lands at a catch's label.
				thrown := top.thrown.add(half)
				for _, c := range top.catches {
					if fr := &stack[c]; fr.kind == kLoop {
						arrive(thrown)
					} else {
						fr.out = fr.out.join(thrown)
					}
				}
				if len(tries) > 0 {
					outer := &stack[tries[len(tries)-1]]
					outer.thrown = outer.thrown.join(top.thrown)
				}
				st = st.join(top.out)
			default:
				st = st.join(top.out)
			}
			if len(stack) == 0 {
				exit = exit.join(st)
				st = dead
			}
		case kBr:
			if err := branch(in.imm, st); err != nil {
				return r, fmt.Errorf("offset %d: %w", pc, err)
			}
			st = dead
		case kBrIf:
			st = st.add(1)
			if err := branch(in.imm, st); err != nil {
				return r, fmt.Errorf("offset %d: %w", pc, err)
			}
		case kBrTable:
			st = st.add(1)
			for j, p := uint64(0), in.lab; j <= uint64(in.imm); j++ {
				var label uint32
				label, p, _ = readU32(code, p) // decoded before
				if err := branch(label, st); err != nil {
					return r, fmt.Errorf("offset %d: %w", pc, err)
				}
			}
			st = dead
		case kReturn:
			exit = exit.join(st)
			st = dead
		case kDead, kThrow:
			st = dead
		case kCall, kReturnCall, kCallIndirect, kReturnCallIndirect:
			st = st.add(1)
			callee := unknownSummary
			switch {
			case in.kind == kCallIndirect || in.kind == kReturnCallIndirect:
				recursive = true
			case in.imm < m.imports:
				callee = importSummary
			case !done[in.imm-m.imports]:
				recursive = true
			default:
				callee = m.funcs[in.imm-m.imports].sum
			}
			// With exceptions, a throw may skip a check after a call: every
			// call is treated as recursive.
			recursive = recursive || f.exception
			if recursive && st.u >= 0 {
				// A path from the entry gets here without a check: one
				// before the call checks every turn of the recursion.
				arrive(st)
				st = state{u: -1, c: 0}
				r.after = append(r.after, pc)
			}
			st = call(st, callee)
			if in.kind == kReturnCall || in.kind == kReturnCallIndirect {
				exit = exit.join(st)
				st = dead
				recursive = false // never returns here
			}
		}
		if len(tries) > 0 {
			fr := &stack[tries[len(tries)-1]]
			fr.thrown = fr.thrown.join(st)
		}
		emptyLoop := in.kind == kLoop && in.next == pc+2 && code[pc+1] == 0x40 && in.next < len(code) && code[in.next] == 0x0b
		if !emptyLoop && !checkEnd {
			last = in
		}
		checkEnd = emptyLoop
		pc = in.next
		// A check goes after this instruction if a recursive call returns
		// here or there has been too much work, unless the next
		// instruction is a loop (a check) or unreachable (a trap: so a
		// call that does not come back stays followed by unreachable).
		if pc < len(code) && st.live() && (recursive || st.most() > half) && code[pc] != 0x03 && code[pc] != 0x00 {
			arrive(st)
			st = state{u: -1, c: 0}
			r.after = append(r.after, pc)
		}
	}
	if len(stack) != 0 {
		return r, errors.New("the body does not end with end")
	}
	r.sum.pass, r.sum.post = exit.u, exit.c
	return r, nil
}
