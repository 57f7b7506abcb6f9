// Package changed_test runs the hand-written WAT transform of this folder
// in Switchyard's WASM host, through the cases its conformance profile
// cannot express: a full state, and every input in one sequence.
package changed_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/runtime/host/wasm"
)

func instance(t *testing.T, limits wasm.Limits) *wasm.Instance {
	t.Helper()
	ctx := context.Background()
	rt, err := wasm.NewRuntime(ctx, wasm.RuntimeOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close(ctx) })
	code, err := os.ReadFile("changed.wasm")
	if err != nil {
		t.Fatalf("%v: build the examples first with `make examples`", err)
	}
	mod, err := rt.Compile(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	in, err := mod.Instantiate(ctx, wasm.InstanceConfig{Tenant: "default", ID: "on-change", Use: "transforms.changed", Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	_ = mod.Close(ctx)
	t.Cleanup(func() { _ = in.Close(ctx) })
	return in
}

func TestChanged(t *testing.T) {
	in := instance(t, wasm.Limits{})
	unicode := `{"room":"Küche ☕","t":21.5}`
	large := `"` + strings.Repeat("x", 65534) + `"` // 64 KiB exactly
	steps := []struct {
		subject, payload string
		passes           bool
	}{
		{"device.s1.telemetry", `{"t":21.5}`, true},
		{"device.s1.telemetry", `{"t":21.5}`, false},
		{"device.s1.telemetry", `{"t":21.6}`, true},
		{"device.s1.telemetry", `{"t":21.5}`, true}, // changed back: a change
		{"device.s2.telemetry", `{"t":21.5}`, true}, // another subject
		{"device.s2.telemetry", `{"t":21.5}`, false},
		{"device.s1.telemetry", ``, true}, // an empty payload is a value too
		{"device.s1.telemetry", ``, false},
		{"device.s3.telemetry", unicode, true},
		{"device.s3.telemetry", unicode, false},
		{"device.s4.telemetry", large, true},
		{"device.s4.telemetry", large, false},
	}
	for i, s := range steps {
		var out []wasm.Message
		err := in.Transform(context.Background(), wasm.Message{Tenant: "default", Subject: s.subject, Payload: []byte(s.payload)},
			func(m wasm.Message) { out = append(out, m) })
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		switch {
		case !s.passes && len(out) != 0:
			t.Fatalf("step %d: a repeated payload on %s passed: %v", i, s.subject, out)
		case s.passes && (len(out) != 1 || string(out[0].Payload) != s.payload || out[0].Subject != s.subject):
			t.Fatalf("step %d: want the message on %s as it came, got %d outputs", i, s.subject, len(out))
		}
	}
}

func TestChangedRefuses(t *testing.T) {
	in := instance(t, wasm.Limits{StateMaxKeys: 2})
	call := func(subject, payload string) error {
		return in.Transform(context.Background(), wasm.Message{Tenant: "default", Subject: subject, Payload: []byte(payload)}, func(wasm.Message) {})
	}
	if err := call("a.b", `"`+strings.Repeat("x", 65535)+`"`); err == nil || !strings.Contains(err.Error(), "payload over 64 KiB") {
		t.Errorf("a payload over 64 KiB: %v", err)
	}
	for _, s := range []string{"s.1", "s.2"} {
		if err := call(s, "1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := call("s.3", "1"); err == nil || !strings.Contains(err.Error(), "state full: too many subjects") {
		t.Errorf("a third subject with room for two: %v", err)
	}
	if err := call("s.1", "2"); err != nil {
		t.Errorf("a known subject after the state filled: %v", err)
	}
}
