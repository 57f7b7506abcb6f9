package app_test

import (
	"math"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/runtime/apptest"
	"github.com/switchyard/switchyard/runtime/config"
)

// A real WebSocket device receives, in order, the readings of a WASM
// collector converted by a WASM transform and rendered by another: the
// shipped plugins, built from Go with the guest kit, in the real host.
func TestWASMPipeline(t *testing.T) {
	dir := apptest.Plugins(t)
	wasmOf := func(name string) string { return filepath.Join(dir, name+".wasm") }
	r := apptest.Start(t, "", func(c *config.Config) {
		c.Plugins = []config.Plugin{
			{ID: "sensors", Use: "collectors.synthetic", Runtime: "wasm", Module: wasmOf("collectors.synthetic"),
				Interval: 50 * time.Millisecond, Config: map[string]any{
					"subject_prefix": "demo",
					"sensors": []any{map[string]any{
						"name": "temp", "kind": "ramp", "min": 0, "max": 100, "period": "1h", "decimals": 2, "unit": "°C",
					}},
				}},
			{ID: "to-f", Use: "transforms.scale", Runtime: "wasm", Module: wasmOf("transforms.scale"),
				Config: map[string]any{"preset": "c_to_f", "round": 1}},
			{ID: "label", Use: "transforms.format", Runtime: "wasm", Module: wasmOf("transforms.format"),
				Config: map[string]any{"template": `{{.value | printf "%.1f"}} {{.unit}}`}},
		}
		c.Junctions = []config.Junction{{
			ID: "demo", Source: "demo.>", Collector: "sensors", Transforms: []string{"to-f", "label"},
			Targets: []config.Target{{Device: "panel"}},
		}}
	})
	d := r.Connect(r.CreateDevice("default", "panel", nil))

	var last time.Time
	for i := range 10 {
		m := d.ReadUntil("message")
		at, err := time.Parse(time.RFC3339Nano, m["time"].(string))
		if err != nil {
			t.Fatalf("message %d: time %v: %v", i, m["time"], err)
		}
		if !at.After(last) {
			t.Fatalf("message %d at %v is not after the previous one at %v: out of order", i, at, last)
		}
		last = at
		text, _ := m["payload"].(map[string]any)["text"].(string)
		number, unit, ok := strings.Cut(text, " ")
		got, err := strconv.ParseFloat(number, 64)
		if m["subject"] != "demo.temp" || !ok || unit != "°F" || err != nil {
			t.Fatalf("message %d: %v", i, m)
		}
		// The collector's ramp at the reading's time, in °C, then °F.
		phase := float64(at.UnixNano()%int64(time.Hour)) / float64(time.Hour)
		want := (100*phase)*9/5 + 32
		if math.Abs(got-want) > 0.11 { // rounding: 2 decimals in °C, 1 in °F, 1 in the text
			t.Fatalf("message %d at %v: %q, want %.1f °F", i, at, text, want)
		}
	}

	status, body := r.Do("GET", "/api/v1/plugins", nil)
	list, _ := body["plugins"].([]any)
	if status != http.StatusOK || len(list) != 3 {
		t.Fatalf("GET /api/v1/plugins: %d %v", status, body)
	}
	for _, p := range list {
		p := p.(map[string]any)
		if len(p["module"].(string)) != 64 || p["state"] != "running" || p["calls"].(float64) < 10 || p["errors"].(float64) != 0 {
			t.Errorf("plugin %v", p)
		}
	}
}
