package loadtest

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	// Every value lands in a bucket whose range holds it, buckets are in
	// order, and a bucket is at most 1/64 of its lower bound wide.
	prev := -1
	for _, v := range []int64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 4095, 4096, 1e6, 123456789, 1 << 40, 1<<41 - 1} {
		i := histIndex(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d after %d (of %d buckets)", v, i, prev, histBuckets)
		}
		prev = i
		lo, hi := histBounds(i)
		if v < lo || v >= hi {
			t.Fatalf("%d in bucket %d = [%d, %d)", v, i, lo, hi)
		}
		if lo >= histSub && (hi-lo)*histSub > lo {
			t.Fatalf("bucket %d = [%d, %d) is wider than 1/%d of its start", i, lo, hi, histSub)
		}
	}
	if got := histIndex(1 << 50); got != histBuckets-1 {
		t.Fatalf("a value past the range goes to bucket %d, want the last (%d)", got, histBuckets-1)
	}
	if got := histIndex(-5); got != 0 {
		t.Fatalf("a negative value goes to bucket %d, want 0", got)
	}
	// Consecutive buckets tile the range without gaps.
	for i := 1; i < histBuckets; i++ {
		_, hi := histBounds(i - 1)
		if lo, _ := histBounds(i); lo != hi {
			t.Fatalf("bucket %d starts at %d, bucket %d ends at %d", i, lo, i-1, hi)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var d deliveryCounter
	const now = int64(1_700_000_000_000_000_000)
	// 1,000 samples: 1 ms, 2 ms, …, 1000 ms.
	for ms := int64(1); ms <= 1000; ms++ {
		d.record(100, now-ms*int64(time.Millisecond), true, now)
	}
	h := d.snapshot().Latency
	if h.Count() != 1000 {
		t.Fatalf("count %d, want 1000", h.Count())
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}, {0.001, time.Millisecond}} {
		got := h.Quantile(tt.q)
		if diff := got - tt.want; diff < -tt.want/100 || diff > tt.want/100 {
			t.Errorf("quantile %.3f = %s, want %s within 1%%", tt.q, got, tt.want)
		}
	}
	if got := (Histogram{}).Quantile(0.5); got != 0 {
		t.Fatalf("empty histogram's median = %s, want 0", got)
	}
}

func TestDeliveryCountsWindow(t *testing.T) {
	var d deliveryCounter
	const now = int64(1_700_000_000_000_000_000)
	d.record(120, now-5*int64(time.Millisecond), true, now)
	d.record(130, 0, false, now)
	before := d.snapshot()
	// The window: two frames at 2 s, one received before its time.
	d.record(140, now-2*int64(time.Second), true, now)
	d.record(140, now-2*int64(time.Second), true, now)
	d.record(140, now+int64(time.Second), true, now)
	after := d.snapshot()

	// Snapshots travel from workers as JSON.
	raw, err := json.Marshal(after)
	if err != nil {
		t.Fatal(err)
	}
	var decoded DeliveryCounts
	if err := json.Unmarshal(raw, &decoded); err != nil {
		t.Fatal(err)
	}
	decoded.Sub(before)
	if decoded.Frames != 3 || decoded.Bytes != 420 || decoded.Untimed != 0 || decoded.Early != 1 {
		t.Fatalf("window counts %+v, want 3 frames, 420 bytes, 0 untimed, 1 early", decoded)
	}
	if decoded.Latency.Count() != 3 {
		t.Fatalf("window latency samples %d, want 3", decoded.Latency.Count())
	}
	if p50 := decoded.Latency.Quantile(0.5); p50 < 1980*time.Millisecond || p50 > 2020*time.Millisecond {
		t.Fatalf("window median %s, want 2 s (the early frame counts as 0)", p50)
	}
	if p0 := decoded.Latency.Quantile(0.01); p0 != 0 {
		t.Fatalf("the early frame's latency is %s, want 0", p0)
	}

	var sum DeliveryCounts
	sum.Add(before)
	sum.Add(decoded)
	if sum.Frames != after.Frames || sum.Latency.Count() != after.Latency.Count() {
		t.Fatalf("before + window = %+v, want %+v", sum, after)
	}
	var bad Histogram
	if err := json.Unmarshal([]byte(`[[99999,1]]`), &bad); err == nil {
		t.Fatal("a bucket out of range was accepted")
	}
}

func TestMessageTime(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	tests := []struct {
		name  string
		frame string
		want  time.Time
		ok    bool
	}{
		{"relay frame", `{"type":"message","id":"6f1c0a9e-17","subject":"load.s0001","time":"2026-01-02T03:04:05.6Z","payload":{"text":"Load 70.3 °F"}}`, at, true},
		{"whole seconds", `{"type":"message","id":"a","subject":"s","time":"2026-01-02T03:04:05Z","payload":1}`, at.Truncate(time.Second), true},
		{"nanoseconds", `{"type":"message","time":"2026-01-02T03:04:05.600000001Z"}`, at.Add(1), true},
		{"offset", `{"type":"message","time":"2026-01-02T04:04:05.6+01:00"}`, at, true},
		{"spaces", `{"type":"message", "time" : "2026-01-02T03:04:05.6Z"}`, time.Time{}, false},
		{"space after colon", `{"type":"message","time": "2026-01-02T03:04:05.6Z"}`, at, true},
		{"payload time after the frame's", `{"type":"message","time":"2026-01-02T03:04:05.6Z","payload":{"time":"1999-01-01T00:00:00Z"}}`, at, true},
		{"escaped lookalike in the subject", `{"type":"message","subject":"x\"time\":\"1999-01-01T00:00:00Z","time":"2026-01-02T03:04:05.6Z"}`, at, true},
		{"no time", `{"type":"message","id":"a"}`, time.Time{}, false},
		{"time not a string", `{"type":"message","time":12}`, time.Time{}, false},
		{"unterminated", `{"type":"message","time":"2026-01-02T03:04:05.6Z`, time.Time{}, false},
		{"not a time", `{"type":"message","time":"yesterday"}`, time.Time{}, false},
		{"february 30", `{"type":"message","time":"2026-02-30T03:04:05Z"}`, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := messageTime([]byte(tt.frame))
			if ok != tt.ok || (ok && got != tt.want.UnixNano()) {
				t.Fatalf("messageTime = %d, %v; want %d, %v", got, ok, tt.want.UnixNano(), tt.ok)
			}
		})
	}
}

// TestParseTimeMatchesTimeParse checks the allocation-free path against
// time.Parse on random times, including the formats the relay writes.
func TestParseTimeMatchesTimeParse(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		at := time.Unix(r.Int64N(253402300799), r.Int64N(1e9)).UTC() // years 1970–9999
		if r.IntN(4) == 0 {
			at = at.Truncate(time.Second)
		}
		s := at.Format(time.RFC3339Nano)
		got, ok := parseTime([]byte(s))
		if !ok || got != at.UnixNano() {
			t.Fatalf("parseTime(%q) = %d, %v; want %d", s, got, ok, at.UnixNano())
		}
		if _, fast := parseUTC([]byte(s)); !fast {
			t.Fatalf("%q, as the relay formats times, missed the fast path", s)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-01-02T03:04:05.6Z", "2024-02-29T23:59:59.999999999Z", "2023-02-29T00:00:00Z",
		"2026-01-02T03:04:05+01:00", "0000-01-01T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-02T03:04:05.Z",
		"2026-01-02T03:04:05.1234567890Z", "2026-01-02T24:00:00Z", "2026-01-02t03:04:05z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseTime([]byte(s))
		want, err := time.Parse(time.RFC3339Nano, s)
		if ok != (err == nil) || (ok && got != want.UnixNano()) {
			t.Fatalf("parseTime(%q) = %d, %v; time.Parse: %d, %v", s, got, ok, want.UnixNano(), err)
		}
		// A whole frame never panics and agrees with the time alone.
		frame := `{"type":"message","time":"` + strings.ReplaceAll(s, `"`, ``) + `"}`
		_, _ = messageTime([]byte(frame))
	})
}
