package proxy

import (
	"net"
	"time"
)

// TCP keep-alive probes. Go's listeners and dialers turn them on for
// every connection, at a cost of four setsockopt calls per socket: for
// the proxy, whose connections are mostly short, that was eight system
// calls per proxied connection for probes that only matter on a
// connection idle for minutes. The proxy's listeners and dialer turn
// them off, and keepAliveLoop turns them on for the connections still
// open after keepAliveAfter, on both ends.
const (
	// keepAliveAfter is how long a connection lives before it gets
	// keep-alive probes.
	keepAliveAfter = time.Second
	// keepAlivePeriod is the probes' idle time and interval, Go's
	// default that the proxy had before (nine unanswered probes end
	// the connection).
	keepAlivePeriod = 15 * time.Second
)

var keepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: keepAlivePeriod, Interval: keepAlivePeriod, Count: 9}

// keepAliveLoop turns keep-alive probes on for the open connections
// every keepAliveAfter: a connection gets them on the second tick that
// finds it open, so after keepAliveAfter to twice that. Short
// connections are never touched, and one sweep of the pools' open
// connections per period replaces a timer per connection.
func (p *Proxy) keepAliveLoop() {
	t := time.NewTicker(keepAliveAfter)
	defer t.Stop()
	var aged []*proxyConn
	for {
		select {
		case <-t.C:
		case <-p.ctx.Done():
			return
		}
		aged = aged[:0]
		for _, pl := range p.pools() {
			aged = pl.aged(aged)
		}
		for i, c := range aged {
			setKeepAlive(c.client)
			setKeepAlive(c.backend)
			aged[i] = nil
		}
	}
}

// setKeepAlive turns probes on; a connection closed in the meantime
// fails, which does not matter.
func setKeepAlive(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetKeepAliveConfig(keepAliveConfig)
	}
}
