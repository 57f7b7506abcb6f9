package app_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/runtime/apptest"
	"github.com/switchyard/switchyard/runtime/config"
)

// A process plugin (collectors.http served by the relay's own binary,
// `switchyard plugin serve`) killed with SIGKILL under steady traffic is
// restarted, and the devices it feeds stay connected and get its readings
// again.
func TestProcessPluginKilledUnderTraffic(t *testing.T) {
	station := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"temp": 21.5}`)
	}))
	defer station.Close()
	binary, sum := apptest.RelayBinary(t)
	r := apptest.Start(t, "", func(c *config.Config) {
		c.Plugins = []config.Plugin{{ID: "station", Use: "collectors.http", Runtime: "process", Module: binary, SHA256: sum,
			Config: map[string]any{"url": station.URL, "interval": "20ms", "subject_prefix": "weather",
				"sensors": []any{map[string]any{"name": "temp", "path": "temp"}}}}}
		c.Junctions = []config.Junction{{ID: "weather", Source: "weather.>", Collector: "station",
			Targets: []config.Target{{Selector: map[string]string{"room": "hall"}}}}}
	})
	var panels []*apptest.Device
	for _, id := range []string{"panel-1", "panel-2", "panel-3"} {
		panels = append(panels, r.Connect(r.CreateDevice("default", id, map[string]string{"room": "hall"})))
	}
	for _, p := range panels {
		p.ReadUntil("message")
	}
	pid := processPID(t, r, "station")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the plugin process %d: %v", pid, err)
	}
	killed := time.Now()
	for {
		if p := processPID(t, r, "station"); p != 0 && p != pid {
			t.Logf("plugin process %d restarted as %d after %s", pid, p, time.Since(killed).Round(time.Millisecond))
			break
		}
		if time.Since(killed) > 15*time.Second {
			t.Fatal("the killed plugin process was not restarted within 15s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Every device is still on its first connection, and gets readings
	// made after the restart.
	for i, p := range panels {
		for {
			m := p.ReadUntil("message")
			if at, err := time.Parse(time.RFC3339Nano, m["time"].(string)); err == nil && at.After(killed) {
				break
			}
		}
		t.Logf("panel-%d received again", i+1)
	}
	if status, body := r.Do("GET", "/api/v1/tenants/default/sessions", nil); status != http.StatusOK || len(body["sessions"].([]any)) != 3 {
		t.Fatalf("sessions after the restart: %d %v", status, body)
	}
}
