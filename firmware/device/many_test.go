package device

import (
	"context"
	"runtime"
	"sync"
	"testing"
)

// Many devices in one process, as the load tool runs them: all connect,
// say hello and heartbeat, and all Runs return when the context ends.
func TestManyDevices(t *testing.T) {
	const n = 200
	r := newFakeRelay(t, 10)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		d, _ := newDevice(t, r, func(c *Config) { c.OnEvent = nil })
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.Run(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	for i := 0; i < n; i++ {
		r.nextSession()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("%d devices: %d goroutines (with the relay side), heap %d KiB per device (with the relay side)",
		n, runtime.NumGoroutine()-g0, (after.HeapAlloc-before.HeapAlloc)/1024/n)
	cancel()
	wg.Wait()
	checkNoDeviceGoroutines(t)
}
