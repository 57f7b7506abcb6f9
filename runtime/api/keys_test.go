package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/runtime/apptest"
)

func toJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// wantWorks asserts that key may read its tenant.
func wantWorks(t *testing.T, r *apptest.Relay, key, tenant string) {
	t.Helper()
	if s, b := r.DoAs(key, "GET", "/api/v1/tenants/"+tenant+"/devices", nil); s != http.StatusOK {
		t.Fatalf("key of %q on its tenant: %d %v", tenant, s, b)
	}
}

// wantRefused asserts that key is no longer accepted.
func wantRefused(t *testing.T, r *apptest.Relay, key, tenant string) {
	t.Helper()
	s, b := r.DoAs(key, "GET", "/api/v1/tenants/"+tenant+"/devices", nil)
	wantError(t, s, b, http.StatusUnauthorized, "unauthorized", "")
}

// A tenant key is shown once, never listed, works at once, and stops
// working the moment it is rotated or revoked, or its tenant deleted; keys
// survive a restart.
func TestTenantKeyLifecycle(t *testing.T) {
	dir := t.TempDir()
	r := apptest.Start(t, dir, nil)
	if s, b := r.Do("POST", "/api/v1/tenants", map[string]any{"id": "acme"}); s != http.StatusCreated {
		t.Fatalf("create tenant: %d %v", s, b)
	}
	keys := "/api/v1/tenants/acme/keys"
	s, b := r.Do("POST", keys, map[string]any{"id": "ci", "name": "CI deploys"})
	if s != http.StatusCreated {
		t.Fatalf("create key: %d %v", s, b)
	}
	key, _ := b["key"].(string)
	view, _ := b["api_key"].(map[string]any)
	if !strings.HasPrefix(key, "sytk_") || view["id"] != "ci" || view["tenant"] != "acme" || view["name"] != "CI deploys" || view["created_at"] == nil {
		t.Fatalf("create key answer: %v", b)
	}
	wantWorks(t, r, key, "acme")

	for _, path := range []string{keys, keys + "/ci"} {
		s, b := r.DoAs(key, "GET", path, nil)
		if s != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, s, b)
		}
		if raw := strings.ToLower(toJSON(t, b)); strings.Contains(raw, "hash") || strings.Contains(raw, "sytk_") {
			t.Errorf("GET %s shows the key or its hash: %s", path, raw)
		}
	}

	s, b = r.DoAs(key, "POST", keys+"/ci/rotate", nil)
	rotated, _ := b["key"].(string)
	if s != http.StatusOK || !strings.HasPrefix(rotated, "sytk_") || rotated == key {
		t.Fatalf("rotate: %d %v", s, b)
	}
	wantRefused(t, r, key, "acme")
	wantWorks(t, r, rotated, "acme")

	r.Stop()
	r = apptest.Start(t, dir, nil)
	wantWorks(t, r, rotated, "acme")

	other := r.CreateKey("acme", "other")
	if s, b := r.DoAs(other, "DELETE", keys+"/ci", nil); s != http.StatusNoContent {
		t.Fatalf("revoke: %d %v", s, b)
	}
	wantRefused(t, r, rotated, "acme")
	wantWorks(t, r, other, "acme")

	if s, b := r.Do("DELETE", "/api/v1/tenants/acme", nil); s != http.StatusNoContent {
		t.Fatalf("delete tenant: %d %v", s, b)
	}
	if s, b := r.Do("POST", "/api/v1/tenants", map[string]any{"id": "acme"}); s != http.StatusCreated {
		t.Fatalf("create the tenant again: %d %v", s, b)
	}
	wantRefused(t, r, other, "acme")
}

// What a tenant key may call: its own tenant's routes and the plugin list;
// tenants' management needs the operator key; another tenant looks like one
// that does not exist.
func TestTenantKeyAccess(t *testing.T) {
	r := apptest.Start(t, "", nil)
	for _, id := range []string{"acme", "globex"} {
		if s, b := r.Do("POST", "/api/v1/tenants", map[string]any{"id": id}); s != http.StatusCreated {
			t.Fatalf("create tenant %s: %d %v", id, s, b)
		}
	}
	key := r.CreateKey("acme", "k")
	stamp, stampSum := readStamp(t)
	cases := []struct {
		method, path string
		body         any
		status       int
		code         string
		message      string // "" for any
	}{
		{"GET", "/api/v1/tenants/acme", nil, 200, "", ""},
		{"GET", "/api/v1/tenants/acme/sessions", nil, 200, "", ""},
		{"GET", "/api/v1/plugins", nil, 200, "", ""},
		{"GET", "/api/v1/tenants", nil, 403, "forbidden", "GET /api/v1/tenants needs an operator key: a tenant key manages only its own tenant"},
		{"POST", "/api/v1/tenants", map[string]any{"id": "mine"}, 403, "forbidden", ""},
		{"PUT", "/api/v1/tenants/acme", map[string]any{"name": "x"}, 403, "forbidden", "PUT /api/v1/tenants/:tenant needs an operator key: a tenant key manages only its own tenant"},
		{"DELETE", "/api/v1/tenants/acme", nil, 403, "forbidden", ""},
		{"GET", "/api/v1/tenants/globex", nil, 404, "tenant_not_found", `tenant "globex" not found`},
		{"GET", "/api/v1/tenants/globex/devices", nil, 404, "tenant_not_found", `tenant "globex" not found`},
		{"POST", "/api/v1/tenants/globex/keys", map[string]any{"id": "mine"}, 404, "tenant_not_found", `tenant "globex" not found`},
		{"GET", "/api/v1/tenants/ghost/devices", nil, 404, "tenant_not_found", `tenant "ghost" not found`},
		{"POST", "/api/v1/tenants/acme/plugins", map[string]any{"id": "p1", "use": "brokers.mqtt", "runtime": "process"}, 403, "forbidden",
			`runtime "process" needs an operator key: it runs with the host's privileges; a tenant key may declare wasm instances only`},
		{"POST", "/api/v1/tenants/acme/plugins", map[string]any{"id": "p2", "use": "brokers.mqtt", "runtime": "builtin"}, 403, "forbidden", ""},
		{"POST", "/api/v1/tenants/acme/modules", apptest.WASM(stamp), 201, "", ""},
		{"POST", "/api/v1/tenants/acme/modules?kind=process", apptest.WASM(stamp), 403, "forbidden", ""},
		{"POST", "/api/v1/tenants/acme/modules", map[string]any{"path": stampModule, "sha256": stampSum, "kind": "wasm"}, 403, "forbidden", ""},
		{"POST", "/api/v1/tenants/acme/plugins", map[string]any{"id": "p3", "use": "transforms.stamp", "runtime": "wasm", "module": stampSum}, 201, "", ""},
		{"PUT", "/api/v1/tenants/acme/plugins/p3", map[string]any{"use": "transforms.stamp", "runtime": "builtin"}, 403, "forbidden", ""},
		{"POST", "/api/v1/reload", nil, 403, "forbidden", ""},
		{"POST", "/api/v1/generations/rollback", nil, 403, "forbidden", ""},
		{"GET", "/api/v1/tenants/globex/generations", nil, 404, "tenant_not_found", `tenant "globex" not found`},
		{"GET", "/api/v1/tenants/globex/modules", nil, 404, "tenant_not_found", `tenant "globex" not found`},
		{"GET", "/api/v1/nothing-here", nil, 404, "route_not_found", ""},
		{"PATCH", "/api/v1/tenants/globex", map[string]any{}, 405, "method_not_allowed", ""},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			s, b := r.DoAs(key, c.method, c.path, c.body)
			if c.code == "" {
				if s != c.status {
					t.Fatalf("%d %v, want %d", s, b, c.status)
				}
				return
			}
			wantError(t, s, b, c.status, c.code, "")
			if msg := b["error"].(map[string]any)["message"]; c.message != "" && msg != c.message {
				t.Errorf("message %q, want %q", msg, c.message)
			}
		})
	}
	// The refused calls changed nothing.
	if _, b := r.Do("GET", "/api/v1/tenants/globex/keys", nil); len(b["keys"].([]any)) != 0 {
		t.Errorf("globex has keys after refused calls: %v", b)
	}
	if _, b := r.Do("GET", "/api/v1/tenants", nil); len(b["tenants"].([]any)) != 3 {
		t.Errorf("tenants after refused calls: %v", b)
	}
	if _, b := r.Do("GET", "/api/v1/tenants/acme/plugins/p3", nil); b["runtime"] != "wasm" {
		t.Errorf("plugin p3 after a refused update: %v", b)
	}
	if s, b := r.Do("GET", "/api/v1/tenants/acme/plugins/p1", nil); s != http.StatusNotFound {
		t.Errorf("plugin p1, refused to the tenant key: %d %v", s, b)
	}
	// The operator may declare what runs with the host's privileges.
	// The operator may declare what runs with the host's privileges: this
	// test binary has no built-in plugins, so the host refuses the instance
	// itself, and the record is not kept.
	s, b := r.Do("POST", "/api/v1/tenants/acme/plugins", map[string]any{"id": "p1", "use": "brokers.webhook", "runtime": "builtin"})
	wantError(t, s, b, http.StatusUnprocessableEntity, "plugin_refused", "")
	if msg := b["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "brokers.webhook is not built into this relay") {
		t.Errorf("refusal %q does not say why", msg)
	}
	if s, b := r.Do("GET", "/api/v1/tenants/acme/plugins/p1", nil); s != http.StatusNotFound {
		t.Errorf("plugin p1, refused by the host: %d %v", s, b)
	}
}
