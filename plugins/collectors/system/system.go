// Package system is the collectors.system built-in plugin: the host's own
// sensors — CPU usage and load, memory, temperatures, disk space and I/O,
// network throughput — read from the Linux kernel's files under /proc and
// /sys every interval and emitted one message per metric on
// <subject_prefix>.<group>.<name>.
//
// It is a plain Go package registered with sdk/plugin at init and runs inside
// the relay (runtime: builtin). It only reads files under its root (and
// statfs's the mount points); it never runs a command, never writes, and
// needs no cgo. A source the host does not have (no thermal zones, a
// container without /sys/class/hwmon) gives no metrics and no error; a file
// it cannot parse is skipped and counted (Stats). On other systems than
// Linux the package compiles but Provision refuses the instance.
package system

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/switchyard/switchyard/plugins/internal/payload"
	"github.com/switchyard/switchyard/sdk/plugin"
)

// Use is the plugin's kind.name in plugins.yaml.
const Use = "collectors.system"

// Sample is a plugins.yaml entry using the plugin, as shown in the README.
//
//go:embed sample.yaml
var Sample string

// Defaults of the keys that have one.
const (
	DefaultInterval      = 10 * time.Second
	DefaultSubjectPrefix = "system"
	DefaultRoot          = "/"
)

func init() {
	plugin.Register(plugin.Info{ID: Use, New: func() any { return new(Collector) }})
}

var (
	_ plugin.Collector   = (*Collector)(nil)
	_ plugin.Provisioner = (*Collector)(nil)
	_ plugin.Validator   = (*Collector)(nil)
)

// Stats are an instance's counters since it started.
type Stats struct {
	Rounds          uint64    // rounds of reading the kernel's files
	Messages        uint64    // messages emitted and accepted
	Malformed       uint64    // files or lines skipped because they could not be read or parsed
	EmitErrors      uint64    // rounds cut short because the runtime refused a message
	LastMalformed   string    // the last of those, "path: reason", "" if none yet
	LastMalformedAt time.Time // when it was seen
}

// Collector is one configured instance. Its exported fields are its
// configuration, decoded strictly with plugin.DecodeConfig.
type Collector struct {
	Interval        *plugin.Duration `json:"interval"`
	SubjectPrefix   string           `json:"subject_prefix"`
	Groups          []string         `json:"groups"`
	PerCore         bool             `json:"per_core"`
	Mounts          []string         `json:"mounts"`
	Interfaces      []string         `json:"interfaces"`
	IncludeLoopback bool             `json:"include_loopback"`
	// Root prefixes every /proc and /sys path and the mount points given to
	// statfs: a fixture tree in tests, or the host's / mounted into a
	// container.
	Root string `json:"root"`

	interval time.Duration
	prefix   string
	log      *slog.Logger

	sampler *sampler // used by one round at a time (Collect's goroutine)

	mu     sync.Mutex
	stats  Stats
	warned map[string]bool // sources whose malformation was logged
}

// Provision fills in defaults and checks the configuration, naming every
// problem by its key. It fails on any system but Linux.
func (c *Collector) Provision(ctx context.Context) error {
	if err := supported(); err != nil {
		return fmt.Errorf("%s: %w", Use, err)
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	c.interval = DefaultInterval
	if c.Interval != nil {
		c.interval = time.Duration(*c.Interval)
		if c.interval <= 0 {
			bad("interval", "must be positive, got %s", c.interval)
		}
	}
	c.prefix = c.SubjectPrefix
	if c.prefix == "" {
		c.prefix = DefaultSubjectPrefix
	}
	for _, tok := range strings.Split(c.prefix, ".") {
		if err := validToken(tok); err != nil {
			bad("subject_prefix", "%q: a token %v", c.prefix, err)
			break
		}
	}
	groups := map[string]bool{}
	if c.Groups == nil {
		for _, g := range Groups {
			groups[g] = true
		}
	} else if len(c.Groups) == 0 {
		bad("groups", "is empty: leave it out for every group, or name some of %s", strings.Join(Groups, ", "))
	}
	for i, g := range c.Groups {
		if !slices.Contains(Groups, g) {
			bad(fmt.Sprintf("groups[%d]", i), "unknown group %q (want %s)", clip(g), strings.Join(Groups, ", "))
			continue
		}
		groups[g] = true
	}
	if c.Mounts != nil && len(c.Mounts) == 0 {
		bad("mounts", "is empty: leave it out to find the mounts of real filesystems")
	}
	for i, m := range c.Mounts {
		if !strings.HasPrefix(m, "/") {
			bad(fmt.Sprintf("mounts[%d]", i), "want an absolute path such as \"/\" or \"/mnt/data\", got %q", clip(m))
		}
	}
	if c.Interfaces != nil && len(c.Interfaces) == 0 {
		bad("interfaces", "is empty: leave it out for every interface")
	}
	for i, name := range c.Interfaces {
		if name == "" || len(name) > 64 || strings.ContainsAny(name, "/: \t\n") {
			bad(fmt.Sprintf("interfaces[%d]", i), "want an interface name such as \"eth0\", got %q", clip(name))
		}
	}
	root := c.Root
	if root == "" {
		root = DefaultRoot
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		bad("root", "%q is not a directory", clip(root))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	c.sampler = &sampler{
		root:            root,
		groups:          groups,
		perCore:         c.PerCore,
		mounts:          c.Mounts,
		interfaces:      c.Interfaces,
		includeLoopback: c.IncludeLoopback,
		now:             time.Now,
		statfs:          statfs,
	}
	c.log = plugin.Logger(ctx).With("plugin", Use)
	return nil
}

// Validate checks that Provision ran; Provision checks every key.
func (c *Collector) Validate() error {
	if c.sampler == nil {
		return errors.New("validate before provision")
	}
	return nil
}

// Collect reads at once (which only primes the rates and CPU usage) and then
// every interval until ctx ends, emitting one message per metric. It
// returns nil when ctx ends.
func (c *Collector) Collect(ctx context.Context, out plugin.Emitter) error {
	if c.sampler == nil {
		return errors.New("collect before provision")
	}
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	for {
		if ctx.Err() != nil {
			return nil
		}
		c.round(out)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Stats returns the instance's counters.
func (c *Collector) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// round samples once and emits the metrics, stopping at the first message
// the runtime refuses.
func (c *Collector) round(out plugin.Emitter) {
	res := c.sampler.sample()
	now := c.sampler.prev.at
	c.mu.Lock()
	c.stats.Rounds++
	var first []string
	for _, m := range res.malformed {
		c.stats.Malformed++
		c.stats.LastMalformed, c.stats.LastMalformedAt = m, now
		src, _, _ := strings.Cut(m, ": ")
		if !c.warned[src] {
			if c.warned == nil {
				c.warned = map[string]bool{}
			}
			if len(c.warned) < 1024 {
				c.warned[src] = true
			}
			first = append(first, m)
		}
	}
	c.mu.Unlock()
	for _, m := range first {
		c.log.Warn("skipping a kernel file it cannot read; counted in Malformed", "err", m)
	}
	for _, m := range res.metrics {
		msg, err := c.message(m, now)
		if err != nil { // cannot happen: a finite float and a string
			continue
		}
		if err := out.Emit(msg); err != nil {
			c.mu.Lock()
			c.stats.EmitErrors++
			c.mu.Unlock()
			c.log.Debug("round cut short: the runtime refused a message", "err", err)
			return
		}
		c.mu.Lock()
		c.stats.Messages++
		c.mu.Unlock()
	}
}

type reading struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
}

func (c *Collector) message(m metric, now time.Time) (plugin.Message, error) {
	p, err := payload.Marshal(reading{Value: m.value, Unit: m.unit})
	if err != nil {
		return plugin.Message{}, err
	}
	return plugin.Message{Subject: c.prefix + "." + m.group + "." + m.name, Time: now, Payload: p}, nil
}

// validToken checks a token of subject_prefix: not empty, no '.', no
// wildcard, no space or control character.
func validToken(tok string) error {
	switch {
	case tok == "":
		return errors.New("must not be empty")
	case tok == "*" || tok == ">":
		return fmt.Errorf("%q is a wildcard, not a subject token", tok)
	case strings.IndexFunc(tok, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("%q must not contain spaces or control characters", tok)
	}
	return nil
}
