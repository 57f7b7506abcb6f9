package dgraph

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/dgo/v230/protos/api"

	"github.com/switchyard/switchyard/graph"
)

// cleanupTimeout bounds the drop of a namespace after the call that made it
// garbage has its answer (the caller's context may end right then).
const cleanupTimeout = 30 * time.Second

func alreadyGone(err error) bool {
	return strings.Contains(err.Error(), "non-existing namespace")
}

func decodeTenant(n node) (graph.Tenant, error) {
	var t graph.Tenant
	if err := json.Unmarshal([]byte(n.Doc), &t); err != nil {
		return t, fmt.Errorf("tenant record %s: %w", n.Key, err)
	}
	t.CreatedAt = n.CreatedAt.UTC()
	return t, nil
}

// tenantDoc is the stored JSON of a tenant: its creation time is kept in
// sy.created_at, which an update does not touch.
func tenantDoc(t graph.Tenant) string {
	t.CreatedAt = time.Time{}
	return string(mustJSON(t))
}

// CreateTenant creates the tenant's namespace, applies its schema and then
// records the tenant. The namespace is first recorded as garbage, in the
// same request that will record the tenant: a creation interrupted half-way
// leaves a namespace the next sweep drops, never one nobody knows of.
func (s *Store) CreateTenant(ctx context.Context, t graph.Tenant) (graph.Tenant, error) {
	out, err := s.createTenant(ctx, t)
	return out, wrap(ctx, fmt.Sprintf("create tenant %q", t.ID), err)
}

func (s *Store) createTenant(ctx context.Context, t graph.Tenant) (graph.Tenant, error) {
	if err := s.live(); err != nil {
		return t, err
	}
	if err := t.Validate(); err != nil {
		return t, err
	}
	key := s.key("tenant", t.ID)
	if found, err := s.query(ctx, s.galaxy, find(""), key); err != nil {
		return t, err
	} else if len(found) > 0 {
		return t, graph.ErrConflict
	}
	password := newPassword()
	ns, err := s.admin.addNamespace(ctx, password)
	if err != nil {
		return t, err
	}
	now := time.Now().UTC()
	resp, err := s.galaxy.do(ctx, &api.Request{Mutations: []*api.Mutation{{SetJson: mustJSON(map[string]any{
		"uid": "_:g", "sy.kind": s.key("garbage"), "sy.created_at": now, "garbage.namespace": ns,
	})}}})
	if err != nil {
		s.dropNow(ctx, "", ns)
		return t, err
	}
	garbage := resp.Uids["g"]
	sess, err := newSession(ctx, s.clients, DefaultUser, password, ns)
	if err == nil {
		err = s.migrateTenant(ctx, sess, 0)
	}
	if err != nil {
		s.dropNow(ctx, garbage, ns)
		return t, err
	}
	t.CreatedAt, t.UpdatedAt = now, now
	found, _, err := s.upsert(ctx, s.galaxy, byKey(""), key,
		&api.Mutation{Cond: "@if(eq(len(v), 0))", SetJson: mustJSON(map[string]any{
			"uid": "_:t", "sy.key": key, "sy.kind": s.key("tenant"), "sy.doc": tenantDoc(t), "sy.created_at": now,
			"tenant.namespace": ns, "tenant.secret": s.sealer.seal([]byte(password), key),
			"tenant.schema_version": latest(tenantMigrations),
		})},
		&api.Mutation{Cond: "@if(eq(len(v), 0))", DeleteJson: forget(garbage, garbagePredicates)},
	)
	switch {
	case err != nil:
		s.dropNow(ctx, garbage, ns)
		return t, err
	case len(found) > 0: // created by someone else since the check
		s.dropNow(ctx, garbage, ns)
		return t, graph.ErrConflict
	}
	s.mu.Lock()
	s.sessions[t.ID] = &tenantSession{session: sess, tenant: t.ID}
	s.mu.Unlock()
	return t, nil
}

// dropNow drops a namespace this process created and will not use; when
// garbage is set, the garbage node goes too. A failure is left to a sweep.
func (s *Store) dropNow(ctx context.Context, garbage string, ns uint64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if garbage == "" {
		if err := s.admin.deleteNamespace(ctx, ns); err != nil {
			s.log.Warn("dgraph: drop an unused namespace", "namespace", ns, "err", err)
		}
		return
	}
	s.dropGarbage(ctx, garbage, ns)
}

// GetTenant returns one tenant.
func (s *Store) GetTenant(ctx context.Context, id string) (graph.Tenant, error) {
	t, err := s.getTenant(ctx, id)
	return t, wrap(ctx, fmt.Sprintf("get tenant %q", id), err)
}

func (s *Store) getTenant(ctx context.Context, id string) (graph.Tenant, error) {
	if err := s.live(); err != nil {
		return graph.Tenant{}, err
	}
	found, err := s.query(ctx, s.galaxy, find("sy.key sy.doc sy.created_at"), s.key("tenant", id))
	if err != nil {
		return graph.Tenant{}, err
	}
	if len(found) == 0 {
		return graph.Tenant{}, graph.ErrNotFound
	}
	return decodeTenant(found[0])
}

// ListTenants returns every tenant of the installation, ordered by id.
func (s *Store) ListTenants(ctx context.Context) ([]graph.Tenant, error) {
	if err := s.live(); err != nil {
		return nil, fmt.Errorf("dgraph: list tenants: %w", err)
	}
	found, err := s.query(ctx, s.galaxy, byKind("sy.key sy.doc sy.created_at"), s.key("tenant"))
	if err != nil {
		return nil, wrap(ctx, "list tenants", err)
	}
	out := make([]graph.Tenant, 0, len(found))
	for _, n := range found {
		t, err := decodeTenant(n)
		if err != nil {
			return nil, fmt.Errorf("dgraph: list tenants: %w", err)
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b graph.Tenant) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// UpdateTenant replaces the tenant's fields; CreatedAt is kept.
func (s *Store) UpdateTenant(ctx context.Context, t graph.Tenant) (graph.Tenant, error) {
	out, err := s.updateTenant(ctx, t)
	return out, wrap(ctx, fmt.Sprintf("update tenant %q", t.ID), err)
}

func (s *Store) updateTenant(ctx context.Context, t graph.Tenant) (graph.Tenant, error) {
	if err := s.live(); err != nil {
		return t, err
	}
	if err := t.Validate(); err != nil {
		return t, err
	}
	t.UpdatedAt = time.Now().UTC()
	found, _, err := s.upsert(ctx, s.galaxy, byKey("sy.created_at"), s.key("tenant", t.ID), &api.Mutation{
		Cond:    "@if(eq(len(v), 1))",
		SetJson: mustJSON(map[string]any{"uid": "uid(v)", "sy.doc": tenantDoc(t)}),
	})
	if err != nil {
		return t, err
	}
	if len(found) == 0 {
		return t, graph.ErrNotFound
	}
	t.CreatedAt = found[0].CreatedAt.UTC()
	return t, nil
}

// DeleteTenant forgets the tenant and drops its namespace. The tenant
// record becomes a garbage node in the same request, so a drop that fails
// (or a crash before it) is retried by a later sweep.
func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	return wrap(ctx, fmt.Sprintf("delete tenant %q", id), s.deleteTenant(ctx, id))
}

func (s *Store) deleteTenant(ctx context.Context, id string) error {
	if err := s.live(); err != nil {
		return err
	}
	key := s.key("tenant", id)
	found, err := s.query(ctx, s.galaxy, find("tenant.namespace"), key)
	if err != nil {
		return err
	}
	if len(found) == 0 {
		return graph.ErrNotFound
	}
	// The same node, unless someone deleted (and maybe re-created) the
	// tenant since the read.
	same := `query q($k: string) { n(func: uid(` + found[0].UID + `)) @filter(eq(sy.key, $k)) { v as uid } }`
	still, resp, err := s.upsert(ctx, s.galaxy, same, key,
		&api.Mutation{Cond: "@if(eq(len(v), 1))", DeleteJson: forget("uid(v)", tenantPredicates)},
		&api.Mutation{Cond: "@if(eq(len(v), 1))", SetJson: mustJSON(map[string]any{
			"uid": "_:g", "sy.kind": s.key("garbage"), "sy.created_at": time.Now().UTC(), "garbage.namespace": found[0].Namespace,
		})},
	)
	if err != nil {
		return err
	}
	if len(still) == 0 {
		return graph.ErrNotFound
	}
	s.mu.Lock()
	delete(s.sessions, id)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	s.dropGarbage(ctx, resp.Uids["g"], found[0].Namespace)
	s.sweep(ctx, time.Now().Add(-pendingGrace)) // and what earlier drops left
	return nil
}

// tenant returns the session of a tenant's namespace, logging in on first
// use; graph.ErrTenantNotFound when the tenant does not exist.
func (s *Store) tenant(ctx context.Context, id string) (*tenantSession, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	sess := s.sessions[id]
	s.mu.Unlock()
	if sess != nil {
		return sess, nil
	}
	key := s.key("tenant", id)
	found, err := s.query(ctx, s.galaxy, find("tenant.namespace tenant.secret"), key)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, graph.ErrTenantNotFound
	}
	password, err := s.sealer.open(found[0].Secret, key)
	if err != nil {
		return nil, fmt.Errorf("tenant %q: its namespace credentials %v", id, err)
	}
	inner, err := newSession(ctx, s.clients, DefaultUser, string(password), found[0].Namespace)
	if err != nil {
		return nil, fmt.Errorf("tenant %q: log into namespace %d: %w", id, found[0].Namespace, err)
	}
	sess = &tenantSession{session: inner, tenant: id}
	s.mu.Lock()
	if cached := s.sessions[id]; cached != nil {
		sess = cached
	} else {
		s.sessions[id] = sess
	}
	s.mu.Unlock()
	return sess, nil
}

// GetSetting returns an operator-level value; graph.ErrNotFound when the key
// was never set.
func (s *Store) GetSetting(ctx context.Context, key string) ([]byte, error) {
	if err := s.live(); err != nil {
		return nil, fmt.Errorf("dgraph: get setting %q: %w", key, err)
	}
	found, err := s.query(ctx, s.galaxy, find("setting.value"), s.key("setting", key))
	if err != nil {
		return nil, wrap(ctx, fmt.Sprintf("get setting %q", key), err)
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("dgraph: get setting %q: %w", key, graph.ErrNotFound)
	}
	return base64.StdEncoding.DecodeString(found[0].Value)
}

// PutSetting sets an operator-level value.
func (s *Store) PutSetting(ctx context.Context, key string, value []byte) error {
	err := s.live()
	if err == nil {
		err = graph.ValidID("key", key)
	}
	if err == nil {
		k := s.key("setting", key)
		// uid(v) of an empty v is a new node: this creates or overwrites.
		_, _, err = s.upsert(ctx, s.galaxy, byKey(""), k, &api.Mutation{SetJson: mustJSON(map[string]any{
			"uid": "uid(v)", "sy.key": k, "sy.kind": s.key("setting"), "setting.value": base64.StdEncoding.EncodeToString(value),
		})})
	}
	return wrap(ctx, fmt.Sprintf("put setting %q", key), err)
}
