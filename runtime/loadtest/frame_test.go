package loadtest

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// serverFrame encodes an unmasked server-to-client frame header and payload.
func serverFrame(t *testing.T, b0 byte, payload []byte) []byte {
	t.Helper()
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, byte(n))
	case n <= 0xffff:
		out = append(out, 126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, 127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	return append(out, payload...)
}

func TestParseFrame(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 300)
	tests := []struct {
		name      string
		in        []byte
		wantN     int
		wantOp    byte
		wantFin   bool
		wantBody  []byte
		wantError bool
	}{
		{name: "text", in: serverFrame(t, 0x81, []byte(`{"type":"heartbeat"}`)), wantN: 22, wantOp: opText, wantFin: true, wantBody: []byte(`{"type":"heartbeat"}`)},
		{name: "16-bit length", in: serverFrame(t, 0x82, long), wantN: 304, wantOp: opBinary, wantFin: true, wantBody: long},
		{name: "first fragment", in: serverFrame(t, 0x01, []byte("ab")), wantN: 4, wantOp: opText, wantBody: []byte("ab")},
		{name: "ping", in: serverFrame(t, 0x89, []byte("p")), wantN: 3, wantOp: opPing, wantFin: true, wantBody: []byte("p")},
		{name: "trailing bytes left alone", in: append(serverFrame(t, 0x8a, nil), 0x81), wantN: 2, wantOp: opPong, wantFin: true, wantBody: []byte{}},
		{name: "one byte", in: []byte{0x81}},
		{name: "header only", in: []byte{0x81, 5, 'a'}},
		{name: "16-bit length incomplete", in: []byte{0x81, 126, 1}},
		{name: "64-bit length incomplete", in: []byte{0x81, 127, 0, 0, 0}},
		{name: "reserved bit", in: []byte{0xc1, 0}, wantError: true},
		{name: "unknown opcode", in: []byte{0x83, 0}, wantError: true},
		{name: "fragmented control", in: []byte{0x09, 0}, wantError: true},
		{name: "long control", in: serverFrame(t, 0x89, long[:126]), wantError: true},
		{name: "too large", in: []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 1}, wantError: true},
		{name: "huge 64-bit length", in: []byte{0x82, 127, 0xff, 0, 0, 0, 0, 0, 0, 0}, wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, n, err := parseFrame(bytes.Clone(tt.in))
			if (err != nil) != tt.wantError {
				t.Fatalf("parseFrame error = %v, want error %v", err, tt.wantError)
			}
			if n != tt.wantN {
				t.Fatalf("parseFrame consumed %d bytes, want %d", n, tt.wantN)
			}
			if n == 0 {
				return
			}
			if f.op != tt.wantOp || f.fin != tt.wantFin || !bytes.Equal(f.payload, tt.wantBody) {
				t.Fatalf("parseFrame = {op %#x fin %v payload %q}, want {op %#x fin %v payload %q}",
					f.op, f.fin, f.payload, tt.wantOp, tt.wantFin, tt.wantBody)
			}
		})
	}
}

func TestClientFrameRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 125, 126, 65535, maxFramePayload, maxFramePayload + 1} {
		payload := bytes.Repeat([]byte{0xa5}, size)
		wire := appendClientFrame(nil, opText, payload, 0xdeadbeef)
		if wire[0] != 0x81 || wire[1]&0x80 == 0 {
			t.Fatalf("size %d: header %#x %#x, want FIN|text and the mask bit", size, wire[0], wire[1])
		}
		if size > 0 && bytes.Equal(wire[len(wire)-size:], payload) {
			t.Fatalf("size %d: payload went out unmasked", size)
		}
		f, n, err := parseFrame(wire)
		if size > maxFramePayload {
			if err == nil {
				t.Fatalf("size %d: parsed a frame larger than the limit", size)
			}
			continue
		}
		if err != nil || n != len(wire) || !bytes.Equal(f.payload, payload) {
			t.Fatalf("size %d: round trip gave n=%d err=%v payload equal=%v", size, n, err, bytes.Equal(f.payload, payload))
		}
	}
}

func TestClosePayload(t *testing.T) {
	code, reason := parseClosePayload(closePayload(4001, "bye"))
	if code != 4001 || reason != "bye" {
		t.Fatalf("close payload round trip = %d %q", code, reason)
	}
	if code, _ := parseClosePayload(nil); code != 1005 {
		t.Fatalf("empty close payload = %d, want 1005", code)
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add([]byte{0x81, 0x02, 'h', 'i'})
	f.Add(appendClientFrame(nil, opPing, []byte("x"), 1))
	f.Add([]byte{0x82, 126, 0x01, 0x00})
	f.Add([]byte{0x82, 127, 0, 0, 0, 0, 0, 0, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		fr, n, err := parseFrame(in)
		if err != nil {
			return
		}
		if n < 0 || n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		if n == 0 {
			return
		}
		if len(fr.payload) > maxFramePayload || n < 2+len(fr.payload) {
			t.Fatalf("payload of %d bytes in a %d-byte frame", len(fr.payload), n)
		}
		if fr.op >= opClose && (!fr.fin || len(fr.payload) > 125) {
			t.Fatalf("accepted bad control frame %#x fin=%v len=%d", fr.op, fr.fin, len(fr.payload))
		}
	})
}
