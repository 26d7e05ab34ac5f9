package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

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
//
// It reads into a pooled buffer taken only once src has bytes to read
// (see pooledReader) and writes them out: an idle connection holds no
// buffer. It does not use io.Copy, which splices between two TCP
// connections on Linux: splice moves each chunk through a pipe with
// two system calls that cost more than a read and a write for the
// small messages most proxied connections carry, and a copy waiting
// for data holds its pipe (two descriptors) all the while.
func (c *proxyConn) pipeWith(dst, src net.Conn, n *atomic.Uint64, closeAll func()) {
	rd := newPooledReader(src)
	for {
		bp, m, err := rd.read()
		if m > 0 {
			w, werr := dst.Write((*bp)[:m])
			bufPool.Put(bp)
			n.Add(uint64(w))
			if werr != nil {
				closeAll()
				return
			}
		}
		if err == io.EOF {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				if err := cw.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
					closeAll()
				}
			} else {
				closeAll()
			}
			return
		}
		if err != nil {
			closeAll()
			return
		}
	}
}
