package guest

import (
	"bytes"
	"slices"
	"testing"
	"unsafe"
)

// fakeHost answers one reading import the way sdk/ABI.md allows a host to: it writes the value
// when it fits in limit, else nothing or (partial) a prefix, and returns the true length.
type fakeHost struct {
	value   []byte
	status  int32 // returned instead of a length when negative
	partial bool
	limits  []uint32 // the limit of every call, in order
}

func (h *fakeHost) get(buf unsafe.Pointer, limit uint32) int32 {
	h.limits = append(h.limits, limit)
	if h.status < 0 {
		return h.status
	}
	dst := unsafe.Slice((*byte)(buf), limit)
	switch {
	case len(h.value) <= len(dst):
		copy(dst, h.value)
	case h.partial:
		copy(dst, h.value[:len(dst)])
	}
	return int32(len(h.value))
}

func TestReadHost(t *testing.T) {
	tests := []struct {
		name       string
		capacity   int
		valueLen   int
		status     int32
		partial    bool
		wantLimits []uint32
	}{
		{name: "fits", capacity: 16, valueLen: 10, wantLimits: []uint32{16}},
		{name: "fits exactly", capacity: 10, valueLen: 10, wantLimits: []uint32{10}},
		{name: "empty value", capacity: 16, valueLen: 0, wantLimits: []uint32{16}},
		{name: "grows", capacity: 4, valueLen: 10, wantLimits: []uint32{4, 10}},
		{name: "grows after a partial write", capacity: 4, valueLen: 10, partial: true, wantLimits: []uint32{4, 10}},
		{name: "no buffer", capacity: 0, valueLen: 3, wantLimits: []uint32{0, 3}},
		{name: "absent", capacity: 8, status: -1, wantLimits: []uint32{8}},
		{name: "bad argument", capacity: 0, status: -2, wantLimits: []uint32{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			value := bytes.Repeat([]byte("v"), tt.valueLen)
			h := &fakeHost{value: value, status: tt.status, partial: tt.partial}
			buf := make([]byte, 0, tt.capacity)
			got, n := readHost(buf, h.get)
			if !slices.Equal(h.limits, tt.wantLimits) {
				t.Errorf("limits passed = %v, want %v", h.limits, tt.wantLimits)
			}
			if tt.status < 0 {
				if n != tt.status || len(got) != 0 {
					t.Errorf("readHost = %q, %d; want empty, %d", got, n, tt.status)
				}
				return
			}
			if int(n) != tt.valueLen || !bytes.Equal(got, value) {
				t.Errorf("readHost = %q, %d; want %q, %d", got, n, value, tt.valueLen)
			}
			inBuf := tt.capacity > 0 && unsafe.SliceData(got) == unsafe.SliceData(buf)
			if wantInBuf := tt.capacity > 0 && tt.valueLen <= tt.capacity; inBuf != wantInBuf {
				t.Errorf("value read into the caller's buffer: %v, want %v", inBuf, wantInBuf)
			}
		})
	}
}

// FuzzReadHost checks the guest's side of the (buf, limit) protocol for any value and buffer:
// the value comes back whole, the host is never offered more room than the buffer has, and a
// value that does not fit costs exactly one more call into a buffer of its exact length.
func FuzzReadHost(f *testing.F) {
	f.Add([]byte("device.s1.temp"), uint16(8), false)
	f.Add([]byte{}, uint16(0), true)
	f.Add(bytes.Repeat([]byte{0xff}, 5000), uint16(4096), true)
	f.Fuzz(func(t *testing.T, value []byte, capacity uint16, partial bool) {
		h := &fakeHost{value: value, partial: partial}
		buf := make([]byte, 0, capacity)
		got, n := readHost(buf, h.get)
		if int(n) != len(value) || !bytes.Equal(got, value) {
			t.Fatalf("readHost = %q, %d; want %q", got, n, value)
		}
		want := []uint32{uint32(capacity)}
		if len(value) > int(capacity) {
			want = append(want, uint32(len(value)))
			if cap(got) != len(value) {
				t.Errorf("grown buffer has capacity %d, want exactly %d", cap(got), len(value))
			}
		}
		if !slices.Equal(h.limits, want) {
			t.Fatalf("limits passed = %v, want %v", h.limits, want)
		}
	})
}
