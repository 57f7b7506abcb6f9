//go:build !linux

package process

import "syscall"

// sysProcAttr: outside Linux there is no parent-death signal; the plugin
// outlives a relay that is SIGKILLed (go-plugin's server notices the
// closed connection only on its next call).
func sysProcAttr() *syscall.SysProcAttr { return nil }
