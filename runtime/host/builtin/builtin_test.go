package builtin

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/sdk/plugin"
)

// Test plugins, registered under names no shipped plugin uses.
type counter struct {
	Count int `json:"count"`
}

func (c *counter) Validate() error {
	if c.Count < 0 {
		return errors.New("count must not be negative")
	}
	return nil
}

func (c *counter) Collect(ctx context.Context, out plugin.Emitter) error {
	for i := range c.Count {
		if err := out.Emit(plugin.Message{Tenant: "forged", Subject: "count", Payload: []byte{byte('0' + i)}}); err != nil {
			return nil
		}
	}
	return nil
}

type twice struct{}

func (twice) Transform(ctx context.Context, in plugin.Message, out plugin.Emitter) error {
	if string(in.Payload) == "panic" {
		panic("boom")
	}
	if string(in.Payload) == "fail" {
		_ = out.Emit(in)
		return errors.New("refused")
	}
	_ = out.Emit(in)
	return out.Emit(in)
}

type sink struct {
	got     []plugin.Message
	cleaned bool
}

func (s *sink) Publish(ctx context.Context, batch []plugin.Message) error {
	s.got = append(s.got, batch...)
	return nil
}

func (s *sink) Cleanup() error { s.cleaned = true; return nil }

func init() {
	plugin.Register(plugin.Info{ID: "collectors.test-counter", New: func() any { return new(counter) }})
	plugin.Register(plugin.Info{ID: "transforms.test-twice", New: func() any { return new(twice) }})
	plugin.Register(plugin.Info{ID: "brokers.test-sink", New: func() any { return new(sink) }})
}

func TestNewRefusesBadInstances(t *testing.T) {
	for _, tc := range []struct{ name, use, config, want string }{
		{"unknown plugin", "collectors.nope", `{}`, "collectors.nope is not built into this relay (built in: "},
		{"malformed id", "nope", `{}`, "nope"},
		{"unknown key", "collectors.test-counter", `{"cuont": 1}`, "cuont"},
		{"wrong type", "collectors.test-counter", `{"count": "three"}`, "count"},
		{"validate", "collectors.test-counter", `{"count": -1}`, "validate: count must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(t.Context(), tc.use, "acme", "i", []byte(tc.config))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCollectStampsTheTenant(t *testing.T) {
	in, err := New(t.Context(), "collectors.test-counter", "acme", "counter-1", []byte(`{"count": 3}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []plugin.Message
	if err := in.Collect(t.Context(), func(m plugin.Message) error { got = append(got, m); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d messages, want 3", len(got))
	}
	for _, m := range got {
		if m.Tenant != "acme" || m.Source != "counter-1" || m.Time.IsZero() {
			t.Errorf("message of tenant %q, source %q, time %v: want acme, the instance id and a time", m.Tenant, m.Source, m.Time)
		}
	}
}

func TestTransformPanicsAndFailures(t *testing.T) {
	in, err := New(t.Context(), "transforms.test-twice", "acme", "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		payload string
		outputs int
		err     string
	}{
		{"ok", 2, ""},
		{"fail", 0, "refused"},
		{"panic", 0, "transforms.test-twice panicked: boom"},
		{"ok", 2, ""}, // the instance still works after a panic
	} {
		var n int
		err := in.Transform(t.Context(), plugin.Message{Payload: []byte(tc.payload)}, func(plugin.Message) { n++ })
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) || n != tc.outputs {
			t.Errorf("%s: err %v, %d outputs; want error %q and %d outputs", tc.payload, err, n, tc.err, tc.outputs)
		}
	}
	if st := in.Stats(); st.Calls != 4 || st.Errors != 2 || !strings.Contains(st.LastError, "panicked") {
		t.Errorf("stats %+v", st)
	}
}

func TestPublishAndCleanup(t *testing.T) {
	in, err := New(t.Context(), "brokers.test-sink", "acme", "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Publish(t.Context(), []plugin.Message{{Subject: "a"}, {Subject: "b"}}); err != nil {
		t.Fatal(err)
	}
	s := in.value.(*sink)
	if len(s.got) != 2 {
		t.Fatalf("broker got %d messages", len(s.got))
	}
	if err := in.Close(); err != nil || !s.cleaned {
		t.Fatalf("Close: %v, cleaned %v", err, s.cleaned)
	}
	if err := in.Collect(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "not a collector") {
		t.Errorf("Collect on a broker: %v", err)
	}
}

type chatty struct{}

func (chatty) Collect(ctx context.Context, out plugin.Emitter) error {
	plugin.Logger(ctx).Info("hello from the plugin")
	return nil
}

func init() {
	plugin.Register(plugin.Info{ID: "collectors.test-chatty", New: func() any { return new(chatty) }})
}

func TestPluginLogsCarryTheInstance(t *testing.T) {
	var buf bytes.Buffer
	ctx := plugin.WithLogger(t.Context(), slog.New(slog.NewTextHandler(&buf, nil)))
	in, err := New(ctx, "collectors.test-chatty", "acme", "talker", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Collect(t.Context(), func(plugin.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	for _, want := range []string{"hello from the plugin", "tenant=acme", "plugin=collectors.test-chatty", "instance=talker"} {
		if !strings.Contains(line, want) {
			t.Errorf("log %q lacks %q", line, want)
		}
	}
}
