package app_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/runtime/app"
	"github.com/switchyard/switchyard/runtime/apptest"
	"github.com/switchyard/switchyard/runtime/config"
	"github.com/switchyard/switchyard/sdk/plugin"
)

// Built-in plugins of this test (the shipped ones have their own tests): a
// collector that counts, and a broker that remembers what it was given.
type ticker struct {
	Every plugin.Duration `json:"every"`
}

func (tk *ticker) Collect(ctx context.Context, out plugin.Emitter) error {
	t := time.NewTicker(tk.Every.Std())
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			payload, _ := json.Marshal(map[string]int{"n": n})
			if err := out.Emit(plugin.Message{Subject: "tick.count", Time: now, Payload: payload}); err != nil {
				return nil
			}
		}
	}
}

type memory struct {
	mu      sync.Mutex
	batches [][]plugin.Message
}

var memories sync.Map // tenant → *memory, so the test can read what a broker got

func (m *memory) Publish(ctx context.Context, batch []plugin.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batches = append(m.batches, batch)
	memories.Store(batch[0].Tenant, m)
	return nil
}

func (m *memory) received() (messages, batches int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range m.batches {
		messages += len(b)
	}
	return messages, len(m.batches)
}

func init() {
	plugin.Register(plugin.Info{ID: "collectors.test-ticker", New: func() any { return new(ticker) }})
	plugin.Register(plugin.Info{ID: "brokers.test-memory", New: func() any { return new(memory) }})
}

// A built-in collector feeds a junction whose targets are a device and a
// built-in broker; GET /api/v1/plugins shows both instances running.
func TestBuiltinCollectorToBrokerAndDevice(t *testing.T) {
	r := apptest.Start(t, "", func(c *config.Config) {
		c.Plugins = []config.Plugin{
			{ID: "ticks", Use: "collectors.test-ticker", Runtime: "builtin", Config: map[string]any{"every": "20ms"}},
			{ID: "archive", Use: "brokers.test-memory", Runtime: "builtin"},
		}
		c.Junctions = []config.Junction{{ID: "ticks", Source: "tick.>", Collector: "ticks",
			Targets: []config.Target{{Device: "panel"}, {Broker: "archive"}}}}
	})
	panel := r.Connect(r.CreateDevice("default", "panel", nil))
	for range 5 {
		if m := panel.ReadUntil("message"); m["subject"] != "tick.count" {
			t.Fatalf("panel got %v", m)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if m, ok := memories.Load("default"); ok {
			if n, _ := m.(*memory).received(); n >= 5 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the broker received fewer than 5 messages within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	status, body := r.Do("GET", "/api/v1/plugins", nil)
	list, _ := body["plugins"].([]any)
	if status != http.StatusOK || len(list) != 2 {
		t.Fatalf("GET /api/v1/plugins: %d %v", status, body)
	}
	for _, p := range list {
		p := p.(map[string]any)
		if p["runtime"] != "builtin" || p["state"] != "running" || p["calls"].(float64) < 1 || p["errors"].(float64) != 0 {
			t.Errorf("plugin %v", p)
		}
	}
}

// A built-in instance whose configuration the plugin refuses stops the start
// with a message naming the instance and the key.
func TestBuiltinBadConfigRefusedAtStart(t *testing.T) {
	cfg := config.Default()
	cfg.Gateway.Listen, cfg.API.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Store.Embedded.Path = t.TempDir() + "/s.db"
	cfg.WASM.CacheDir = apptest.WASMCache()
	cfg.Plugins = []config.Plugin{{ID: "ticks", Use: "collectors.test-ticker", Runtime: "builtin", Config: map[string]any{"evry": "1s"}}}
	a, err := app.Start(t.Context(), &cfg, app.Options{Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		_ = a.Stop(t.Context())
	}
	if err == nil || !strings.Contains(err.Error(), `plugin "ticks" of tenant "default" (collectors.test-ticker)`) || !strings.Contains(err.Error(), "evry") {
		t.Fatalf("start: %v; want an error naming the instance and the key", err)
	}
}
