//go:build unix

package proxy

import (
	"io"
	"net"
	"syscall"
)

// pooledReader reads a connection into buffers of bufPool, taken only
// when the socket has bytes to read: it waits for readability through
// the runtime's poller (syscall.RawConn.Read) with no buffer, then
// reads with one.
type pooledReader struct {
	c  net.Conn
	rc syscall.RawConn // nil: c has no socket; plain reads
	// readFd is r.readFdOnce, made once: a closure per read would be
	// an allocation per read.
	readFd func(fd uintptr) bool
	// The outcome of readFd.
	bp  *[]byte
	m   int
	err error
}

func newPooledReader(c net.Conn) *pooledReader {
	r := &pooledReader{c: c}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			r.rc = rc
			r.readFd = r.readFdOnce
		}
	}
	return r
}

// read returns a pooled buffer holding the m bytes read (nil when m is
// 0; the caller puts it back in bufPool), and io.EOF at the end of
// stream or another error.
func (r *pooledReader) read() (bp *[]byte, m int, err error) {
	if r.rc == nil {
		return readPlain(r.c)
	}
	r.bp, r.m, r.err = nil, 0, nil
	cerr := r.rc.Read(r.readFd)
	bp, m = r.bp, r.m
	r.bp = nil
	switch {
	case cerr != nil:
		err = cerr
	case r.err != nil:
		err = &net.OpError{Op: "read", Net: "tcp", Source: r.c.LocalAddr(), Addr: r.c.RemoteAddr(), Err: r.err}
	case m == 0:
		err = io.EOF
	}
	if m <= 0 {
		m = 0
		if bp != nil {
			bufPool.Put(bp)
			bp = nil
		}
	}
	return bp, m, err
}

// readFdOnce is called by the poller with the socket: it reads into a
// pooled buffer and returns true, or, when there is nothing to read,
// gives the buffer back and returns false (the poller waits for
// readability and calls it again).
func (r *pooledReader) readFdOnce(fd uintptr) bool {
	if r.bp == nil {
		r.bp = bufPool.Get().(*[]byte)
	}
	for {
		r.m, r.err = syscall.Read(int(fd), *r.bp)
		if r.err != syscall.EINTR {
			break
		}
	}
	if r.err == syscall.EAGAIN {
		bufPool.Put(r.bp)
		r.bp, r.m, r.err = nil, 0, nil
		return false
	}
	return true
}
