package client

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"

	"github.com/droverhq/drover/structs"
)

// ServerRPCer calls a method on the server at one address (the agent's
// rpcpool.Pool).
type ServerRPCer interface {
	RPC(addr, method string, args, reply interface{}) error
}

// ServerHinter is implemented by an RPCer that can use what the servers
// say about themselves: every registration and heartbeat answer carries
// the leader's address and the servers' RPC addresses, and the client
// passes them on, so a client configured with one server learns the
// others before that one fails.
type ServerHinter interface {
	SetServers(leader string, servers []string)
}

// ServersConfig configures Servers.
type ServersConfig struct {
	// Transport reaches one server by address.
	Transport ServerRPCer
	// Configured are the servers given by the operator (-servers), tried
	// in this order unless Shuffle.
	Configured []string
	// Discover, when set, returns more servers (those gossip sees
	// alive); it is called on every RPC and must be cheap.
	Discover func() []string
	// Unreachable reports whether an error means the server could not be
	// reached or could not answer (so another server should be tried),
	// rather than that it answered with an error.
	Unreachable func(error) bool
	// Shuffle tries the candidates in random order, so that a fleet of
	// clients given the same list do not all start with the same server.
	Shuffle bool
}

// Servers sends a client's RPCs to one server at a time and fails over:
// it sticks to the server that last answered, and when that one cannot
// be reached, tries the others (learned from the servers' answers,
// discovered, configured) until one answers. It implements RPCer and
// ServerHinter; the agent's client and the node simulator's nodes reach
// the servers through it.
type Servers struct {
	cfg ServersConfig

	// mu guards current, learned and leader.
	mu sync.Mutex
	// current is the server that answered last; "" after every server
	// failed.
	current string
	// learned and leader are the servers' own list, from the last
	// registration or heartbeat answer.
	learned []string
	leader  string
}

// NewServers returns a failover set over cfg.
func NewServers(cfg ServersConfig) *Servers {
	if cfg.Unreachable == nil {
		cfg.Unreachable = func(error) bool { return false }
	}
	return &Servers{cfg: cfg}
}

// SetServers implements ServerHinter. The leader is a candidate like any
// other: the client's writes are forwarded to it by whichever server
// takes them, and its reads are served by any server, so crowding the
// leader would only load it.
func (s *Servers) SetServers(leader string, servers []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leader = leader
	if slices.Equal(s.learned, servers) {
		return
	}
	s.learned = slices.Clone(servers)
}

// Known returns the candidate servers, the current one first.
func (s *Servers) Known() []string {
	s.mu.Lock()
	current, learned, leader := s.current, s.learned, s.leader
	s.mu.Unlock()

	var candidates []string
	candidates = append(candidates, s.cfg.Configured...)
	if s.cfg.Discover != nil {
		candidates = append(candidates, s.cfg.Discover()...)
	}
	candidates = append(candidates, learned...)
	if leader != "" {
		candidates = append(candidates, leader)
	}
	if s.cfg.Shuffle {
		rand.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	}
	out := make([]string, 0, len(candidates)+1)
	seen := make(map[string]bool, len(candidates)+1)
	for _, c := range append([]string{current}, candidates...) {
		if c != "" && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// RPC implements RPCer: the call goes to the current server, and to the
// next candidate for as long as one is unreachable. An error the server
// answered with is returned as is (and the server stays current).
func (s *Servers) RPC(method string, args, reply interface{}) error {
	servers := s.Known()
	if len(servers) == 0 {
		return structs.NewError(structs.CodeNoLeader, "no servers known yet: configure them (-servers) or join a gossip pool where servers are alive (-join)")
	}
	var lastErr error
	for _, addr := range servers {
		err := s.cfg.Transport.RPC(addr, method, args, reply)
		if err == nil || !s.cfg.Unreachable(err) {
			s.mu.Lock()
			s.current = addr
			s.mu.Unlock()
			return err
		}
		lastErr = err
	}
	s.mu.Lock()
	s.current = ""
	s.mu.Unlock()
	return fmt.Errorf("no server reachable (tried %s): %w", strings.Join(servers, ", "), lastErr)
}
