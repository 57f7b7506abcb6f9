package loadtest

import (
	"sync"
	"sync/atomic"
	"time"
)

// forEach runs job(i) for every i in [0, n) on at most workers goroutines
// and calls progress with the count of finished jobs every 5 s until all are
// done. A job that returns false stops its goroutine (the others go on).
func forEach(n, workers int, job func(i int) bool, progress func(done int64)) {
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || !job(i) {
					return
				}
				done.Add(1)
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			progress(done.Load())
		case <-finished:
			return
		}
	}
}
