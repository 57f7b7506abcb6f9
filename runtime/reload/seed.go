package reload

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/runtime/config"
	"github.com/switchyard/switchyard/runtime/token"
)

// Seed makes sure the default tenant exists and writes what the
// configuration file declares into the store: tenants, devices and junctions
// (creating their tenants when needed). The file is authoritative for what it
// declares: a declared record replaces a stored one with the same id at every
// start — except a device's token, revocation and observed fields, which only
// the API and the device change. A device created here gets a fresh token,
// handed to tokenMade: the only time it exists in clear.
func Seed(ctx context.Context, store graph.Store, cfg *config.Config, tokenMade func(tenant, device, token string)) error {
	if err := ensureTenant(ctx, store, graph.DefaultTenant); err != nil {
		return err
	}
	for _, t := range cfg.Tenants {
		if err := ensureTenant(ctx, store, t.ID); err != nil {
			return err
		}
		if _, err := store.UpdateTenant(ctx, graph.Tenant{ID: t.ID, Name: t.Name}); err != nil {
			return fmt.Errorf("tenants: apply %q: %w", t.ID, err)
		}
	}
	for _, d := range cfg.Devices {
		if err := seedDevice(ctx, store, d, tokenMade); err != nil {
			return err
		}
	}
	for _, d := range cfg.Junctions {
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

func seedDevice(ctx context.Context, store graph.Store, d config.Device, tokenMade func(tenant, device, token string)) error {
	if err := ensureTenant(ctx, store, d.Tenant); err != nil {
		return err
	}
	devices := store.Tenant(d.Tenant).Devices()
	rec, err := devices.Get(ctx, d.ID)
	switch {
	case errors.Is(err, graph.ErrNotFound):
		secret, hash := token.New(token.DevicePrefix)
		rec = graph.Device{Meta: graph.Meta{ID: d.ID}, Name: d.Name, Model: d.Model, Labels: d.Labels, TokenHash: hash[:]}
		if _, err := devices.Create(ctx, rec); err != nil {
			return fmt.Errorf("devices: create %q of tenant %q: %w", d.ID, d.Tenant, err)
		}
		if tokenMade != nil {
			tokenMade(d.Tenant, d.ID, secret)
		}
		return nil
	case err != nil:
		return fmt.Errorf("devices: read %q of tenant %q: %w", d.ID, d.Tenant, err)
	}
	rec.Name, rec.Model, rec.Labels = d.Name, d.Model, d.Labels
	if _, err := devices.Update(ctx, rec); err != nil {
		return fmt.Errorf("devices: apply %q of tenant %q: %w", d.ID, d.Tenant, err)
	}
	return nil
}
