package loadtest

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	RouteNbioLogs(quietLog()) // nbio logs to stdout by default
	os.Exit(m.Run())
}
