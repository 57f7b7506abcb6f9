// Command switchyard is the relay: `switchyard run` serves devices and the
// admin API, `switchyard validate` checks a configuration file, and
// `switchyard version` prints the build's version, `switchyard plugin
// serve <kind.name>` serves a built-in plugin out of process, and
// `switchyard conform` runs the guest conformance kit. This file holds flags,
// signals and wiring only; behaviour lives in the runtime packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/runtime/app"
	"github.com/switchyard/switchyard/runtime/config"
)

// stopHeadroom is how long shutdown may take beyond the devices' drain.
const stopHeadroom = 5 * time.Second

// gcPercent is the relay's GOGC unless the environment sets one. Most of
// the relay's heap is per-connection state that lives as long as the
// connection and its allocation rate is low (a message is encoded once for
// all its devices), so collecting at +50% instead of Go's +100% costs little
// CPU and cuts the memory of an idle connection by a quarter
// (docs/BENCHMARKS.md: 2.05 → 1.53 KiB at 19,000).
const gcPercent = 50

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

const usage = `usage: switchyard <command> [flags]

commands:
  run       start the relay (devices on the gateway, the admin API)
  validate  check a configuration file and print every problem
  version   print the version
  plugin    list the built-in plugins, or serve one as a process plugin
  conform   run the guest conformance kit over WASM guests and print its table
  health    ask a relay's /health (-url; default http://127.0.0.1:8081/health); exit 0 when healthy
  backup    fetch a backup of a running relay on the embedded store (-api, -o; the operator key from
            $SWITCHYARD_API__OPERATOR_KEY or -key-file)
  restore   restore a backup into a stopped installation (-c, -i ARCHIVE, -force to replace one)

flags (run, validate):
  -c FILE          configuration file (default plugins.yaml)
  -set KEY=VALUE   override one key, e.g. -set gateway.listen=127.0.0.1:9000 (repeatable)

Environment: SWITCHYARD_<KEY PATH> with __ between levels overrides the file,
e.g. SWITCHYARD_API__OPERATOR_KEY=… or SWITCHYARD_GATEWAY__MAX_CONNECTIONS=5000.
GOGC, when set, replaces run's default of 50 (Go's own default is 100).
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return serve(args[1:], stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "plugin":
		return pluginCmd(args[1:], stdout, stderr)
	case "conform":
		return conformCmd(args[1:], stdout, stderr)
	case "health":
		return health(args[1:], stdout, stderr)
	case "backup":
		return backupCmd(args[1:], stdout, stderr)
	case "restore":
		return restoreCmd(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "switchyard", buildVersion())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "switchyard: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// overrides collects repeated -set KEY=VALUE flags.
type overrides map[string]string

func (o overrides) String() string { return fmt.Sprint(map[string]string(o)) }

func (o overrides) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE", s)
	}
	o[k] = v
	return nil
}

func load(name string, args []string, stderr io.Writer) (*config.Config, config.Source, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "plugins.yaml", "configuration file")
	set := overrides{}
	fs.Var(set, "set", "override KEY=VALUE (repeatable)")
	if err := fs.Parse(args); err != nil {
		return nil, config.Source{}, err
	}
	if fs.NArg() > 0 {
		return nil, config.Source{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	src := config.Source{Path: *path, Environ: os.Environ(), Overrides: set}
	cfg, err := config.Load(src)
	return cfg, src, err
}

func validate(args []string, stdout, stderr io.Writer) int {
	_, src, err := load("validate", args, stderr)
	path := src.Path
	if err != nil {
		fmt.Fprintln(stderr, err)
		var problems config.Problems
		if errors.As(err, &problems) {
			fmt.Fprintf(stderr, "%s: %d problem(s)\n", path, len(problems))
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return 0
}

func serve(args []string, stderr io.Writer) int {
	cfg, src, err := load("run", args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a, err := app.Start(ctx, cfg, app.Options{
		Source:  &src,
		Watch:   true,
		Logger:  log,
		Version: buildVersion(),
		KeyGenerated: func(key string) {
			fmt.Fprintf(stderr, "\n"+
				"  Switchyard generated the operator API key. It is shown this once only; keep it now:\n\n"+
				"      %s\n\n"+
				"  Send it as 'Authorization: Bearer <key>' to the admin API. To choose your own key,\n"+
				"  set SWITCHYARD_API__OPERATOR_KEY (at least 24 characters).\n\n", key)
		},
		DeviceToken: func(tenant, device, token string) {
			fmt.Fprintf(stderr, "\n  Created device %q of tenant %q (declared in the configuration). Its token, shown\n"+
				"  this once only:\n\n      %s\n\n", device, tenant, token)
		},
	})
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	// SIGHUP reloads the configuration file (so does a change to it).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for ctx.Err() == nil {
		select {
		case <-hup:
			_, _ = a.Reload(ctx, "signal") // logged by Reload
		case <-ctx.Done():
		}
	}
	log.Info("shutting down", "drain_timeout", cfg.Gateway.DrainTimeout.String())
	// The gateway drains devices within drain_timeout and then drops the
	// rest; the headroom is for the API and the last store writes after it.
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Gateway.DrainTimeout+stopHeadroom)
	defer cancel()
	if err := a.Stop(sctx); err != nil {
		log.Error("shutdown incomplete", "err", err)
		return 1
	}
	return 0
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
