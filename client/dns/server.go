package dns

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/droverhq/drover/structs"
)

// Defaults and bounds.
const (
	// DefaultDomain is the domain answered for when Config.Domain is "".
	DefaultDomain = "drover."
	// DefaultTTL is the TTL of answers when Config.TTL is 0, and the
	// largest TTL allowed: instances come and go, and a resolver must not
	// keep a stopped one for long.
	DefaultTTL = 5 * time.Second
	// maxAnswers bounds the records of one answer (over TCP as well).
	maxAnswers = 64
	// lookupTimeout bounds one Lookup; resolvers give up after a few
	// seconds anyway.
	lookupTimeout = 3 * time.Second
)

// ErrNoLookup is returned by New when Config.Lookup is nil.
var ErrNoLookup = errors.New("dns: Config.Lookup is required")

// LookupFunc returns every instance of one service in one namespace,
// whatever its status (the server keeps the passing ones for A and SRV
// answers, and takes the VIP from any). No instances and a nil error
// mean the service does not exist. It is called from the server's
// goroutines, at most once at a time per (namespace, service), and must
// return when ctx is done. The server does not change what it returns.
type LookupFunc func(ctx context.Context, namespace, serviceName string) ([]*structs.ServiceInstance, error)

// Config configures a Server.
type Config struct {
	// Addr is the host:port listened on, over UDP and TCP both. Port 0
	// picks a port free for both.
	Addr string
	// Domain is the domain answered for (default "drover.").
	Domain string
	// TTL of the answers: 0 is DefaultTTL, a negative TTL is 0, and a
	// TTL over DefaultTTL is DefaultTTL.
	TTL time.Duration
	// Lookup finds a service's instances.
	Lookup LookupFunc
	// ErrorLog receives panics recovered from Lookup and serving
	// errors; nil: the log package's standard logger.
	ErrorLog *log.Logger
}

// Server answers DNS queries over UDP and TCP on one address.
type Server struct {
	domain  string // canonical, lower case, ending in "."
	ttl     uint32 // seconds
	cache   *cache
	targets *targets
	logf    func(format string, args ...any)

	udp, tcp *mdns.Server
	addr     string
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// New listens on cfg.Addr (UDP and TCP) and serves until Shutdown. An
// address in use is an error naming the address.
func New(cfg Config) (*Server, error) {
	s, err := newServer(cfg, time.Now)
	if err != nil {
		return nil, err
	}
	pc, l, err := listen(cfg.Addr)
	if err != nil {
		return nil, err
	}
	s.addr = l.Addr().String()
	s.start(pc, l)
	return s, nil
}

// newServer builds a Server that does not listen (tests drive its
// handler directly).
func newServer(cfg Config, now func() time.Time) (*Server, error) {
	if cfg.Lookup == nil {
		return nil, ErrNoLookup
	}
	domain := cfg.Domain
	if domain == "" {
		domain = DefaultDomain
	}
	domain = mdns.CanonicalName(domain)
	if _, ok := mdns.IsDomainName(domain); !ok || domain == "." {
		return nil, fmt.Errorf("dns: domain %q is not a domain name like %q", cfg.Domain, DefaultDomain)
	}
	ttl := cfg.TTL
	switch {
	case ttl == 0 || ttl > DefaultTTL:
		ttl = DefaultTTL
	case ttl < 0:
		ttl = 0
	}
	logf := log.Printf
	if cfg.ErrorLog != nil {
		logf = cfg.ErrorLog.Printf
	}
	s := &Server{
		domain:  domain,
		ttl:     uint32(ttl / time.Second),
		cache:   newCache(cfg.Lookup, now, defaultCacheSize),
		targets: newTargets(now, defaultCacheSize),
		logf:    logf,
	}
	s.cache.onPanic = func(v any) {
		s.logf("[ERROR] dns: service lookup panicked: %v\n%s", v, debug.Stack())
	}
	return s, nil
}

// listen binds addr over UDP and TCP. With port 0 the UDP port is
// picked first and TCP tried on the same port, a few times.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns address %q: want host:port: %w", addr, err)
	}
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen on DNS address %s (udp): %w", addr, err)
		}
		tcpAddr := addr
		if port == "0" {
			tcpAddr = net.JoinHostPort(host, strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port))
		}
		l, err := net.Listen("tcp", tcpAddr)
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		if port != "0" || attempt == 4 {
			return nil, nil, fmt.Errorf("listen on DNS address %s (tcp): %w", tcpAddr, err)
		}
	}
}

// start serves pc and l, each in a goroutine tracked for Shutdown, and
// returns once both are serving.
func (s *Server) start(pc net.PacketConn, l net.Listener) {
	var started sync.WaitGroup
	started.Add(2)
	udpOnce, tcpOnce := new(sync.Once), new(sync.Once)
	s.udp = &mdns.Server{PacketConn: pc, Handler: s, UDPSize: mdns.DefaultMsgSize,
		NotifyStartedFunc: func() { udpOnce.Do(started.Done) }}
	s.tcp = &mdns.Server{Listener: l, Handler: s,
		NotifyStartedFunc: func() { tcpOnce.Do(started.Done) }}
	for _, x := range []struct {
		srv  *mdns.Server
		once *sync.Once
	}{{s.udp, udpOnce}, {s.tcp, tcpOnce}} {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := x.srv.ActivateAndServe(); err != nil && !isClosed(err) {
				s.logf("[ERROR] dns: serving stopped: %v", err)
			}
			// Let start return even if the server never started.
			x.once.Do(started.Done)
		}()
	}
	started.Wait()
}

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "use of closed network connection")
}

// Addr returns the address listened on (UDP and TCP), host:port.
func (s *Server) Addr() string { return s.addr }

// Shutdown stops serving and waits (up to a few seconds for open TCP
// connections) until the server's goroutines are done. Lookups in
// flight are not cancelled; they end within their timeout.
func (s *Server) Shutdown() error {
	var err error
	s.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		for _, srv := range []*mdns.Server{s.udp, s.tcp} {
			if srv == nil {
				continue
			}
			if serr := srv.ShutdownContext(ctx); serr != nil && err == nil {
				err = serr
			}
		}
		if s.udp != nil {
			_ = s.udp.PacketConn.Close()
		}
		s.wg.Wait()
	})
	return err
}
