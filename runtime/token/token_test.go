package token

import (
	"strings"
	"testing"
)

func TestNewIsUniqueAndHashes(t *testing.T) {
	a, ha := New(DevicePrefix)
	b, hb := New(DevicePrefix)
	if a == b || ha == hb {
		t.Fatal("two calls returned the same secret")
	}
	if !strings.HasPrefix(a, DevicePrefix) || len(a) != len(DevicePrefix)+43 {
		t.Fatalf("secret %q: want prefix %q and 43 base64url characters", a, DevicePrefix)
	}
	if Of(a) != ha || !ha.Matches(a) || ha.Matches(b) || ha.Matches("") {
		t.Fatal("hash does not match its own secret only")
	}
}

func TestFromBytes(t *testing.T) {
	_, h := New(OperatorPrefix)
	got, ok := FromBytes(h[:])
	if !ok || got != h {
		t.Fatal("round trip through bytes lost the hash")
	}
	if _, ok := FromBytes(h[:31]); ok {
		t.Fatal("31 bytes accepted as a hash")
	}
}
