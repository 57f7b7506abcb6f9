package junction

import (
	"encoding/json"
	"io"
	"log/slog"
	"maps"
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
	devices map[string]map[string]string
	full    map[string]bool
	got     map[string][]gateway.Outbound
}

func (f *fleet) Send(tenant, device string, m gateway.Outbound) error {
	k := tenant + "/" + device
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
	n := 0
	for k, labels := range f.devices {
		if k[:len(tenant)+1] != tenant+"/" {
			continue
		}
		match := true
		for lk, lv := range sel {
			match = match && labels[lk] == lv
		}
		if match && f.Send(tenant, k[len(tenant)+1:], m) == nil {
			n++
		}
	}
	return n
}

func junction(tenant, id, source string, targets ...graph.Target) graph.Junction {
	return graph.Junction{Meta: graph.Meta{Tenant: tenant, ID: id}, Enabled: true, Source: source, Targets: targets}
}

func TestRoute(t *testing.T) {
	f := &fleet{
		devices: map[string]map[string]string{
			"t1/display-1": {"role": "display"},
			"t1/display-2": {"role": "display", "room": "lab"},
			"t1/sensor-1":  {},
			"t1/full":      {},
			"t2/display-1": {"role": "display"},
		},
		full: map[string]bool{"t1/full": true},
		got:  map[string][]gateway.Outbound{},
	}
	r := New(slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	r.Attach(f)
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
	want := map[string]int{"t1/display-1": 1, "t1/display-2": 1 + 2} // displays once; lab for both streams
	if len(ids) != 3 { // one per junction a message took: telemetry via displays and lab, raw via lab
		t.Errorf("%d distinct message ids, want 3", len(ids))
	}
	other := New(slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if id := other.nextID(); ids[id] {
		t.Errorf("a second router (a restart) reused the id %q", id)
	}
	if !maps.Equal(count, want) {
		t.Fatalf("deliveries %v, want %v (t2 and the disabled junction must get nothing)", count, want)
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
		if got := testutil.ToFloat64(r.dropped.WithLabelValues("t1", c.junction, c.reason)); got != c.n {
			t.Errorf("dropped{%s,%s} = %v, want %v", c.junction, c.reason, got, c.n)
		}
	}

	r.Set("t1", nil)
	f.got = map[string][]gateway.Outbound{}
	r.DeviceData(gateway.Identity{Tenant: "t1", Device: "sensor-1"}, "telemetry", json.RawMessage(`1`), at)
	if len(f.got) != 0 {
		t.Fatalf("junctions removed, yet delivered %v", f.got)
	}
}
