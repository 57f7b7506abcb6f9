package conn

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	l := &Link{ReconnectMax: 2 * time.Second}
	if d := l.Backoff(0); d != 0 {
		t.Errorf("Backoff(0) = %s, want 0 (retry a lost connection at once)", d)
	}
	for n, top := range map[int]time.Duration{1: 250 * time.Millisecond, 2: 500 * time.Millisecond, 3: time.Second, 4: 2 * time.Second, 50: 2 * time.Second} {
		for range 100 {
			if d := l.Backoff(n); d > top || d < top*4/5 {
				t.Fatalf("Backoff(%d) = %s, want within [%s, %s]", n, d, top*4/5, top)
			}
		}
	}
}

func TestReasonText(t *testing.T) {
	if got := ReasonText(0x87); got != "not authorized" {
		t.Errorf("ReasonText(0x87) = %q", got)
	}
	if got := ReasonText(0x42); got != "reason 66" {
		t.Errorf("ReasonText(0x42) = %q", got)
	}
}
