// Command testplugin is a process plugin for the tests of
// runtime/host/process: the plugins of internal/testplugins over rpc.Serve.
// When TESTPLUGIN_MARKER names a file (and the host passes it), it writes
// its pid there first, so a test can tell that it ran.
package main

import (
	"os"
	"strconv"

	_ "github.com/switchyard/switchyard/runtime/host/process/internal/testplugins"
	"github.com/switchyard/switchyard/sdk/rpc"
)

func main() {
	if p := os.Getenv("TESTPLUGIN_MARKER"); p != "" {
		_ = os.WriteFile(p, []byte(strconv.Itoa(os.Getpid())), 0o600)
	}
	rpc.Serve()
}
