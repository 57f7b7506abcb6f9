package dgraph

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/dgraph-io/dgo/v230/protos/api"
)

// migrateGalaxy applies the galaxy's migrations after the recorded version
// and records the latest.
func (s *Store) migrateGalaxy(ctx context.Context) error {
	meta, err := s.query(ctx, s.galaxy, find("sy.schema_version sy.key_check"), s.key("meta"))
	if err != nil {
		return wrap(ctx, "read the schema version", err)
	}
	recorded := 0
	if len(meta) > 0 {
		recorded = meta[0].SchemaVersion
	}
	if recorded > latest(galaxyMigrations) {
		return fmt.Errorf("dgraph: installation %q was written by a newer Switchyard (schema version %d, this build knows up to %d)",
			s.opts.Install, recorded, latest(galaxyMigrations))
	}
	// The current schema again: a no-op for Dgraph when nothing changed,
	// and a repair when someone altered a predicate by hand.
	steps := append(pending(galaxyMigrations, recorded), galaxyMigrations[len(galaxyMigrations)-1])
	for _, m := range steps {
		if err := s.galaxy.alter(ctx, &api.Operation{Schema: m.schema}); err != nil {
			return wrap(ctx, fmt.Sprintf("apply galaxy schema version %d", m.version), err)
		}
	}
	if recorded == latest(galaxyMigrations) {
		return nil
	}
	_, _, err = s.upsert(ctx, s.galaxy, byKey(""), s.key("meta"), &api.Mutation{SetJson: mustJSON(map[string]any{
		"uid": "uid(v)", "sy.key": s.key("meta"), "sy.schema_version": latest(galaxyMigrations),
	})})
	return wrap(ctx, "record the schema version", err)
}

// keyCheckText is sealed once per installation so that Open can tell a
// changed encryption key before it fails to open any tenant.
const keyCheckText = "switchyard encryption key check"

func (s *Store) checkKey(ctx context.Context) error {
	meta, err := s.query(ctx, s.galaxy, find("sy.key_check"), s.key("meta"))
	if err != nil {
		return wrap(ctx, "read the key check", err)
	}
	if len(meta) == 1 && meta[0].KeyCheck != "" {
		if _, err := s.sealer.open(meta[0].KeyCheck, s.key("meta")); err != nil {
			return fmt.Errorf("dgraph: the encryption key (SWITCHYARD_ENCRYPTION_KEY) is not the one installation %q sealed its tenant credentials with: %v", s.opts.Install, err)
		}
		return nil
	}
	_, _, err = s.upsert(ctx, s.galaxy, byKey(""), s.key("meta"), &api.Mutation{
		Cond: "@if(eq(len(v), 1))",
		SetJson: mustJSON(map[string]any{
			"uid": "uid(v)", "sy.key_check": s.sealer.seal([]byte(keyCheckText), s.key("meta")),
		})})
	return wrap(ctx, "record the key check", err)
}

// migrateTenants brings every tenant namespace whose recorded schema
// version is behind up to date.
func (s *Store) migrateTenants(ctx context.Context) error {
	list, err := s.query(ctx, s.galaxy, byKind("sy.key tenant.schema_version"), s.key("tenant"))
	if err != nil {
		return wrap(ctx, "list tenants", err)
	}
	for _, n := range list {
		id := n.Key[len(s.key("tenant", "")):]
		switch {
		case n.TenantSchema > latest(tenantMigrations):
			return fmt.Errorf("dgraph: tenant %q was written by a newer Switchyard (schema version %d, this build knows up to %d)",
				id, n.TenantSchema, latest(tenantMigrations))
		case n.TenantSchema == latest(tenantMigrations):
			continue
		}
		sess, err := s.tenant(ctx, id)
		if err != nil {
			return err
		}
		if err := s.migrateTenant(ctx, sess.session, n.TenantSchema); err != nil {
			return fmt.Errorf("dgraph: tenant %q: %w", id, err)
		}
		_, _, err = s.upsert(ctx, s.galaxy, byKey(""), s.key("tenant", id), &api.Mutation{
			Cond:    "@if(eq(len(v), 1))",
			SetJson: mustJSON(map[string]any{"uid": "uid(v)", "tenant.schema_version": latest(tenantMigrations)}),
		})
		if err != nil {
			return wrap(ctx, "record the schema version of tenant "+strconv.Quote(id), err)
		}
	}
	return nil
}

// migrateTenant applies the tenant migrations after version to a namespace.
func (s *Store) migrateTenant(ctx context.Context, sess *session, version int) error {
	for _, m := range pending(tenantMigrations, version) {
		if err := sess.alter(ctx, &api.Operation{Schema: m.schema}); err != nil {
			return wrap(ctx, fmt.Sprintf("apply schema version %d", m.version), err)
		}
	}
	return nil
}

// pendingGrace is how old a garbage node must be before Open's sweep drops
// its namespace: younger ones may belong to a tenant another process is
// creating right now.
const pendingGrace = 10 * time.Minute

// sweep drops the namespaces of garbage nodes created before cutoff: those
// of deleted tenants whose drop failed, and those of tenant creations that
// did not finish. Failures are logged and left for the next sweep.
func (s *Store) sweep(ctx context.Context, cutoff time.Time) {
	list, err := s.query(ctx, s.galaxy, byKind("garbage.namespace sy.created_at"), s.key("garbage"))
	if err != nil {
		s.log.Warn("dgraph: list namespaces left to drop", "err", err)
		return
	}
	for _, n := range list {
		if n.CreatedAt.After(cutoff) {
			continue
		}
		s.dropGarbage(ctx, n.UID, n.GarbageNS)
	}
}

// dropGarbage drops a namespace and then forgets its garbage node.
func (s *Store) dropGarbage(ctx context.Context, uid string, ns uint64) {
	if err := s.admin.deleteNamespace(ctx, ns); err != nil && !alreadyGone(err) {
		s.log.Warn("dgraph: drop the namespace of a deleted tenant; will retry", "namespace", ns, "err", err)
		return
	}
	_, err := s.galaxy.do(ctx, &api.Request{Mutations: []*api.Mutation{{DeleteJson: forget(uid, garbagePredicates)}}})
	if err != nil {
		s.log.Warn("dgraph: forget a dropped namespace; will retry", "namespace", ns, "err", err)
	}
}
