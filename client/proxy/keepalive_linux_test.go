package proxy

import (
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	dtestutil "github.com/droverhq/drover/testutil"
)

// TestProxy_KeepAliveOnLongConnectionsOnly: the proxy's sockets of a
// connection just opened have no keep-alive probes (no setsockopt on a
// short connection); once the connection has lasted keepAliveAfter,
// both its client and its backend socket have them.
func TestProxy_KeepAliveOnLongConnectionsOnly(t *testing.T) {
	e1 := startEchoBackend(t, "e1")
	p := newTestProxy(t, Config{})
	addr := listenVIP(t, p, instances(t, e1.addr))
	c := dialLine(t, addr)
	if _, err := c.say("x"); err != nil {
		t.Fatal(err)
	}
	opened := time.Now()
	pc := onlyConn(t, p)
	// The loop's first tick may come at once; the second not before
	// keepAliveAfter.
	if time.Since(opened) < keepAliveAfter {
		for name, conn := range map[string]net.Conn{"client": pc.client, "backend": pc.backend} {
			if on, err := soKeepAlive(conn); err != nil || on {
				t.Fatalf("%s socket of a new connection: SO_KEEPALIVE %v (%v), want off", name, on, err)
			}
		}
	}
	dtestutil.WaitFor(t, 4*keepAliveAfter, func() (bool, error) {
		for name, conn := range map[string]net.Conn{"client": pc.client, "backend": pc.backend} {
			if on, err := soKeepAlive(conn); err != nil || !on {
				return false, fmt.Errorf("%s socket of a connection open %s: SO_KEEPALIVE %v (%v), want on", name, time.Since(opened), on, err)
			}
		}
		return true, nil
	})
	if time.Since(opened) < keepAliveAfter {
		t.Fatalf("keep-alive on after %s, before %s", time.Since(opened), keepAliveAfter)
	}
	if _, err := c.say("still there"); err != nil {
		t.Fatal(err)
	}
}

// onlyConn returns the proxy's one open connection.
func onlyConn(t *testing.T, p *Proxy) *proxyConn {
	t.Helper()
	var out []*proxyConn
	for _, pl := range p.pools() {
		pl.mu.Lock()
		for _, b := range pl.backends {
			for c := range b.conns {
				out = append(out, c)
			}
		}
		pl.mu.Unlock()
	}
	if len(out) != 1 {
		t.Fatalf("%d open connections, want 1", len(out))
	}
	return out[0]
}

// soKeepAlive reads a socket's SO_KEEPALIVE.
func soKeepAlive(c net.Conn) (bool, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false, fmt.Errorf("%T has no socket", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, err
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE) }); err != nil {
		return false, err
	}
	return v != 0, gerr
}
