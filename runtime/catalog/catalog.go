// Package catalog is the runtime's in-memory view of the device fleet: every
// device of every tenant, indexed by the hash of its token. It is loaded from
// the graph store at start and kept current by whoever writes the store (the
// admin API), so a device handshake is answered from memory.
//
// The catalog never calls the graph store after Load, and it never holds a
// plaintext token.
package catalog

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/runtime/gateway"
	"github.com/switchyard/switchyard/runtime/token"
)

var _ gateway.Authenticator = (*Catalog)(nil)

type key struct{ tenant, device string }

// Catalog maps token hashes to device identities. It is safe for concurrent use.
type Catalog struct {
	mu      sync.RWMutex
	byToken map[token.Hash]*entry
	byID    map[key]*entry
}

type entry struct {
	id      gateway.Identity
	hash    token.Hash
	revoked bool
}

// New returns an empty catalog.
func New() *Catalog {
	return &Catalog{byToken: map[token.Hash]*entry{}, byID: map[key]*entry{}}
}

// Load fills the catalog with every device of every tenant in store.
func Load(ctx context.Context, store graph.Store) (*Catalog, error) {
	c := New()
	tenants, err := store.ListTenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("catalog: list tenants: %w", err)
	}
	for _, t := range tenants {
		devices, err := store.Tenant(t.ID).Devices().List(ctx)
		if err != nil {
			return nil, fmt.Errorf("catalog: list devices of tenant %q: %w", t.ID, err)
		}
		for _, d := range devices {
			c.Put(d)
		}
	}
	return c, nil
}

// Put adds or replaces a device (after it was written to the store).
func (c *Catalog) Put(d graph.Device) {
	h, ok := token.FromBytes(d.TokenHash)
	if !ok {
		return // Device.Validate refuses such records; nothing could authenticate as it
	}
	e := &entry{
		id:      gateway.Identity{Tenant: d.Tenant, Device: d.ID, Model: d.Model, Labels: maps.Clone(d.Labels)},
		hash:    h,
		revoked: d.Revoked,
	}
	k := key{d.Tenant, d.ID}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.byID[k]; ok {
		delete(c.byToken, old.hash)
	}
	c.byID[k] = e
	c.byToken[h] = e
}

// Remove forgets a device (after it was deleted from the store).
func (c *Catalog) Remove(tenant, device string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.byID[key{tenant, device}]; ok {
		delete(c.byToken, old.hash)
		delete(c.byID, key{tenant, device})
	}
}

// RemoveTenant forgets every device of tenant (after the tenant was deleted).
func (c *Catalog) RemoveTenant(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.byID {
		if k.tenant == tenant {
			delete(c.byToken, e.hash)
			delete(c.byID, k)
		}
	}
}

// Authenticate resolves a presented device token. The identity's Labels map
// is shared with the catalog and every session of the device, to keep idle
// sessions small: it is read-only. Put never mutates it; it replaces it.
func (c *Catalog) Authenticate(secret string) (gateway.Identity, error) {
	h := token.Of(secret)
	c.mu.RLock()
	e, ok := c.byToken[h]
	c.mu.RUnlock()
	switch {
	case !ok:
		return gateway.Identity{}, gateway.ErrUnknownToken
	case e.revoked:
		return gateway.Identity{}, gateway.ErrRevoked
	}
	return e.id, nil
}

// Len is the number of devices known.
func (c *Catalog) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byID)
}
