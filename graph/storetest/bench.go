package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/graph"
)

// Sizes of the data Bench works on.
const (
	// BenchDevices is the number of devices in the benchmark tenant.
	BenchDevices = 1024
	// BenchJunctions is the number of junctions in the benchmark tenant.
	BenchJunctions = 50
	// BenchSeenBatch is the number of sightings in one RecordSeen call.
	BenchSeenBatch = 1024
)

// Bench runs the same store benchmarks against any backend, so that their
// figures compare:
//
//   - catalog_load: what the runtime does at start to resolve devices by
//     token — ListTenants, then Devices().List of each tenant, building a
//     map keyed by token hash — over BenchDevices devices in one tenant
//     (reports devices/s); catalog_load/baseline builds the same map from
//     devices already in memory, the part no store can make faster;
//   - get_device: Devices().Get of one device by id (reports ops/s);
//   - list_junctions: Junctions().List of a tenant with BenchJunctions
//     junctions (reports ops/s);
//   - record_seen: one RecordSeen of BenchSeenBatch sightings of existing
//     devices (reports updates/s).
//
// open returns a new, empty store. Bench fills it once (BenchDevices
// creates, eight at a time; not timed), runs every sub-benchmark on it and
// closes it when b ends.
func Bench(b *testing.B, open func(b *testing.B) graph.Store) {
	b.Helper()
	if open == nil {
		b.Fatal("storetest: open is nil")
	}
	s := open(b)
	if s == nil {
		b.Fatal("storetest: open returned a nil store")
	}
	b.Cleanup(func() { _ = s.Close() })
	if err := fill(b, s); err != nil {
		b.Fatalf("storetest: fill the benchmark store: %v", err)
	}
	b.Run(fmt.Sprintf("catalog_load/devices=%d", BenchDevices), func(b *testing.B) { benchCatalogLoad(b, s) })
	b.Run(fmt.Sprintf("catalog_load/devices=%d/baseline", BenchDevices), func(b *testing.B) { benchCatalogBaseline(b, s) })
	b.Run("get_device", func(b *testing.B) { benchGetDevice(b, s) })
	b.Run(fmt.Sprintf("list_junctions/junctions=%d", BenchJunctions), func(b *testing.B) { benchListJunctions(b, s) })
	b.Run(fmt.Sprintf("record_seen/batch=%d", BenchSeenBatch), func(b *testing.B) { benchRecordSeen(b, s) })
}

const benchTenant = "bench"

// fill creates the benchmark tenant, its devices and junctions, plus a
// second, small tenant so that the catalog load walks more than one.
func fill(b *testing.B, s graph.Store) error {
	ctx := b.Context()
	for _, id := range []string{benchTenant, "bench-small"} {
		if _, err := s.CreateTenant(ctx, graph.Tenant{ID: id}); err != nil {
			return fmt.Errorf("create tenant %q: %w", id, err)
		}
	}
	if _, err := s.Tenant("bench-small").Devices().Create(ctx, benchDevice(BenchDevices)); err != nil {
		return err
	}
	devices := s.Tenant(benchTenant).Devices()
	var next atomic.Int64
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < BenchDevices; i = int(next.Add(1)) - 1 {
				if _, err := devices.Create(ctx, benchDevice(i)); err != nil {
					errs <- fmt.Errorf("create device %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	junctions := s.Tenant(benchTenant).Junctions()
	for i := range BenchJunctions {
		j := graph.Junction{
			Meta:       graph.Meta{ID: fmt.Sprintf("j%03d", i)},
			Name:       fmt.Sprintf("route %d", i),
			Enabled:    true,
			Source:     fmt.Sprintf("device.*.s%d", i),
			Transforms: []string{"scale", "tag"},
			Targets:    []graph.Target{{Device: benchDeviceID(i)}, {Selector: map[string]string{"room": "r1"}}},
			Throttle:   graph.Throttle{Rate: 100, Burst: 10},
		}
		if _, err := junctions.Create(ctx, j); err != nil {
			return fmt.Errorf("create junction %d: %w", i, err)
		}
	}
	return nil
}

func benchDeviceID(i int) string { return fmt.Sprintf("d%05d", i) }

func benchDevice(i int) graph.Device {
	id := benchDeviceID(i)
	return graph.Device{
		Meta:      graph.Meta{ID: id},
		Name:      "Sensor " + id,
		Model:     "esp32-s3",
		Labels:    map[string]string{"room": fmt.Sprintf("r%d", i%16), "floor": fmt.Sprintf("%d", i%4)},
		TokenHash: sum("token of " + id),
		Firmware:  "1.0.0",
	}
}

// catalog is the token-hash map the runtime keeps in memory.
type catalog map[[32]byte]graph.Device

func (c catalog) put(ds []graph.Device) {
	for _, d := range ds {
		if len(d.TokenHash) == 32 {
			c[[32]byte(d.TokenHash)] = d
		}
	}
}

// loadCatalog is the runtime's start-up load (runtime/catalog.Load).
func loadCatalog(b *testing.B, s graph.Store) catalog {
	ctx := b.Context()
	tenants, err := s.ListTenants(ctx)
	if err != nil {
		b.Fatalf("ListTenants: %v", err)
	}
	c := catalog{}
	for _, t := range tenants {
		ds, err := s.Tenant(t.ID).Devices().List(ctx)
		if err != nil {
			b.Fatalf("list devices of %q: %v", t.ID, err)
		}
		c.put(ds)
	}
	return c
}

func benchCatalogLoad(b *testing.B, s graph.Store) {
	want := BenchDevices + 1
	if got := len(loadCatalog(b, s)); got != want {
		b.Fatalf("catalog has %d devices, want %d", got, want)
	}
	n := 0
	start := time.Now()
	for b.Loop() {
		n += len(loadCatalog(b, s))
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "devices/s")
}

func benchCatalogBaseline(b *testing.B, s graph.Store) {
	ds, err := s.Tenant(benchTenant).Devices().List(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	start := time.Now()
	for b.Loop() {
		c := catalog{}
		c.put(ds)
		n += len(c)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "devices/s")
}

func benchGetDevice(b *testing.B, s graph.Store) {
	devices := s.Tenant(benchTenant).Devices()
	id := benchDeviceID(BenchDevices / 2)
	start := time.Now()
	for b.Loop() {
		d, err := devices.Get(b.Context(), id)
		if err != nil || d.ID != id {
			b.Fatalf("Get(%q) = %q, %v", id, d.ID, err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

func benchListJunctions(b *testing.B, s graph.Store) {
	junctions := s.Tenant(benchTenant).Junctions()
	start := time.Now()
	for b.Loop() {
		js, err := junctions.List(b.Context())
		if err != nil || len(js) != BenchJunctions {
			b.Fatalf("List = %d junctions, %v; want %d", len(js), err, BenchJunctions)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

func benchRecordSeen(b *testing.B, s graph.Store) {
	batch := make([]graph.Seen, BenchSeenBatch)
	for i := range batch {
		batch[i] = graph.Seen{Tenant: benchTenant, Device: benchDeviceID(i % BenchDevices), Firmware: "1.0.1"}
	}
	var last time.Time
	start := time.Now()
	for b.Loop() {
		last = time.Now().UTC().Truncate(time.Millisecond)
		for i := range batch {
			batch[i].At = last
		}
		if err := s.RecordSeen(b.Context(), batch); err != nil {
			b.Fatalf("RecordSeen: %v", err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/time.Since(start).Seconds(), "updates/s")
	// The writes happened: the last sighting is what a read returns.
	d, err := s.Tenant(benchTenant).Devices().Get(b.Context(), benchDeviceID(0))
	if err != nil || !d.LastSeen.Equal(last) || d.Firmware != "1.0.1" {
		b.Errorf("after RecordSeen: last_seen %v firmware %q (%v); want %v, 1.0.1", d.LastSeen, d.Firmware, err, last)
	}
}
