package catalog

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/graph/embedded"
	"github.com/switchyard/switchyard/runtime/gateway"
	"github.com/switchyard/switchyard/runtime/token"
)

func device(tenant, id string, revoked bool) (graph.Device, string) {
	secret, h := token.New(token.DevicePrefix)
	return graph.Device{Meta: graph.Meta{Tenant: tenant, ID: id}, Model: "m", Labels: map[string]string{"role": "display"}, TokenHash: h[:], Revoked: revoked}, secret
}

func TestAuthenticate(t *testing.T) {
	c := New()
	a, aTok := device("t1", "a", false)
	b, bTok := device("t2", "a", false) // same id, other tenant
	r, rTok := device("t1", "r", true)
	for _, d := range []graph.Device{a, b, r} {
		c.Put(d)
	}
	cases := []struct {
		name, token string
		tenant      string
		err         error
	}{
		{"device of t1", aTok, "t1", nil},
		{"same id in t2", bTok, "t2", nil},
		{"revoked", rTok, "", gateway.ErrRevoked},
		{"unknown", "sydev_nope", "", gateway.ErrUnknownToken},
		{"empty", "", "", gateway.ErrUnknownToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := c.Authenticate(tc.token)
			if !errors.Is(err, tc.err) || id.Tenant != tc.tenant {
				t.Fatalf("Authenticate = %+v, %v; want tenant %q, err %v", id, err, tc.tenant, tc.err)
			}
			if err == nil && (id.Device != "a" || id.Labels["role"] != "display") {
				t.Fatalf("identity %+v", id)
			}
		})
	}
}

func TestUpdatesReplaceAndForget(t *testing.T) {
	c := New()
	d, oldTok := device("t1", "a", false)
	c.Put(d)

	rotated, newTok := device("t1", "a", false)
	c.Put(rotated)
	if _, err := c.Authenticate(oldTok); !errors.Is(err, gateway.ErrUnknownToken) {
		t.Fatalf("old token after rotation: %v", err)
	}
	if _, err := c.Authenticate(newTok); err != nil {
		t.Fatalf("new token: %v", err)
	}
	rotated.Labels = map[string]string{"role": "sensor"}
	c.Put(rotated)
	if id, _ := c.Authenticate(newTok); id.Labels["role"] != "sensor" {
		t.Fatalf("labels not replaced: %+v", id)
	}

	c.Remove("t1", "a")
	if _, err := c.Authenticate(newTok); !errors.Is(err, gateway.ErrUnknownToken) || c.Len() != 0 {
		t.Fatalf("after Remove: %v, len %d", err, c.Len())
	}

	x, xTok := device("t1", "x", false)
	y, yTok := device("t2", "y", false)
	c.Put(x)
	c.Put(y)
	c.RemoveTenant("t1")
	if _, err := c.Authenticate(xTok); !errors.Is(err, gateway.ErrUnknownToken) {
		t.Fatalf("device of a removed tenant: %v", err)
	}
	if _, err := c.Authenticate(yTok); err != nil || c.Len() != 1 {
		t.Fatalf("other tenant's device after RemoveTenant: %v, len %d", err, c.Len())
	}
}

func TestPutCopiesLabels(t *testing.T) {
	c := New()
	d, tok := device("t1", "a", false)
	c.Put(d)
	d.Labels["role"] = "changed-after-put"
	if id, _ := c.Authenticate(tok); id.Labels["role"] != "display" {
		t.Fatalf("catalog aliases the caller's label map: %v", id.Labels)
	}
}

func TestLoad(t *testing.T) {
	store, err := embedded.Open(filepath.Join(t.TempDir(), "db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := t.Context()
	var tokens []string
	for _, tenant := range []string{"t1", "t2"} {
		if _, err := store.CreateTenant(ctx, graph.Tenant{ID: tenant}); err != nil {
			t.Fatal(err)
		}
		d, tok := device(tenant, "dev", false)
		if _, err := store.Tenant(tenant).Devices().Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok)
	}
	c, err := Load(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	for i, tok := range tokens {
		if id, err := c.Authenticate(tok); err != nil || id.Tenant != []string{"t1", "t2"}[i] {
			t.Fatalf("token %d: %+v %v", i, id, err)
		}
	}
}

func TestLabelSetsAreSharedAndReleased(t *testing.T) {
	c := New()
	var toks []string
	for _, id := range []string{"a", "b", "c"} {
		d, tok := device("t1", id, false) // all labelled role=display
		c.Put(d)
		toks = append(toks, tok)
	}
	odd, oddTok := device("t1", "odd", false)
	odd.Labels = map[string]string{"role": "display", "room": "lab"}
	c.Put(odd)
	if len(c.labels) != 2 {
		t.Fatalf("%d label sets for 2 distinct ones", len(c.labels))
	}
	a, _ := c.Authenticate(toks[0])
	b, _ := c.Authenticate(toks[1])
	if a.Labels["role"] != "display" || fmt.Sprintf("%p", a.Labels) != fmt.Sprintf("%p", b.Labels) {
		t.Fatal("equal label sets are not shared")
	}
	if id, _ := c.Authenticate(oddTok); id.Labels["room"] != "lab" || len(id.Labels) != 2 {
		t.Fatalf("distinct label set mixed up: %v", id.Labels)
	}
	c.Remove("t1", "odd")
	if len(c.labels) != 1 {
		t.Fatalf("label set of a removed device kept: %d sets", len(c.labels))
	}
	c.RemoveTenant("t1")
	if len(c.labels) != 0 {
		t.Fatalf("%d label sets left after the tenant went", len(c.labels))
	}
}

func TestCanonicalCannotBeImitated(t *testing.T) {
	x := canonical(map[string]string{"a": "1:b2:x"})
	y := canonical(map[string]string{"a": "1", "b": "x"})
	if x == y {
		t.Fatalf("two different label sets share the key %q", x)
	}
}

// Entries share one copy of their tenant's name, never the caller's buffer
// (the API hands in substrings of its request line).
func TestTenantNamesAreInterned(t *testing.T) {
	c := New()
	line := []byte("POST /api/v1/tenants/acme/devices HTTP/1.1")
	var toks []string
	for _, id := range []string{"a", "b"} {
		d, tok := device(string(line[21:25]), id, false) // "acme", a fresh buffer each time
		c.Put(d)
		toks = append(toks, tok)
	}
	a, _ := c.Authenticate(toks[0])
	b, _ := c.Authenticate(toks[1])
	if a.Tenant != "acme" || unsafe.StringData(a.Tenant) != unsafe.StringData(b.Tenant) {
		t.Fatalf("tenant names not shared: %q %q", a.Tenant, b.Tenant)
	}
	c.RemoveTenant("acme")
	if len(c.tenants) != 0 {
		t.Fatalf("tenant name kept after RemoveTenant: %v", c.tenants)
	}
}
