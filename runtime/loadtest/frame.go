package loadtest

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation byte = 0x0
	opText         byte = 0x1
	opBinary       byte = 0x2
	opClose        byte = 0x8
	opPing         byte = 0x9
	opPong         byte = 0xa
)

// maxFramePayload bounds one frame from a server: the load tool only ever
// expects short protocol frames, so anything larger is a protocol error.
const maxFramePayload = 64 << 10

// frame is one decoded server-to-client frame. payload aliases the buffer
// it was parsed from.
type frame struct {
	fin     bool
	op      byte
	payload []byte
}

// parseFrame decodes one frame from the start of b. It returns n == 0 and no
// error when b does not yet hold a whole frame. A masked frame (servers must
// not mask) is unmasked in place.
func parseFrame(b []byte) (f frame, n int, err error) {
	if len(b) < 2 {
		return frame{}, 0, nil
	}
	b0, b1 := b[0], b[1]
	if b0&0x70 != 0 {
		return frame{}, 0, errors.New("frame: reserved bits set without an extension")
	}
	f.fin = b0&0x80 != 0
	f.op = b0 & 0x0f
	switch f.op {
	case opContinuation, opText, opBinary, opClose, opPing, opPong:
	default:
		return frame{}, 0, fmt.Errorf("frame: unknown opcode %#x", f.op)
	}
	pos := 2
	length := uint64(b1 & 0x7f)
	switch length {
	case 126:
		if len(b) < 4 {
			return frame{}, 0, nil
		}
		length = uint64(binary.BigEndian.Uint16(b[2:4]))
		pos = 4
	case 127:
		if len(b) < 10 {
			return frame{}, 0, nil
		}
		length = binary.BigEndian.Uint64(b[2:10])
		pos = 10
	}
	if f.op >= opClose && (!f.fin || length > 125) {
		return frame{}, 0, fmt.Errorf("frame: control frame %#x fragmented or longer than 125 bytes", f.op)
	}
	if length > maxFramePayload {
		return frame{}, 0, fmt.Errorf("frame: payload of %d bytes exceeds %d", length, maxFramePayload)
	}
	var key []byte
	if b1&0x80 != 0 {
		if len(b) < pos+4 {
			return frame{}, 0, nil
		}
		key = b[pos : pos+4]
		pos += 4
	}
	end := pos + int(length)
	if len(b) < end {
		return frame{}, 0, nil
	}
	f.payload = b[pos:end]
	if key != nil {
		for i := range f.payload {
			f.payload[i] ^= key[i&3]
		}
	}
	return f, end, nil
}

// appendClientFrame appends one final, masked client-to-server frame.
func appendClientFrame(dst []byte, op byte, payload []byte, mask uint32) []byte {
	dst = append(dst, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	var key [4]byte
	binary.BigEndian.PutUint32(key[:], mask)
	dst = append(dst, key[:]...)
	for i, c := range payload {
		dst = append(dst, c^key[i&3])
	}
	return dst
}

// closePayload encodes a close frame body: the status code and a reason.
func closePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// parseClosePayload decodes a close frame body; an empty body is 1005 (no
// status received).
func parseClosePayload(p []byte) (code uint16, reason string) {
	if len(p) < 2 {
		return 1005, ""
	}
	return binary.BigEndian.Uint16(p[:2]), string(p[2:])
}
