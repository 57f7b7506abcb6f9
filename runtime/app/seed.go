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
		j := d.Record()
		tenant := j.Tenant
		if err := ensureTenant(ctx, store, tenant); err != nil {
			return err
		}
		junctions := store.Tenant(tenant).Junctions()
		_, err := junctions.Update(ctx, j)
		if errors.Is(err, graph.ErrNotFound) {
			_, err = junctions.Create(ctx, j)
		}
		if err != nil {
			return fmt.Errorf("junctions: apply %q of tenant %q: %w", j.ID, tenant, err)
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
