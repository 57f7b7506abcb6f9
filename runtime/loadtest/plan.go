package loadtest

import (
	"fmt"
	"net/netip"
)

// Range is the contiguous slice of connection indices one worker process
// dials: [First, First+Count).
type Range struct {
	First int
	Count int
}

// Split divides n connections over as few workers as hold at most perWorker
// each, and balances them so that no two workers differ by more than one.
func Split(n, perWorker int) ([]Range, error) {
	if n <= 0 {
		return nil, fmt.Errorf("split: connection count %d must be positive", n)
	}
	if perWorker <= 0 {
		return nil, fmt.Errorf("split: connections per worker %d must be positive", perWorker)
	}
	workers := (n + perWorker - 1) / perWorker
	out := make([]Range, workers)
	first := 0
	for w := range out {
		count := n / workers
		if w < n%workers {
			count++
		}
		out[w] = Range{First: first, Count: count}
		first += count
	}
	return out, nil
}

// Source returns the local address connection i dials from: base for the
// first perSource connections, the next address for the following
// perSource, and so on. Spreading sources keeps each (source, destination)
// pair well inside the kernel's ephemeral port range. The result must stay
// inside 127.0.0.0/8.
func Source(base netip.Addr, i, perSource int) (netip.Addr, error) {
	if !base.Is4() || !base.IsLoopback() {
		return netip.Addr{}, fmt.Errorf("source: base %s is not an IPv4 loopback address", base)
	}
	if i < 0 || perSource <= 0 {
		return netip.Addr{}, fmt.Errorf("source: bad index %d or connections per source %d", i, perSource)
	}
	b := base.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(i / perSource)
	if v>>24 != 127 || v&0xff_ffff == 0xff_ffff {
		return netip.Addr{}, fmt.Errorf("source: connection %d would dial from outside 127.0.0.0/8", i)
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), nil
}

// Target returns the index of the target connection i goes to: targets are
// used round-robin so that several relay processes share the load evenly.
func Target(i, targets int) int { return i % targets }
