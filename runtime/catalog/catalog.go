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
	"slices"
	"strings"
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
	// labels interns label sets: a fleet uses a handful of them (role=display,
	// room=lab, …), and one map per device would cost ~350 bytes each.
	labels map[string]*labelSet
	// tenants interns tenant names. Besides saving a copy per device, it
	// stops an entry from pinning the buffer its name was cut from (the API
	// passes a substring of the request line).
	tenants map[string]string
}

type labelSet struct {
	key  string
	m    map[string]string
	refs int
}

type entry struct {
	id      gateway.Identity
	hash    token.Hash
	revoked bool
	labels  *labelSet // nil without labels
}

// New returns an empty catalog.
func New() *Catalog {
	return &Catalog{byToken: map[token.Hash]*entry{}, byID: map[key]*entry{}, labels: map[string]*labelSet{}, tenants: map[string]string{}}
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
		id:      gateway.Identity{Device: strings.Clone(d.ID), Model: strings.Clone(d.Model)},
		hash:    h,
		revoked: d.Revoked,
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e.id.Tenant = c.tenant(d.Tenant)
	if e.labels = c.internLabels(d.Labels); e.labels != nil {
		e.id.Labels = e.labels.m
	}
	k := key{e.id.Tenant, e.id.Device}
	if old, ok := c.byID[k]; ok {
		c.forget(old)
	}
	c.byID[k] = e
	c.byToken[h] = e
}

// tenant returns the catalog's copy of a tenant name. Called with mu held.
func (c *Catalog) tenant(name string) string {
	if t, ok := c.tenants[name]; ok {
		return t
	}
	t := strings.Clone(name)
	c.tenants[t] = t
	return t
}

// internLabels returns the shared copy of a label set (nil for none),
// adding it when new. Called with mu held.
func (c *Catalog) internLabels(labels map[string]string) *labelSet {
	if len(labels) == 0 {
		return nil
	}
	k := canonical(labels)
	ls := c.labels[k]
	if ls == nil {
		ls = &labelSet{key: k, m: maps.Clone(labels)}
		c.labels[k] = ls
	}
	ls.refs++
	return ls
}

// forget drops an entry's token and its reference to its label set.
// Called with mu held.
func (c *Catalog) forget(e *entry) {
	delete(c.byToken, e.hash)
	if ls := e.labels; ls != nil {
		if ls.refs--; ls.refs == 0 {
			delete(c.labels, ls.key)
		}
	}
}

// canonical is a key that two equal label sets share: sorted k=v pairs,
// each length-prefixed so no value can imitate a separator.
func canonical(labels map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		fmt.Fprintf(&b, "%d:%s%d:%s", len(k), k, len(labels[k]), labels[k])
	}
	return b.String()
}

// Remove forgets a device (after it was deleted from the store).
func (c *Catalog) Remove(tenant, device string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.byID[key{tenant, device}]; ok {
		c.forget(old)
		delete(c.byID, key{tenant, device})
	}
}

// RemoveTenant forgets every device of tenant (after the tenant was deleted).
func (c *Catalog) RemoveTenant(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.byID {
		if k.tenant == tenant {
			c.forget(e)
			delete(c.byID, k)
		}
	}
	delete(c.tenants, tenant)
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
