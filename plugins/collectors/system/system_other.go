//go:build !linux

package system

import (
	"fmt"
	"runtime"
)

// supported refuses every system but Linux: the collector reads Linux's
// /proc and /sys.
func supported() error {
	return fmt.Errorf("needs Linux (it reads the kernel's /proc and /sys files); this relay runs on %s", runtime.GOOS)
}

// statfs is never called: Provision fails first.
func statfs(string) (fsStat, error) { return fsStat{}, supported() }
