package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/runtime/config"
)

// seed makes sure the default tenant exists and writes the junctions
// declared in the configuration file into the store (creating their tenants
// when needed). A declared junction replaces a stored one with the same id at
// every start: the file is authoritative for what it declares.
func seed(ctx context.Context, store graph.Store, declared []config.Junction) error {
	if err := ensureTenant(ctx, store, graph.DefaultTenant); err != nil {
		return err
	}
	for _, d := range declared {
		tenant := d.Tenant
		if tenant == "" {
			tenant = graph.DefaultTenant
		}
		if err := ensureTenant(ctx, store, tenant); err != nil {
			return err
		}
		j := graph.Junction{Meta: graph.Meta{ID: d.ID}, Enabled: true, Source: d.Source, Transforms: d.Transforms}
		for _, t := range d.Targets {
			j.Targets = append(j.Targets, graph.Target{Device: t.Device, Selector: t.Selector, Broker: t.Broker})
		}
		junctions := store.Tenant(tenant).Junctions()
		_, err := junctions.Update(ctx, j)
		if errors.Is(err, graph.ErrNotFound) {
			_, err = junctions.Create(ctx, j)
		}
		if err != nil {
			return fmt.Errorf("junctions: apply %q of tenant %q: %w", d.ID, tenant, err)
		}
	}
	return nil
}

func ensureTenant(ctx context.Context, store graph.Store, id string) error {
	_, err := store.CreateTenant(ctx, graph.Tenant{ID: id})
	if err != nil && !errors.Is(err, graph.ErrConflict) {
		return fmt.Errorf("create tenant %q: %w", id, err)
	}
	return nil
}
