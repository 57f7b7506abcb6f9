package main

import (
	"fmt"
	"io"

	"github.com/switchyard/switchyard/sdk/plugin"
	"github.com/switchyard/switchyard/sdk/rpc"
)

const pluginUsage = `usage: switchyard plugin <command>

commands:
  list                  print the plugins built into this binary
  serve <kind.name>     serve that built-in as a process plugin (the relay starts this
                        itself for runtime: process with module: this binary; run by
                        hand it only says that it is a plugin)
`

// pluginCmd runs `switchyard plugin …`. serve does not return while the
// relay uses the plugin.
func pluginCmd(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 1 && args[0] == "list":
		for _, info := range plugin.List() {
			fmt.Fprintln(stdout, info.ID)
		}
		return 0
	case len(args) == 2 && args[0] == "serve":
		id, err := plugin.ParseID(args[1])
		if err != nil {
			fmt.Fprintf(stderr, "switchyard plugin serve: %v\n", err)
			return 2
		}
		if _, ok := plugin.Lookup(id); !ok {
			fmt.Fprintf(stderr, "switchyard plugin serve: %s is not built into this binary (see switchyard plugin list)\n", id)
			return 2
		}
		rpc.ServeOnly(id)
		return 0
	}
	fmt.Fprint(stderr, pluginUsage)
	return 2
}
