//go:build !linux

package loadtest

import "syscall"

// bindNoPort is a Linux socket option; elsewhere the source port is chosen
// at bind time.
func bindNoPort(_, _ string, _ syscall.RawConn) error { return nil }

// childAttr: only Linux can tie a child's life to its parent; elsewhere the
// children's own lifetimes bound them.
func childAttr() *syscall.SysProcAttr { return nil }

// openFileLimit is not read outside Linux.
func openFileLimit() uint64 { return 0 }

// receiveBuffer leaves the receive buffer alone outside Linux.
func receiveBuffer(int) func(_, _ string, c syscall.RawConn) error {
	return func(_, _ string, _ syscall.RawConn) error { return nil }
}
