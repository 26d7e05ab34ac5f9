package gateway

import "sync"

// copyBufferSize is the size of the buffers the ReverseProxy copies
// response bodies (and upgraded connections) through: its own default.
const copyBufferSize = 32 << 10

// bufferPool is the ReverseProxy's httputil.BufferPool. Without one the
// proxy allocates a 32 KiB buffer per response, which was most of the
// gateway's allocated bytes and so most of its GC work. It pools array
// pointers, so neither Get nor Put allocates.
type bufferPool struct {
	pool sync.Pool
}

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

// Get returns a buffer of copyBufferSize bytes.
func (p *bufferPool) Get() []byte { return p.pool.Get().(*[copyBufferSize]byte)[:] }

// Put takes back a buffer Get returned; others are dropped.
func (p *bufferPool) Put(b []byte) {
	if cap(b) < copyBufferSize {
		return
	}
	p.pool.Put((*[copyBufferSize]byte)(b[:copyBufferSize]))
}
