//go:build !unix

package proxy

import "net"

// pooledReader reads a connection into buffers of bufPool. Without
// unix sockets to wait on, a read holds its buffer while it waits.
type pooledReader struct{ c net.Conn }

func newPooledReader(c net.Conn) *pooledReader { return &pooledReader{c: c} }

func (r *pooledReader) read() (*[]byte, int, error) { return readPlain(r.c) }
