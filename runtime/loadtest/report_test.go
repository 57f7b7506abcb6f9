package loadtest

import (
	"strings"
	"testing"
	"time"
)

func TestLatencyOf(t *testing.T) {
	hundred := make([]int64, 100)
	for i := range hundred {
		hundred[i] = int64(100 - i) // 100 µs down to 1 µs, unsorted on purpose
	}
	tests := []struct {
		name string
		in   []int64
		want Latency
	}{
		{name: "none", in: nil, want: Latency{}},
		{name: "one", in: []int64{1500}, want: Latency{P50: 1500 * time.Microsecond, P99: 1500 * time.Microsecond, Max: 1500 * time.Microsecond}},
		{name: "hundred", in: hundred, want: Latency{P50: 50 * time.Microsecond, P99: 99 * time.Microsecond, Max: 100 * time.Microsecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := latencyOf(tt.in); got != tt.want {
				t.Fatalf("latencyOf = %+v, want %+v", got, tt.want)
			}
		})
	}
	if hundred[0] != 100 {
		t.Fatal("latencyOf sorted its input")
	}
}

func TestMarkdownTable(t *testing.T) {
	bare := &Result{Connected: 19000, ConnectRate: 3204.4, RSSPerConnKiB: 1.77, RSSSamples: []int64{1}, AnonAfter: 1, AnonPerConnKiB: 1.5}
	relay := &Result{Connected: 18990, Failed: 10, ConnectRate: 4250, RSSPerConnKiB: 3.54, RSSSamples: []int64{1}}
	got := MarkdownTable([]Pair{{N: 19000, Bare: bare, Relay: relay}, {N: 1000, Bare: bare}})
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 4 {
		t.Fatalf("table has %d lines, want header, rule and 2 rows:\n%s", len(lines), got)
	}
	if want := "| 19000 | 19000 / 18990 | 0 / 10 | 3204 / 4250 | 1.77 | 3.54 | 2.0× | 1.50 / — |"; lines[2] != want {
		t.Fatalf("row = %q, want %q", lines[2], want)
	}
	if want := "| 1000 | 19000 / — | 0 / — | 3204 / — | 1.77 | — | — | 1.50 / — |"; lines[3] != want {
		t.Fatalf("row without relay = %q, want %q", lines[3], want)
	}
}

func TestResultText(t *testing.T) {
	r := Result{Label: "bare nbio", N: 10, Servers: 1, Workers: 1, Connected: 8, Failed: 2,
		Failures:    map[string]int{"dial: connection refused": 1, "upgrade: http 503": 1},
		Disconnects: map[string]int{"closed: closed by peer": 3}, Open: 5}
	text := r.Text()
	for _, want := range []string{
		"connected   8 of 10, failed 2 (dial: connection refused: 1, upgrade: http 503: 1)",
		"5 open at the end", "disconnects 3 (closed: closed by peer: 3)",
		"server RSS  not measured",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
}
