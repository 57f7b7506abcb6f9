package app_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/runtime/apptest"
	"github.com/switchyard/switchyard/runtime/config"
)

// readStamp returns the stamp module of version v and its sha256.
func readStamp(t *testing.T, v int) (apptest.WASM, string) {
	t.Helper()
	path := map[int]string{1: "../host/testdata/stamp_v1.wasm", 2: "../host/testdata/stamp_v2.wasm"}[v]
	code, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return apptest.WASM(code), fileSHA256(path)
}

// A tenant uploads two versions of a transform, declares an instance,
// replaces its module, lists the generations with what changed, rolls
// back, and removes it — with its own key, and with no effect on another
// tenant. Refused changes leave everything as it was.
func TestInstancesThroughTheAPI(t *testing.T) {
	r := apptest.Start(t, "", func(c *config.Config) {
		c.Plugins = []config.Plugin{{ID: "filed", Tenant: "default", Use: "transforms.stamp", Runtime: "wasm",
			Module: "../host/testdata/stamp_v1.wasm"}}
	})
	for _, id := range []string{"acme", "globex"} {
		if s, b := r.Do("POST", "/api/v1/tenants", map[string]any{"id": id}); s != http.StatusCreated {
			t.Fatalf("create tenant %s: %d %v", id, s, b)
		}
	}
	key := r.CreateKey("acme", "k")
	v1, sum1 := readStamp(t, 1)
	v2, sum2 := readStamp(t, 2)
	base := "/api/v1/tenants/acme"
	must := func(status int, method, path string, body any) map[string]any {
		t.Helper()
		s, b := r.DoAs(key, method, path, body)
		if s != status {
			t.Fatalf("%s %s: %d %v, want %d", method, path, s, b, status)
		}
		return b
	}
	must(http.StatusCreated, "POST", base+"/modules", v1)
	must(http.StatusCreated, "POST", base+"/modules", v2)
	if s, b := r.Do("GET", "/api/v1/tenants/globex/modules", nil); s != http.StatusOK || len(b["modules"].([]any)) != 0 {
		t.Fatalf("globex sees modules: %v", b)
	}

	// Declare, then replace the module.
	g := must(http.StatusCreated, "POST", base+"/plugins", map[string]any{"id": "stamp", "use": "transforms.stamp", "runtime": "wasm", "module": sum1})["generation"].(map[string]any)
	first := g["number"].(float64)
	g = must(http.StatusOK, "PUT", base+"/plugins/stamp", map[string]any{"use": "transforms.stamp", "runtime": "wasm", "module": sum2})["generation"].(map[string]any)
	if c := g["changes"].([]any)[0].(map[string]any); c["change"] != "replaced" || !strings.Contains(strings.Join(toStrings(c["fields"]), ","), "module") {
		t.Fatalf("replacing the module: %v", g)
	}
	if running := instance(t, r, key, "stamp"); running["module"] != sum2 || running["origin"] != "api" {
		t.Fatalf("running instance after the replace: %v", running)
	}

	// Refused changes: each names the problem and changes nothing.
	for _, tc := range []struct {
		name   string
		method string
		body   map[string]any
		status int
		code   string
		says   string
	}{
		{"module not uploaded here", "PUT", map[string]any{"use": "transforms.stamp", "runtime": "wasm", "module": strings.Repeat("ab", 32)},
			http.StatusUnprocessableEntity, "module_unavailable", "upload it"},
		{"bad limits", "PUT", map[string]any{"use": "transforms.stamp", "runtime": "wasm", "module": sum1, "limits": map[string]any{"memory": "12 parsecs"}},
			http.StatusUnprocessableEntity, "invalid_configuration", "limits.memory"},
		{"module lacks the kind's export", "PUT", map[string]any{"use": "collectors.stamp", "runtime": "wasm", "module": sum1, "interval": "1s"},
			http.StatusUnprocessableEntity, "plugin_refused", "sy_collect"},
		{"declared in the file", "PUT", map[string]any{"use": "transforms.stamp", "runtime": "wasm", "module": sum1},
			http.StatusConflict, "declared_in_file", "declared in the configuration file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, k := base+"/plugins/stamp", key
			if tc.code == "declared_in_file" {
				path, k = "/api/v1/tenants/default/plugins/filed", apptest.OperatorKey
			}
			s, b := r.DoAs(k, tc.method, path, tc.body)
			wantErrorCode(t, s, b, tc.status, tc.code)
			if msg := b["error"].(map[string]any)["message"].(string); !strings.Contains(msg, tc.says) && !strings.Contains(strings.Join(toStrings(b["error"].(map[string]any)["problems"]), " "), tc.says) {
				t.Errorf("the refusal does not say %q: %v", tc.says, b)
			}
			if running := instance(t, r, key, "stamp"); running["module"] != sum2 {
				t.Errorf("running instance after a refused change: %v", running)
			}
			if rec := must(http.StatusOK, "GET", base+"/plugins/stamp", nil); rec["module"] != sum2 {
				t.Errorf("stored instance after a refused change: %v", rec)
			}
		})
	}
	s, b := r.DoAs(key, "DELETE", base+"/modules/"+sum2, nil)
	wantErrorCode(t, s, b, http.StatusConflict, "module_in_use")

	// The tenant's history holds its own changes only, newest first.
	gens := must(http.StatusOK, "GET", base+"/generations", nil)["generations"].([]any)
	var states []string
	for _, g := range gens {
		g := g.(map[string]any)
		states = append(states, g["state"].(string))
		for _, c := range g["changes"].([]any) {
			if c.(map[string]any)["tenant"] != "acme" {
				t.Errorf("acme's history shows %v", c)
			}
		}
	}
	if len(gens) < 3 || states[0] != "failed" || !strings.Contains(strings.Join(states, ","), "active") {
		t.Errorf("acme's generations: %v", states)
	}
	if s, b := r.DoAs(key, "GET", "/api/v1/generations", nil); s != http.StatusOK || len(toList(b["generations"])) != len(gens) {
		t.Errorf("GET /api/v1/generations with acme's key: %d %v", s, b)
	}
	if _, b := r.Do("GET", "/api/v1/tenants/globex/generations", nil); b["generations"] == nil || len(toList(b["generations"])) != 0 {
		t.Errorf("globex's history shows acme's changes: %v", b)
	}

	// Roll back: the module of before, in the store too.
	g = must(http.StatusOK, "POST", base+"/generations/rollback", nil)["generation"].(map[string]any)
	if !strings.HasPrefix(g["cause"].(string), "rollback to ") || g["state"] != "active" {
		t.Fatalf("rollback: %v", g)
	}
	if running := instance(t, r, key, "stamp"); running["module"] != sum1 {
		t.Fatalf("running instance after the rollback: %v", running)
	}
	if rec := must(http.StatusOK, "GET", base+"/plugins/stamp", nil); rec["module"] != sum1 {
		t.Fatalf("stored instance after the rollback: %v", rec)
	}
	// To a generation by number: the one before the instance existed.
	must(http.StatusOK, "POST", base+"/generations/rollback", map[string]any{"to": first - 1})
	if s, b := r.DoAs(key, "GET", base+"/plugins/stamp", nil); s != http.StatusNotFound {
		t.Fatalf("instance after rolling back to before it: %d %v", s, b)
	}
	if _, b := r.Do("GET", "/api/v1/plugins", nil); len(b["plugins"].([]any)) != 1 {
		t.Fatalf("running after the rollback: %v (the file's instance alone)", b)
	}

	// Declare again, then remove.
	must(http.StatusCreated, "POST", base+"/plugins", map[string]any{"id": "stamp", "use": "transforms.stamp", "runtime": "wasm", "module": sum2})
	g = must(http.StatusOK, "DELETE", base+"/plugins/stamp", nil)["generation"].(map[string]any)
	if c := g["changes"].([]any)[0].(map[string]any); c["change"] != "removed" {
		t.Fatalf("delete: %v", g)
	}
	must(http.StatusNoContent, "DELETE", base+"/modules/"+sum2, nil)
	if s, b := r.DoAs(key, "POST", "/api/v1/generations/rollback", nil); s != http.StatusForbidden {
		t.Fatalf("a tenant key rolling back every tenant: %d %v", s, b)
	}
}

// instance is the running instance id as the caller's key lists it.
func instance(t testing.TB, r *apptest.Relay, key, id string) map[string]any {
	t.Helper()
	_, b := r.DoAs(key, "GET", "/api/v1/plugins", nil)
	for _, p := range b["plugins"].([]any) {
		if p := p.(map[string]any); p["id"] == id {
			return p
		}
	}
	t.Fatalf("instance %q not running: %v", id, b)
	return nil
}

func toStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, s := range list {
		out = append(out, s.(string))
	}
	return out
}

func toList(v any) []any {
	list, _ := v.([]any)
	return list
}

// Deleting a tenant stops its API-declared instances and removes its
// modules; another tenant's keep running.
func TestDeletedTenantsInstancesStop(t *testing.T) {
	r := apptest.Start(t, "", nil)
	v1, sum1 := readStamp(t, 1)
	for _, id := range []string{"acme", "globex"} {
		if s, b := r.Do("POST", "/api/v1/tenants", map[string]any{"id": id}); s != http.StatusCreated {
			t.Fatalf("create tenant %s: %d %v", id, s, b)
		}
		if s, b := r.Do("POST", "/api/v1/tenants/"+id+"/modules", v1); s != http.StatusCreated {
			t.Fatalf("upload to %s: %d %v", id, s, b)
		}
		if s, b := r.Do("POST", "/api/v1/tenants/"+id+"/plugins", map[string]any{"id": "stamp", "use": "transforms.stamp", "runtime": "wasm", "module": sum1}); s != http.StatusCreated {
			t.Fatalf("declare in %s: %d %v", id, s, b)
		}
	}
	if s, b := r.Do("DELETE", "/api/v1/tenants/globex", nil); s != http.StatusNoContent {
		t.Fatalf("delete globex: %d %v", s, b)
	}
	_, b := r.Do("GET", "/api/v1/plugins", nil)
	var tenants []string
	for _, p := range b["plugins"].([]any) {
		tenants = append(tenants, p.(map[string]any)["tenant"].(string))
	}
	if strings.Join(tenants, ",") != "acme" {
		t.Fatalf("running after globex was deleted: %v", b)
	}
	if s, b := r.Do("POST", "/api/v1/tenants", map[string]any{"id": "globex"}); s != http.StatusCreated {
		t.Fatalf("create globex again: %d %v", s, b)
	}
	if _, b := r.Do("GET", "/api/v1/tenants/globex/modules", nil); len(toList(b["modules"])) != 0 {
		t.Fatalf("a new globex finds the old one's modules: %v", b)
	}
}

// An API-declared instance that cannot be loaded at start (here its module
// was damaged on disk) does not keep the relay down: it starts with the
// file's instances, and the refused attempt is in the history.
func TestStartWithoutABrokenAPIInstance(t *testing.T) {
	dir := t.TempDir()
	withFile := func(c *config.Config) {
		c.Plugins = []config.Plugin{{ID: "filed", Tenant: "default", Use: "transforms.stamp", Runtime: "wasm",
			Module: "../host/testdata/stamp_v1.wasm"}}
	}
	r := apptest.Start(t, dir, withFile)
	v2, sum2 := readStamp(t, 2)
	if s, b := r.Do("POST", "/api/v1/tenants/default/modules", v2); s != http.StatusCreated {
		t.Fatalf("upload: %d %v", s, b)
	}
	if s, b := r.Do("POST", "/api/v1/tenants/default/plugins", map[string]any{"id": "uploaded", "use": "transforms.stamp", "runtime": "wasm", "module": sum2}); s != http.StatusCreated {
		t.Fatalf("declare: %d %v", s, b)
	}
	r.Stop()
	module := filepath.Join(dir, "modules", "default", sum2+".wasm")
	if err := os.WriteFile(module, []byte("\x00asm\x01\x00\x00\x00damaged"), 0o600); err != nil {
		t.Fatal(err)
	}

	r = apptest.Start(t, dir, withFile)
	if running := instance(t, r, apptest.OperatorKey, "filed"); running["origin"] != "file" {
		t.Fatalf("the file's instance: %v", running)
	}
	_, b := r.Do("GET", "/api/v1/generations", nil)
	gens := toList(b["generations"])
	if len(gens) != 2 {
		t.Fatalf("generations after the start: %v", b)
	}
	failed, active := gens[1].(map[string]any), gens[0].(map[string]any)
	if failed["state"] != "failed" || !strings.Contains(failed["error"].(string), `plugin "uploaded"`) ||
		!strings.Contains(failed["error"].(string), "the file changed on disk") || active["state"] != "active" {
		t.Fatalf("want a refused start with every instance, then one with the file's: %v", gens)
	}
	if _, b := r.Do("GET", "/api/v1/plugins", nil); len(toList(b["plugins"])) != 1 {
		t.Fatalf("running: %v", b)
	}
}
