package mosquittotest

import "syscall"

// procAttr has the kernel send the server SIGTERM when the process that
// started it (the test binary) dies, so that no server outlives its test.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
