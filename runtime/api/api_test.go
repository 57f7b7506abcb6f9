package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/runtime/apptest"
	"github.com/switchyard/switchyard/runtime/config"
)

// wantError asserts the API's error shape: {"error":{"code","message","field"?}}.
func wantError(t *testing.T, status int, body map[string]any, wantStatus int, code, field string) {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	if status != wantStatus || !ok {
		t.Fatalf("want %d with an error object, got %d %v", wantStatus, status, body)
	}
	if e["code"] != code {
		t.Errorf("code %v, want %q (%v)", e["code"], code, e)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Errorf("error without a message: %v", e)
	}
	if field != "" && e["field"] != field {
		t.Errorf("field %v, want %q (%v)", e["field"], field, e)
	}
}

func TestOperatorAuth(t *testing.T) {
	r := apptest.Start(t, "", nil)
	for _, key := range []string{"", "wrong-key-wrong-key-wrong-key"} {
		s, b := r.DoAs(key, "GET", "/api/v1/tenants", nil)
		wantError(t, s, b, http.StatusUnauthorized, "unauthorized", "")
	}
	if s, b := r.Do("GET", "/api/v1/tenants", nil); s != http.StatusOK || len(b["tenants"].([]any)) != 1 {
		t.Fatalf("operator key: %d %v (want the default tenant)", s, b)
	}
}

func TestBadRequestsChangeNothing(t *testing.T) {
	r := apptest.Start(t, "", func(c *config.Config) { c.API.MaxBodySize = 4 << 10 })
	r.CreateDevice("default", "d1", nil)
	r.CreateKey("default", "k1")
	devices := "/api/v1/tenants/default/devices"
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code, field        string
	}{
		{"malformed json", "POST", devices, `{"id":`, 400, "invalid_json", ""},
		{"not an object", "POST", devices, `[1,2]`, 400, "invalid_json", ""},
		{"empty body", "POST", devices, ``, 400, "invalid_body", ""},
		{"trailing data", "POST", devices, `{"id":"x"} {}`, 400, "invalid_json", ""},
		{"unknown field", "POST", devices, `{"id":"x","colour":"red"}`, 400, "unknown_field", "colour"},
		{"wrong type", "POST", devices, `{"id":42}`, 400, "invalid_field", "id"},
		{"wrong label type", "POST", devices, `{"id":"x","labels":{"a":1}}`, 400, "invalid_field", "labels"},
		{"bad id", "POST", devices, `{"id":"Not Valid"}`, 400, "invalid_field", "id"},
		{"missing id", "POST", devices, `{}`, 400, "invalid_field", "id"},
		{"bad label key", "POST", devices, `{"id":"x","labels":{"Bad Key":"v"}}`, 400, "invalid_field", "labels"},
		{"duplicate", "POST", devices, `{"id":"d1"}`, 409, "device_exists", ""},
		{"too large", "POST", devices, `{"id":"x","name":"` + strings.Repeat("n", 5000) + `"}`, 413, "body_too_large", ""},
		{"unknown tenant", "POST", "/api/v1/tenants/nope/devices", `{"id":"x"}`, 404, "tenant_not_found", ""},
		{"unknown device", "GET", devices + "/nope", nil, 404, "device_not_found", ""},
		{"patch unknown", "PATCH", devices + "/nope", `{"name":"x"}`, 404, "device_not_found", ""},
		{"patch bad revoked", "PATCH", devices + "/d1", `{"revoked":"yes"}`, 400, "invalid_field", "revoked"},
		{"message not connected", "POST", devices + "/d1/messages", `{"subject":"a.b","payload":1}`, 409, "device_not_connected", ""},
		{"message wildcard subject", "POST", devices + "/d1/messages", `{"subject":"a.*","payload":1}`, 400, "invalid_field", "subject"},
		{"message no payload", "POST", devices + "/d1/messages", `{"subject":"a.b"}`, 400, "invalid_field", "payload"},
		{"tenant bad id", "POST", "/api/v1/tenants", `{"id":"UPPER"}`, 400, "invalid_field", "id"},
		{"tenant duplicate", "POST", "/api/v1/tenants", `{"id":"default"}`, 409, "tenant_exists", ""},
		{"delete default tenant", "DELETE", "/api/v1/tenants/default", nil, 409, "tenant_protected", ""},
		{"tenant id mismatch", "PUT", "/api/v1/tenants/default", `{"id":"other"}`, 400, "invalid_field", "id"},
		{"junction no targets", "POST", "/api/v1/tenants/default/junctions", `{"id":"j","source":"a.b","targets":[]}`, 400, "invalid_field", "targets"},
		{"junction bad source", "POST", "/api/v1/tenants/default/junctions", `{"id":"j","source":"a..b","targets":[{"device":"d1"}]}`, 400, "invalid_field", "source"},
		{"junction two targets in one", "POST", "/api/v1/tenants/default/junctions", `{"id":"j","source":"a","targets":[{"device":"d1","broker":"b"}]}`, 400, "invalid_field", "targets[0]"},
		{"junction foreign tenant", "POST", "/api/v1/tenants/default/junctions", `{"tenant":"other","id":"j","source":"a","targets":[{"device":"d1"}]}`, 400, "invalid_field", "tenant"},
		{"junction id mismatch", "PUT", "/api/v1/tenants/default/junctions/j", `{"id":"k","source":"a","targets":[{"device":"d1"}]}`, 400, "invalid_field", "id"},
		{"junction unknown", "GET", "/api/v1/tenants/default/junctions/nope", nil, 404, "junction_not_found", ""},
		{"plugin bad use", "POST", "/api/v1/tenants/default/plugins", `{"id":"p","use":"filters.x","runtime":"wasm"}`, 400, "invalid_field", "use"},
		{"plugin bad runtime", "POST", "/api/v1/tenants/default/plugins", `{"id":"p","use":"transforms.x","runtime":"docker"}`, 400, "invalid_field", "runtime"},
		{"plugin config not object", "POST", "/api/v1/tenants/default/plugins", `{"id":"p","use":"transforms.x","runtime":"wasm","config":[1]}`, 400, "invalid_field", "config"},
		{"key unknown field", "POST", "/api/v1/tenants/default/keys", `{"id":"k","secret":"mine"}`, 400, "unknown_field", "secret"},
		{"key bad id", "POST", "/api/v1/tenants/default/keys", `{"id":"Bad Key"}`, 400, "invalid_field", "id"},
		{"key missing id", "POST", "/api/v1/tenants/default/keys", `{"name":"ci"}`, 400, "invalid_field", "id"},
		{"key wrong type", "POST", "/api/v1/tenants/default/keys", `{"id":"k","name":7}`, 400, "invalid_field", "name"},
		{"key duplicate", "POST", "/api/v1/tenants/default/keys", `{"id":"k1"}`, 409, "key_exists", ""},
		{"key unknown", "GET", "/api/v1/tenants/default/keys/nope", nil, 404, "key_not_found", ""},
		{"key rotate unknown", "POST", "/api/v1/tenants/default/keys/nope/rotate", nil, 404, "key_not_found", ""},
		{"key delete unknown", "DELETE", "/api/v1/tenants/default/keys/nope", nil, 404, "key_not_found", ""},
		{"key unknown tenant", "POST", "/api/v1/tenants/nope/keys", `{"id":"k"}`, 404, "tenant_not_found", ""},
		{"unknown route", "GET", "/api/v1/nothing-here", nil, 404, "route_not_found", ""},
		{"wrong method", "PATCH", "/api/v1/tenants", `{}`, 405, "method_not_allowed", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, b := r.Do(c.method, c.path, c.body)
			wantError(t, s, b, c.status, c.code, c.field)
		})
	}

	// Nothing above changed the store: one tenant, one device, one key, no
	// junctions or plugins.
	for path, n := range map[string]int{
		"/api/v1/tenants": 1, devices: 1, "/api/v1/tenants/default/keys": 1,
		"/api/v1/tenants/default/junctions": 0, "/api/v1/tenants/default/plugins": 0,
	} {
		_, b := r.Do("GET", path, nil)
		for _, v := range b {
			if got := len(v.([]any)); got != n {
				t.Errorf("%s: %d records after bad requests, want %d: %v", path, got, n, b)
			}
		}
	}

	t.Run("content type", func(t *testing.T) {
		req, _ := http.NewRequest("POST", r.API+devices, strings.NewReader(`id=x`))
		req.Header.Set("Authorization", "Bearer "+apptest.OperatorKey)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(string(raw), `"unsupported_media_type"`) {
			t.Fatalf("form body: %d %s", resp.StatusCode, raw)
		}
	})
}

// stampModule is a small WASM transform (see runtime/host/testdata).
const stampModule = "../host/testdata/stamp_v1.wasm"

func readStamp(t *testing.T) (code []byte, sum string) {
	t.Helper()
	code, err := os.ReadFile(stampModule)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(code)
	return code, hex.EncodeToString(s[:])
}

func TestRecordsCRUD(t *testing.T) {
	r := apptest.Start(t, "", nil)
	stamp, stampSum := readStamp(t)
	if s, b := r.Do("POST", "/api/v1/tenants", map[string]any{"id": "acme", "name": "Acme"}); s != http.StatusCreated || b["name"] != "Acme" {
		t.Fatalf("create tenant: %d %v", s, b)
	}
	base := "/api/v1/tenants/acme"
	steps := []struct {
		method, path string
		body         any
		status       int
		check        func(map[string]any) bool
	}{
		{"POST", base + "/junctions", map[string]any{"id": "j1", "source": "device.>", "targets": []any{map[string]any{"device": "x"}}}, 201,
			func(b map[string]any) bool { return b["tenant"] == "acme" && b["enabled"] == false }},
		{"PUT", base + "/junctions/j1", map[string]any{"enabled": true, "source": "device.a.>", "targets": []any{map[string]any{"device": "x"}}}, 200,
			func(b map[string]any) bool {
				return b["id"] == "j1" && b["enabled"] == true && b["source"] == "device.a.>"
			}},
		{"GET", base + "/junctions", nil, 200, func(b map[string]any) bool { return len(b["junctions"].([]any)) == 1 }},
		{"POST", base + "/modules?sha256=" + strings.Repeat("0", 64), apptest.WASM(stamp), 422, func(b map[string]any) bool {
			return b["error"].(map[string]any)["code"] == "sha256_mismatch"
		}},
		{"GET", base + "/modules", nil, 200, func(b map[string]any) bool { return len(b["modules"].([]any)) == 0 }},
		{"POST", base + "/modules?sha256=" + strings.ToUpper(stampSum), apptest.WASM(stamp), 201, func(b map[string]any) bool { return b["sha256"] == stampSum && b["kind"] == "wasm" }},
		{"POST", base + "/modules", apptest.WASM(stamp), 200, func(b map[string]any) bool { return b["sha256"] == stampSum }},
		{"POST", base + "/plugins", map[string]any{"id": "stamp", "use": "transforms.stamp", "runtime": "wasm", "module": stampSum, "config": map[string]any{"factor": 2}}, 201,
			func(b map[string]any) bool {
				return b["plugin"].(map[string]any)["config"].(map[string]any)["factor"] == 2.0 && b["generation"].(map[string]any)["state"] == "active"
			}},
		{"GET", base + "/plugins/stamp", nil, 200, func(b map[string]any) bool { return b["use"] == "transforms.stamp" }},
		{"DELETE", base + "/modules/" + stampSum, nil, 409, nil}, // in use
		{"DELETE", base + "/plugins/stamp", nil, 200, nil},
		{"GET", base + "/plugins/stamp", nil, 404, nil},
		{"DELETE", base + "/modules/" + stampSum, nil, 204, nil},
		{"GET", base + "/modules", nil, 200, func(b map[string]any) bool { return len(b["modules"].([]any)) == 0 }},
		{"PUT", base, map[string]any{"name": "Acme Corp"}, 200, func(b map[string]any) bool { return b["name"] == "Acme Corp" }},
		{"DELETE", base, nil, 204, nil},
		{"GET", base + "/junctions", nil, 404, nil},
		{"GET", "/api/v1/tenants/acme", nil, 404, nil},
	}
	for i, s := range steps {
		status, body := r.Do(s.method, s.path, s.body)
		if status != s.status || (s.check != nil && !s.check(body)) {
			t.Fatalf("step %d %s %s: %d %v", i, s.method, s.path, status, body)
		}
	}
}

func TestOperationalEndpoints(t *testing.T) {
	r := apptest.Start(t, "", nil)
	r.Connect(r.CreateDevice("default", "d1", nil))

	s, b := r.DoAs("", "GET", "/health", nil)
	if s != http.StatusOK || b["status"] != "ok" || b["connections"] != 1.0 || b["uptime_seconds"] == nil {
		t.Fatalf("/health: %d %v", s, b)
	}
	s, b = r.DoAs("", "GET", "/ready", nil)
	if s != http.StatusOK || b["checks"].(map[string]any)["store"] != "ok" {
		t.Fatalf("/ready: %d %v", s, b)
	}
	_, _, _ = r.Dial("sydev_wrong") // counted as a refused handshake
	resp, err := http.Get(r.API + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		"switchyard_gateway_connections 1",
		`switchyard_gateway_handshakes_refused_total{reason=`,
		`switchyard_gateway_frames_in_total{type="hello"} 1`,
		`switchyard_gateway_frames_out_total{type="welcome"} 1`,
		"switchyard_gateway_send_dropped_total",
		`switchyard_api_requests_total{code="201",method="POST",route="/api/v1/tenants/:tenant/devices"} 1`,
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
