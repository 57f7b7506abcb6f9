package termination

import (
	"errors"
	"fmt"
)

// errEOF: an instruction or a number runs past the end of its bytes.
var errEOF = errors.New("unexpected end")

// kind is what the analysis needs to know of an instruction.
type kind uint8

const (
	kPlain              kind = iota // no effect on control: weight 1
	kConst                          // i32.const imm: weight 1
	kFree                           // nop: weight 0
	kBulk                           // memory.copy, memory.fill, memory.grow, ...: a weight by its length (unit: scale)
	kBlock                          // block
	kLoop                           // loop: a check
	kIf                             // if
	kElse                           // else
	kEnd                            // end
	kTry                            // try_table: a block with catch clauses (at next-cat..next)
	kBr                             // br imm
	kBrIf                           // br_if imm, br_on_null imm, br_on_non_null imm
	kBrTable                        // br_table: count labels and the default at lab..next
	kReturn                         // return
	kDead                           // unreachable: what follows is not reached
	kThrow                          // throw, throw_ref
	kCall                           // call imm
	kCallIndirect                   // call_indirect, call_ref
	kReturnCall                     // return_call imm
	kReturnCallIndirect             // return_call_indirect, return_call_ref
)

// inst is one decoded instruction.
type inst struct {
	kind kind
	// scale, for kBulk: the bytes of a unit of its length operand (1 for
	// memory.fill, 8 for a table's element, 65536 for memory.grow's page).
	scale uint32
	next  int    // offset after the instruction
	imm   uint32 // callee of a call, label of a branch, count of br_table labels or try_table catches
	lab   int    // offset of br_table's labels, of try_table's catch clauses
}

// decode decodes the instruction at code[pc:] the way wazero v1.12's
// validator and compiler read it (internal/wasm/func_validation.go,
// internal/engine/wazevo/frontend/lower.go). It checks the encoding, not
// the types: whatever wazero accepts decodes, and the instruction
// boundaries are wazero's.
func decode(code []byte, pc int) (inst, error) {
	if pc >= len(code) {
		return inst{}, errEOF
	}
	op := code[pc]
	pc++
	// The most frequent first: numeric instructions, variables, memory.
	switch {
	case op >= 0x45 && op <= 0xc4: // numeric and sign extension: no immediate
		return inst{kind: kPlain, next: pc}, nil
	case op >= 0x20 && op <= 0x26: // local.get/set/tee, global.get/set, table.get/set
		_, pc, err := readU32(code, pc)
		if err != nil {
			return inst{}, fmt.Errorf("opcode %#x: %w", op, err)
		}
		return inst{kind: kPlain, next: pc}, nil
	case op >= 0x28 && op <= 0x3e: // loads and stores
		pc, err := skipMemArg(code, pc)
		if err != nil {
			return inst{}, fmt.Errorf("opcode %#x: %w", op, err)
		}
		return inst{kind: kPlain, next: pc}, nil
	}
	in := inst{kind: kPlain}
	var err error
	switch op {
	case 0x00: // unreachable
		in.kind = kDead
	case 0x01: // nop
		in.kind = kFree
	case 0x02, 0x03, 0x04: // block, loop, if
		in.kind = [...]kind{kBlock, kLoop, kIf}[op-0x02]
		pc, err = skipBlockType(code, pc)
	case 0x05:
		in.kind = kElse
	case 0x08: // throw tag
		in.kind = kThrow
		_, pc, err = readU32(code, pc)
	case 0x0a: // throw_ref
		in.kind = kThrow
	case 0x0b:
		in.kind = kEnd
	case 0x0c, 0x0d: // br, br_if
		in.kind = kBr
		if op == 0x0d {
			in.kind = kBrIf
		}
		in.imm, pc, err = readU32(code, pc)
	case 0x0e: // br_table
		in.kind = kBrTable
		if in.imm, pc, err = readU32(code, pc); err != nil {
			break
		}
		in.lab = pc
		// count labels and the default; each takes a byte at least, so
		// the loop ends within the body whatever the count says.
		for i := uint64(0); i <= uint64(in.imm) && err == nil; i++ {
			_, pc, err = readU32(code, pc)
		}
	case 0x0f:
		in.kind = kReturn
	case 0x10, 0x12: // call, return_call
		in.kind = kCall
		if op == 0x12 {
			in.kind = kReturnCall
		}
		in.imm, pc, err = readU32(code, pc)
	case 0x11, 0x13: // call_indirect, return_call_indirect: type, table
		in.kind = kCallIndirect
		if op == 0x13 {
			in.kind = kReturnCallIndirect
		}
		if _, pc, err = readU32(code, pc); err == nil {
			_, pc, err = readU32(code, pc)
		}
	case 0x14, 0x15: // call_ref, return_call_ref: type
		in.kind = kCallIndirect
		if op == 0x15 {
			in.kind = kReturnCallIndirect
		}
		_, pc, err = readU32(code, pc)
	case 0x1a, 0x1b: // drop, select
	case 0x1c: // select t*: wazero reads the count as one byte, which must be 1
		if pc >= len(code) {
			return inst{}, errEOF
		}
		if code[pc] != 1 {
			return inst{}, fmt.Errorf("select with %d types", code[pc])
		}
		pc, err = skipValType(code, pc+1)
	case 0x1f: // try_table blocktype vec(catch)
		in.kind = kTry
		if pc, err = skipBlockType(code, pc); err != nil {
			break
		}
		if in.imm, pc, err = readU32(code, pc); err != nil {
			break
		}
		in.lab = pc
		for i := uint32(0); i < in.imm && err == nil; i++ {
			_, pc, err = readCatch(code, pc)
		}
	case 0x3f, 0x40: // memory.size, memory.grow: memory index
		if op == 0x40 {
			in.kind, in.scale = kBulk, 65536
		}
		_, pc, err = readU32(code, pc)
	case 0x41: // i32.const: its value, for the length of a bulk instruction
		in.kind = kConst
		var v int32
		v, pc, err = readS32(code, pc)
		in.imm = uint32(v)
	case 0x42: // i64.const
		pc, err = skipSLEB(code, pc, 10)
	case 0x43: // f32.const
		pc, err = skip(code, pc, 4)
	case 0x44: // f64.const
		pc, err = skip(code, pc, 8)
	case 0xd0: // ref.null heaptype: one byte, or a type index
		_, pc, err = readU32(code, pc)
	case 0xd1, 0xd4: // ref.is_null, ref.as_non_null
	case 0xd2: // ref.func
		_, pc, err = readU32(code, pc)
	case 0xd5, 0xd6: // br_on_null, br_on_non_null
		in.kind = kBrIf
		in.imm, pc, err = readU32(code, pc)
	case 0xfc:
		return decodeMisc(code, pc)
	case 0xfd:
		return decodeVector(code, pc)
	case 0xfe:
		return decodeAtomic(code, pc)
	default:
		return inst{}, fmt.Errorf("unknown opcode %#x", op)
	}
	if err != nil {
		return inst{}, fmt.Errorf("opcode %#x: %w", op, err)
	}
	in.next = pc
	return in, nil
}

// decodeMisc decodes the 0xfc instructions: non-trapping float-to-int
// conversions, bulk memory and table instructions. The sub-opcode is a u32.
func decodeMisc(code []byte, pc int) (inst, error) {
	sub, pc, err := readU32(code, pc)
	if err != nil {
		return inst{}, fmt.Errorf("opcode 0xfc: %w", err)
	}
	in := inst{kind: kPlain}
	switch sub {
	case 0, 1, 2, 3, 4, 5, 6, 7: // i32/i64.trunc_sat_f32/f64_s/u
	case 8, 10, 12, 14: // memory.init data mem, memory.copy dst src, table.init elem table, table.copy dst src
		in.kind, in.scale = kBulk, 1
		if sub >= 12 {
			in.scale = 8
		}
		if _, pc, err = readU32(code, pc); err == nil {
			_, pc, err = readU32(code, pc)
		}
	case 9, 13, 16: // data.drop, elem.drop, table.size
		_, pc, err = readU32(code, pc)
	case 11, 15, 17: // memory.fill mem, table.grow, table.fill
		in.kind, in.scale = kBulk, 1
		if sub != 11 {
			in.scale = 8
		}
		_, pc, err = readU32(code, pc)
	default:
		return inst{}, fmt.Errorf("unknown opcode 0xfc %d", sub)
	}
	if err != nil {
		return inst{}, fmt.Errorf("opcode 0xfc %d: %w", sub, err)
	}
	in.next = pc
	return in, nil
}

// Immediates of the SIMD instructions.
const (
	vecInvalid = iota
	vecNone
	vecMemArg     // loads, stores
	vecMemArgLane // load/store lane
	vecLane       // extract/replace lane
	vec16         // v128.const, i8x16.shuffle
)

// vecImm is the immediate of each SIMD sub-opcode; wazero v1.12 reads the
// sub-opcode as one byte (where the specification has a u32), so an
// instruction numbered 0x80 or more is followed by the LEB's second byte,
// 0x01, which wazero then reads as a nop: so does decode.
var vecImm = func() (t [256]uint8) {
	valid := [][2]int{
		{0x00, 0x99}, {0x9b, 0xa1}, {0xa3, 0xa4}, {0xa7, 0xae}, {0xb1, 0xb1},
		{0xb5, 0xba}, {0xbc, 0xc1}, {0xc3, 0xc4}, {0xc7, 0xce}, {0xd1, 0xd1},
		{0xd5, 0xe1}, {0xe3, 0xed}, {0xef, 0xff},
	}
	for _, r := range valid {
		for op := r[0]; op <= r[1]; op++ {
			t[op] = vecNone
		}
	}
	for op := 0x00; op <= 0x0b; op++ {
		t[op] = vecMemArg
	}
	t[0x0c], t[0x0d] = vec16, vec16
	for op := 0x15; op <= 0x22; op++ {
		t[op] = vecLane
	}
	for op := 0x54; op <= 0x5b; op++ {
		t[op] = vecMemArgLane
	}
	t[0x5c], t[0x5d] = vecMemArg, vecMemArg
	return t
}()

// decodeVector decodes the 0xfd (SIMD) instructions.
func decodeVector(code []byte, pc int) (inst, error) {
	if pc >= len(code) {
		return inst{}, fmt.Errorf("opcode 0xfd: %w", errEOF)
	}
	sub := code[pc]
	pc++
	var err error
	switch vecImm[sub] {
	case vecInvalid:
		return inst{}, fmt.Errorf("unknown opcode 0xfd %#x", sub)
	case vecMemArg:
		pc, err = skipMemArg(code, pc)
	case vecMemArgLane:
		if pc, err = skipMemArg(code, pc); err == nil {
			pc, err = skip(code, pc, 1)
		}
	case vecLane:
		pc, err = skip(code, pc, 1)
	case vec16:
		pc, err = skip(code, pc, 16)
	}
	if err != nil {
		return inst{}, fmt.Errorf("opcode 0xfd %#x: %w", sub, err)
	}
	return inst{kind: kPlain, next: pc}, nil
}

// decodeAtomic decodes the 0xfe (threads) instructions: wazero reads the
// sub-opcode as one byte.
func decodeAtomic(code []byte, pc int) (inst, error) {
	if pc >= len(code) {
		return inst{}, fmt.Errorf("opcode 0xfe: %w", errEOF)
	}
	sub := code[pc]
	pc++
	var err error
	switch {
	case sub == 0x03: // atomic.fence: a reserved byte
		pc, err = skip(code, pc, 1)
	case sub <= 0x02 || (sub >= 0x10 && sub <= 0x4e): // notify, wait, loads, stores, rmw
		pc, err = skipMemArg(code, pc)
	default:
		return inst{}, fmt.Errorf("unknown opcode 0xfe %#x", sub)
	}
	if err != nil {
		return inst{}, fmt.Errorf("opcode 0xfe %#x: %w", sub, err)
	}
	return inst{kind: kPlain, next: pc}, nil
}

// skipBlockType reads a block type as wazero's DecodeBlockType: a 33-bit
// signed LEB (empty, a value type or a type index), and after 0x63 or 0x64
// (reference type prefixes) a heap type.
func skipBlockType(code []byte, pc int) (int, error) {
	v, pc, err := readS33(code, pc)
	if err == nil && (v == -29 || v == -28) {
		_, pc, err = readS33(code, pc)
	}
	return pc, err
}

// readCatch reads one catch clause of try_table and returns its label:
// kinds 0 and 1 (catch, catch_ref) have a tag and a label, 2 and 3
// (catch_all, catch_all_ref) a label.
func readCatch(code []byte, pc int) (label uint32, next int, err error) {
	if pc >= len(code) {
		return 0, 0, errEOF
	}
	k := code[pc]
	if k > 3 {
		return 0, 0, fmt.Errorf("catch kind %#x", k)
	}
	pc++
	if k < 2 {
		if _, pc, err = readU32(code, pc); err != nil {
			return 0, 0, err
		}
	}
	return readU32(code, pc)
}

// skipMemArg reads a memory argument: alignment and offset, two u32.
func skipMemArg(code []byte, pc int) (int, error) {
	_, pc, err := readU32(code, pc)
	if err == nil {
		_, pc, err = readU32(code, pc)
	}
	return pc, err
}

func skip(code []byte, pc, n int) (int, error) {
	if n > len(code)-pc {
		return 0, errEOF
	}
	return pc + n, nil
}

// readU32 reads an unsigned LEB128 of at most 5 bytes, as wazero does.
// Unused bits of the fifth byte are not checked: wazero refuses what they
// would let through.
func readU32(b []byte, pc int) (uint32, int, error) {
	var v uint32
	for i := 0; i < 5; i++ {
		if pc >= len(b) {
			return 0, 0, errEOF
		}
		c := b[pc]
		pc++
		v |= uint32(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, pc, nil
		}
	}
	return 0, 0, errors.New("integer representation too long")
}

// readS33 reads a signed LEB128 of 33 bits as wazero's DecodeInt33AsInt64:
// it stops after 5 bytes even if the fifth has its continuation bit set.
func readS33(b []byte, pc int) (int64, int, error) {
	var v int64
	var shift uint
	var c byte
	for shift < 35 {
		if pc >= len(b) {
			return 0, 0, errEOF
		}
		c = b[pc]
		pc++
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			break
		}
	}
	if shift < 64 && c&0x40 != 0 {
		v |= -1 << shift
	}
	// wazero keeps 33 bits and reads the 33rd as the sign.
	v &= 1<<33 - 1
	if v&(1<<32) != 0 {
		v -= 1 << 33
	}
	return v, pc, nil
}

// readS32 reads a signed LEB128 of at most 5 bytes (i32.const's), as
// wazero does but for the unused bits of the fifth byte.
func readS32(b []byte, pc int) (int32, int, error) {
	var v int64
	for i := 0; i < 5; i++ {
		if pc >= len(b) {
			return 0, 0, errEOF
		}
		c := b[pc]
		pc++
		v |= int64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if c&0x40 != 0 {
				v |= -1 << (7 * (i + 1))
			}
			return int32(v), pc, nil
		}
	}
	return 0, 0, errors.New("integer representation too long")
}

// skipSLEB skips a signed LEB128 of at most max bytes.
func skipSLEB(b []byte, pc, max int) (int, error) {
	for i := 0; i < max; i++ {
		if pc >= len(b) {
			return 0, errEOF
		}
		c := b[pc]
		pc++
		if c < 0x80 {
			return pc, nil
		}
	}
	return 0, errors.New("integer representation too long")
}

// lebLen is the length of v's unsigned LEB128.
func lebLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// appendU32 appends v's unsigned LEB128.
func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}
