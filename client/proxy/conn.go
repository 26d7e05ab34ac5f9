package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// copyChunk is how many bytes one io.Copy moves before the byte
// counters are updated: counters move while a long connection runs,
// and io.Copy between two TCP connections still splices (Linux) or uses
// its own buffer.
const copyChunk = 256 << 10

// proxyConn is one proxied connection: the accepted one and the one to
// the backend.
type proxyConn struct {
	client, backend net.Conn
	closeOnce       sync.Once
	// keepAlive is how far keepAliveLoop got with it; guarded by the
	// pool's mu.
	keepAlive uint8
}

// proxyConn.keepAlive values.
const (
	keepAliveUnseen uint8 = iota
	keepAliveSeen
	keepAliveOn
)

// close closes both ends; the copies then end.
func (c *proxyConn) close() {
	c.closeOnce.Do(func() {
		_ = c.client.Close()
		_ = c.backend.Close()
	})
}

// pipeWith copies src to dst, counting bytes into n. At src's end of
// stream it half-closes dst; on an error it calls closeAll, which ends
// the whole connection.
func (c *proxyConn) pipeWith(dst, src net.Conn, n *atomic.Uint64, closeAll func()) {
	for {
		copied, err := io.Copy(dst, &io.LimitedReader{R: src, N: copyChunk})
		n.Add(uint64(copied))
		if err != nil {
			closeAll()
			return
		}
		if copied < copyChunk {
			// End of stream from src.
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				if err := cw.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
					closeAll()
				}
			} else {
				closeAll()
			}
			return
		}
	}
}
