// Package app assembles a running Switchyard from a loaded configuration:
// it opens the graph store, makes sure the default tenant exists, applies the
// junctions declared in the file, loads the in-memory views (devices, API
// keys, junction routes), and starts the device gateway and the admin API.
// Stop takes it down in the reverse order.
//
// It holds no logic of its own beyond that order; every behaviour lives in
// the packages it wires.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchyard/switchyard/firmware"
	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/graph/embedded"
	"github.com/switchyard/switchyard/runtime/api"
	"github.com/switchyard/switchyard/runtime/backup"
	"github.com/switchyard/switchyard/runtime/catalog"
	"github.com/switchyard/switchyard/runtime/config"
	"github.com/switchyard/switchyard/runtime/gateway"
	"github.com/switchyard/switchyard/runtime/host"
	"github.com/switchyard/switchyard/runtime/host/wasm"
	"github.com/switchyard/switchyard/runtime/junction"
	"github.com/switchyard/switchyard/runtime/lastseen"
	"github.com/switchyard/switchyard/runtime/modules"
	"github.com/switchyard/switchyard/runtime/reload"
)

// App is a started Switchyard.
type App struct {
	cfg      *config.Config
	log      *slog.Logger
	store    graph.Store
	seen     *lastseen.Batcher
	firmware *firmware.Service
	gateway  *gateway.Gateway
	wasm     *wasm.Runtime
	plugins  *host.Host
	control  *reload.Controller
	router   *junction.Router
	api      *api.Server
	stopping atomic.Bool
	unwatch  context.CancelFunc
}

// Options are what Start needs besides the configuration.
type Options struct {
	// Source is where the configuration was loaded from: Reload reads it
	// again. Nil: there is no file to reload.
	Source *config.Source
	// Watch reloads the configuration file when it changes.
	Watch   bool
	Logger  *slog.Logger
	Version string
	// KeyGenerated is called once, on the first start without a configured
	// operator key, with the generated key: the only time it exists in clear.
	KeyGenerated func(key string)
	// DeviceToken is called when a device declared in the file is created,
	// with its new token: the only time it exists in clear.
	DeviceToken func(tenant, device, token string)
}

// Start brings Switchyard up. On error everything started so far is stopped.
func Start(ctx context.Context, cfg *config.Config, o Options) (_ *App, err error) {
	a := &App{cfg: cfg, log: o.Logger}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()

	store, err := openStore(ctx, cfg, o.Logger)
	if err != nil {
		return nil, err
	}
	a.store = store
	cleanup = append(cleanup, func() { _ = store.Close() })

	if err := reload.Seed(ctx, store, cfg, o.DeviceToken); err != nil {
		return nil, err
	}
	keyHash, generated, err := api.OperatorKey(ctx, store, cfg.API.OperatorKey)
	if err != nil {
		return nil, err
	}
	if generated != "" && o.KeyGenerated != nil {
		o.KeyGenerated(generated)
	}
	devices, err := catalog.Load(ctx, store)
	if err != nil {
		return nil, err
	}
	keys, err := api.LoadKeys(ctx, store)
	if err != nil {
		return nil, err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Compiled modules are cached on disk next to the store, so a restart
	// loads them in milliseconds instead of compiling them again.
	wrt, err := wasm.NewRuntime(ctx, wasm.RuntimeOptions{
		CacheDir:   cfg.CacheDirOrDefault(),
		Logger:     o.Logger,
		Registerer: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("plugin host: %w", err)
	}
	cleanup = append(cleanup, func() { _ = wrt.Close(context.Background()) })
	a.wasm = wrt
	mods, err := modules.Open(cfg.ModulesDirOrDefault())
	if err != nil {
		return nil, fmt.Errorf("plugin modules: %w", err)
	}
	plugins := host.New(wrt, o.Logger, reg)
	a.plugins = plugins
	cleanup = append(cleanup, func() { plugins.Close(context.Background()) })

	a.seen = lastseen.New(store, cfg.Gateway.LastSeenFlush, o.Logger, reg)
	cleanup = append(cleanup, func() { a.seen.Close(context.Background()) })

	images, err := modules.Open(filepath.Join(cfg.FirmwareDirOrDefault(), "images"))
	if err != nil {
		return nil, fmt.Errorf("firmware images: %w", err)
	}
	fwKey := firmware.NewKey(cfg.SigningKeyOrDefault())
	fw, err := firmware.New(firmware.Options{
		Store: store, Blobs: modules.NewImages(images), Key: fwKey,
		MaxImageSize: int64(cfg.Firmware.MaxImageSize), Logger: o.Logger, Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	if err := fw.Load(ctx); err != nil {
		return nil, err
	}
	fw.Start()
	a.firmware = fw
	cleanup = append(cleanup, func() { _ = fw.Close(context.Background()) })

	router := junction.New(junction.Options{Stages: plugins, Brokers: plugins, Logger: o.Logger, Registry: reg})
	a.control = reload.New(reload.Options{Source: o.Source, Config: cfg, Store: store, Host: plugins, Router: router,
		Modules: mods, Logger: o.Logger, DeviceToken: o.DeviceToken})
	if _, err := a.control.Start(ctx); err != nil {
		return nil, err
	}
	gw, err := gateway.New(gateway.Options{
		Config:     cfg.Gateway,
		Auth:       devices,
		Seen:       a.seen,
		Data:       router,
		Firmware:   fw,
		Downloads:  gateway.DownloadLimits{Max: cfg.Firmware.MaxDownloads, Stall: cfg.Firmware.DownloadStall},
		Logger:     o.Logger,
		Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	fw.SetOfferer(gw)
	router.Attach(gw)
	a.router = router
	cleanup = append(cleanup, func() { router.Close(context.Background()) })
	tenants, err := store.ListTenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	for _, t := range tenants {
		if err := router.Reload(ctx, store, t.ID); err != nil {
			return nil, err
		}
	}

	if err := gw.Start(); err != nil {
		return nil, err
	}
	a.gateway = gw
	cleanup = append(cleanup, func() { _ = gw.Shutdown(context.Background()) })
	plugins.Start(router.Route)

	a.api = api.New(api.Options{
		Config:      cfg.API,
		Store:       store,
		Catalog:     devices,
		Gateway:     gw,
		Router:      router,
		Plugins:     plugins,
		Control:     a.control,
		Modules:     mods,
		Firmware:    fw,
		FirmwareKey: fwKey,
		Backup:      backupOf(cfg, store, o.Version),
		CheckWASM:   func(ctx context.Context, code []byte) error { return checkWASM(ctx, wrt, code) },
		OperatorKey: keyHash,
		Keys:        keys,
		Ready: []api.Check{
			{Name: "store", Check: store.Ping},
			{Name: "shutdown", Check: a.notStopping},
		},
		Logger:   o.Logger,
		Registry: reg,
		Version:  o.Version,
	})
	if err := a.api.Start(); err != nil {
		return nil, err
	}
	if o.Watch && o.Source != nil && o.Source.Path != "" {
		wctx, cancel := context.WithCancel(context.Background())
		a.unwatch = cancel
		cleanup = append(cleanup, cancel)
		if err := config.Watch(wctx, o.Source.Path, watchSettle, func() { a.Reload(wctx, "file") }); err != nil {
			return nil, err
		}
	}
	o.Logger.Info("switchyard started", "version", o.Version, "gateway", gw.Addr().String(),
		"api", a.api.Addr().String(), "devices", devices.Len(), "store", cfg.Store.Backend)
	return a, nil
}

// backupOf writes backups of an embedded installation; nil on Dgraph.
func backupOf(cfg *config.Config, store graph.Store, version string) func(io.Writer) error {
	s, ok := store.(*embedded.Store)
	if !ok {
		return nil
	}
	return func(w io.Writer) error { return backup.Write(w, s, backup.LayoutOf(cfg), version) }
}

// watchSettle is how long the configuration file must stay unchanged
// after a write before it is reloaded: editors write in several steps.
const watchSettle = 250 * time.Millisecond

// Reload applies the configuration file again (see runtime/reload); cause
// says who asked: file, signal, api. The outcome is logged.
func (a *App) Reload(ctx context.Context, cause string) (host.Generation, error) {
	return a.control.Reload(ctx, cause)
}

// checkWASM compiles an uploaded module (a check of its imports, exports
// and ABI version) and releases it; the compiled code stays in the cache.
func checkWASM(ctx context.Context, rt *wasm.Runtime, code []byte) error {
	mod, err := rt.Compile(ctx, code)
	if err != nil {
		return err
	}
	return mod.Close(ctx)
}

// GatewayAddr is where devices connect.
func (a *App) GatewayAddr() net.Addr { return a.gateway.Addr() }

// APIAddr is where the admin API listens.
func (a *App) APIAddr() net.Addr { return a.api.Addr() }

// APIRoutes lists the admin API's /api/ routes.
func (a *App) APIRoutes() []api.Route { return a.api.Routes() }

func (a *App) notStopping(context.Context) error {
	if a.stopping.Load() {
		return errors.New("shutting down")
	}
	return nil
}

// Stop stops the collectors, delivers what the junctions hold, drains devices (close 1001 with a
// reconnect hint), stops the API, writes pending last-seen times and closes
// the store, all within ctx.
func (a *App) Stop(ctx context.Context) error {
	a.stopping.Store(true)
	if a.unwatch != nil {
		a.unwatch()
	}
	a.plugins.StopCollectors() // nothing new enters the junctions from plugins
	// What the junctions hold goes through live transforms, within half the
	// drain budget; the other half is the devices'.
	rctx, cancel := context.WithTimeout(ctx, a.cfg.Gateway.DrainTimeout/2)
	a.router.Close(rctx)
	cancel()
	errs := []error{a.gateway.Shutdown(ctx)}
	errs = append(errs, a.firmware.Close(ctx))
	a.plugins.Close(ctx)
	errs = append(errs, a.wasm.Close(ctx))
	errs = append(errs, a.api.Shutdown(ctx))
	a.seen.Close(ctx)
	errs = append(errs, a.store.Close())
	a.log.Info("switchyard stopped")
	return errors.Join(errs...)
}
