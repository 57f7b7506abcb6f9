package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	_ "github.com/switchyard/switchyard/plugins/builtins"
	"github.com/switchyard/switchyard/runtime/apptest"
	"github.com/switchyard/switchyard/runtime/config"
)

// The shipped built-ins end to end, against real HTTP servers on loopback: a
// station that collectors.http polls, and a receiver that brokers.webhook
// posts to; a junction carries the readings to both a device and the hook.
func TestHTTPCollectorToWebhookAndDevice(t *testing.T) {
	station := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"data": {"temps": [{"value": 21.5}], "humidity": 40}}`)
	}))
	defer station.Close()
	var mu sync.Mutex
	var posted []map[string]any
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Messages []map[string]any `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		posted = append(posted, body.Messages...)
		mu.Unlock()
	}))
	defer receiver.Close()

	r := apptest.Start(t, "", func(c *config.Config) {
		c.Plugins = []config.Plugin{
			{ID: "station", Use: "collectors.http", Runtime: "builtin", Config: map[string]any{
				"url": station.URL, "interval": "50ms", "subject_prefix": "weather",
				"sensors": []any{
					map[string]any{"name": "temp", "path": "data.temps[0].value", "unit": "°C"},
					map[string]any{"name": "humidity", "path": "data.humidity"},
				},
			}},
			{ID: "hook", Use: "brokers.webhook", Runtime: "builtin", Config: map[string]any{"url": receiver.URL}},
		}
		c.Junctions = []config.Junction{{ID: "weather", Source: "weather.>", Collector: "station",
			Targets: []config.Target{{Device: "panel"}, {Broker: "hook"}}}}
	})
	panel := r.Connect(r.CreateDevice("default", "panel", nil))
	subjects := map[string]bool{}
	for len(subjects) < 2 {
		m := panel.ReadUntil("message")
		subjects[m["subject"].(string)] = true
		if m["subject"] == "weather.temp" && m["payload"].(map[string]any)["value"] != 21.5 {
			t.Fatalf("temp reading %v", m)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(posted)
		var first map[string]any
		if n > 0 {
			first = posted[0]
		}
		mu.Unlock()
		if n >= 2 {
			if first["subject"] != "weather.temp" && first["subject"] != "weather.humidity" {
				t.Fatalf("the hook got %v", first)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hook received %d messages within 5s, want at least 2", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
