package junction

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/runtime/gateway"
)

// fleet stands in for the gateway's delivery side so the router's choices
// can be read back; the gateway itself is exercised end to end in
// runtime/app. Devices are "tenant/id" with labels.
type fleet struct {
	mu      sync.Mutex
	devices map[string]map[string]string
	full    map[string]bool
	got     map[string][]gateway.Outbound
}

func newFleet(devices map[string]map[string]string) *fleet {
	return &fleet{devices: devices, full: map[string]bool{}, got: map[string][]gateway.Outbound{}}
}

func (f *fleet) Send(tenant, device string, m gateway.Outbound) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sendLocked(tenant+"/"+device, m)
}

func (f *fleet) sendLocked(k string, m gateway.Outbound) error {
	if _, ok := f.devices[k]; !ok {
		return gateway.ErrNotConnected
	}
	if f.full[k] {
		return gateway.ErrQueueFull
	}
	f.got[k] = append(f.got[k], m)
	return nil
}

func (f *fleet) SendMatching(tenant string, sel map[string]string, m gateway.Outbound) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k, labels := range f.devices {
		if !strings.HasPrefix(k, tenant+"/") {
			continue
		}
		match := true
		for lk, lv := range sel {
			match = match && labels[lk] == lv
		}
		if match && f.sendLocked(k, m) == nil {
			n++
		}
	}
	return n
}

// stages are native transforms standing in for plugin instances (the WASM
// host has its own tests; runtime/app runs real modules end to end).
type stages map[string]Stage

func (s stages) Stage(tenant, id string) (Stage, bool) { st, ok := s[tenant+"/"+id]; return st, ok }

type stageFunc func(m Message, emit func(Message)) error

func (f stageFunc) Transform(_ context.Context, m Message, emit func(Message)) error {
	return f(m, emit)
}

func newRouter(t *testing.T, f *fleet, st Stages, queue int) *Router {
	t.Helper()
	r := New(Options{QueueSize: queue, Stages: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry()})
	r.Attach(f)
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func junction(tenant, id, source string, targets ...graph.Target) graph.Junction {
	return graph.Junction{Meta: graph.Meta{Tenant: tenant, ID: id}, Enabled: true, Source: source, Targets: targets}
}

func dropped(r *Router, tenant, j, reason string) float64 {
	return testutil.ToFloat64(r.dropped.WithLabelValues(tenant, j, reason))
}

func TestRoute(t *testing.T) {
	f := newFleet(map[string]map[string]string{
		"t1/display-1": {"role": "display"},
		"t1/display-2": {"role": "display", "room": "lab"},
		"t1/sensor-1":  {},
		"t1/full":      {},
		"t2/display-1": {"role": "display"},
	})
	f.full["t1/full"] = true
	r := newRouter(t, f, nil, 0)
	disabled := junction("t1", "off", ">", graph.Target{Device: "sensor-1"})
	disabled.Enabled = false
	withTransform := junction("t1", "xf", "device.sensor-1.raw", graph.Target{Device: "display-1"})
	withTransform.Transforms = []string{"scale"}
	r.Set("t1", []graph.Junction{
		junction("t1", "displays", "device.*.telemetry", graph.Target{Selector: map[string]string{"role": "display"}}),
		junction("t1", "lab", "device.sensor-1.>", graph.Target{Selector: map[string]string{"room": "lab"}}, graph.Target{Device: "gone"}, graph.Target{Device: "full"}),
		junction("t1", "nobody", "device.sensor-1.telemetry", graph.Target{Selector: map[string]string{"role": "kiosk"}}),
		junction("t1", "hook", "device.sensor-1.telemetry", graph.Target{Broker: "webhook"}),
		disabled, withTransform,
	})
	r.Set("t2", []graph.Junction{junction("t2", "displays", "device.*.telemetry", graph.Target{Selector: map[string]string{"role": "display"}})})

	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r.DeviceData(gateway.Identity{Tenant: "t1", Device: "sensor-1"}, "telemetry", json.RawMessage(`{"t":1}`), at)
	r.DeviceData(gateway.Identity{Tenant: "t1", Device: "sensor-1"}, "raw", json.RawMessage(`2`), at)
	r.Close(context.Background()) // the stages finish what they hold

	count := map[string]int{}
	ids := map[string]bool{}
	for k, msgs := range f.got {
		count[k] = len(msgs)
		for _, m := range msgs {
			if m.ID == "" || !m.Time.Equal(at) {
				t.Errorf("%s got %+v: want an id and the source time", k, m)
			}
			ids[m.ID] = true
		}
	}
	if want := map[string]int{"t1/display-1": 1, "t1/display-2": 1 + 2}; !maps.Equal(count, want) {
		t.Fatalf("deliveries %v, want %v (t2 and the disabled junction must get nothing)", count, want)
	}
	if len(ids) != 3 { // one per junction a message took: telemetry via displays and lab, raw via lab
		t.Errorf("%d distinct message ids, want 3", len(ids))
	}
	if other := newRouter(t, f, nil, 0); ids[other.nextID()] {
		t.Error("a second router (a restart) reuses message ids")
	}
	for _, c := range []struct {
		junction, reason string
		n                float64
	}{
		{"lab", DropNotConnected, 2},
		{"lab", DropQueueFull, 2},
		{"nobody", DropNoDevice, 1},
		{"hook", DropNoBroker, 1},
		{"xf", DropNoTransformer, 1},
	} {
		if got := dropped(r, "t1", c.junction, c.reason); got != c.n {
			t.Errorf("dropped{%s,%s} = %v, want %v", c.junction, c.reason, got, c.n)
		}
	}
	if got := testutil.ToFloat64(r.in.WithLabelValues("t1", "lab")); got != 2 {
		t.Errorf("lab took in %v messages, want 2", got)
	}
	if got := testutil.ToFloat64(r.out.WithLabelValues("t1", "lab")); got != 2 {
		t.Errorf("lab handed out %v messages, want 2 (display-2 twice)", got)
	}
}

func value(t *testing.T, p json.RawMessage) int {
	t.Helper()
	v, err := parse(p)
	if err != nil {
		t.Fatalf("payload %s: %v", p, err)
	}
	return v
}

// parse is value for stages, which run on the router's goroutines.
func parse(p json.RawMessage) (int, error) {
	var v struct{ V int }
	err := json.Unmarshal(p, &v)
	return v.V, err
}

func payload(v int) json.RawMessage { return json.RawMessage(`{"v":` + strconv.Itoa(v) + `}`) }

// A chain runs its stages in order over every output of the previous stage,
// keeps the order of messages, and drops what a failing stage was given.
func TestTransformChain(t *testing.T) {
	f := newFleet(map[string]map[string]string{"t1/d": {}})
	st := stages{
		"t1/double": stageFunc(func(m Message, emit func(Message)) error {
			v, err := parse(m.Payload)
			m.Payload = payload(2 * v)
			emit(m)
			return err
		}),
		"t1/split": stageFunc(func(m Message, emit func(Message)) error { // 0 for odd, 2 for even
			v, err := parse(m.Payload)
			if v%2 == 0 {
				emit(Message{Tenant: m.Tenant, Subject: m.Subject + ".a", Payload: payload(v)})
				emit(Message{Tenant: m.Tenant, Subject: m.Subject + ".b", Payload: payload(v + 1)})
			}
			return err
		}),
		"t1/fail13": stageFunc(func(m Message, emit func(Message)) error {
			if v, _ := parse(m.Payload); v == 13 {
				return errors.New("unlucky")
			}
			emit(m)
			return nil
		}),
	}
	r := newRouter(t, f, st, 0)
	j := junction("t1", "chain", "in.>", graph.Target{Device: "d"})
	j.Transforms = []string{"fail13", "split", "double"}
	r.Set("t1", []graph.Junction{j})
	for v := range 20 {
		r.Route(Message{Tenant: "t1", Source: "c", Subject: "in.x", Payload: payload(v)})
	}
	r.Close(context.Background())

	var got []string
	for _, m := range f.got["t1/d"] {
		got = append(got, m.Subject+"="+strconv.Itoa(value(t, m.Payload)))
	}
	var want []string
	for v := 0; v < 20; v += 2 {
		want = append(want, "in.x.a="+strconv.Itoa(2*v), "in.x.b="+strconv.Itoa(2*(v+1)))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("device got\n%v\nwant\n%v", got, want)
	}
	if n := dropped(r, "t1", "chain", DropTransformErr); n != 1 {
		t.Fatalf("transform errors counted %v, want 1 (message 13)", n)
	}
}

func TestThrottleAndBoundedQueue(t *testing.T) {
	f := newFleet(map[string]map[string]string{"t1/d": {}})
	release := make(chan struct{})
	st := stages{"t1/slow": stageFunc(func(m Message, emit func(Message)) error { <-release; emit(m); return nil })}
	r := newRouter(t, f, st, 2)

	throttled := junction("t1", "throttled", "a", graph.Target{Device: "d"})
	throttled.Throttle = graph.Throttle{Rate: 0.001, Burst: 3}
	slow := junction("t1", "slow", "b", graph.Target{Device: "d"})
	slow.Transforms = []string{"slow"}
	r.Set("t1", []graph.Junction{throttled, slow})

	for range 5 {
		r.Route(Message{Tenant: "t1", Subject: "a", Payload: payload(1)})
	}
	// The slow transform holds one message; the queue holds two; the rest drop.
	for range 6 {
		r.Route(Message{Tenant: "t1", Subject: "b", Payload: payload(2)})
	}
	if n := dropped(r, "t1", "throttled", DropThrottled); n != 2 {
		t.Errorf("throttled %v of 5 with burst 3, want 2", n)
	}
	if n := dropped(r, "t1", "slow", DropJunctionFull); n < 3 || n > 4 {
		t.Errorf("queue-full drops %v of 6 with a queue of 2, want 3 or 4 (the transform may hold one)", n)
	}
	close(release)
	r.Close(context.Background())
	in := func(j string) float64 { return testutil.ToFloat64(r.in.WithLabelValues("t1", j)) }
	if got := in("throttled") + dropped(r, "t1", "throttled", DropJunctionFull); got != 3 {
		t.Errorf("the throttle let %v through, want its burst of 3", got)
	}
	if got, want := len(f.got["t1/d"]), int(in("throttled")+in("slow")); got != want {
		t.Errorf("device got %d messages, want every one taken in: %d", got, want)
	}
}

func TestCollectorSourceAndUnchangedJunctions(t *testing.T) {
	f := newFleet(map[string]map[string]string{"t1/d": {}})
	r := newRouter(t, f, nil, 0)
	j := junction("t1", "synth", "synthetic.>", graph.Target{Device: "d"})
	j.Collector = "synth-1"
	r.Set("t1", []graph.Junction{j})
	first := (*r.table.Load())["t1"][0]

	again := j
	again.UpdatedAt = time.Now() // only timestamps differ: the same junction
	r.Set("t1", []graph.Junction{again})
	if (*r.table.Load())["t1"][0] != first {
		t.Fatal("an unchanged junction got new stages")
	}
	r.Route(Message{Tenant: "t1", Source: "synth-1", Subject: "synthetic.temp", Payload: payload(1)})
	r.Route(Message{Tenant: "t1", Source: "synth-2", Subject: "synthetic.temp", Payload: payload(2)})
	r.Route(Message{Tenant: "t1", Source: "device:x", Subject: "synthetic.temp", Payload: payload(3)})

	changed := j
	changed.Source = "other.>"
	r.Set("t1", []graph.Junction{changed})
	if (*r.table.Load())["t1"][0] == first {
		t.Fatal("a changed junction kept its old stages")
	}
	<-first.done // the old stages finished what they held
	if got := f.got["t1/d"]; len(got) != 1 || value(t, got[0].Payload) != 1 {
		t.Fatalf("device got %v, want only the message of collector synth-1", got)
	}
}

// Close drains the junctions until its context ends, then drops what is
// left, counted: a saturated junction cannot hold shutdown up.
func TestCloseIsBounded(t *testing.T) {
	f := newFleet(map[string]map[string]string{"t1/d": {}})
	st := stages{"t1/slow": stageFunc(func(m Message, emit func(Message)) error {
		time.Sleep(20 * time.Millisecond)
		emit(m)
		return nil
	})}
	r := New(Options{QueueSize: 100, Stages: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry()})
	r.Attach(f)
	j := junction("t1", "slow", "a", graph.Target{Device: "d"})
	j.Transforms = []string{"slow"}
	r.Set("t1", []graph.Junction{j})
	for range 100 {
		r.Route(Message{Tenant: "t1", Subject: "a", Payload: payload(1)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	r.Close(ctx)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Close took %v with 100 messages of 20 ms queued and a 100 ms deadline", took)
	}
	delivered, shed := len(f.got["t1/d"]), int(dropped(r, "t1", "slow", DropShutdown))
	if shed == 0 || delivered+shed != 100 {
		t.Fatalf("delivered %d, dropped at shutdown %d: want some dropped and none lost", delivered, shed)
	}
}
