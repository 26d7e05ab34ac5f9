package proxy

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/droverhq/drover/structs"
)

// Defaults of Config.
const (
	DefaultDialTimeout         = time.Second
	DefaultFailCooldown        = 2 * time.Second
	DefaultDrainTimeout        = 30 * time.Second
	DefaultMaxConnsPerListener = 10000
	// maxTries bounds the backends tried for one connection.
	maxTries = 3
)

// Listener kinds.
const (
	KindVIP       = "vip"
	KindPublished = "published"
)

// ErrBadBalance is returned by New for a Config.Balance it does not
// know.
var ErrBadBalance = errors.New(`proxy: balance must be "least_conn" or "round_robin"`)

// Config configures a Proxy. Zero values take the defaults.
type Config struct {
	// PublishHost is the IP address published ports are listened on
	// (the agent's bind address; "0.0.0.0" or "" is every interface).
	PublishHost string
	// Balance is BalanceLeastConn (default) or BalanceRoundRobin.
	Balance string
	// DialTimeout bounds one dial of a backend (default 1s).
	DialTimeout time.Duration
	// FailCooldown is how long a backend whose dial failed is tried
	// only as a last resort (default 2s).
	FailCooldown time.Duration
	// DrainTimeout is how long the open connections of a backend that
	// stopped passing are left to finish before they are closed
	// (default 30s; negative: never closed).
	DrainTimeout time.Duration
	// MaxConnsPerListener bounds the open connections of one listener
	// (default 10000).
	MaxConnsPerListener int
	// NoReplay turns off the replay of a connection whose backend
	// closed it before sending a single byte (see opening): for
	// protocols where a backend may read a request and close without
	// answering as a matter of course.
	NoReplay bool
	// ErrorLog receives listener errors; nil: the log package's
	// standard logger. Lines start with [ERROR], [WARN] or [INFO].
	ErrorLog *log.Logger

	// now is the clock (tests); nil: time.Now.
	now func() time.Time
}

// serviceKey names a service.
type serviceKey struct{ namespace, name string }

func (k serviceKey) String() string { return k.namespace + "/" + k.name }

// service is one proxied service: its backends and its listeners.
type service struct {
	key  serviceKey
	pool *pool
	// spec is the last ProxiedService seen (Instances not kept).
	spec structs.ProxiedService
	// listeners by kind; guarded by the Proxy's mu.
	listeners map[string]*listener
	counters  counters
}

// counters of a service; updated atomically.
type counters struct {
	connections    atomic.Uint64
	active         atomic.Int64
	bytesIn        atomic.Uint64 // client to backend
	bytesOut       atomic.Uint64 // backend to client
	failedConnects atomic.Uint64
	rejected       atomic.Uint64
	// replayed counts attempts whose backend closed without answering
	// and whose client bytes went to another backend.
	replayed atomic.Uint64
}

// listener is one address a service is served on. ln is nil when
// listening failed (err says why).
type listener struct {
	svc    *service
	kind   string
	addr   string
	ln     net.Listener
	err    error
	active atomic.Int64
}

// Proxy is the client agent's TCP load balancer. Update and Status may
// be called from any goroutine; Stop once, last.
type Proxy struct {
	cfg     Config
	logf    func(format string, args ...any)
	dialer  net.Dialer
	metrics *metrics

	ctx    context.Context // done when the proxy stops
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards services, retired, addrs and stopped. Lock order: mu,
	// then a pool's mu.
	mu       sync.Mutex
	services map[serviceKey]*service
	// retired are the pools of removed services that may still have
	// draining connections; pruned on Update.
	retired map[*pool]struct{}
	// addrs are the open listeners by address: one service per address.
	addrs   map[string]*listener
	stopped bool
}

// New returns a proxy with no services; Update gives it some.
func New(cfg Config) (*Proxy, error) {
	switch cfg.Balance {
	case "":
		cfg.Balance = BalanceLeastConn
	case BalanceLeastConn, BalanceRoundRobin:
	default:
		return nil, fmt.Errorf("%w, not %q", ErrBadBalance, cfg.Balance)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.FailCooldown <= 0 {
		cfg.FailCooldown = DefaultFailCooldown
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.MaxConnsPerListener <= 0 {
		cfg.MaxConnsPerListener = DefaultMaxConnsPerListener
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.PublishHost == "" {
		cfg.PublishHost = "0.0.0.0"
	}
	logf := log.Printf
	if cfg.ErrorLog != nil {
		logf = cfg.ErrorLog.Printf
	}
	p := &Proxy{cfg: cfg, logf: logf, dialer: net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: -1},
		services: make(map[serviceKey]*service), retired: make(map[*pool]struct{}), addrs: make(map[string]*listener)}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.metrics = newMetrics(p)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.keepAliveLoop()
	}()
	return p, nil
}

// Registry returns the proxy's Prometheus metrics (drover_proxy_*).
func (p *Proxy) Registry() *prometheus.Registry { return p.metrics.registry }

// Update reconciles the proxy with the servers' list of proxied
// services: it opens the listeners of new services, closes those of
// services no longer listed (their open connections drain), and
// replaces every service's backends. A listener that cannot be opened
// is logged and reported in Status; the next Update tries it again.
// Update does not keep services or their instances.
func (p *Proxy) Update(services []*structs.ProxiedService) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	for pl := range p.retired {
		if pl.empty() {
			delete(p.retired, pl)
		}
	}
	seen := make(map[serviceKey]bool, len(services))
	for _, ps := range services {
		if ps == nil {
			continue
		}
		key := serviceKey{ps.Namespace, ps.Name}
		if seen[key] {
			continue
		}
		seen[key] = true
		svc := p.services[key]
		if svc == nil {
			svc = &service{key: key, listeners: make(map[string]*listener),
				pool: newPool(p.cfg.Balance, p.cfg.FailCooldown, p.cfg.DrainTimeout, p.cfg.now)}
			p.services[key] = svc
		}
		svc.spec = structs.ProxiedService{Namespace: ps.Namespace, Name: ps.Name, VIP: ps.VIP, VIPPort: ps.VIPPort, PublishedPort: ps.PublishedPort}
		svc.pool.set(ps.Instances)
		want := map[string]string{}
		if ps.VIP != "" && ps.VIPPort > 0 && ps.VIPPort <= 65535 {
			want[KindVIP] = net.JoinHostPort(ps.VIP, strconv.Itoa(ps.VIPPort))
		}
		if ps.PublishedPort > 0 && ps.PublishedPort <= 65535 {
			want[KindPublished] = net.JoinHostPort(p.cfg.PublishHost, strconv.Itoa(ps.PublishedPort))
		}
		for kind, l := range svc.listeners {
			if addr, ok := want[kind]; !ok || addr != l.addr || l.ln == nil {
				p.closeListenerLocked(l)
				delete(svc.listeners, kind)
			}
		}
		for _, kind := range []string{KindVIP, KindPublished} {
			if addr, ok := want[kind]; ok && svc.listeners[kind] == nil {
				svc.listeners[kind] = p.listenLocked(svc, kind, addr)
			}
		}
	}
	for key, svc := range p.services {
		if seen[key] {
			continue
		}
		for kind, l := range svc.listeners {
			p.closeListenerLocked(l)
			delete(svc.listeners, kind)
		}
		svc.pool.set(nil) // open connections drain
		p.retired[svc.pool] = struct{}{}
		delete(p.services, key)
		p.logf("[INFO] proxy: service %s no longer proxied; its listeners are closed", key)
	}
}

// listenLocked opens a listener and starts its accept loop. A failure
// is logged when it is new (Update retries failed listeners each time).
func (p *Proxy) listenLocked(svc *service, kind, addr string) *listener {
	l := &listener{svc: svc, kind: kind, addr: addr}
	if other := p.addrs[addr]; other != nil {
		l.err = fmt.Errorf("address %s is already served for service %s", addr, other.svc.key)
	} else {
		// Keep-alive probes are set by keepAliveLoop, on long
		// connections only.
		lc := net.ListenConfig{KeepAlive: -1}
		if kind == KindVIP {
			// Every client agent on the machine serves the VIP: the
			// kernel spreads connections among their sockets.
			lc.Control = reusePort
		}
		ln, err := lc.Listen(p.ctx, "tcp", addr)
		if err != nil {
			l.err = err
		} else {
			l.ln = ln
			p.addrs[addr] = l
		}
	}
	if l.err != nil {
		prev := ""
		if old := svc.listeners[kind]; old != nil && old.err != nil {
			prev = old.err.Error()
		}
		if l.err.Error() != prev {
			p.logf("[ERROR] proxy: cannot listen on %s for service %s (%s): %v", addr, svc.key, kind, l.err)
		}
		return l
	}
	p.logf("[INFO] proxy: listening on %s for service %s (%s)", addr, svc.key, kind)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.serve(l)
	}()
	return l
}

func (p *Proxy) closeListenerLocked(l *listener) {
	if l.ln == nil {
		return
	}
	_ = l.ln.Close()
	if p.addrs[l.addr] == l {
		delete(p.addrs, l.addr)
	}
}

// serve accepts connections until the listener is closed.
func (p *Proxy) serve(l *listener) {
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, as net/http
			// does, rather than spin.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			p.logf("[WARN] proxy: accept on %s: %v; retrying in %s", l.addr, err, backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-p.ctx.Done():
				return
			}
		}
		backoff = 0
		if l.active.Add(1) > int64(p.cfg.MaxConnsPerListener) {
			l.active.Add(-1)
			l.svc.counters.rejected.Add(1)
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer l.active.Add(-1)
			p.handle(l.svc, c)
		}()
	}
}

// handle forwards one accepted connection to a backend, trying up to
// maxTries of them: a backend that cannot be dialed is skipped, and one
// that closes the connection before answering has what the client sent
// replayed to the next one (see opening), so a backend killed
// mid-request costs the client nothing but time.
func (p *Proxy) handle(svc *service, client net.Conn) {
	var (
		curMu   sync.Mutex
		current net.Conn
	)
	closeAll := func() {
		_ = client.Close()
		curMu.Lock()
		if current != nil {
			_ = current.Close()
		}
		curMu.Unlock()
	}
	op := newOpening(client, !p.cfg.NoReplay, &svc.counters.bytesIn, closeAll)
	defer func() {
		closeAll()
		if op.started {
			<-op.done
		}
	}()
	var tried map[*backend]bool
	counted := false
	for try := 0; try < maxTries; try++ {
		b := svc.pool.pick(tried)
		if b == nil {
			break
		}
		if tried == nil {
			tried = make(map[*backend]bool, maxTries)
		}
		tried[b] = true
		up, err := p.dialer.DialContext(p.ctx, "tcp", b.addr)
		if err != nil {
			svc.pool.dialFailed(b)
			continue
		}
		pc := &proxyConn{client: client, backend: up}
		if !svc.pool.connected(b, pc) {
			pc.close()
			svc.pool.done(b, pc)
			return
		}
		curMu.Lock()
		current = up
		curMu.Unlock()
		if !counted {
			counted = true
			svc.counters.connections.Add(1)
			svc.counters.active.Add(1)
			defer svc.counters.active.Add(-1)
		}
		first, err := op.attach(up)
		if err != nil {
			_ = up.Close()
			if errors.Is(err, errUnanswered) && op.replayable() {
				svc.pool.unanswered(b)
				svc.pool.done(b, pc)
				svc.counters.replayed.Add(1)
				continue
			}
			svc.pool.done(b, pc)
			return
		}
		op.commit()
		n, werr := client.Write(first)
		first = first[:cap(first)]
		bufPool.Put(&first)
		if werr != nil {
			closeAll()
		} else {
			svc.counters.bytesOut.Add(uint64(n))
			pc.pipeWith(client, up, &svc.counters.bytesOut, closeAll)
		}
		<-op.done
		svc.pool.done(b, pc)
		return
	}
	svc.counters.failedConnects.Add(1)
}

// Stop closes every listener and every proxied connection and waits for
// the proxy's goroutines.
func (p *Proxy) Stop() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.stopped = true
	p.cancel()
	for _, svc := range p.services {
		for _, l := range svc.listeners {
			p.closeListenerLocked(l)
		}
	}
	// Services removed earlier may still have draining connections
	// (retired): those are closed too.
	pools := p.poolsLocked()
	p.services = make(map[serviceKey]*service)
	p.retired = make(map[*pool]struct{})
	p.mu.Unlock()
	for _, pl := range pools {
		pl.stop()
	}
	p.wg.Wait()
}

// pools returns the pools of the live and removed services.
func (p *Proxy) pools() []*pool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.poolsLocked()
}

// poolsLocked returns the pools of the live and removed (retired,
// still draining) services.
func (p *Proxy) poolsLocked() []*pool {
	out := make([]*pool, 0, len(p.services)+len(p.retired))
	for _, svc := range p.services {
		out = append(out, svc.pool)
	}
	for pl := range p.retired {
		out = append(out, pl)
	}
	return out
}

// sortedServicesLocked returns the services sorted by key.
func (p *Proxy) sortedServicesLocked() []*service {
	out := make([]*service, 0, len(p.services))
	for _, s := range p.services {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].key.namespace != out[j].key.namespace {
			return out[i].key.namespace < out[j].key.namespace
		}
		return out[i].key.name < out[j].key.name
	})
	return out
}
