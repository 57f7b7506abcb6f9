package dgraph

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/dgraph-io/dgo/v230/protos/api"

	"github.com/switchyard/switchyard/graph"
)

// RecordSeen writes a batch of sightings: per tenant, one query finds the
// devices' nodes and one mutation sets their observed fields. Sightings of
// tenants or devices that do not exist are skipped. A device deleted between
// the two requests keeps a stray last-seen value on a node no query reaches.
func (s *Store) RecordSeen(ctx context.Context, batch []graph.Seen) error {
	if err := s.live(); err != nil {
		return fmt.Errorf("dgraph: record seen: %w", err)
	}
	byTenant := map[string][]graph.Seen{}
	for i, e := range batch {
		if e.At.IsZero() {
			return fmt.Errorf("dgraph: record seen: %w", graph.Invalid(fmt.Sprintf("batch[%d].at", i), "is required"))
		}
		if graph.ValidID("device", e.Device) == nil {
			byTenant[e.Tenant] = append(byTenant[e.Tenant], e)
		}
	}
	for tenant, seen := range byTenant {
		err := s.recordSeen(ctx, tenant, seen)
		if err != nil && !errors.Is(err, graph.ErrTenantNotFound) {
			return wrap(ctx, fmt.Sprintf("record seen in tenant %q", tenant), err)
		}
	}
	return nil
}

func (s *Store) recordSeen(ctx context.Context, tenant string, seen []graph.Seen) error {
	sess, err := s.tenant(ctx, tenant)
	if err != nil {
		return err
	}
	// Device ids are checked above (no quote can occur), so the keys are
	// written into the query directly: eq takes a list, a variable cannot.
	keys := make([]string, len(seen))
	for i, e := range seen {
		keys[i] = strconv.Quote("device/" + e.Device)
	}
	resp, err := sess.do(ctx, &api.Request{ReadOnly: true,
		Query: `{ n(func: eq(sy.key, [` + strings.Join(keys, ",") + `])) { uid sy.key } }`})
	if err != nil {
		return err
	}
	found, err := nodes(resp)
	if err != nil {
		return err
	}
	uids := make(map[string]string, len(found))
	for _, n := range found {
		uids[strings.TrimPrefix(n.Key, "device/")] = n.UID
	}
	var set []map[string]any
	for _, e := range seen {
		uid, ok := uids[e.Device]
		if !ok {
			continue
		}
		m := map[string]any{"uid": uid, "device.last_seen": e.At.UTC()}
		if e.Firmware != "" {
			m["device.firmware"] = e.Firmware
		}
		set = append(set, m)
	}
	if len(set) == 0 {
		return nil
	}
	_, err = sess.do(ctx, &api.Request{Mutations: []*api.Mutation{{SetJson: mustJSON(set)}}})
	return err
}
