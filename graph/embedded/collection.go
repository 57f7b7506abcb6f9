package embedded

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/switchyard/switchyard/graph"
)

// record is the constraint that lets one implementation serve devices,
// junctions and plugin instances: P is *T, which carries Meta and Validate.
type record[T any] interface {
	*T
	graph.Record
}

// collection is graph.Collection[T] over one kind bucket of one tenant.
type collection[T any, P record[T]] struct {
	s      *Store
	tenant string
	kind   string // singular, for errors: "device"
	bucket []byte
}

var (
	_ graph.Collection[graph.Device]         = collection[graph.Device, *graph.Device]{}
	_ graph.Collection[graph.Junction]       = collection[graph.Junction, *graph.Junction]{}
	_ graph.Collection[graph.PluginInstance] = collection[graph.PluginInstance, *graph.PluginInstance]{}
)

func (c collection[T, P]) errorf(op, id string, err error) error {
	return fmt.Errorf("embedded: %s %s %q in tenant %q: %w", op, c.kind, id, c.tenant, err)
}

// records returns the kind bucket of the scope's tenant, or ErrNotFound.
func (c collection[T, P]) records(tx *bolt.Tx) (*bolt.Bucket, error) {
	tb, err := tenantBucket(tx, c.tenant)
	if err != nil {
		return nil, err
	}
	b := tb.Bucket(c.bucket)
	if b == nil {
		return nil, fmt.Errorf("%w: tenant %q has no %s bucket", ErrNotDatabase, c.tenant, c.bucket)
	}
	return b, nil
}

// decode turns a stored record into a fresh value; the scope's tenant is
// authoritative.
func (c collection[T, P]) decode(data []byte) (T, error) {
	var rec T
	if err := json.Unmarshal(data, P(&rec)); err != nil {
		var zero T
		return zero, fmt.Errorf("decode stored %s: %w", c.kind, err)
	}
	P(&rec).RecordMeta().Tenant = c.tenant
	return rec, nil
}

// check refuses a record that is not valid, whatever its Validate covers.
func check[T any, P record[T]](rec *T) error {
	if err := graph.ValidID("id", P(rec).RecordMeta().ID); err != nil {
		return err
	}
	return P(rec).Validate()
}

// Create stores rec as a new record of the scope's tenant; rec.Tenant,
// CreatedAt and UpdatedAt are set by the store.
func (c collection[T, P]) Create(ctx context.Context, rec T) (T, error) {
	var zero T
	m := P(&rec).RecordMeta()
	if err := ctx.Err(); err != nil {
		return zero, c.errorf("create", m.ID, err)
	}
	if err := check[T, P](&rec); err != nil {
		return zero, c.errorf("create", m.ID, err)
	}
	ts := now()
	m.Tenant, m.CreatedAt, m.UpdatedAt = c.tenant, ts, ts
	data, err := json.Marshal(P(&rec))
	if err != nil {
		return zero, c.errorf("create", m.ID, err)
	}
	key := []byte(m.ID)
	err = c.s.batch(func(tx *bolt.Tx) error {
		b, err := c.records(tx)
		if err != nil {
			return err
		}
		if b.Get(key) != nil {
			return graph.ErrConflict
		}
		return b.Put(key, data)
	})
	if err != nil {
		return zero, c.errorf("create", m.ID, err)
	}
	// Return what is stored, not the caller's maps and slices.
	return c.decode(data)
}

// Get returns the record with id.
func (c collection[T, P]) Get(ctx context.Context, id string) (T, error) {
	var rec T
	err := ctx.Err()
	if err == nil {
		err = c.s.view(func(tx *bolt.Tx) error {
			b, err := c.records(tx)
			if err != nil {
				return err
			}
			data := b.Get([]byte(id))
			if data == nil || !validID(id) {
				return graph.ErrNotFound
			}
			rec, err = c.decode(data)
			return err
		})
	}
	if err != nil {
		var zero T
		return zero, c.errorf("get", id, err)
	}
	return rec, nil
}

// List returns every record of the kind in the tenant, ordered by id.
func (c collection[T, P]) List(ctx context.Context) ([]T, error) {
	out := []T{}
	err := ctx.Err()
	if err == nil {
		err = c.s.view(func(tx *bolt.Tx) error {
			b, err := c.records(tx)
			if err != nil {
				return err
			}
			return b.ForEach(func(k, v []byte) error {
				rec, err := c.decode(v)
				if err != nil {
					return fmt.Errorf("%q: %w", k, err)
				}
				out = append(out, rec)
				return nil
			})
		})
	}
	if err != nil {
		return nil, fmt.Errorf("embedded: list %ss in tenant %q: %w", c.kind, c.tenant, err)
	}
	return out, nil
}

// Update replaces the record with rec.ID, keeping its CreatedAt.
func (c collection[T, P]) Update(ctx context.Context, rec T) (T, error) {
	var zero T
	m := P(&rec).RecordMeta()
	if err := ctx.Err(); err != nil {
		return zero, c.errorf("update", m.ID, err)
	}
	if err := check[T, P](&rec); err != nil {
		return zero, c.errorf("update", m.ID, err)
	}
	ts := now()
	m.Tenant = c.tenant
	key := []byte(m.ID)
	var data []byte
	err := c.s.batch(func(tx *bolt.Tx) error {
		b, err := c.records(tx)
		if err != nil {
			return err
		}
		old := b.Get(key)
		if old == nil {
			return graph.ErrNotFound
		}
		prev, err := readTimestamps(old)
		if err != nil {
			return err
		}
		m.CreatedAt, m.UpdatedAt = prev.CreatedAt, later(ts, prev.UpdatedAt)
		if d, ok := any(&rec).(*graph.Device); ok {
			if err := keepObserved(d, old); err != nil {
				return err
			}
		}
		if data, err = json.Marshal(P(&rec)); err != nil {
			return err
		}
		return b.Put(key, data)
	})
	if err != nil {
		return zero, c.errorf("update", m.ID, err)
	}
	return c.decode(data)
}

// Delete removes the record with id.
func (c collection[T, P]) Delete(ctx context.Context, id string) error {
	err := ctx.Err()
	if err == nil {
		err = c.s.batch(func(tx *bolt.Tx) error {
			b, err := c.records(tx)
			if err != nil {
				return err
			}
			if !validID(id) || b.Get([]byte(id)) == nil {
				return graph.ErrNotFound
			}
			return b.Delete([]byte(id))
		})
	}
	if err != nil {
		return c.errorf("delete", id, err)
	}
	return nil
}

// keepObserved carries a device's observed fields (written only by
// RecordSeen) over from its stored form, so an update built from an older
// read cannot roll them back.
func keepObserved(d *graph.Device, stored []byte) error {
	var prev graph.Device
	if err := json.Unmarshal(stored, &prev); err != nil {
		return err
	}
	d.LastSeen, d.Firmware = prev.LastSeen, prev.Firmware
	return nil
}
