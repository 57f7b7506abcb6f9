package dgraph

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/dgo/v230/protos/api"

	"github.com/switchyard/switchyard/graph"
)

// scope is one tenant's view; every call logs into (or reuses a session of)
// the tenant's namespace only.
type scope struct {
	s      *Store
	tenant string
}

// Tenant returns the scope of one tenant.
func (s *Store) Tenant(id string) graph.Scope { return scope{s: s, tenant: id} }

func (sc scope) Devices() graph.Collection[graph.Device] {
	return collection[graph.Device, *graph.Device]{sc, "device"}
}

func (sc scope) Junctions() graph.Collection[graph.Junction] {
	return collection[graph.Junction, *graph.Junction]{sc, "junction"}
}

func (sc scope) Plugins() graph.Collection[graph.PluginInstance] {
	return collection[graph.PluginInstance, *graph.PluginInstance]{sc, "plugin"}
}

func (sc scope) Keys() graph.Collection[graph.APIKey] {
	return collection[graph.APIKey, *graph.APIKey]{sc, "key"}
}

func (sc scope) Releases() graph.Collection[graph.FirmwareRelease] {
	return collection[graph.FirmwareRelease, *graph.FirmwareRelease]{sc, "release"}
}

func (sc scope) Rollouts() graph.Collection[graph.Rollout] {
	return collection[graph.Rollout, *graph.Rollout]{sc, "rollout"}
}

// FirmwareHistories are keyed by device id, under a kind of their own: a
// history is no part of its device's node, and outlives it.
func (sc scope) FirmwareHistories() graph.Collection[graph.FirmwareHistory] {
	return collection[graph.FirmwareHistory, *graph.FirmwareHistory]{sc, "firmware_history"}
}

// collection is one kind of record in one tenant's namespace. Every kind
// shares the same predicates (the record is JSON in sy.doc), so a new kind
// needs no schema change: only a kind name of its own, which prefixes its
// keys.
type collection[T any, P interface {
	*T
	graph.Record
}] struct {
	scope
	kind string
}

const recordFields = "sy.doc sy.created_at device.last_seen device.firmware"

func (c collection[T, P]) key(id string) string { return c.kind + "/" + id }

func (c collection[T, P]) fail(ctx context.Context, op, id string, err error) error {
	if id != "" {
		op = fmt.Sprintf("%s %s %q", op, c.kind, id)
	} else {
		op = fmt.Sprintf("%s %ss", op, c.kind)
	}
	return wrap(ctx, fmt.Sprintf("tenant %q: %s", c.tenant, op), err)
}

// doc is the stored JSON of a record: without its creation time (kept in
// sy.created_at) and, for a device, without the observed fields.
func doc[T any, P interface {
	*T
	graph.Record
}](rec T) string {
	P(&rec).RecordMeta().CreatedAt = time.Time{}
	if d, ok := any(&rec).(*graph.Device); ok {
		d.LastSeen, d.Firmware = time.Time{}, ""
	}
	return string(mustJSON(rec))
}

func (c collection[T, P]) decode(n node) (T, error) {
	var rec T
	if err := json.Unmarshal([]byte(n.Doc), &rec); err != nil {
		return rec, fmt.Errorf("stored record: %w", err)
	}
	m := P(&rec).RecordMeta()
	m.Tenant, m.CreatedAt = c.tenant, n.CreatedAt.UTC()
	if d, ok := any(&rec).(*graph.Device); ok {
		d.Firmware = n.Firmware
		if !n.LastSeen.IsZero() {
			d.LastSeen = n.LastSeen.UTC()
		}
	}
	return rec, nil
}

func (c collection[T, P]) Create(ctx context.Context, rec T) (T, error) {
	out, err := c.create(ctx, rec)
	return out, c.fail(ctx, "create", P(&rec).RecordMeta().ID, err)
}

func (c collection[T, P]) create(ctx context.Context, rec T) (T, error) {
	if err := P(&rec).Validate(); err != nil {
		return rec, err
	}
	sess, err := c.s.tenant(ctx, c.tenant)
	if err != nil {
		return rec, err
	}
	m := P(&rec).RecordMeta()
	now := time.Now().UTC()
	m.Tenant, m.CreatedAt, m.UpdatedAt = c.tenant, now, now
	set := map[string]any{
		"uid": "_:r", "sy.key": c.key(m.ID), "sy.kind": c.kind, "sy.doc": doc[T, P](rec), "sy.created_at": now,
	}
	if d, ok := any(&rec).(*graph.Device); ok {
		if !d.LastSeen.IsZero() {
			d.LastSeen = d.LastSeen.UTC()
			set["device.last_seen"] = d.LastSeen
		}
		if d.Firmware != "" {
			set["device.firmware"] = d.Firmware
		}
	}
	found, _, err := c.s.upsert(ctx, sess.session, byKey(""), c.key(m.ID),
		&api.Mutation{Cond: "@if(eq(len(v), 0))", SetJson: mustJSON(set)})
	if err != nil {
		return rec, err
	}
	if len(found) > 0 {
		return rec, graph.ErrConflict
	}
	return clone[T, P](rec)
}

// clone returns a copy of rec that shares no map or slice with it.
func clone[T any, P interface {
	*T
	graph.Record
}](rec T) (T, error) {
	var out T
	err := json.Unmarshal(mustJSON(rec), &out)
	return out, err
}

func (c collection[T, P]) Get(ctx context.Context, id string) (T, error) {
	out, err := c.get(ctx, id)
	return out, c.fail(ctx, "get", id, err)
}

func (c collection[T, P]) get(ctx context.Context, id string) (T, error) {
	var zero T
	sess, err := c.s.tenant(ctx, c.tenant)
	if err != nil {
		return zero, err
	}
	found, err := c.s.query(ctx, sess.session, find(recordFields), c.key(id))
	if err != nil {
		return zero, err
	}
	if len(found) == 0 {
		return zero, graph.ErrNotFound
	}
	return c.decode(found[0])
}

func (c collection[T, P]) List(ctx context.Context) ([]T, error) {
	out, err := c.list(ctx)
	return out, c.fail(ctx, "list", "", err)
}

func (c collection[T, P]) list(ctx context.Context) ([]T, error) {
	sess, err := c.s.tenant(ctx, c.tenant)
	if err != nil {
		return nil, err
	}
	found, err := c.s.query(ctx, sess.session, byKind(recordFields), c.kind)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(found))
	for _, n := range found {
		rec, err := c.decode(n)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	slices.SortFunc(out, func(a, b T) int { return cmp.Compare(P(&a).RecordMeta().ID, P(&b).RecordMeta().ID) })
	return out, nil
}

func (c collection[T, P]) Update(ctx context.Context, rec T) (T, error) {
	out, err := c.update(ctx, rec)
	return out, c.fail(ctx, "update", P(&rec).RecordMeta().ID, err)
}

func (c collection[T, P]) update(ctx context.Context, rec T) (T, error) {
	if err := P(&rec).Validate(); err != nil {
		return rec, err
	}
	sess, err := c.s.tenant(ctx, c.tenant)
	if err != nil {
		return rec, err
	}
	m := P(&rec).RecordMeta()
	m.Tenant, m.UpdatedAt = c.tenant, time.Now().UTC()
	found, _, err := c.s.upsert(ctx, sess.session, byKey(recordFields), c.key(m.ID), &api.Mutation{
		Cond:    "@if(eq(len(v), 1))",
		SetJson: mustJSON(map[string]any{"uid": "uid(v)", "sy.doc": doc[T, P](rec)}),
	})
	if err != nil {
		return rec, err
	}
	if len(found) == 0 {
		return rec, graph.ErrNotFound
	}
	m.CreatedAt = found[0].CreatedAt.UTC()
	if d, ok := any(&rec).(*graph.Device); ok { // the stored observed fields stand
		d.LastSeen, d.Firmware = time.Time{}, found[0].Firmware
		if !found[0].LastSeen.IsZero() {
			d.LastSeen = found[0].LastSeen.UTC()
		}
	}
	return clone[T, P](rec)
}

func (c collection[T, P]) Delete(ctx context.Context, id string) error {
	return c.fail(ctx, "delete", id, c.delete(ctx, id))
}

func (c collection[T, P]) delete(ctx context.Context, id string) error {
	sess, err := c.s.tenant(ctx, c.tenant)
	if err != nil {
		return err
	}
	found, _, err := c.s.upsert(ctx, sess.session, byKey(""), c.key(id), &api.Mutation{
		Cond: "@if(eq(len(v), 1))", DeleteJson: forget("uid(v)", recordPredicates),
	})
	if err != nil {
		return err
	}
	if len(found) == 0 {
		return graph.ErrNotFound
	}
	return nil
}
