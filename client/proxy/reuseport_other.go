//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package proxy

import "syscall"

// reusePort does nothing where SO_REUSEPORT is not available: one agent
// per machine serves a VIP.
func reusePort(network, address string, rc syscall.RawConn) error { return nil }
