package connlimit

import (
	"container/list"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Limit names the limit a refused connection ran into.
type Limit string

const (
	// LimitPerClient is Config.MaxPerClient.
	LimitPerClient Limit = "per_client"
	// LimitTotal is Config.MaxTotal.
	LimitTotal Limit = "total"
)

// Config bounds a Listener. Zero values disable the limit they name.
type Config struct {
	// MaxPerClient bounds the open connections from one remote IP
	// address.
	MaxPerClient int
	// MaxTotal bounds all open connections of the listener.
	MaxTotal int
	// MaxOverflow, when positive, sends connections over a limit to the
	// listener returned by Overflow instead of closing them, with at
	// most MaxOverflow overflow connections open: when full, the oldest
	// one whose client has not sent anything yet is closed to make
	// room, and when every one has, the new one is closed. The caller
	// must then serve Overflow.
	MaxOverflow int
	// OnLimit, when set, is called for every connection over a limit,
	// on the accepting goroutine, so it must not block: ip is the remote
	// address, limit the limit it hit, and overflowed whether it went to
	// the overflow listener (false: it was closed).
	OnLimit func(ip string, limit Limit, overflowed bool)
}

// Stats are a Listener's counters.
type Stats struct {
	// Open is the number of open connections Accept returned.
	Open int
	// OverflowOpen is the number of open connections handed to the
	// overflow listener.
	OverflowOpen int
	// Clients is the number of remote IPs with open connections.
	Clients int
	// Closed and Overflowed count the connections over a limit that
	// were closed at once and handed to the overflow listener; Evicted
	// counts overflow connections closed, before their client sent
	// anything, to make room for newer ones.
	Closed, Overflowed, Evicted uint64
}

// Listener wraps a net.Listener and applies a Config to the connections
// it accepts. The connections Accept returns give their slot back when
// closed (once, however often Close is called).
type Listener struct {
	inner net.Listener
	cfg   Config

	// mu guards perIP, open and overflowOpen.
	mu           sync.Mutex
	perIP        map[string]int
	open         int
	overflowOpen int

	closed     atomic.Uint64
	overflowed atomic.Uint64
	evicted    atomic.Uint64
	// handOffMu serializes handOff.
	handOffMu sync.Mutex
	// silent lists the overflow connections (*overflowConn) whose
	// clients have not been heard from, oldest first; guarded by mu.
	silent *list.List

	// overflow is nil unless cfg.MaxOverflow > 0.
	overflow *overflowListener
}

// NewListener returns inner with the limits of cfg applied.
func NewListener(inner net.Listener, cfg Config) *Listener {
	l := &Listener{inner: inner, cfg: cfg, perIP: make(map[string]int), silent: list.New()}
	if cfg.MaxOverflow > 0 {
		l.overflow = newOverflowListener(inner.Addr())
	}
	return l
}

// Accept returns the next connection within the limits. Connections
// over a limit never come out of it: they are closed or handed to the
// overflow listener, and Accept waits for the next one. Errors of the
// wrapped listener are returned as they are.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.inner.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c.RemoteAddr())
		limit, ok := l.acquire(ip)
		if ok {
			return newConn(c, func() { l.release(ip) }), nil
		}
		overflowed := l.handOff(c)
		if overflowed {
			l.overflowed.Add(1)
		} else {
			l.closed.Add(1)
			c.Close()
		}
		if l.cfg.OnLimit != nil {
			l.cfg.OnLimit(ip, limit, overflowed)
		}
	}
}

// Close closes the wrapped listener. Open connections stay open, and
// the overflow listener is closed by whoever serves it.
func (l *Listener) Close() error { return l.inner.Close() }

// Addr is the wrapped listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Overflow returns the listener that receives connections over a
// limit, newest first, or nil when Config.MaxOverflow is 0. Closing it
// closes the connections queued in it.
func (l *Listener) Overflow() net.Listener {
	if l.overflow == nil {
		return nil
	}
	return l.overflow
}

// Stats returns the listener's counters.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	s := Stats{Open: l.open, OverflowOpen: l.overflowOpen, Clients: len(l.perIP)}
	l.mu.Unlock()
	s.Closed, s.Overflowed, s.Evicted = l.closed.Load(), l.overflowed.Load(), l.evicted.Load()
	return s
}

// OpenFrom returns the number of open connections from ip.
func (l *Listener) OpenFrom(ip string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.perIP[ip]
}

// acquire takes a slot for a connection from ip, or reports the limit
// that refuses it.
func (l *Listener) acquire(ip string) (Limit, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.MaxTotal > 0 && l.open >= l.cfg.MaxTotal {
		return LimitTotal, false
	}
	if l.cfg.MaxPerClient > 0 && l.perIP[ip] >= l.cfg.MaxPerClient {
		return LimitPerClient, false
	}
	l.open++
	l.perIP[ip]++
	return "", true
}

func (l *Listener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

// handOff queues c on the overflow listener and reports whether it did.
// When the overflow is full, the oldest overflow connection whose client
// has not sent a byte yet (none read, none waiting in the socket) is
// closed to make room: a connection that says nothing is the cheapest to
// shed and the likeliest to be an attacker's. When every overflow
// connection has data, c is closed instead.
func (l *Listener) handOff(c net.Conn) bool {
	if l.overflow == nil {
		return false
	}
	// Serialized, so that the room checked is still there when taken
	// (other goroutines only ever give room back).
	l.handOffMu.Lock()
	defer l.handOffMu.Unlock()
	l.mu.Lock()
	full := l.overflowOpen >= l.cfg.MaxOverflow
	l.mu.Unlock()
	if full {
		victim := l.takeSilent()
		if victim == nil {
			return false
		}
		victim.Close() // gives its slot back
		l.evicted.Add(1)
	}
	oc := &overflowConn{l: l}
	oc.conn = newConn(c, func() {
		l.mu.Lock()
		l.overflowOpen--
		if oc.elem != nil {
			l.silent.Remove(oc.elem)
			oc.elem = nil
		}
		l.mu.Unlock()
	})
	l.mu.Lock()
	l.overflowOpen++
	oc.elem = l.silent.PushBack(oc)
	l.mu.Unlock()
	if !l.overflow.push(oc) {
		oc.Close()
	}
	return true
}

// evictScan bounds how many silent overflow connections one hand-off
// looks at (an ioctl each) to find one to shed.
const evictScan = 32

// takeSilent removes from the silent list and returns the oldest
// overflow connection with nothing read and nothing waiting to be read,
// or nil.
func (l *Listener) takeSilent() *overflowConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.silent.Front()
	for i := 0; e != nil && i < evictScan; i++ {
		oc := e.Value.(*overflowConn)
		next := e.Next()
		if pendingBytes(oc.conn.Conn) == 0 {
			l.silent.Remove(e)
			oc.elem = nil
			return oc
		}
		e = next
	}
	return nil
}

// heard takes oc off the silent list: its client has sent something.
func (l *Listener) heard(oc *overflowConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if oc.elem != nil {
		l.silent.Remove(oc.elem)
		oc.elem = nil
	}
}

// pendingBytes is the number of bytes waiting in c's socket, 0 when it
// cannot be told.
func pendingBytes(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = raw.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil {
			n = v
		}
	})
	return n
}

// overflowConn is a connection handed to the overflow listener; its
// first read that returns data takes it off the listener's silent list.
type overflowConn struct {
	*conn
	l *Listener
	// elem is its place in l.silent, nil once heard or taken; guarded
	// by l.mu.
	elem  *list.Element
	spoke atomic.Bool
}

func (oc *overflowConn) Read(p []byte) (int, error) {
	n, err := oc.conn.Read(p)
	if n > 0 && !oc.spoke.Swap(true) {
		oc.l.heard(oc)
	}
	return n, err
}

// overflowListener hands out the connections over a limit, newest
// first. Under a flood the overflow server falls behind; serving the
// newest connection first answers one that just arrived (a health
// check) at once instead of after everything queued before it.
type overflowListener struct {
	addr net.Addr
	// ready has a token while queue may be non-empty.
	ready     chan struct{}
	closeCh   chan struct{}
	closeOnce sync.Once

	// mu guards queue (oldest first) and closed.
	mu     sync.Mutex
	queue  []*overflowConn
	closed bool
}

func newOverflowListener(addr net.Addr) *overflowListener {
	return &overflowListener{addr: addr, ready: make(chan struct{}, 1), closeCh: make(chan struct{})}
}

// push queues c, unless the listener is closed.
func (o *overflowListener) push(c *overflowConn) bool {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return false
	}
	o.queue = append(o.queue, c)
	o.mu.Unlock()
	select {
	case o.ready <- struct{}{}:
	default:
	}
	return true
}

// Accept returns the newest waiting connection. Connections shed while
// they waited are skipped.
func (o *overflowListener) Accept() (net.Conn, error) {
	for {
		o.mu.Lock()
		for n := len(o.queue); n > 0; n = len(o.queue) {
			c := o.queue[n-1]
			o.queue[n-1] = nil
			o.queue = o.queue[:n-1]
			if c.isClosed() {
				continue
			}
			more := n > 1
			o.mu.Unlock()
			if more {
				select {
				case o.ready <- struct{}{}:
				default:
				}
			}
			return c, nil
		}
		o.mu.Unlock()
		select {
		case <-o.ready:
		case <-o.closeCh:
			return nil, net.ErrClosed
		}
	}
}

// Close stops Accept and closes the waiting connections.
func (o *overflowListener) Close() error {
	o.closeOnce.Do(func() {
		o.mu.Lock()
		o.closed = true
		queued := o.queue
		o.queue = nil
		o.mu.Unlock()
		close(o.closeCh)
		for _, c := range queued {
			c.Close()
		}
	})
	return nil
}

func (o *overflowListener) Addr() net.Addr { return o.addr }

// conn gives its slot back on the first Close.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
	closed  atomic.Bool
}

func newConn(c net.Conn, release func()) *conn {
	return &conn{Conn: c, release: release}
}

func (c *conn) Close() error {
	c.closed.Store(true)
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

func (c *conn) isClosed() bool { return c.closed.Load() }

// CloseWrite half-closes the connection when the wrapped one can (TCP):
// net/http uses it to end a response without resetting the connection.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// ReadFrom keeps the wrapped connection's fast path (sendfile or splice
// for TCP) for callers that copy files to the connection.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// remoteIP is the IP address of a remote address, or the whole address
// when it has no IP (a unix socket: every such client is one).
func remoteIP(a net.Addr) string {
	if a == nil {
		return ""
	}
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// FDLimit returns the process's limit on open files (the soft
// RLIMIT_NOFILE, which the Go runtime raises to the hard limit at
// start), or 0 when it cannot be read or is unlimited.
func FDLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	if r.Cur == 0 || r.Cur >= math.MaxInt32 {
		return 0
	}
	return int(r.Cur)
}

// Share returns percent percent of the open-file limit fdLimit, at
// least min; 0 when fdLimit is 0 (unknown: no total limit).
func Share(fdLimit, percent, min int) int {
	if fdLimit <= 0 {
		return 0
	}
	return max(fdLimit*percent/100, min)
}
