// Package builtins links the shipped native plugins into a binary: each
// registers itself with sdk/plugin at init, for `runtime: builtin` (in the
// relay's process) and `runtime: process` (`switchyard plugin serve`).
// The relay's main imports it; nothing else needs to.
package builtins

import (
	_ "github.com/switchyard/switchyard/plugins/brokers/mqtt"
	_ "github.com/switchyard/switchyard/plugins/brokers/webhook"
	_ "github.com/switchyard/switchyard/plugins/collectors/homeassistant"
	_ "github.com/switchyard/switchyard/plugins/collectors/http"
	_ "github.com/switchyard/switchyard/plugins/collectors/mqtt"
	_ "github.com/switchyard/switchyard/plugins/collectors/system"
)
