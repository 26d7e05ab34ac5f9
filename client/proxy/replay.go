package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// replayLimit bounds what the proxy keeps of a connection's first bytes
// from the client, to replay them to another backend when the first one
// closes without answering. A client that sends more before any answer
// is not replayed.
const replayLimit = 64 << 10

// bufPool holds the buffers of the opening phase (the client's first
// bytes, the backend's first answer), reused across connections.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// errUnanswered is the outcome of an attempt whose backend closed (or
// reset) the connection before sending a single byte.
var errUnanswered = errors.New("backend closed the connection before answering")

// opening is the start of one proxied connection, until the backend's
// first byte: the client's bytes go to the current backend and are kept
// (up to replayLimit), so that when the backend goes away without
// answering — its process was killed mid-request — they can be replayed
// to another one and the client sees an answer instead of a reset. Once
// the backend answers, the connection is committed to it and the bytes
// kept are dropped.
//
// A backend that closes without answering after the client half-closed
// its side is not replayed: a client that said "that is all" may be
// speaking a protocol where no answer is normal, and the bytes may
// already have done their work.
type opening struct {
	client  net.Conn
	replay  bool
	counter *atomic.Uint64 // client-to-backend bytes

	mu        sync.Mutex
	backend   net.Conn // the current backend; writes to it hold mu
	buf       []byte
	overflow  bool // the client sent more than replayLimit before an answer
	clientEOF bool // the client half-closed
	clientErr bool // reading the client failed: the connection is over
	committed bool
	started   bool
	// done is closed when the client-to-backend copy has ended.
	done chan struct{}
	// closeAll ends the whole connection (both ends).
	closeAll func()
}

func newOpening(client net.Conn, replay bool, counter *atomic.Uint64, closeAll func()) *opening {
	return &opening{client: client, replay: replay, counter: counter, closeAll: closeAll, done: make(chan struct{})}
}

// attach makes up the current backend: it sends it what the client sent
// so far, starts the client-to-backend copy the first time, and waits
// for the backend's first bytes. It returns them, or errUnanswered when
// the backend closed first (or another error of reading it).
func (o *opening) attach(up net.Conn) ([]byte, error) {
	o.mu.Lock()
	o.backend = up
	if len(o.buf) > 0 {
		// An error shows up as the read below failing.
		_, _ = up.Write(o.buf)
	}
	if o.clientEOF {
		closeWrite(up)
	}
	if !o.started {
		o.started = true
		go o.copyClient()
	}
	o.mu.Unlock()

	bp := bufPool.Get().(*[]byte)
	first := *bp
	for {
		n, err := up.Read(first)
		if n > 0 {
			// The caller writes it to the client before the next
			// attach; handing the pooled buffer back is its job.
			return first[:n], nil
		}
		if err != nil {
			bufPool.Put(bp)
		}
		if err == io.EOF {
			return nil, errUnanswered
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, err
			}
			// A reset is the same as a close without an answer.
			return nil, errUnanswered
		}
	}
}

// replayable reports whether the connection may be replayed to another
// backend after an unanswered attempt.
func (o *opening) replayable() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.replay && !o.overflow && !o.clientEOF && !o.clientErr
}

// commit fixes the current backend: the bytes kept are dropped and the
// client-to-backend copy goes on to it alone.
func (o *opening) commit() {
	o.mu.Lock()
	o.committed = true
	o.buf = nil
	o.mu.Unlock()
}

// copyClient copies the client to the current backend until the
// client's end of stream (passed on as a half-close) or an error (which
// ends the connection).
func (o *opening) copyClient() {
	defer close(o.done)
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	tmp := *bp
	for {
		o.mu.Lock()
		committed, be := o.committed, o.backend
		o.mu.Unlock()
		if committed {
			// The fast path: straight copies (splice on Linux) to the
			// one backend left.
			pc := &proxyConn{client: o.client, backend: be}
			pc.pipeWith(be, o.client, o.counter, o.closeAll)
			return
		}
		n, err := o.client.Read(tmp)
		if n > 0 {
			o.mu.Lock()
			if !o.committed && !o.overflow {
				if len(o.buf)+n <= replayLimit {
					o.buf = append(o.buf, tmp[:n]...)
				} else {
					o.overflow, o.buf = true, nil
				}
			}
			_, werr := o.backend.Write(tmp[:n])
			committed := o.committed
			o.mu.Unlock()
			o.counter.Add(uint64(n))
			if werr != nil && committed {
				o.closeAll()
				return
			}
			// Before the answer, a failed write means the backend
			// went away: the attempt sees it and replays.
		}
		if err != nil {
			o.mu.Lock()
			if err == io.EOF {
				o.clientEOF = true
				closeWrite(o.backend)
			} else {
				o.clientErr = true
			}
			o.mu.Unlock()
			if err != io.EOF {
				o.closeAll()
			}
			return
		}
	}
}

// closeWrite half-closes c when it can.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// readPlain reads c into a pooled buffer (nil when nothing was read).
func readPlain(c net.Conn) (*[]byte, int, error) {
	bp := bufPool.Get().(*[]byte)
	m, err := c.Read(*bp)
	if m <= 0 {
		bufPool.Put(bp)
		return nil, 0, err
	}
	return bp, m, err
}
