package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/switchyard/switchyard/runtime/conform"
	"github.com/switchyard/switchyard/runtime/host/wasm"
	"github.com/switchyard/switchyard/sdk/plugintest"
)

// conformCmd runs the guest conformance kit over the folders given and
// prints its table; it fails when a guest fails a case or a profile is
// broken.
func conformCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("conform", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modules := fs.String("modules", "bin/plugins", "folder of <kind>.<name>.wasm, for profiles that name no module")
	timeout := fs.Duration("call-timeout", wasm.DefaultCallTimeout, "deadline of each guest call")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: switchyard conform [flags] FOLDER|conformance.yaml...\n\n"+
			"Runs the conformance kit (sdk/plugintest/README.md) against each guest whose folder holds a conformance.yaml.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	profiles, err := conform.Profiles(fs.Args())
	if err != nil {
		fmt.Fprintln(stderr, err)
	}
	if len(profiles) == 0 {
		fmt.Fprintln(stderr, "conform: no conformance.yaml in", fs.Args())
		return 1
	}
	ctx := context.Background()
	h, herr := conform.NewHost(ctx, conform.Options{Modules: *modules, Limits: wasm.Limits{CallTimeout: *timeout, InitTimeout: max(*timeout, wasm.DefaultInitTimeout)}})
	if herr != nil {
		fmt.Fprintln(stderr, herr)
		return 1
	}
	defer h.Close(ctx)
	start := time.Now()
	reports := h.Run(ctx, profiles)
	_ = plugintest.WriteTable(stdout, reports)
	failed := 0
	for _, r := range reports {
		if !r.Passed() {
			failed++
		}
	}
	fmt.Fprintf(stdout, "%d guests, %d failed, in %v\n", len(reports), failed, time.Since(start).Round(time.Millisecond))
	if failed > 0 || err != nil {
		return 1
	}
	return 0
}
