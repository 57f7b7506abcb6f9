package loadtest

import (
	"net/netip"
	"slices"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name      string
		n, per    int
		want      []Range
		wantError bool
	}{
		{name: "one worker", n: 200, per: 10000, want: []Range{{0, 200}}},
		{name: "exactly full", n: 10000, per: 10000, want: []Range{{0, 10000}}},
		{name: "balanced pair", n: 19000, per: 10000, want: []Range{{0, 9500}, {9500, 9500}}},
		{name: "remainder spread", n: 10, per: 4, want: []Range{{0, 4}, {4, 3}, {7, 3}}},
		{name: "hundred thousand", n: 100000, per: 15000, want: []Range{
			{0, 14286}, {14286, 14286}, {28572, 14286}, {42858, 14286}, {57144, 14286}, {71430, 14285}, {85715, 14285}}},
		{name: "zero connections", n: 0, per: 10, wantError: true},
		{name: "zero per worker", n: 10, per: 0, wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Split(tt.n, tt.per)
			if (err != nil) != tt.wantError {
				t.Fatalf("Split(%d, %d) error = %v, want error %v", tt.n, tt.per, err, tt.wantError)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Split(%d, %d) = %v, want %v", tt.n, tt.per, got, tt.want)
			}
			total := 0
			for _, r := range got {
				if r.Count > tt.per {
					t.Errorf("range %v holds more than %d", r, tt.per)
				}
				total += r.Count
			}
			if err == nil && total != tt.n {
				t.Errorf("ranges cover %d connections, want %d", total, tt.n)
			}
		})
	}
}

func TestSource(t *testing.T) {
	base := netip.MustParseAddr("127.0.0.2")
	tests := []struct {
		name      string
		base      netip.Addr
		i, per    int
		want      string
		wantError bool
	}{
		{name: "first", base: base, i: 0, per: 10000, want: "127.0.0.2"},
		{name: "last of first source", base: base, i: 9999, per: 10000, want: "127.0.0.2"},
		{name: "first of second source", base: base, i: 10000, per: 10000, want: "127.0.0.3"},
		{name: "carries into the third octet", base: netip.MustParseAddr("127.0.0.255"), i: 3, per: 2, want: "127.0.1.0"},
		{name: "top of loopback", base: netip.MustParseAddr("127.255.255.253"), i: 1, per: 1, want: "127.255.255.254"},
		{name: "past loopback broadcast", base: netip.MustParseAddr("127.255.255.253"), i: 2, per: 1, wantError: true},
		{name: "not loopback", base: netip.MustParseAddr("10.0.0.1"), i: 0, per: 1, wantError: true},
		{name: "ipv6", base: netip.MustParseAddr("::1"), i: 0, per: 1, wantError: true},
		{name: "bad per source", base: base, i: 0, per: 0, wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Source(tt.base, tt.i, tt.per)
			if (err != nil) != tt.wantError {
				t.Fatalf("Source(%s, %d, %d) error = %v, want error %v", tt.base, tt.i, tt.per, err, tt.wantError)
			}
			if err == nil && got.String() != tt.want {
				t.Fatalf("Source(%s, %d, %d) = %s, want %s", tt.base, tt.i, tt.per, got, tt.want)
			}
		})
	}
}

func TestTargetRoundRobin(t *testing.T) {
	seen := make([]int, 3)
	for i := range 3000 {
		seen[Target(i, 3)]++
	}
	if !slices.Equal(seen, []int{1000, 1000, 1000}) {
		t.Fatalf("targets got %v connections, want 1000 each", seen)
	}
}
