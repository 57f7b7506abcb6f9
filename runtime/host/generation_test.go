package host

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/runtime/config"
	"github.com/switchyard/switchyard/runtime/host/wasm"
	"github.com/switchyard/switchyard/runtime/junction"
)

func newHost(t testing.TB) *Host {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := wasm.NewRuntime(context.Background(), wasm.RuntimeOptions{Logger: log, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	h := New(rt, log, prometheus.NewRegistry())
	t.Cleanup(func() {
		h.Close(context.Background())
		_ = rt.Close(context.Background())
	})
	return h
}

// stamp declares the stamp transform of testdata at version v as id. Its
// deadline is generous: these tests are about swaps, on a machine whose two
// cores the race detector, the callers and the compiler share.
func stamp(id string, v int) config.Plugin {
	return config.Plugin{ID: id, Tenant: "default", Use: "transforms.stamp", Runtime: "wasm",
		Module: filepath.Join("testdata", map[int]string{1: "stamp_v1.wasm", 2: "stamp_v2.wasm"}[v]),
		Limits: config.PluginLimits{CallTimeout: 10 * time.Second}}
}

// version runs the transform id of the default tenant on one message and
// returns which version of stamp answered.
func version(t testing.TB, h *Host, id string) (int, error) {
	st, _ := h.Stage("default", id)
	var out []junction.Message
	err := st.Transform(context.Background(), junction.Message{Tenant: "default", Subject: "s", Payload: json.RawMessage(`{"n":1}`)},
		func(m junction.Message) { out = append(out, m) })
	if err != nil {
		return 0, err
	}
	var got struct {
		V  int             `json:"v"`
		In json.RawMessage `json:"in"`
	}
	if len(out) != 1 || json.Unmarshal(out[0].Payload, &got) != nil || string(got.In) != `{"n":1}` {
		t.Fatalf("stamp answered %v", out)
	}
	return got.V, nil
}

func apply(t testing.TB, h *Host, cause string, decls ...config.Plugin) Generation {
	t.Helper()
	g, err := h.Apply(context.Background(), Plan{Decls: decls, Cause: cause})
	if err != nil {
		t.Fatalf("apply %s: %v", cause, err)
	}
	return g
}

func TestApplySwapsReplacedAndCarriesUnchanged(t *testing.T) {
	h := newHost(t)
	g1 := apply(t, h, "start", stamp("a", 1), stamp("b", 1))
	if g1.Number != 1 || g1.State != StateActive || len(g1.Changes) != 2 {
		t.Fatalf("first generation: %+v", g1)
	}
	g2 := apply(t, h, "file", stamp("a", 2), stamp("b", 1))
	want := []Change{{Tenant: "default", ID: "a", Change: "replaced", Fields: []string{"module"}}}
	if g2.Number != 2 || !equalChanges(g2.Changes, want) {
		t.Fatalf("second generation: %+v, want changes %+v", g2, want)
	}
	for id, v := range map[string]int{"a": 2, "b": 1} {
		if got, err := version(t, h, id); err != nil || got != v {
			t.Errorf("%s answered by version %d (%v), want %d", id, got, err, v)
		}
	}
	gens := map[string]uint64{}
	for _, in := range h.List() {
		gens[in.ID] = in.Generation
	}
	if gens["a"] != 2 || gens["b"] != 1 {
		t.Errorf("instances' generations %v: b was carried over from 1, a loaded by 2", gens)
	}

	// The same plan again changes nothing and makes no generation.
	if g := apply(t, h, "file", stamp("a", 2), stamp("b", 1)); g.Number != 2 {
		t.Errorf("an unchanged plan made generation %d", g.Number)
	}
	g3 := apply(t, h, "api", stamp("a", 2), stamp("c", 1))
	want = []Change{{Tenant: "default", ID: "c", Change: "added"}, {Tenant: "default", ID: "b", Change: "removed"}}
	if !equalChanges(g3.Changes, want) {
		t.Errorf("changes %+v, want %+v", g3.Changes, want)
	}
	if _, err := version(t, h, "b"); !errors.Is(err, junction.ErrUnavailable) {
		t.Errorf("a removed transform answered %v, want junction.ErrUnavailable", err)
	}
	if prev, ok := h.Previous(); !ok || prev != 2 {
		t.Errorf("Previous = %d %v, want 2", prev, ok)
	}
	states := []string{}
	for _, g := range h.History("") {
		states = append(states, g.State)
	}
	if strings.Join(states, ",") != "active,superseded,superseded" {
		t.Errorf("history states %v", states)
	}
}

// The same path holding other bytes is a replaced module.
func TestApplyNoticesNewBytesAtTheSamePath(t *testing.T) {
	h := newHost(t)
	path := filepath.Join(t.TempDir(), "stamp.wasm")
	copyFile(t, "testdata/stamp_v1.wasm", path)
	d := stamp("a", 1)
	d.Module = path
	apply(t, h, "start", d)
	copyFile(t, "testdata/stamp_v2.wasm", path)
	g := apply(t, h, "file", d)
	if len(g.Changes) != 1 || g.Changes[0].Change != "replaced" || strings.Join(g.Changes[0].Fields, ",") != "module" {
		t.Fatalf("changes %+v", g.Changes)
	}
	if v, err := version(t, h, "a"); err != nil || v != 2 {
		t.Fatalf("version %d %v after the file changed", v, err)
	}
}

func TestFailedGenerationChangesNothing(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "garbage.wasm")
	if err := os.WriteFile(garbage, []byte("not a module"), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := stamp("a", 2)
	broken.Module = garbage
	badConfig := stamp("b", 2)
	badConfig.Use = "collectors.stamp" // stamp exports no sy_collect
	badConfig.Interval = time.Second
	missing := stamp("a", 2)
	missing.Module = filepath.Join(t.TempDir(), "nowhere.wasm")
	for _, tc := range []struct {
		name  string
		decls []config.Plugin
		want  string
	}{
		{"broken module", []config.Plugin{broken, stamp("b", 1)}, `plugin "a" of tenant "default" (transforms.stamp)`},
		{"module that lacks the kind's export", []config.Plugin{stamp("a", 2), badConfig}, `plugin "b" of tenant "default" (collectors.stamp)`},
		{"missing module", []config.Plugin{missing}, "no such file"},
		{"twice the same id", []config.Plugin{stamp("a", 2), stamp("a", 1)}, "declared twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			apply(t, h, "start", stamp("a", 1), stamp("b", 1))
			before := h.List()
			g, err := h.Apply(context.Background(), Plan{Decls: tc.decls, Cause: "file"})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "generation 1 keeps serving") {
				t.Fatalf("Apply = %v, want an error naming %q", err, tc.want)
			}
			if g.State != StateFailed || g.Error != err.Error() {
				t.Errorf("failed generation recorded as %+v", g)
			}
			active, failed := h.Status()
			if active.Number != 1 || failed == nil || failed.Number != 2 {
				t.Errorf("Status = %d, %+v", active.Number, failed)
			}
			for _, id := range []string{"a", "b"} {
				if v, err := version(t, h, id); err != nil || v != 1 {
					t.Errorf("%s answered by version %d (%v) after a refused generation", id, v, err)
				}
			}
			after := h.List()
			for i := range before {
				if before[i].Generation != after[i].Generation || before[i].Module != after[i].Module {
					t.Errorf("instance %s changed: %+v → %+v", before[i].ID, before[i], after[i])
				}
			}
			// The next good plan succeeds and is numbered after the failure.
			if g := apply(t, h, "file", stamp("a", 2), stamp("b", 1)); g.Number != 3 {
				t.Errorf("next generation %d, want 3", g.Number)
			}
		})
	}
}

func TestCommitErrorAbandonsTheGeneration(t *testing.T) {
	h := newHost(t)
	apply(t, h, "start", stamp("a", 1))
	_, err := h.Apply(context.Background(), Plan{Decls: []config.Plugin{stamp("a", 2)}, Cause: "api", Tenant: "default",
		Commit: func() error { return errors.New("store unavailable") }})
	if err == nil || !strings.Contains(err.Error(), "store unavailable") {
		t.Fatalf("Apply = %v", err)
	}
	if v, _ := version(t, h, "a"); v != 1 {
		t.Fatalf("version %d serves after a failed commit", v)
	}
	if hist := h.History("default"); len(hist) != 2 || hist[0].State != StateFailed {
		t.Fatalf("the tenant's history %+v", hist)
	}
	if hist := h.History("other"); len(hist) != 0 {
		t.Fatalf("another tenant sees %+v", hist)
	}
}

// Calls running while generations swap are each answered by exactly one
// version, none fails, and none is left waiting.
func TestCallsDuringSwaps(t *testing.T) {
	h := newHost(t)
	apply(t, h, "start", stamp("a", 1))
	var stop atomic.Bool
	var calls, failures atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				v, err := version(t, h, "a")
				if err != nil || (v != 1 && v != 2) {
					failures.Add(1)
					t.Errorf("call during swaps: version %d, %v", v, err)
					return
				}
				calls.Add(1)
			}
		})
	}
	for i := range 50 {
		apply(t, h, "file", stamp("a", 2-i%2))
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d calls across 50 swaps", calls.Load())
	if calls.Load() == 0 || failures.Load() != 0 {
		t.Fatalf("%d calls, %d failures", calls.Load(), failures.Load())
	}
}

// 1,000 swaps between two versions leave the heap where it was (the test
// runs under -race in make test, as the issue asks).
func TestReloadCyclesDoNotGrowTheHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 reloads")
	}
	h := newHost(t)
	cycle := func(n int) {
		for i := range n {
			apply(t, h, "file", stamp("a", 1+i%2), stamp("b", 1))
			if v, err := version(t, h, "a"); err != nil || v != 1+i%2 {
				t.Fatalf("cycle %d: version %d, %v", i, v, err)
			}
		}
	}
	cycle(2 * historySize) // the history fills up, the caches warm
	heap := func() uint64 {
		var m runtime.MemStats
		for range 3 {
			runtime.GC()
		}
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	cycle(1000)
	after := heap()
	growth := int64(after) - int64(before)
	t.Logf("heap %d → %d bytes over 1,000 reloads (%+d)", before, after, growth)
	if growth > 1<<20 {
		t.Fatalf("the heap grew by %d bytes over 1,000 reloads, more than 1 MiB", growth)
	}
}

func equalChanges(a, b []Change) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A broker replaced while junctions offer to it delivers everything it
// took before it closes; later offers reach the new one; none is lost.
func TestBrokerSwapLosesNothing(t *testing.T) {
	h := newHost(t)
	gates := map[string]*gate{}
	for _, name := range []string{"swap-a", "swap-b"} {
		gt, _ := newGate(t, name, true)
		gates[name] = gt
	}
	decl := func(name string) config.Plugin {
		return config.Plugin{ID: "out", Tenant: "acme", Use: "brokers.test-gate", Runtime: "builtin", Config: map[string]any{"name": name}}
	}
	apply(t, h, "start", decl("swap-a"))
	b, _ := h.Broker("acme", "out")
	var offered atomic.Int64
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			if err := b.Offer(junction.Message{Tenant: "acme", Subject: "s"}); err != nil {
				t.Errorf("offer during swaps: %v", err)
				return
			}
			offered.Add(1)
			time.Sleep(50 * time.Microsecond)
		}
	}()
	for i := range 10 {
		time.Sleep(5 * time.Millisecond)
		apply(t, h, "file", decl(map[int]string{0: "swap-b", 1: "swap-a"}[i%2]))
	}
	stop.Store(true)
	<-done
	apply(t, h, "file") // removes it: its queue is delivered before Apply returns
	a, _ := gates["swap-a"].total()
	bn, _ := gates["swap-b"].total()
	if a+bn != int(offered.Load()) || a == 0 || bn == 0 {
		t.Fatalf("offered %d, delivered %d + %d", offered.Load(), a, bn)
	}
	if err := b.Offer(junction.Message{Tenant: "acme"}); !errors.Is(err, junction.ErrUnavailable) {
		t.Fatalf("offer to a removed broker: %v", err)
	}
}

// A collector whose declaration changed is stopped before its replacement
// starts; an unchanged one keeps running, with its state.
func TestCollectorSwap(t *testing.T) {
	h := newHost(t)
	var mu sync.Mutex
	ticks := map[string][]uint32{} // instance → the counts it emitted
	h.Start(func(m junction.Message) {
		mu.Lock()
		defer mu.Unlock()
		ticks[m.Source] = append(ticks[m.Source], binary.LittleEndian.Uint32(m.Payload))
	})
	collector := func(id string, every time.Duration) config.Plugin {
		return config.Plugin{ID: id, Tenant: "default", Use: "collectors.ticks", Runtime: "wasm",
			Module: "wasm/testdata/collector.wasm", Interval: every}
	}
	count := func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(ticks[id])
	}
	waitTicks := func(id string, n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); count(id) < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s ticked %d times, want %d", id, count(id), n)
			}
		}
	}
	apply(t, h, "start", collector("kept", 5*time.Millisecond), collector("changed", 5*time.Millisecond))
	waitTicks("kept", 3)
	waitTicks("changed", 3)
	apply(t, h, "file", collector("kept", 5*time.Millisecond), collector("changed", 6*time.Millisecond))
	before := count("kept")
	waitTicks("kept", before+3)
	mu.Lock()
	kept, changed := slices.Clone(ticks["kept"]), slices.Clone(ticks["changed"])
	mu.Unlock()
	// The collector counts its calls in its state: the kept one goes on
	// counting, the changed one starts again at 1 after the swap, once.
	for i, n := range kept {
		if n != uint32(i+1) {
			t.Fatalf("the kept collector emitted %v: its state did not survive the reload", kept)
		}
	}
	waitTicks("changed", len(changed)+2)
	mu.Lock()
	changed = slices.Clone(ticks["changed"])
	mu.Unlock()
	restarts := 0
	for _, n := range changed {
		if n == 1 {
			restarts++
		}
	}
	if restarts != 2 {
		t.Fatalf("the changed collector started %d times, want twice (at start, at the swap): %v", restarts, changed)
	}
	after := changed[slices.Index(changed[1:], 1)+1:]
	for i, n := range after {
		if n != uint32(i+1) {
			t.Fatalf("after the swap the collector emitted %v: the replaced one still ran", after)
		}
	}
}
