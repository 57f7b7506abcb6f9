package lastseen

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/graph/embedded"
)

// flaky is a real store whose RecordSeen fails while failing is set: the
// failure of a store that went away, which a test cannot cause on demand.
type flaky struct {
	graph.Store
	failing atomic.Bool
	calls   atomic.Int32
}

func (f *flaky) RecordSeen(ctx context.Context, b []graph.Seen) error {
	f.calls.Add(1)
	if f.failing.Load() {
		return graph.ErrUnavailable
	}
	return f.Store.RecordSeen(ctx, b)
}

func setup(t *testing.T) (*flaky, *Batcher) {
	t.Helper()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	if _, err := s.CreateTenant(ctx, graph.Tenant{ID: "t"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := s.Tenant("t").Devices().Create(ctx, graph.Device{Meta: graph.Meta{ID: id}, TokenHash: make([]byte, 32)}); err != nil {
			t.Fatal(err)
		}
	}
	f := &flaky{Store: s}
	b := New(f, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	return f, b
}

func seen(t *testing.T, s graph.Store, id string) graph.Device {
	t.Helper()
	d, err := s.Tenant("t").Devices().Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestNewestSightingIsWrittenOnce(t *testing.T) {
	f, b := setup(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.Seen("t", "a", t0, "1.0.0")
	for i := 1; i <= 100; i++ {
		b.Seen("t", "a", t0.Add(time.Duration(i)*time.Second), "") // heartbeats: no firmware
	}
	b.Flush(t.Context())
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("%d store writes for 101 sightings, want 1", n)
	}
	d := seen(t, f, "a")
	if !d.LastSeen.Equal(t0.Add(100*time.Second)) || d.Firmware != "1.0.0" {
		t.Fatalf("stored last_seen %v firmware %q", d.LastSeen, d.Firmware)
	}
	b.Flush(t.Context())
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("an empty flush wrote to the store (%d calls)", n)
	}
}

func TestFailedFlushIsRetriedAndNewerWins(t *testing.T) {
	f, b := setup(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.Seen("t", "a", t0, "1.0.0")
	b.Seen("t", "b", t0, "")
	f.failing.Store(true)
	b.Flush(t.Context())
	if got := testutil.ToFloat64(b.flushes.WithLabelValues("error")); got != 1 {
		t.Fatalf("error flushes = %v, want 1", got)
	}
	b.Seen("t", "b", t0.Add(time.Minute), "2.0.0") // newer than the failed batch
	f.failing.Store(false)
	b.Flush(t.Context())
	if d := seen(t, f, "a"); !d.LastSeen.Equal(t0) || d.Firmware != "1.0.0" {
		t.Fatalf("a after retry: %v %q", d.LastSeen, d.Firmware)
	}
	if d := seen(t, f, "b"); !d.LastSeen.Equal(t0.Add(time.Minute)) || d.Firmware != "2.0.0" {
		t.Fatalf("b after retry: %v %q (the newer sighting must win)", d.LastSeen, d.Firmware)
	}
}

func TestCloseFlushes(t *testing.T) {
	f, b := setup(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.Seen("t", "a", at, "")
	b.Close(t.Context())
	if d := seen(t, f, "a"); !d.LastSeen.Equal(at) {
		t.Fatalf("pending sighting lost at Close: %v", d.LastSeen)
	}
}

func TestFullBatchIsWrittenBeforeTheInterval(t *testing.T) {
	f, b := setup(t) // interval: one hour
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.Seen("t", "a", at, "1.0.0")
	for i := range MaxPending - 1 {
		b.Seen("t", fmt.Sprintf("ghost-%d", i), at, "") // unknown devices count towards the batch, and are skipped by the store
	}
	deadline := time.Now().Add(5 * time.Second)
	for seen(t, f, "a").LastSeen.IsZero() {
		if time.Now().After(deadline) {
			t.Fatalf("a batch of %d devices was not written within 5s of an hour-long interval", MaxPending)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("%d writes, want 1", n)
	}
}
