// Package reload changes a running Switchyard without a restart. It applies
// the configuration file again (when the file changes, on SIGHUP, on POST
// /api/v1/reload), plugin instances a tenant adds, replaces or removes
// through the API, and rollbacks to an earlier plugin generation — each as
// one new generation of the plugin host (runtime/host), built in full
// before it is swapped in.
//
// What cannot change while the process runs (listen addresses, the store,
// …) is refused with the settings named, and a refused change applies
// nothing: not the plugins, not the declarations of the file, not the
// store records of the API. Devices never notice: the gateway is not
// touched, and junctions keep their queues (they reach transforms by id).
//
// The sources of the plugin set are the file (its plugins, owned by the
// operator) and the graph store (the instances declared through the API,
// each in its tenant, with modules from runtime/modules). An id is declared
// by one of the two, never both.
package reload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/runtime/config"
	"github.com/switchyard/switchyard/runtime/host"
	"github.com/switchyard/switchyard/runtime/junction"
	"github.com/switchyard/switchyard/runtime/modules"
)

var (
	// ErrNoFile refuses a reload when Switchyard was started without a
	// configuration file.
	ErrNoFile = errors.New("no configuration file to reload")
	// ErrLiveOnly refuses a reload that changes settings fixed while the
	// process runs; the error lists them.
	ErrLiveOnly = errors.New("the configuration changes settings that cannot change while Switchyard runs; nothing was applied")
	// ErrDeclaredInFile refuses an API write to an instance the file
	// declares, and a file that declares an instance the API declared.
	ErrDeclaredInFile = errors.New("declared in the configuration file")
	// ErrModule refuses an instance whose module is not usable.
	ErrModule = errors.New("module not available")
	// ErrNoGeneration refuses a rollback to a generation not remembered.
	ErrNoGeneration = errors.New("no such generation to roll back to")
)

// Options wire a Controller.
type Options struct {
	// Source is where the configuration was loaded from; nil or an empty
	// Path: there is no file to reload.
	Source *config.Source
	// Config is the configuration Switchyard started with.
	Config  *config.Config
	Store   graph.Store
	Host    *host.Host
	Router  *junction.Router
	Modules *modules.Store
	Logger  *slog.Logger
	// DeviceToken is given the token of a device a reloaded file declares
	// and the reload creates: the only time it exists in clear.
	DeviceToken func(tenant, device, token string)
}

// Controller applies changes one at a time.
type Controller struct {
	o   Options
	mu  sync.Mutex
	cfg *config.Config // the configuration file in effect
	// file is the file's plugin set in effect: cfg.Plugins, or what a
	// rollback restored until the file changes again.
	file []config.Plugin
}

// New returns a controller of a Switchyard started with o.Config.
func New(o Options) *Controller {
	file := slices.Clone(o.Config.Plugins)
	for i := range file {
		if file[i].Tenant == "" {
			file[i].Tenant = graph.DefaultTenant
		}
	}
	return &Controller{o: o, cfg: o.Config, file: file}
}

// Start applies the first generation: the file's instances and the API's.
// When the API's cannot all be built (a module removed from disk, a plugin
// that now refuses its config), Switchyard starts with the file's alone and
// the failed attempt stays in the history, so one tenant's instance cannot
// keep the relay down.
func (c *Controller) Start(ctx context.Context) (host.Generation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	api, err := c.apiDecls(ctx)
	if err != nil {
		return host.Generation{}, err
	}
	g, err := c.o.Host.Apply(ctx, host.Plan{Decls: join(c.file, api), Cause: "start"})
	if err != nil && len(api) > 0 {
		c.o.Logger.Error("plugin instances declared through the API could not be loaded; starting with the file's alone", "err", err)
		g, err = c.o.Host.Apply(ctx, host.Plan{Decls: c.file, Cause: "start (the file's instances alone)"})
	}
	return g, err
}

// Reload reads the configuration file again and applies its plugins,
// tenants, devices and junctions as one change, with the API's instances;
// cause says who asked (file, signal, api). The outcome is logged.
func (c *Controller) Reload(ctx context.Context, cause string) (host.Generation, error) {
	g, err := c.reload(ctx, cause)
	if err != nil {
		c.o.Logger.Error("configuration not reloaded", "cause", cause, "err", err)
	} else {
		c.o.Logger.Info("configuration reloaded", "cause", cause, "generation", g.Number)
	}
	return g, err
}

func (c *Controller) reload(ctx context.Context, cause string) (host.Generation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.o.Source == nil || c.o.Source.Path == "" {
		return host.Generation{}, ErrNoFile
	}
	next, err := config.Load(*c.o.Source) // its problems name the file
	if err != nil {
		return host.Generation{}, err
	}
	if problems := config.LiveOnlyChanges(c.cfg, next); problems != nil {
		return host.Generation{}, fmt.Errorf("%s: %w: %w", c.o.Source.Path, ErrLiveOnly, problems)
	}
	api, err := c.apiDecls(ctx)
	if err != nil {
		return host.Generation{}, err
	}
	for _, d := range api {
		if i := slices.IndexFunc(next.Plugins, func(p config.Plugin) bool { return sameKey(p, d) }); i >= 0 {
			return host.Generation{}, fmt.Errorf("%s: plugins[%d]: instance %q of tenant %q is also declared through the API; remove one of the two: %w",
				c.o.Source.Path, i, d.ID, d.Tenant, ErrDeclaredInFile)
		}
	}
	g, err := c.o.Host.Apply(ctx, host.Plan{Decls: join(next.Plugins, api), Cause: cause,
		Commit: func() error { return Seed(ctx, c.o.Store, next, c.o.DeviceToken) }})
	if err != nil {
		return g, err
	}
	c.cfg, c.file = next, next.Plugins
	return g, c.reloadJunctions(ctx)
}

// reloadJunctions sets every tenant's junctions from the store again, for
// the junctions a reloaded file declares.
func (c *Controller) reloadJunctions(ctx context.Context) error {
	tenants, err := c.o.Store.ListTenants(ctx)
	if err != nil {
		return fmt.Errorf("junctions: list tenants: %w", err)
	}
	for _, t := range tenants {
		if err := c.o.Router.Reload(ctx, c.o.Store, t.ID); err != nil {
			return err
		}
	}
	return nil
}

// PutInstance creates (create) or replaces the API-declared instance rec of
// tenant and applies it: the store is written only once the new generation
// is ready, and it serves only once the store is written.
func (c *Controller) PutInstance(ctx context.Context, tenant string, rec graph.PluginInstance, create bool) (graph.PluginInstance, host.Generation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec.Tenant = tenant
	if err := c.notInFile(tenant, rec.ID); err != nil {
		return rec, host.Generation{}, err
	}
	if err := rec.Validate(); err != nil {
		return rec, host.Generation{}, err
	}
	d, err := c.declOf(tenant, rec)
	if err != nil {
		return rec, host.Generation{}, err
	}
	plugins := c.o.Store.Tenant(tenant).Plugins()
	if _, err := plugins.Get(ctx, rec.ID); create && err == nil {
		return rec, host.Generation{}, fmt.Errorf("plugin instance %q: %w", rec.ID, graph.ErrConflict)
	} else if !create && err != nil {
		return rec, host.Generation{}, err
	}
	api, err := c.apiDecls(ctx)
	if err != nil {
		return rec, host.Generation{}, err
	}
	api = slices.DeleteFunc(api, func(p config.Plugin) bool { return sameKey(p, d) })
	var out graph.PluginInstance
	g, err := c.o.Host.Apply(ctx, host.Plan{Decls: join(c.file, append(api, d)), Cause: "api", Tenant: tenant,
		Commit: func() (err error) {
			if create {
				out, err = plugins.Create(ctx, rec)
			} else {
				out, err = plugins.Update(ctx, rec)
			}
			return err
		}})
	return out, g, err
}

// DeleteInstance removes the API-declared instance id of tenant.
func (c *Controller) DeleteInstance(ctx context.Context, tenant, id string) (host.Generation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.notInFile(tenant, id); err != nil {
		return host.Generation{}, err
	}
	plugins := c.o.Store.Tenant(tenant).Plugins()
	if _, err := plugins.Get(ctx, id); err != nil {
		return host.Generation{}, err
	}
	api, err := c.apiDecls(ctx)
	if err != nil {
		return host.Generation{}, err
	}
	api = slices.DeleteFunc(api, func(p config.Plugin) bool { return p.Tenant == tenant && p.ID == id })
	return c.o.Host.Apply(ctx, host.Plan{Decls: join(c.file, api), Cause: "api", Tenant: tenant,
		Commit: func() error { return plugins.Delete(ctx, id) }})
}

// TenantDeleted stops the API-declared instances of a tenant just deleted
// (its records went with it) and removes its modules.
func (c *Controller) TenantDeleted(ctx context.Context, tenant string) (host.Generation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	api, err := c.apiDecls(ctx)
	if err != nil {
		return host.Generation{}, err
	}
	g, err := c.o.Host.Apply(ctx, host.Plan{Decls: join(c.file, api), Cause: "tenant deleted"})
	if err != nil {
		return g, err
	}
	return g, c.o.Modules.RemoveTenant(tenant)
}

// Rollback applies generation to again (0: the one before). For the
// operator (tenant "") it is the whole plugin set, the file's instances
// included until the file changes again; for a tenant, only its
// API-declared instances, and 0 means the generation before its latest
// change. The store's records follow.
func (c *Controller) Rollback(ctx context.Context, tenant string, to uint64) (host.Generation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if to == 0 {
		var ok bool
		if to, ok = c.rollbackTarget(tenant); !ok {
			return host.Generation{}, fmt.Errorf("%w: no earlier generation is remembered", ErrNoGeneration)
		}
	}
	target, ok := c.o.Host.Decls(to)
	if !ok {
		return host.Generation{}, fmt.Errorf("%w: generation %d is not remembered, or failed", ErrNoGeneration, to)
	}
	api, err := c.apiDecls(ctx)
	if err != nil {
		return host.Generation{}, err
	}
	file, wantAPI := c.file, api
	if tenant == "" {
		file = slices.DeleteFunc(slices.Clone(target), func(p config.Plugin) bool { return p.Origin == config.OriginAPI })
		wantAPI = slices.DeleteFunc(slices.Clone(target), func(p config.Plugin) bool { return p.Origin != config.OriginAPI })
	} else {
		wantAPI = slices.DeleteFunc(slices.Clone(api), func(p config.Plugin) bool { return p.Tenant == tenant })
		for _, p := range target {
			if p.Origin != config.OriginAPI || p.Tenant != tenant {
				continue
			}
			if err := c.notInFile(tenant, p.ID); err != nil {
				return host.Generation{}, err
			}
			wantAPI = append(wantAPI, p)
		}
	}
	g, err := c.o.Host.Apply(ctx, host.Plan{Decls: join(file, wantAPI), Cause: fmt.Sprintf("rollback to %d", to), Tenant: tenant,
		Commit: func() error { return c.syncRecords(ctx, tenant, wantAPI) }})
	if err == nil && tenant == "" {
		c.file = file
	}
	return g, err
}

// rollbackTarget is the default generation to roll back to.
func (c *Controller) rollbackTarget(tenant string) (uint64, bool) {
	if tenant == "" {
		return c.o.Host.Previous()
	}
	all := c.o.Host.History("")
	mine := c.o.Host.History(tenant)
	for _, g := range mine {
		if g.State == host.StateFailed {
			continue
		}
		for _, before := range all {
			if before.Number < g.Number && before.State != host.StateFailed {
				return before.Number, true
			}
		}
		return 0, false
	}
	return 0, false
}

// syncRecords makes the store's API-declared instances of tenant (every
// tenant for "") those of want.
func (c *Controller) syncRecords(ctx context.Context, tenant string, want []config.Plugin) error {
	tenants := []string{tenant}
	if tenant == "" {
		list, err := c.o.Store.ListTenants(ctx)
		if err != nil {
			return err
		}
		tenants = tenants[:0]
		for _, t := range list {
			tenants = append(tenants, t.ID)
		}
	}
	for _, t := range tenants {
		plugins := c.o.Store.Tenant(t).Plugins()
		stored, err := plugins.List(ctx)
		if err != nil {
			return err
		}
		keep := map[string]bool{}
		for _, d := range want {
			if d.Tenant != t {
				continue
			}
			keep[d.ID] = true
			rec := recordOf(d)
			if slices.ContainsFunc(stored, func(s graph.PluginInstance) bool { return s.ID == d.ID }) {
				_, err = plugins.Update(ctx, rec)
			} else {
				_, err = plugins.Create(ctx, rec)
			}
			if err != nil {
				return err
			}
		}
		for _, s := range stored {
			if !keep[s.ID] {
				if err := plugins.Delete(ctx, s.ID); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// notInFile refuses an API write to an instance the file declares.
func (c *Controller) notInFile(tenant, id string) error {
	if slices.ContainsFunc(c.file, func(p config.Plugin) bool { return p.Tenant == tenant && p.ID == id }) {
		return fmt.Errorf("plugin instance %q of tenant %q is %w; change it there and reload", id, tenant, ErrDeclaredInFile)
	}
	return nil
}

// apiDecls reads every tenant's API-declared instances from the store. A
// record that cannot be declared any more (its module was removed from
// disk) is left out and logged: it must not block every other change.
func (c *Controller) apiDecls(ctx context.Context) ([]config.Plugin, error) {
	tenants, err := c.o.Store.ListTenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("plugins: list tenants: %w", err)
	}
	var out []config.Plugin
	for _, t := range tenants {
		recs, err := c.o.Store.Tenant(t.ID).Plugins().List(ctx)
		if err != nil {
			return nil, fmt.Errorf("plugins of tenant %q: %w", t.ID, err)
		}
		for _, rec := range recs {
			d, err := c.declOf(t.ID, rec)
			if err != nil {
				c.o.Logger.Error("plugin instance left out", "tenant", t.ID, "instance", rec.ID, "err", err)
				continue
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// declOf turns an API record into a declaration, its module resolved in
// the tenant's uploads.
func (c *Controller) declOf(tenant string, rec graph.PluginInstance) (config.Plugin, error) {
	path := ""
	if rec.Runtime == "wasm" || rec.Runtime == "process" {
		if rec.Module == "" {
			return config.Plugin{}, fmt.Errorf("plugin instance %q: module: is required for runtime %s: the sha256 of a module uploaded to tenant %q: %w",
				rec.ID, rec.Runtime, tenant, ErrModule)
		}
		p, info, err := c.o.Modules.Path(tenant, rec.Module)
		if err != nil {
			return config.Plugin{}, fmt.Errorf("plugin instance %q: module %s: %w (upload it to POST /api/v1/tenants/%s/modules first): %w",
				rec.ID, rec.Module, err, tenant, ErrModule)
		}
		if string(info.Kind) != rec.Runtime {
			return config.Plugin{}, fmt.Errorf("plugin instance %q: module %s was uploaded as %s, runtime %s needs a %s module: %w",
				rec.ID, rec.Module, info.Kind, rec.Runtime, rec.Runtime, ErrModule)
		}
		path = p
	}
	d, err := config.PluginFromRecord(rec, path)
	if err != nil {
		return d, fmt.Errorf("plugin instance %q: %w", rec.ID, err)
	}
	d.Tenant, d.Origin = tenant, config.OriginAPI
	if d.Runtime == "wasm" {
		d.SHA256 = rec.Module // the host reads the bytes; kept to write the record back
	}
	return d, nil
}

// recordOf is the store record of an API-declared instance.
func recordOf(d config.Plugin) graph.PluginInstance {
	rec := config.RecordOf(d)
	rec.Module = d.SHA256
	return rec
}

func sameKey(a, b config.Plugin) bool { return a.Tenant == b.Tenant && a.ID == b.ID }

func join(file, api []config.Plugin) []config.Plugin {
	return append(slices.Clone(file), api...)
}
