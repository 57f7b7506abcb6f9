package loadtest

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// bindNoPort lets the kernel choose the source port at connect time rather
// than at bind time, so one source address serves up to one ephemeral range
// per destination instead of one in total.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	}); err != nil {
		return err
	}
	return serr
}

// childAttr makes a child process die with the tool, so no worker or server
// outlives an interrupted run.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// openFileLimit is the soft limit on open files, 0 if unknown.
func openFileLimit() uint64 {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
		return 0
	}
	return lim.Cur
}

// receiveBuffer returns a dialer Control that sets the socket's receive
// buffer (SO_RCVBUF) to n bytes before it connects, which also bounds the
// TCP window it offers, as a device's small network stack does.
func receiveBuffer(n int) func(_, _ string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}); err != nil {
			return err
		}
		return serr
	}
}
