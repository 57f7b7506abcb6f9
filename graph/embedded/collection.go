package embedded

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/switchyard/switchyard/graph"
)

// record is the constraint that lets one implementation serve every kind of
// record (devices, junctions, plugin instances, API keys, firmware releases,
// rollouts and firmware histories): P is *T, which carries Meta and Validate.
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
	_ graph.Collection[graph.APIKey]         = collection[graph.APIKey, *graph.APIKey]{}

	_ graph.Collection[graph.FirmwareRelease] = collection[graph.FirmwareRelease, *graph.FirmwareRelease]{}
	_ graph.Collection[graph.Rollout]         = collection[graph.Rollout, *graph.Rollout]{}
	_ graph.Collection[graph.FirmwareHistory] = collection[graph.FirmwareHistory, *graph.FirmwareHistory]{}
)

func (c collection[T, P]) errorf(op, id string, err error) error {
	return fmt.Errorf("embedded: %s %s %q in tenant %q: %w", op, c.kind, id, c.tenant, err)
}

// records returns the kind bucket of the scope's tenant, or ErrTenantNotFound,
// and the tenant's bucket.
func (c collection[T, P]) records(tx *bolt.Tx) (b, tenant *bolt.Bucket, err error) {
	tb, err := tenantBucket(tx, c.tenant)
	if err != nil {
		return nil, nil, err
	}
	b = tb.Bucket(c.bucket)
	if b == nil {
		return nil, nil, fmt.Errorf("%w: tenant %q has no %s bucket", ErrNotDatabase, c.tenant, c.bucket)
	}
	return b, tb, nil
}

// decode turns a stored record into a fresh value, with a device's observed
// fields from the tenant's seen bucket; the scope's tenant is authoritative.
func (c collection[T, P]) decode(tb *bolt.Bucket, data []byte) (T, error) {
	var rec T
	if err := json.Unmarshal(data, P(&rec)); err != nil {
		var zero T
		return zero, fmt.Errorf("decode stored %s: %w", c.kind, err)
	}
	P(&rec).RecordMeta().Tenant = c.tenant
	if d, ok := any(&rec).(*graph.Device); ok {
		if err := loadSeen(tb, c.tenant, d); err != nil {
			var zero T
			return zero, err
		}
	}
	return rec, nil
}

// encode is the stored JSON of rec, without a device's observed fields
// (they live in the seen bucket); it returns those apart.
func encode[T any, P record[T]](rec *T) (data []byte, observed *graph.Seen, err error) {
	if d, ok := any(rec).(*graph.Device); ok {
		plain := *d
		// Every device gets its seen entry, "never seen" included, so
		// RecordSeen can tell a device exists from the seen bucket alone.
		observed = &graph.Seen{Device: d.ID, At: d.LastSeen, Firmware: d.Firmware}
		plain.LastSeen, plain.Firmware = time.Time{}, ""
		data, err = json.Marshal(&plain)
		return data, observed, err
	}
	data, err = json.Marshal(P(rec))
	return data, nil, err
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
	data, observed, err := encode[T, P](&rec)
	if err != nil {
		return zero, c.errorf("create", m.ID, err)
	}
	key := []byte(m.ID)
	var out T
	err = c.s.batch(func(tx *bolt.Tx) error {
		b, tb, err := c.records(tx)
		if err != nil {
			return err
		}
		if b.Get(key) != nil {
			return graph.ErrConflict
		}
		if err := b.Put(key, data); err != nil {
			return err
		}
		if observed != nil {
			if err := putSeen(tb, c.tenant, *observed); err != nil {
				return err
			}
		}
		// Return what is stored, not the caller's maps and slices.
		out, err = c.decode(tb, data)
		return err
	})
	if err != nil {
		return zero, c.errorf("create", m.ID, err)
	}
	return out, nil
}

// Get returns the record with id.
func (c collection[T, P]) Get(ctx context.Context, id string) (T, error) {
	var rec T
	err := ctx.Err()
	if err == nil {
		err = c.s.view(func(tx *bolt.Tx) error {
			b, tb, err := c.records(tx)
			if err != nil {
				return err
			}
			data := b.Get([]byte(id))
			if data == nil || !validID(id) {
				return graph.ErrNotFound
			}
			rec, err = c.decode(tb, data)
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
			b, tb, err := c.records(tx)
			if err != nil {
				return err
			}
			return b.ForEach(func(k, v []byte) error {
				rec, err := c.decode(tb, v)
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
	var out T
	err := c.s.batch(func(tx *bolt.Tx) error {
		b, tb, err := c.records(tx)
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
		// A device's observed fields are RecordSeen's alone: an update built
		// from an older read must not roll them back, so they are not written.
		data, _, err := encode[T, P](&rec)
		if err != nil {
			return err
		}
		if err := b.Put(key, data); err != nil {
			return err
		}
		out, err = c.decode(tb, data)
		return err
	})
	if err != nil {
		return zero, c.errorf("update", m.ID, err)
	}
	return out, nil
}

// Delete removes the record with id.
func (c collection[T, P]) Delete(ctx context.Context, id string) error {
	err := ctx.Err()
	if err == nil {
		err = c.s.batch(func(tx *bolt.Tx) error {
			b, tb, err := c.records(tx)
			if err != nil {
				return err
			}
			if !validID(id) || b.Get([]byte(id)) == nil {
				return graph.ErrNotFound
			}
			if c.kind == deviceKind {
				if err := deleteSeen(tb, c.tenant, id); err != nil {
					return err
				}
			}
			return b.Delete([]byte(id))
		})
	}
	if err != nil {
		return c.errorf("delete", id, err)
	}
	return nil
}
