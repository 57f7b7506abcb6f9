package app_test

import (
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/graph/dgraph/dgraphtest"
	"github.com/switchyard/switchyard/runtime/app"
	"github.com/switchyard/switchyard/runtime/apptest"
	"github.com/switchyard/switchyard/runtime/config"
)

// The tests here run the relay on a real Dgraph zero + alpha on loopback.
func TestMain(m *testing.M) { os.Exit(dgraphtest.Main(m)) }

func TestIsolationMatrixOnDgraph(t *testing.T) {
	onDgraph, plugins := apptest.OnDgraph(dgraphtest.Shared(t)), isolationPlugins(t)
	r := apptest.Start(t, "", func(c *config.Config) { onDgraph(c); plugins(c) })
	runIsolationMatrix(t, r, apptest.OperatorKey)
}

// When Dgraph goes away, the relay keeps relaying (a message never waits on
// the store), says it is not ready, refuses writes with 503, and recovers by
// itself when Dgraph returns.
func TestDgraphOutage(t *testing.T) {
	cluster := dgraphtest.Start(t, dgraphtest.Config{})
	onDgraph := apptest.OnDgraph(cluster)
	module := filepath.Join(apptest.Plugins(t), "collectors.synthetic.wasm")
	r := apptest.Start(t, "", func(c *config.Config) {
		onDgraph(c)
		c.Plugins = []config.Plugin{{ID: "sensors", Use: "collectors.synthetic", Runtime: "wasm", Module: module,
			Interval: 50 * time.Millisecond, Config: map[string]any{
				"subject_prefix": "demo",
				"sensors":        []any{map[string]any{"name": "temp", "kind": "ramp", "min": 0, "max": 100, "period": "1h"}},
			}}}
		c.Junctions = []config.Junction{{ID: "demo", Source: "demo.>", Collector: "sensors",
			Targets: []config.Target{{Device: "panel"}}}}
	})
	panel := r.Connect(r.CreateDevice("default", "panel", nil))
	panel.ReadUntil("message")

	cluster.Stop()
	t.Log("dgraph stopped")
	status, body := waitReady(t, r, http.StatusServiceUnavailable, 30*time.Second)
	checks, _ := body["checks"].(map[string]any)
	if msg, _ := checks["store"].(string); !strings.Contains(msg, "unavailable") {
		t.Errorf("/ready during the outage: %d %v; want the store check to say it is unavailable", status, body)
	}
	status, body = r.Do("POST", "/api/v1/tenants/default/devices", map[string]any{"id": "late"})
	if e, _ := body["error"].(map[string]any); status != http.StatusServiceUnavailable || e["code"] != "store_unavailable" {
		t.Errorf("create a device during the outage: %d %v; want 503 store_unavailable", status, body)
	}
	status, body = r.Do("PUT", "/api/v1/tenants/default/junctions/demo", map[string]any{
		"source": "elsewhere.>", "targets": []any{map[string]any{"device": "panel"}}})
	if status != http.StatusServiceUnavailable {
		t.Errorf("change a junction during the outage: %d %v; want 503", status, body)
	}
	// The junction is unchanged and the device still connected: readings
	// made during the outage keep coming (after those queued before it).
	during := time.Now()
	for deadline := time.Now().Add(10 * time.Second); ; {
		m := panel.ReadUntil("message")
		if m["subject"] != "demo.temp" {
			t.Fatalf("message during the outage: %v", m)
		}
		if after(t, m, during) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no reading made during the outage reached the device within 10s")
		}
	}

	cluster.Start(t)
	t.Log("dgraph started again")
	waitReady(t, r, http.StatusOK, time.Minute)
	if status, body := r.Do("POST", "/api/v1/tenants/default/devices", map[string]any{"id": "late"}); status != http.StatusCreated {
		t.Errorf("create a device after the outage: %d %v", status, body)
	}
	if status, body := r.Do("GET", "/api/v1/tenants/default/junctions/demo", nil); status != http.StatusOK || body["source"] != "demo.>" {
		t.Errorf("the junction after the outage: %d %v; want it unchanged", status, body)
	}
	panel.ReadUntil("message") // the same connection, still served
}

// waitReady polls /ready until it answers want, and returns that answer.
func waitReady(t *testing.T, r *apptest.Relay, want int, within time.Duration) (int, map[string]any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		status, body := r.DoAs("", "GET", "/ready", nil)
		if status == want {
			return status, body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready did not answer %d within %s; last answer %d %v", want, within, status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func after(t *testing.T, m map[string]any, when time.Time) bool {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, m["time"].(string))
	if err != nil {
		t.Fatalf("message time %v: %v", m["time"], err)
	}
	return at.After(when)
}

// The relay reaches a Dgraph that requires mutual TLS with the files of
// store.dgraph.tls, for gRPC and for the HTTP endpoint where tenant
// namespaces are made; without the client certificate it does not start.
func TestDgraphOverMutualTLS(t *testing.T) {
	cluster := dgraphtest.Start(t, dgraphtest.Config{TLS: "mutual"})
	onDgraph, dir := apptest.OnDgraph(cluster), cluster.TLSDir()
	withTLS := func(c *config.Config) {
		onDgraph(c)
		c.Store.Dgraph.TLS = config.ClientTLS{CAFile: filepath.Join(dir, "ca.crt"),
			CertFile: filepath.Join(dir, "client.switchyard.crt"), KeyFile: filepath.Join(dir, "client.switchyard.key")}
	}
	r := apptest.Start(t, "", withTLS)
	if status, body := r.Do("POST", "/api/v1/tenants", map[string]any{"id": "acme"}); status != http.StatusCreated {
		t.Fatalf("create a tenant over TLS: %d %v", status, body)
	}
	if status, body := r.Do("POST", "/api/v1/tenants/acme/devices", map[string]any{"id": "panel"}); status != http.StatusCreated {
		t.Fatalf("create a device in the tenant's namespace over TLS: %d %v", status, body)
	}
	r.Stop()

	cfg := config.Default()
	cfg.Gateway.Listen, cfg.API.Listen = "127.0.0.1:0", "127.0.0.1:0"
	withTLS(&cfg)
	cfg.Store.Dgraph.TLS.CertFile, cfg.Store.Dgraph.TLS.KeyFile = "", ""
	cfg.Store.Dgraph.ConnectTimeout = 3 * time.Second
	_, err := app.Start(t.Context(), &cfg, app.Options{Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "cannot reach the cluster at "+cluster.GRPC) || !strings.Contains(err.Error(), "store.dgraph.tls") {
		t.Fatalf("start without the client certificate: %v; want it to say the cluster cannot be reached", err)
	}
	t.Logf("without the client certificate: %v", err)
}
