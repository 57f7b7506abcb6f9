//go:build !linux

package mosquittotest

import "syscall"

// procAttr is empty where the kernel has no parent-death signal: a server
// whose test process is killed outright may outlive it there.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
