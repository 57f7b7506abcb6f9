package app_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/runtime/apptest"
	"github.com/switchyard/switchyard/runtime/config"
)

// The tenants of the isolation matrix. Ids of records made in A start with
// "a-", in B with "b-".
const (
	tenantA = "tenant-a"
	tenantB = "tenant-b"
	ghost   = "ghost" // never created
)

// routeCall is how the matrix calls one route.
type routeCall struct {
	// body is the request body (nil: none) for the route's record id, or a
	// fresh id when the route creates a record.
	body func(id string) any
	// own is the status A's key gets on its own tenant and records; 403 marks
	// an operator-only route.
	own int
}

// matrix classifies every /api/ route of the API. A route missing here
// fails TestIsolationMatrix: add it with how to call it.
var matrix = map[string]routeCall{
	"GET /api/v1/plugins":                     {own: http.StatusOK},
	"POST /api/v1/reload":                     {own: http.StatusForbidden},
	"GET /api/v1/generations":                 {own: http.StatusOK},
	"POST /api/v1/generations/rollback":       {own: http.StatusForbidden},
	"GET /api/v1/tenants/:tenant/generations": {own: http.StatusOK},
	// A's history holds one generation (the start): nothing to roll back to.
	"POST /api/v1/tenants/:tenant/generations/rollback":       {own: http.StatusConflict},
	"GET /api/v1/tenants/:tenant/modules":                     {own: http.StatusOK},
	"POST /api/v1/tenants/:tenant/modules":                    {own: http.StatusCreated, body: moduleBody},
	"GET /api/v1/tenants/:tenant/modules/:id":                 {own: http.StatusOK},
	"DELETE /api/v1/tenants/:tenant/modules/:id":              {own: http.StatusNoContent},
	"GET /api/v1/tenants":                                     {own: http.StatusForbidden},
	"POST /api/v1/tenants":                                    {own: http.StatusForbidden, body: func(id string) any { return map[string]any{"id": id} }},
	"GET /api/v1/tenants/:tenant":                             {own: http.StatusOK},
	"PUT /api/v1/tenants/:tenant":                             {own: http.StatusForbidden, body: func(string) any { return map[string]any{"name": "renamed"} }},
	"DELETE /api/v1/tenants/:tenant":                          {own: http.StatusForbidden},
	"GET /api/v1/tenants/:tenant/devices":                     {own: http.StatusOK},
	"POST /api/v1/tenants/:tenant/devices":                    {own: http.StatusCreated, body: func(id string) any { return map[string]any{"id": id} }},
	"GET /api/v1/tenants/:tenant/devices/:id":                 {own: http.StatusOK},
	"PATCH /api/v1/tenants/:tenant/devices/:id":               {own: http.StatusOK, body: func(string) any { return map[string]any{"name": "patched"} }},
	"DELETE /api/v1/tenants/:tenant/devices/:id":              {own: http.StatusNoContent},
	"POST /api/v1/tenants/:tenant/devices/:id/token":          {own: http.StatusOK},
	"POST /api/v1/tenants/:tenant/devices/:id/messages":       {own: http.StatusConflict, body: func(string) any { return map[string]any{"subject": "a.b", "payload": 1} }},
	"GET /api/v1/tenants/:tenant/sessions":                    {own: http.StatusOK},
	"GET /api/v1/tenants/:tenant/junctions":                   {own: http.StatusOK},
	"POST /api/v1/tenants/:tenant/junctions":                  {own: http.StatusCreated, body: junctionBody},
	"GET /api/v1/tenants/:tenant/junctions/:id":               {own: http.StatusOK},
	"PUT /api/v1/tenants/:tenant/junctions/:id":               {own: http.StatusOK, body: junctionBody},
	"DELETE /api/v1/tenants/:tenant/junctions/:id":            {own: http.StatusNoContent},
	"GET /api/v1/tenants/:tenant/plugins":                     {own: http.StatusOK},
	"POST /api/v1/tenants/:tenant/plugins":                    {own: http.StatusCreated, body: pluginBody},
	"GET /api/v1/tenants/:tenant/plugins/:id":                 {own: http.StatusOK},
	"PUT /api/v1/tenants/:tenant/plugins/:id":                 {own: http.StatusOK, body: pluginBody},
	"DELETE /api/v1/tenants/:tenant/plugins/:id":              {own: http.StatusOK},
	"GET /api/v1/tenants/:tenant/keys":                        {own: http.StatusOK},
	"POST /api/v1/tenants/:tenant/keys":                       {own: http.StatusCreated, body: func(id string) any { return map[string]any{"id": id} }},
	"GET /api/v1/tenants/:tenant/keys/:id":                    {own: http.StatusOK},
	"POST /api/v1/tenants/:tenant/keys/:id/rotate":            {own: http.StatusOK},
	"DELETE /api/v1/tenants/:tenant/keys/:id":                 {own: http.StatusNoContent},
	"GET /api/v1/firmware/key":                                {own: http.StatusOK},
	"GET /api/v1/backup":                                      {own: http.StatusForbidden},
	"GET /api/v1/tenants/:tenant/devices/:id/firmware":        {own: http.StatusOK},
	"GET /api/v1/tenants/:tenant/firmware":                    {own: http.StatusOK},
	"POST /api/v1/tenants/:tenant/firmware":                   {own: http.StatusCreated, body: releaseBody},
	"GET /api/v1/tenants/:tenant/firmware/:model/:version":    {own: http.StatusOK},
	"DELETE /api/v1/tenants/:tenant/firmware/:model/:version": {own: http.StatusNoContent},
	"GET /api/v1/tenants/:tenant/rollouts":                    {own: http.StatusOK},
	"POST /api/v1/tenants/:tenant/rollouts":                   {own: http.StatusCreated, body: rolloutBody},
	"GET /api/v1/tenants/:tenant/rollouts/:id":                {own: http.StatusOK},
	"PATCH /api/v1/tenants/:tenant/rollouts/:id":              {own: http.StatusOK, body: func(string) any { return map[string]any{"percent": 20} }},
	"DELETE /api/v1/tenants/:tenant/rollouts/:id":             {own: http.StatusNoContent},
}

// releaseBody uploads a release of model "matrix" whose version is made
// from the id's number ("b-m7": 1.0.7), with the id as its image.
func releaseBody(id string) any {
	_, n, _ := strings.Cut(id, "-m")
	return apptest.NewForm([][2]string{{"model", "matrix"}, {"version", "1.0." + n}}, "image", []byte("image of "+id))
}

// rolloutBody starts a rollout of the release newMatrixRun uploads, to
// devices labelled with the rollout's id, so that rollouts never overlap.
func rolloutBody(id string) any {
	return map[string]any{"id": id, "model": "matrix", "version": "0.1.0", "percent": 10, "selector": map[string]string{"m": id}}
}

func junctionBody(id string) any {
	return map[string]any{"id": id, "source": "device.>", "targets": []any{map[string]any{"device": "x"}}}
}

// stampModule is a small WASM transform newMatrixRun uploads to both
// tenants, for the instances the matrix declares.
const stampModule = "../host/testdata/stamp_v1.wasm"

func pluginBody(id string) any {
	return map[string]any{"id": id, "use": "transforms.stamp", "runtime": "wasm", "module": fileSHA256(stampModule)}
}

// moduleBody is the stamp module made distinct by a custom section holding
// id: a module of its own, with a sha256 of its own.
func moduleBody(id string) any {
	code, err := os.ReadFile(stampModule)
	if err != nil {
		panic(err)
	}
	name := "matrix"
	payload := append([]byte{byte(len(name))}, name+id...)
	return apptest.WASM(append(code, append([]byte{0, byte(len(payload))}, payload...)...))
}

func fileSHA256(path string) string {
	code, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(code)
	return hex.EncodeToString(sum[:])
}

// isolationPlugins declares one running plugin instance in each tenant of
// the matrix, for the relay runIsolationMatrix is given.
func isolationPlugins(t *testing.T) func(*config.Config) {
	module := filepath.Join(apptest.Plugins(t), "transforms.scale.wasm")
	return func(c *config.Config) {
		for _, tenant := range []string{tenantA, tenantB} {
			c.Plugins = append(c.Plugins, config.Plugin{ID: "scale", Tenant: tenant, Use: "transforms.scale", Runtime: "wasm",
				Module: module, Config: map[string]any{"preset": "c_to_f"}})
		}
	}
}

func TestIsolationMatrix(t *testing.T) {
	r := apptest.Start(t, "", isolationPlugins(t))
	runIsolationMatrix(t, r, apptest.OperatorKey)
}

// runIsolationMatrix checks tenant isolation over every /api/ route of the
// relay r (started with isolationPlugins, on any store backend): with tenant
// A's key, B's tenant answers as a tenant that does not exist and changes
// nothing; A's own tenant answers as the operator's would, listing only A's
// records; operator-only routes are refused whatever the tenant; and A's
// device is A's alone.
func runIsolationMatrix(t *testing.T, r *apptest.Relay, operatorKey string) {
	m := newMatrixRun(t, r, operatorKey)
	seen := map[string]bool{}
	for _, route := range r.App.APIRoutes() {
		name := route.Method + " " + route.Path
		seen[name] = true
		call, ok := matrix[name]
		if !ok {
			t.Errorf("route %s is not in the isolation matrix: classify it", name)
			continue
		}
		t.Run(name, func(t *testing.T) { m.check(t, route.Method, route.Path, call) })
	}
	for name := range matrix {
		if !seen[name] {
			t.Errorf("the isolation matrix lists %s, which the API does not serve", name)
		}
	}
	t.Run("plugins of the caller only", m.checkPlugins)
	t.Run("device of A", m.checkDevice)
}

// matrixRun is one run of the matrix: the relay, the keys of A and B, and
// a counter for fresh record ids.
type matrixRun struct {
	r        *apptest.Relay
	operator string
	keyA     string
	n        int
}

func newMatrixRun(t *testing.T, r *apptest.Relay, operatorKey string) *matrixRun {
	t.Helper()
	m := &matrixRun{r: r, operator: operatorKey}
	for _, tenant := range []string{tenantA, tenantB} {
		m.must(t, http.StatusCreated, "POST", "/api/v1/tenants", map[string]any{"id": tenant})
	}
	code, err := os.ReadFile(stampModule)
	if err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{tenantA, tenantB} {
		m.must(t, http.StatusCreated, "POST", "/api/v1/tenants/"+tenant+"/modules", apptest.WASM(code))
	}
	for _, tenant := range []string{tenantA, tenantB} {
		m.must(t, http.StatusCreated, "POST", "/api/v1/tenants/"+tenant+"/firmware",
			apptest.NewForm([][2]string{{"model", "matrix"}, {"version", "0.1.0"}}, "image", []byte("rolled out in "+tenant)))
	}
	m.keyA = m.must(t, http.StatusCreated, "POST", "/api/v1/tenants/"+tenantA+"/keys", map[string]any{"id": "a-key"})["key"].(string)
	m.must(t, http.StatusCreated, "POST", "/api/v1/tenants/"+tenantB+"/keys", map[string]any{"id": "b-key"})
	return m
}

// must makes an operator call and fails the test unless it gets status.
func (m *matrixRun) must(t *testing.T, status int, method, path string, body any) map[string]any {
	t.Helper()
	s, b := m.r.DoAs(m.operator, method, path, body)
	if s != status {
		t.Fatalf("operator %s %s: %d %v, want %d", method, path, s, b, status)
	}
	return b
}

// answer is what the matrix compares of a response.
type answer struct {
	Status  int
	Code    string
	Message string
}

// target is a route filled in for one tenant.
type target struct {
	tenant, path string
	body         any
}

// fill makes a route's path and body for tenant, with id as the record of
// the path, or the new record's id for a create.
func fill(template, tenant, id string, call routeCall) target {
	tg := target{tenant: tenant, path: strings.NewReplacer(":tenant", tenant, ":id", id, ":model/:version", id).Replace(template)}
	if call.body != nil {
		tg.body = call.body(id)
	}
	return tg
}

// ask calls tg with key. The answer's message has the path's tenant id
// replaced, so that answers about different tenants compare.
func (m *matrixRun) ask(key, method string, tg target) (answer, map[string]any) {
	status, body := m.r.DoAs(key, method, tg.path, tg.body)
	e, _ := body["error"].(map[string]any)
	code, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	return answer{status, code, strings.ReplaceAll(msg, `"`+tg.tenant+`"`, `"<tenant>"`)}, body
}

// fixture returns the record id for a call of route path in the tenant
// prefix names ("a" or "b"): for a route with an :id, a record it creates
// first through its collection's create route; otherwise a fresh id for the
// call to create.
func (m *matrixRun) fixture(t *testing.T, path, prefix string) string {
	t.Helper()
	m.n++
	id := fmt.Sprintf("%s-m%d", prefix, m.n)
	collection, _, ok := strings.Cut(path, "/:id")
	if !ok {
		if collection, _, ok = strings.Cut(path, "/:model"); !ok {
			return id
		}
	}
	tenant := map[string]string{"a": tenantA, "b": tenantB}[prefix]
	create := matrix["POST "+collection]
	made := m.must(t, http.StatusCreated, "POST", strings.ReplaceAll(collection, ":tenant", tenant), create.body(id))
	switch {
	case made["manifest"] != nil:
		return made["model"].(string) + "/" + made["version"].(string) // a release is its model and version
	case made["sha256"] != nil:
		return made["sha256"].(string) // a module's id is its sha256
	}
	return id
}

// state is everything the operator sees of tenant.
func (m *matrixRun) state(t *testing.T, tenant string) string {
	t.Helper()
	var out []any
	for _, path := range []string{"", "/devices", "/junctions", "/plugins", "/keys", "/sessions", "/modules", "/generations", "/firmware", "/rollouts"} {
		out = append(out, m.must(t, http.StatusOK, "GET", "/api/v1/tenants/"+tenant+path, nil))
	}
	return fmt.Sprint(out...)
}

// check calls one route with A's key in B, in a tenant that does not
// exist, and in A.
func (m *matrixRun) check(t *testing.T, method, path string, call routeCall) {
	idB := m.fixture(t, path, "b")
	inB, inGhost := fill(path, tenantB, idB, call), fill(path, ghost, idB, call)
	before := m.state(t, tenantB)
	cross, _ := m.ask(m.keyA, method, inB)
	missing, _ := m.ask(m.keyA, method, inGhost)
	if cross != missing {
		t.Errorf("A's key in B: %+v; in a tenant that does not exist: %+v", cross, missing)
	}
	if after := m.state(t, tenantB); after != before {
		t.Errorf("A's key changed B:\n before %s\n after  %s", before, after)
	}
	switch {
	case call.own == http.StatusForbidden:
		if cross.Status != http.StatusForbidden || cross.Code != "forbidden" {
			t.Errorf("A's key on an operator-only route: %+v, want 403 forbidden", cross)
		}
	case strings.HasPrefix(path, "/api/v1/tenants/:tenant"):
		if cross.Status != http.StatusNotFound || cross.Code != "tenant_not_found" {
			t.Errorf("A's key in B: %+v, want 404 tenant_not_found", cross)
		}
		if op, _ := m.ask(m.operator, method, inGhost); op != missing {
			t.Errorf("A's key in a tenant that does not exist: %+v; the operator's: %+v", missing, op)
		}
	}
	m.checkOwn(t, method, path, call)
}

// checkOwn calls a route with A's key in A: it answers as the matrix says,
// and a listing holds A's records only, as the operator sees them.
func (m *matrixRun) checkOwn(t *testing.T, method, path string, call routeCall) {
	tg := fill(path, tenantA, m.fixture(t, path, "a"), call)
	got, body := m.ask(m.keyA, method, tg)
	if got.Status != call.own {
		t.Fatalf("A's key in A: %+v %v, want status %d", got, body, call.own)
	}
	if method != http.MethodGet || strings.Contains(path, ":id") || strings.Contains(path, ":model") || !strings.HasPrefix(path, "/api/v1/tenants/:tenant/") {
		return
	}
	if op := m.must(t, http.StatusOK, "GET", tg.path, nil); !reflect.DeepEqual(body, op) {
		t.Errorf("A's key lists %v; the operator lists %v", body, op)
	}
	for _, list := range body {
		for _, item := range list.([]any) {
			wantOwn(t, item.(map[string]any))
		}
	}
}

// wantOwn fails the test unless a listed item is A's.
func wantOwn(t *testing.T, item map[string]any) {
	t.Helper()
	tenant, hasTenant := item["tenant"]
	id, _ := item["id"].(string)
	device, _ := item["device"].(string)
	if hasTenant && tenant != tenantA || strings.HasPrefix(id, "b-") || strings.HasPrefix(device, "b-") {
		t.Errorf("A's key lists a record that is not A's: %v", item)
	}
}

// checkPlugins: the running instances A's key lists are A's, while the
// operator's list has B's too.
func (m *matrixRun) checkPlugins(t *testing.T) {
	all := m.must(t, http.StatusOK, "GET", "/api/v1/plugins", nil)["plugins"].([]any)
	if !slices.ContainsFunc(all, func(p any) bool { return p.(map[string]any)["tenant"] == tenantB }) {
		t.Fatalf("no running plugin instance of %s (start the relay with isolationPlugins): %v", tenantB, all)
	}
	status, body := m.r.DoAs(m.keyA, "GET", "/api/v1/plugins", nil)
	list, _ := body["plugins"].([]any)
	if status != http.StatusOK || len(list) == 0 {
		t.Fatalf("A's key: GET /api/v1/plugins: %d %v, want A's instances", status, body)
	}
	for _, p := range list {
		wantOwn(t, p.(map[string]any))
	}
}

// checkDevice: A's device, whose id B has too, is A's session; a message to
// B's device of that id never reaches it, one through A's key does.
func (m *matrixRun) checkDevice(t *testing.T) {
	tok := m.must(t, http.StatusCreated, "POST", "/api/v1/tenants/"+tenantA+"/devices", map[string]any{"id": "shared"})["token"].(string)
	m.must(t, http.StatusCreated, "POST", "/api/v1/tenants/"+tenantB+"/devices", map[string]any{"id": "shared"})
	d := m.r.Connect(tok)

	if sessions := m.must(t, http.StatusOK, "GET", "/api/v1/tenants/"+tenantB+"/sessions", nil)["sessions"].([]any); len(sessions) != 0 {
		t.Errorf("B has sessions: %v", sessions)
	}
	status, body := m.r.DoAs(m.keyA, "GET", "/api/v1/tenants/"+tenantA+"/devices/shared", nil)
	if status != http.StatusOK || body["tenant"] != tenantA || body["connected"] != true {
		t.Errorf("A's device, connected: %d %v", status, body)
	}
	msg := func(text string) map[string]any {
		return map[string]any{"subject": "display.text", "payload": map[string]any{"text": text}}
	}
	status, body = m.r.DoAs(m.operator, "POST", "/api/v1/tenants/"+tenantB+"/devices/shared/messages", msg("for B"))
	if status != http.StatusConflict || body["error"].(map[string]any)["code"] != "device_not_connected" {
		t.Errorf("message to B's device while A's is connected: %d %v, want 409 device_not_connected", status, body)
	}
	if status, body := m.r.DoAs(m.keyA, "POST", "/api/v1/tenants/"+tenantA+"/devices/shared/messages", msg("for A")); status != http.StatusAccepted {
		t.Fatalf("message to A's device with A's key: %d %v", status, body)
	}
	if f := d.ReadUntil("message"); f["payload"].(map[string]any)["text"] != "for A" {
		t.Errorf("A's device got %v, want the message for A", f)
	}
}

// Two tenants run the same collector instance id on the same subjects and
// route it to devices with the same labels: each device receives its own
// tenant's readings only (tenant A's sensor reads 0-1, B's 1000-2000).
func TestCollectorsStayInTheirTenant(t *testing.T) {
	module := filepath.Join(apptest.Plugins(t), "collectors.synthetic.wasm")
	ranges := map[string][2]float64{tenantA: {0, 1}, tenantB: {1000, 2000}}
	r := apptest.Start(t, "", func(c *config.Config) {
		for _, tenant := range []string{tenantA, tenantB} {
			c.Plugins = append(c.Plugins, config.Plugin{ID: "sensors", Tenant: tenant, Use: "collectors.synthetic", Runtime: "wasm",
				Module: module, Interval: 50 * time.Millisecond, Config: map[string]any{
					"subject_prefix": "home",
					"sensors": []any{map[string]any{"name": "temp", "kind": "ramp",
						"min": ranges[tenant][0], "max": ranges[tenant][1], "period": "1m"}},
				}})
			c.Junctions = append(c.Junctions, config.Junction{ID: "temps", Tenant: tenant, Source: "home.>",
				Targets: []config.Target{{Selector: map[string]string{"room": "kitchen"}}}})
		}
	})
	panels := map[string]*apptest.Device{}
	for _, tenant := range []string{tenantA, tenantB} {
		panels[tenant] = r.Connect(r.CreateDevice(tenant, "panel", map[string]string{"room": "kitchen"}))
	}
	for tenant, d := range panels {
		for range 10 {
			m := d.ReadUntil("message")
			v, _ := m["payload"].(map[string]any)["value"].(float64)
			if v < ranges[tenant][0] || v > ranges[tenant][1] {
				t.Fatalf("the panel of %s got %v, outside its tenant's range %v: another tenant's reading", tenant, m, ranges[tenant])
			}
		}
	}
}
