package guest

import "unsafe"

// The (buf, limit) → true length protocol of sdk/ABI.md, on the guest's side. It lives outside
// the wasip1 files so that its tests run natively.

func bytesPtr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

// readHost asks the host for a value with all of buf's capacity as (buf, limit) and, while
// the true length is larger, allocates a buffer of exactly that length and asks again. It
// returns the value (in buf when it fitted) and the host's result: the value's length, or a
// negative status, in which case the value is empty.
func readHost(buf []byte, get func(buf unsafe.Pointer, limit uint32) int32) ([]byte, int32) {
	buf = buf[:cap(buf)]
	for {
		n := get(bytesPtr(buf), uint32(len(buf)))
		switch {
		case n < 0:
			return buf[:0], n
		case int(n) <= len(buf):
			return buf[:n], n
		}
		buf = make([]byte, n)
	}
}
