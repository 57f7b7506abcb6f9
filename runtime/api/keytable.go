package api

import (
	"context"
	"fmt"
	"sync"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/runtime/token"
)

// KeyTable is the in-memory view of every tenant's API keys: which tenant
// the hash of a presented key belongs to. It is loaded from the store at
// start and kept current by the API's key and tenant writes, so a request is
// authenticated without a store read. It is safe for concurrent use and
// never holds a plaintext key.
type KeyTable struct {
	mu     sync.RWMutex
	byHash map[token.Hash]keyRef
	byRef  map[keyRef]token.Hash
}

// keyRef names one API key.
type keyRef struct{ tenant, id string }

func newKeyTable() *KeyTable {
	return &KeyTable{byHash: map[token.Hash]keyRef{}, byRef: map[keyRef]token.Hash{}}
}

// LoadKeys reads every API key of every tenant in store.
func LoadKeys(ctx context.Context, store graph.Store) (*KeyTable, error) {
	t := newKeyTable()
	tenants, err := store.ListTenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("api keys: list tenants: %w", err)
	}
	for _, tn := range tenants {
		keys, err := store.Tenant(tn.ID).Keys().List(ctx)
		if err != nil {
			return nil, fmt.Errorf("api keys: list keys of tenant %q: %w", tn.ID, err)
		}
		for _, k := range keys {
			t.Put(k)
		}
	}
	return t, nil
}

// Put adds a key or replaces its hash (after it was written to the store):
// the key's previous hash stops matching at once.
func (t *KeyTable) Put(k graph.APIKey) {
	h, ok := token.FromBytes(k.KeyHash)
	if !ok {
		return // the store refuses such a key; nothing could match it
	}
	ref := keyRef{k.Tenant, k.ID}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.remove(ref)
	t.byHash[h] = ref
	t.byRef[ref] = h
}

// Remove forgets the key id of tenant.
func (t *KeyTable) Remove(tenant, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.remove(keyRef{tenant, id})
}

// RemoveTenant forgets every key of tenant.
func (t *KeyTable) RemoveTenant(tenant string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for ref := range t.byRef {
		if ref.tenant == tenant {
			t.remove(ref)
		}
	}
}

func (t *KeyTable) remove(ref keyRef) {
	if h, ok := t.byRef[ref]; ok {
		delete(t.byHash, h)
		delete(t.byRef, ref)
	}
}

// Tenant returns the tenant whose key hashes to h.
func (t *KeyTable) Tenant(h token.Hash) (string, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	ref, ok := t.byHash[h]
	return ref.tenant, ok
}
