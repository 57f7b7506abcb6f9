package embedded_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/graph/embedded"
	"github.com/switchyard/switchyard/graph/storetest"
)

// BenchmarkCreate measures single-device creates with fsync on, one writer
// and eight concurrent writers, for several batch delays: the delay is what
// one writer pays per write, and what lets concurrent writers share a commit.
func BenchmarkCreate(b *testing.B) {
	for _, delay := range []time.Duration{500 * time.Microsecond, embedded.DefaultBatchDelay, 10 * time.Millisecond} {
		for _, writers := range []int{1, 8} {
			b.Run(fmt.Sprintf("batch_delay=%s/writers=%d", delay, writers), func(b *testing.B) {
				s, err := embedded.Open(filepath.Join(b.TempDir(), "bench.db"), embedded.Options{BatchDelay: delay})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = s.Close() })
				if _, err := s.CreateTenant(b.Context(), graph.Tenant{ID: "bench"}); err != nil {
					b.Fatal(err)
				}
				devices := s.Tenant("bench").Devices()
				var next atomic.Int64
				create := func() {
					id := fmt.Sprintf("d%09d", next.Add(1))
					if _, err := devices.Create(b.Context(), device(id)); err != nil {
						b.Error(err)
					}
				}
				start := time.Now()
				if writers == 1 {
					for b.Loop() {
						create()
					}
				} else {
					var wg sync.WaitGroup
					work := make(chan struct{})
					for range writers {
						wg.Go(func() {
							for range work {
								create()
							}
						})
					}
					for b.Loop() {
						work <- struct{}{}
					}
					close(work)
					wg.Wait()
				}
				b.ReportMetric(float64(next.Load())/time.Since(start).Seconds(), "creates/s")
			})
		}
	}
}

// BenchmarkStore runs the benchmarks every backend shares (catalog load,
// get, junction list, RecordSeen batches; see storetest.Bench), with fsync
// on. graph/dgraph runs the same ones.
func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) graph.Store {
		s, err := embedded.Open(filepath.Join(b.TempDir(), "bench.db"), embedded.Options{})
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}
