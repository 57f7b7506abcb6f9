package api

import (
	"fmt"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/runtime/token"
)

func apiKey(tenant, id, secret string) graph.APIKey {
	h := token.Of(secret)
	return graph.APIKey{Meta: graph.Meta{Tenant: tenant, ID: id}, KeyHash: h[:]}
}

func TestKeyTable(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*KeyTable)
		known map[string]string // secret → tenant; absent secrets must not match
	}{
		{"put", func(kt *KeyTable) { kt.Put(apiKey("a", "k", "s1")) }, map[string]string{"s1": "a"}},
		{"a new hash replaces the old", func(kt *KeyTable) {
			kt.Put(apiKey("a", "k", "s1"))
			kt.Put(apiKey("a", "k", "s2"))
		}, map[string]string{"s2": "a"}},
		{"same id in two tenants", func(kt *KeyTable) {
			kt.Put(apiKey("a", "k", "s1"))
			kt.Put(apiKey("b", "k", "s2"))
		}, map[string]string{"s1": "a", "s2": "b"}},
		{"remove", func(kt *KeyTable) {
			kt.Put(apiKey("a", "k", "s1"))
			kt.Put(apiKey("a", "j", "s2"))
			kt.Remove("a", "k")
			kt.Remove("a", "never")
		}, map[string]string{"s2": "a"}},
		{"remove tenant", func(kt *KeyTable) {
			kt.Put(apiKey("a", "k", "s1"))
			kt.Put(apiKey("a", "j", "s2"))
			kt.Put(apiKey("b", "k", "s3"))
			kt.RemoveTenant("a")
		}, map[string]string{"s3": "b"}},
		{"a hash that is not SHA-256 is ignored", func(kt *KeyTable) {
			kt.Put(graph.APIKey{Meta: graph.Meta{Tenant: "a", ID: "k"}, KeyHash: []byte("short")})
		}, map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kt := newKeyTable()
			tc.edit(kt)
			for _, secret := range []string{"s1", "s2", "s3"} {
				tenant, ok := kt.Tenant(token.Of(secret))
				if want, known := tc.known[secret]; tenant != want || ok != known {
					t.Errorf("Tenant(%s) = %q, %v; want %q, %v", secret, tenant, ok, want, known)
				}
			}
		})
	}
}

func TestKeyTableConcurrent(t *testing.T) {
	kt := newKeyTable()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				secret := fmt.Sprintf("w%d-%d", w, i)
				kt.Put(apiKey("a", fmt.Sprint(w), secret))
				if tenant, ok := kt.Tenant(token.Of(secret)); !ok || tenant != "a" {
					t.Errorf("Tenant(%s) = %q, %v right after Put", secret, tenant, ok)
				}
			}
		})
	}
	wg.Wait()
	if n := len(kt.byHash); n != 4 {
		t.Errorf("%d hashes kept for 4 keys", n)
	}
}
