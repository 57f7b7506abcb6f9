// Package builtin runs a plugin compiled into the relay — a Go package that
// registered itself with sdk/plugin at init — in-process: it makes the
// instance, decodes its configuration strictly, provisions and validates it,
// and calls it, turning a panic in plugin code into an error of that call so
// that a faulty plugin cannot take the relay down. The same plugin code runs
// out of process through runtime/host/process.
package builtin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/sdk/plugin"
)

// Stats are an instance's counters.
type Stats struct {
	Calls       uint64
	Errors      uint64
	LastError   string
	LastErrorAt time.Time
}

// Instance is one configured built-in plugin.
type Instance struct {
	id       plugin.ID
	tenant   string
	instance string
	value    any
	log      *slog.Logger // the instance's, given to its every call (plugin.Logger)

	calls, errors atomic.Uint64
	mu            sync.Mutex
	lastErr       string
	lastAt        time.Time
}

// New makes instance id of tenant, of the built-in registered under use, with
// config (a JSON object) decoded strictly, then provisioned and validated.
// The logger of ctx (plugin.Logger) is the instance's: New and every call
// hand it to the plugin with the tenant, plugin and instance attributes.
// The error names what is wrong: an unknown plugin (with the ones this build
// has), a configuration key, or the plugin's own complaint.
func New(ctx context.Context, use, tenant, id string, config []byte) (*Instance, error) {
	pid, err := plugin.ParseID(use)
	if err != nil {
		return nil, err
	}
	info, ok := plugin.Lookup(pid)
	if !ok {
		var known []string
		for _, i := range plugin.List() {
			known = append(known, string(i.ID))
		}
		return nil, fmt.Errorf("%s is not built into this relay (built in: %s)", use, strings.Join(known, ", "))
	}
	in := &Instance{id: pid, tenant: tenant, instance: id, value: info.New(),
		log: plugin.Logger(ctx).With("tenant", tenant, "plugin", use, "instance", id)}
	ctx = plugin.WithLogger(ctx, in.log)
	if len(config) == 0 {
		config = []byte("{}")
	}
	err = in.guard(func() error {
		if err := plugin.DecodeConfig(config, in.value); err != nil {
			return err
		}
		if p, ok := in.value.(plugin.Provisioner); ok {
			if err := p.Provision(ctx); err != nil {
				return fmt.Errorf("provision: %w", err)
			}
		}
		if v, ok := in.value.(plugin.Validator); ok {
			if err := v.Validate(); err != nil {
				return fmt.Errorf("validate: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		in.cleanup()
		return nil, err
	}
	return in, nil
}

// guard runs fn, turning a panic into an error.
func (in *Instance) guard(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s panicked: %v\n%s", in.id, p, debug.Stack())
		}
	}()
	return fn()
}

// call runs fn as one counted call of the instance.
func (in *Instance) call(fn func() error) error {
	in.calls.Add(1)
	err := in.guard(fn)
	if err != nil && !errors.Is(err, context.Canceled) {
		in.errors.Add(1)
		in.mu.Lock()
		in.lastErr, in.lastAt = err.Error(), time.Now()
		in.mu.Unlock()
	}
	return err
}

// Collect runs a collector until ctx ends; emit gets every message, stamped
// with the instance's tenant and, as its source, the instance id (a
// junction's collector names it); a message without a time gets the time it
// was emitted.
func (in *Instance) Collect(ctx context.Context, emit func(plugin.Message) error) error {
	c, ok := in.value.(plugin.Collector)
	if !ok {
		return fmt.Errorf("%s is not a collector", in.id)
	}
	ctx = plugin.WithLogger(ctx, in.log)
	return in.call(func() error {
		return c.Collect(ctx, plugin.EmitFunc(func(m plugin.Message) error {
			m.Tenant, m.Source = in.tenant, in.instance
			if m.Time.IsZero() {
				m.Time = time.Now()
			}
			return emit(m)
		}))
	})
}

// Transform runs a transform on one message.
func (in *Instance) Transform(ctx context.Context, m plugin.Message, emit func(plugin.Message)) error {
	t, ok := in.value.(plugin.Transform)
	if !ok {
		return fmt.Errorf("%s is not a transform", in.id)
	}
	var out []plugin.Message
	ctx = plugin.WithLogger(ctx, in.log)
	err := in.call(func() error {
		return t.Transform(ctx, m, plugin.EmitFunc(func(o plugin.Message) error {
			o.Tenant = in.tenant
			out = append(out, o)
			return nil
		}))
	})
	if err != nil {
		return err // what was emitted is discarded, as the contract says
	}
	for _, o := range out {
		emit(o)
	}
	return nil
}

// Publish hands a batch to a broker.
func (in *Instance) Publish(ctx context.Context, batch []plugin.Message) error {
	b, ok := in.value.(plugin.Broker)
	if !ok {
		return fmt.Errorf("%s is not a broker", in.id)
	}
	ctx = plugin.WithLogger(ctx, in.log)
	return in.call(func() error { return b.Publish(ctx, batch) })
}

// Stats returns the instance's counters.
func (in *Instance) Stats() Stats {
	in.mu.Lock()
	defer in.mu.Unlock()
	return Stats{Calls: in.calls.Load(), Errors: in.errors.Load(), LastError: in.lastErr, LastErrorAt: in.lastAt}
}

// Close retires the instance (the plugin's Cleanup, when it has one).
func (in *Instance) Close() error { return in.cleanup() }

func (in *Instance) cleanup() error {
	c, ok := in.value.(plugin.CleanerUpper)
	if !ok {
		return nil
	}
	return in.guard(c.Cleanup)
}
