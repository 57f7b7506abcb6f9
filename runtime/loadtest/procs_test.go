package loadtest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard/switchyard/runtime/config"
)

// TestRelayConfigLoads checks the generated plugins.yaml against the
// relay's own strict loader, so a renamed key fails here and not in a
// three-minute run.
func TestRelayConfigLoads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plugins.yaml")
	db := filepath.Join(dir, "switchyard.db")
	if err := os.WriteFile(path, []byte(relayConfig(18080, 18081, 19064, 15*time.Second, "warn", db)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Source{Path: path})
	if err != nil {
		t.Fatalf("generated config does not load: %v", err)
	}
	g := cfg.Gateway
	if g.Listen != "127.0.0.1:18080" || g.Path != "/ws/device" || g.MaxConnections != 19064 ||
		g.HeartbeatInterval != 15*time.Second || g.HeartbeatTimeout != 45*time.Second || g.DrainTimeout != relayDrain {
		t.Fatalf("gateway config = %+v", g)
	}
	if cfg.API.Listen != "127.0.0.1:18081" || cfg.Store.Backend != "embedded" || cfg.Store.Embedded.Path != db || cfg.Log.Level != "warn" {
		t.Fatalf("config = api %+v store %+v log %+v", cfg.API, cfg.Store, cfg.Log)
	}
}
