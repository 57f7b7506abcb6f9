//go:build !linux

package system

import (
	"context"
	"strings"
	"testing"
)

func TestProvisionNeedsLinux(t *testing.T) {
	err := new(Collector).Provision(context.Background())
	if err == nil || !strings.Contains(err.Error(), "needs Linux") {
		t.Errorf("Provision = %v, want an error saying the collector needs Linux", err)
	}
}
