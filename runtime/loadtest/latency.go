package loadtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"
)

// Latencies are kept in a log-linear histogram of microseconds: values
// below 2^histSubBits are exact, larger ones fall into one of 2^histSubBits
// buckets per power of two, so a reported quantile is within 1/128 (0.8 %)
// of a value that was recorded. The histogram has a fixed size, whatever
// the number of samples, and histograms of several workers add up.
const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	// histMaxExp is the highest power of two kept; larger values (over
	// 12 days) are clamped into the last bucket.
	histMaxExp  = 40
	histBuckets = (histMaxExp - histSubBits + 2) * histSub
)

// histIndex is the bucket of a value in microseconds.
func histIndex(us int64) int {
	if us < histSub {
		return int(max(us, 0))
	}
	e := bits.Len64(uint64(us)) - 1 // us is in [2^e, 2^(e+1))
	if e > histMaxExp {
		return histBuckets - 1
	}
	sub := int(us>>(e-histSubBits)) & (histSub - 1)
	return (e-histSubBits+1)*histSub + sub
}

// histBounds is the range [lo, hi) of values bucket i holds.
func histBounds(i int) (lo, hi int64) {
	if i < histSub {
		return int64(i), int64(i) + 1
	}
	e := i/histSub + histSubBits - 1
	sub := int64(i % histSub)
	width := int64(1) << (e - histSubBits)
	lo = (histSub + sub) * width
	return lo, lo + width
}

// Histogram is a snapshot of latencies: how many samples fell in each
// bucket. The zero value is empty.
type Histogram struct {
	counts map[int]int64
}

// Count is the number of samples.
func (h Histogram) Count() int64 {
	var n int64
	for _, c := range h.counts {
		n += c
	}
	return n
}

// Add adds the samples of o to h.
func (h *Histogram) Add(o Histogram) {
	for i, c := range o.counts {
		h.add(i, c)
	}
}

// Sub removes the samples of an earlier snapshot of the same counters, so
// that h holds what was recorded between the two.
func (h *Histogram) Sub(earlier Histogram) {
	for i, c := range earlier.counts {
		h.add(i, -c)
	}
}

func (h *Histogram) add(i int, c int64) {
	if h.counts == nil {
		h.counts = map[int]int64{}
	}
	if h.counts[i] += c; h.counts[i] == 0 {
		delete(h.counts, i)
	}
}

// Quantile returns the value below which a fraction q of the samples lie
// (nearest rank), as the middle of its bucket; 0 for no samples.
func (h Histogram) Quantile(q float64) time.Duration {
	total := h.Count()
	if total <= 0 {
		return 0
	}
	rank := max(int64(q*float64(total)+0.999999), 1) // ceil, without float edge cases at whole ranks
	rank = min(rank, total)
	var seen int64
	for i := range histBuckets {
		c := h.counts[i]
		if c <= 0 {
			continue
		}
		if seen += c; seen >= rank {
			lo, hi := histBounds(i)
			return time.Duration(lo+(hi-lo-1)/2) * time.Microsecond
		}
	}
	return 0
}

// Summary is p50, p99 and the highest bucket's value.
func (h Histogram) Summary() Latency {
	return Latency{P50: h.Quantile(0.50), P99: h.Quantile(0.99), Max: h.Quantile(1)}
}

// MarshalJSON writes the non-empty buckets as [index, count] pairs.
func (h Histogram) MarshalJSON() ([]byte, error) {
	pairs := make([][2]int64, 0, len(h.counts))
	for i := range histBuckets {
		if c := h.counts[i]; c != 0 {
			pairs = append(pairs, [2]int64{int64(i), c})
		}
	}
	return json.Marshal(pairs)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var pairs [][2]int64
	if err := json.Unmarshal(b, &pairs); err != nil {
		return fmt.Errorf("histogram: %w", err)
	}
	h.counts = nil
	for _, p := range pairs {
		if p[0] < 0 || p[0] >= histBuckets {
			return fmt.Errorf("histogram: bucket %d out of range", p[0])
		}
		h.add(int(p[0]), p[1])
	}
	return nil
}

// deliveryCounter counts the message frames one worker receives and their
// latency. Its methods are safe for concurrent use; recording costs a few
// atomic adds and no allocation.
type deliveryCounter struct {
	frames  atomic.Int64
	bytes   atomic.Int64
	untimed atomic.Int64 // message frames without a readable time
	early   atomic.Int64 // received before their time (clock steps): counted as 0
	buckets [histBuckets]atomic.Int64
}

// record counts one message frame of size bytes received at now (Unix
// nanoseconds) that was emitted at emit; ok is false when the frame's time
// could not be read.
func (d *deliveryCounter) record(size int, emit int64, ok bool, now int64) {
	d.frames.Add(1)
	d.bytes.Add(int64(size))
	if !ok {
		d.untimed.Add(1)
		return
	}
	lat := now - emit
	if lat < 0 {
		d.early.Add(1)
		lat = 0
	}
	d.buckets[histIndex(lat/1000)].Add(1)
}

// snapshot returns the counters so far.
func (d *deliveryCounter) snapshot() DeliveryCounts {
	s := DeliveryCounts{Frames: d.frames.Load(), Bytes: d.bytes.Load(), Untimed: d.untimed.Load(), Early: d.early.Load()}
	for i := range d.buckets {
		if c := d.buckets[i].Load(); c != 0 {
			s.Latency.add(i, c)
		}
	}
	return s
}

// DeliveryCounts are a worker's counters of message frames received.
type DeliveryCounts struct {
	Frames  int64 `json:"frames"`
	Bytes   int64 `json:"bytes"`
	Untimed int64 `json:"untimed,omitempty"`
	Early   int64 `json:"early,omitempty"`
	// Latency is the spread of receive time minus the frame's time.
	Latency Histogram `json:"latency"`
}

// Add adds o to c.
func (c *DeliveryCounts) Add(o DeliveryCounts) {
	c.Frames += o.Frames
	c.Bytes += o.Bytes
	c.Untimed += o.Untimed
	c.Early += o.Early
	c.Latency.Add(o.Latency)
}

// Sub removes an earlier snapshot of the same counters.
func (c *DeliveryCounts) Sub(earlier DeliveryCounts) {
	c.Frames -= earlier.Frames
	c.Bytes -= earlier.Bytes
	c.Untimed -= earlier.Untimed
	c.Early -= earlier.Early
	c.Latency.Sub(earlier.Latency)
}

// messagePrefix starts every message frame the relay and the bare server
// write: the gateway encodes a struct whose first field is the type.
var (
	messagePrefix = []byte(`{"type":"message"`)
	timeMember    = []byte(`"time":`)
)

// messageTime reads a message frame's time member cheaply: it finds the
// first "time": member and parses the RFC 3339 string after it. In a frame
// that starts with messagePrefix the first such member is the frame's own
// (a JSON string cannot hold an unescaped quote, so the pattern never
// matches inside id or subject, and the gateway writes time before
// payload). It reports false when there is none or it does not parse.
func messageTime(p []byte) (unixNano int64, ok bool) {
	i := bytes.Index(p, timeMember)
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(p[i+len(timeMember):], " \t\r\n")
	if len(rest) < 2 || rest[0] != '"' {
		return 0, false
	}
	end := bytes.IndexByte(rest[1:], '"')
	if end < 0 {
		return 0, false
	}
	return parseTime(rest[1 : 1+end])
}

// parseTime parses an RFC 3339 time as time.Parse(time.RFC3339Nano, …)
// does. The common form, UTC with "Z" and up to nine fraction digits, is
// read without allocating; anything else goes through time.Parse.
func parseTime(b []byte) (int64, bool) {
	if ns, ok := parseUTC(b); ok {
		return ns, true
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return 0, false
	}
	return t.UnixNano(), true
}

// parseUTC reads YYYY-MM-DDTHH:MM:SS[.fffffffff]Z. It reports false for
// any other form or an invalid date, leaving those to time.Parse.
func parseUTC(b []byte) (int64, bool) {
	if len(b) < 20 || b[len(b)-1] != 'Z' || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	var frac int64
	switch rest := b[19 : len(b)-1]; {
	case len(rest) == 0:
	case rest[0] != '.' || len(rest) < 2 || len(rest) > 10:
		return 0, false
	default:
		digits := rest[1:]
		f, ok := num(digits)
		if !ok {
			return 0, false
		}
		frac = int64(f)
		for range 9 - len(digits) {
			frac *= 10
		}
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
	return secs*1e9 + frac, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to the given date of
// the proleptic Gregorian calendar (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 { // floor division
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
