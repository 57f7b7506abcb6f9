package wasm

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const tenant = "acme"

// logBuffer collects the runtime's log as JSON lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newRuntime starts a Runtime for one test with its own registry, and a
// debug-level JSON log the test can read.
func newRuntime(t testing.TB, opts RuntimeOptions) (*Runtime, *logBuffer, *prometheus.Registry) {
	t.Helper()
	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	if opts.Logger == nil {
		opts.Logger = slogTo(logs)
	}
	opts.Registerer = reg
	rt, err := NewRuntime(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return rt, logs, reg
}

func readModule(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func compile(t testing.TB, rt *Runtime, name string) *Module {
	t.Helper()
	m, err := rt.Compile(context.Background(), readModule(t, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

func instantiate(t testing.TB, m *Module, use, id string, config string, limits Limits) *Instance {
	t.Helper()
	in, err := m.Instantiate(context.Background(), InstanceConfig{Tenant: tenant, ID: id, Use: use, Config: []byte(config), Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := in.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return in
}

// transform runs one message with payload through in and returns what it
// emitted.
func transform(in *Instance, payload string) ([]Message, error) {
	var out []Message
	err := in.Transform(context.Background(), input(payload), func(m Message) { out = append(out, m) })
	return out, err
}

var inputTime = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func input(payload string) Message {
	return Message{
		Tenant:  tenant,
		Source:  "device:d1",
		Subject: "sensors.temp",
		Time:    inputTime,
		Meta:    map[string]string{"unit": "C"},
		Payload: []byte(payload),
	}
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// msgs returns the msg of every JSON log line.
func msgs(t testing.TB, log string) []string {
	t.Helper()
	var out []string
	for line := range strings.Lines(log) {
		var rec struct{ Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec.Msg)
	}
	return out
}
