package process

import "syscall"

// sysProcAttr makes the kernel SIGKILL the plugin when the thread that
// started it dies: with the relay, even when the relay is SIGKILLed.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
