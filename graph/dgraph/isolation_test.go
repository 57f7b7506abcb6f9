package dgraph_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/graph/dgraph"
	"github.com/switchyard/switchyard/graph/dgraph/dgraphtest"
)

// fill creates a device, a junction, a plugin instance, an API key, a
// firmware release, a rollout and a firmware history in a tenant; every
// record but the key carries mark.
func fill(t *testing.T, s *dgraph.Store, tenant, mark string) {
	t.Helper()
	ctx := t.Context()
	sc := s.Tenant(tenant)
	if _, err := sc.Devices().Create(ctx, device("dev-"+tenant, mark+" sensor")); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Junctions().Create(ctx, graph.Junction{Meta: graph.Meta{ID: "jn-" + tenant}, Name: mark + " route",
		Source: "device.*.temp", Targets: []graph.Target{{Device: "dev-" + tenant}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Plugins().Create(ctx, graph.PluginInstance{Meta: graph.Meta{ID: "pl-" + tenant},
		Use: "transforms.scale", Runtime: "builtin", Config: json.RawMessage(`{"label":"` + mark + `"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Keys().Create(ctx, graph.APIKey{Meta: graph.Meta{ID: "key-" + tenant}, Name: mark + " key", KeyHash: token(mark)}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Releases().Create(ctx, graph.FirmwareRelease{Meta: graph.Meta{ID: "rel-" + tenant}, Model: "esp32",
		Version: "1.4.0", Size: 1024, SHA256: strings.Repeat("ab", 32), Notes: mark + " release",
		Manifest: "{}", Signature: "c2ln", KeyID: "k"}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := sc.Rollouts().Create(ctx, graph.Rollout{Meta: graph.Meta{ID: "ro-" + tenant}, Model: "esp32",
		Version: "1.4.0", Percent: 10, State: graph.RolloutPaused, Reason: mark + " pause", MaxFailureRate: 0.1,
		MinResults: 5, ResultTimeout: "30m", Stages: []graph.RolloutStage{{Percent: 10, StartedAt: at}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.FirmwareHistories().Create(ctx, graph.FirmwareHistory{Meta: graph.Meta{ID: "dev-" + tenant},
		Events: []graph.FirmwareEvent{{Time: at, To: "1.4.0", Status: graph.FirmwareFailed, Reason: mark + " failure"}}}); err != nil {
		t.Fatal(err)
	}
}

// TestNamespaceIsolation looks at the cluster with the tenant's own
// credentials: a tenant's namespace holds its records and nothing of
// another tenant's, not even by uid; a deleted tenant's namespace is gone
// and leaves no garbage record behind.
func TestNamespaceIsolation(t *testing.T) {
	c := dgraphtest.Shared(t)
	opts := c.Options(dgraphtest.Install())
	s := open(t, opts)
	ctx := t.Context()
	for _, id := range []string{"a", "b"} {
		if _, err := s.CreateTenant(ctx, graph.Tenant{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	fill(t, s, "a", "Alfa")
	fill(t, s, "b", "Bravo")

	nsA, pwA, err := s.TenantNamespace(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	nsB, pwB, err := s.TenantNamespace(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if nsA == 0 || nsB == 0 || nsA == nsB {
		t.Fatalf("namespaces a=%d b=%d: want two distinct non-galaxy namespaces", nsA, nsB)
	}
	a := mustLogin(t, c, pwA, nsA)
	b := mustLogin(t, c, pwB, nsB)
	if _, err := login(t, c, pwB, nsA); err == nil {
		t.Errorf("b's password logs into a's namespace %d", nsA)
	}

	// The uid of b's device, to try to name it from a's namespace.
	bDev := b.query(`{ n(func: eq(sy.key, "device/dev-b")) { uid } }`, nil)
	if len(bDev) != 1 {
		t.Fatalf("b's namespace has %d nodes for its device, want 1", len(bDev))
	}
	bUID := bDev[0]["uid"].(string)

	keys := func(ns []map[string]any) []string {
		var out []string
		for _, n := range ns {
			k, _ := n["sy.key"].(string)
			out = append(out, k)
		}
		return out
	}
	t.Run("a sees its own", func(t *testing.T) {
		docs := a.query(`{ n(func: has(sy.doc), orderasc: sy.key) { sy.key sy.doc } }`, nil)
		want := "device/dev-a firmware_history/dev-a junction/jn-a key/key-a plugin/pl-a release/rel-a rollout/ro-a"
		if got := strings.Join(keys(docs), " "); got != want {
			t.Errorf("has(sy.doc) in a's namespace: keys %q, want %q", got, want)
		}
		for _, n := range docs {
			if !strings.Contains(n["sy.doc"].(string), "Alfa") && n["sy.key"] != "key/key-a" {
				t.Errorf("%v: record without a's mark", n)
			}
		}
	})
	for _, tc := range []struct {
		name, query string
	}{
		{"every record", `{ n(func: has(sy.doc)) @filter(not eq(sy.key, ["device/dev-a", "junction/jn-a", "plugin/pl-a", "key/key-a", "release/rel-a", "rollout/ro-a", "firmware_history/dev-a"])) { uid sy.key } }`},
		{"b's device by key", `{ n(func: eq(sy.key, "device/dev-b")) { uid sy.key } }`},
		{"b's records by key", `{ n(func: eq(sy.key, ["junction/jn-b", "plugin/pl-b", "key/key-b", "release/rel-b", "rollout/ro-b", "firmware_history/dev-b"])) { uid sy.key } }`},
		{"b's device by uid", `{ n(func: uid(` + bUID + `)) @filter(has(sy.key)) { uid sy.key sy.doc } }`},
		{"b's device by uid, any predicate", `{ n(func: uid(` + bUID + `)) { sy.key sy.doc sy.kind sy.created_at } }`},
		{"b's device name", `{ n(func: has(sy.doc)) @filter(regexp(sy.doc, /Bravo/)) { uid } }`},
		{"galaxy records", `{ n(func: has(tenant.secret)) { uid } }`},
		{"galaxy settings", `{ n(func: has(setting.value)) { uid } }`},
	} {
		t.Run("a does not see "+tc.name, func(t *testing.T) {
			resp, err := a.dg.NewReadOnlyTxn().Query(ctx, tc.query)
			if err != nil {
				// regexp needs a trigram index a tenant namespace does
				// not have: then look for the name in every doc.
				if !strings.Contains(err.Error(), "trigram") {
					t.Fatalf("query: %v", err)
				}
				for _, n := range a.query(`{ n(func: has(sy.doc)) { sy.key sy.doc } }`, nil) {
					if strings.Contains(n["sy.doc"].(string), "Bravo") {
						t.Errorf("a's namespace holds b's record %v", n)
					}
				}
				return
			}
			var out struct{ N []map[string]any }
			if err := json.Unmarshal(resp.Json, &out); err != nil {
				t.Fatal(err)
			}
			for _, n := range out.N {
				if len(n) > 1 || n["uid"] == nil { // a bare uid is Dgraph echoing uid() back
					t.Errorf("a's namespace answers %s with %v", tc.query, n)
				}
			}
		})
	}
	if len(b.query(`{ n(func: eq(sy.key, "device/dev-b")) { uid } }`, nil)) != 1 {
		t.Error("b's namespace lost its device")
	}

	if err := s.DeleteTenant(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	t.Run("deleted namespace", func(t *testing.T) {
		r, err := login(t, c, pwB, nsB)
		if err != nil {
			return // the namespace is gone: fine
		}
		if n := r.query(`{ n(func: has(sy.doc)) { uid sy.key } }`, nil); len(n) > 0 {
			t.Errorf("b's dropped namespace still holds %v", n)
		}
	})
	t.Run("no garbage left", func(t *testing.T) {
		groot := mustLogin(t, c, dgraphtest.Guardian, 0)
		if n := groot.query(`query q($k: string) { n(func: eq(sy.kind, $k)) { uid garbage.namespace } }`,
			map[string]string{"$k": opts.Install + "/garbage"}); len(n) > 0 {
			t.Errorf("the galaxy keeps garbage nodes after DeleteTenant: %v", n)
		}
		if n := groot.query(`query q($k: string) { n(func: eq(sy.key, $k)) { uid } }`,
			map[string]string{"$k": opts.Install + "/tenant/b"}); len(n) > 0 {
			t.Errorf("the galaxy keeps b's tenant record: %v", n)
		}
	})
	if d, err := s.Tenant("a").Devices().Get(ctx, "dev-a"); err != nil || d.Name != "Alfa sensor" {
		t.Errorf("a's device after b's delete: %+v, %v", d, err)
	}
}
