package server

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/gossip"
	"github.com/droverhq/drover/structs"
)

// Membership is the server's view of the gossip pool; *gossip.Pool
// implements it. Servers() includes failed and left members with their
// status.
type Membership interface {
	Servers() []gossip.Member
	Subscribe() <-chan struct{}
}

// bootstrapCheckInterval is how often a server waiting to bootstrap
// looks at the pool even without a membership change.
const bootstrapCheckInterval = time.Second

// Verifying a server.
//
// Gossip metadata is a claim: any agent that can join the pool can say
// it is a server with any Raft ID and any RPC address. Before a claimed
// server becomes a Raft peer (bootstrap) or voter (reconcile), and
// before an existing voter's address is changed, the server dials the
// claimed RPC address through its Peers (the connection pool, which,
// with RPC TLS, also proves a server certificate) and asks
// Status.ServerInfo who is there; the Raft ID it answers must be the
// one claimed. A member that fails is skipped and logged once per
// member and reason.
const (
	// verifyTimeout bounds one verification: an address that accepts
	// connections and never answers must not hold up the reconcile loop.
	verifyTimeout = 5 * time.Second
	// maxParallelVerify bounds the verifications in flight at once.
	maxParallelVerify = 8
)

// memberChecks remembers the last warning logged for each member, so a
// member that keeps failing verification is logged once per reason,
// not on every pass of the loop that looks at it. One value per loop.
type memberChecks struct {
	logger hclog.Logger
	// l guards warned.
	l sync.Mutex
	// warned maps a member name to the kind of the last warning.
	warned map[string]string
}

func newMemberChecks(logger hclog.Logger) *memberChecks {
	return &memberChecks{logger: logger, warned: make(map[string]string)}
}

// warn logs a skipped member unless the same member was last skipped
// for the same kind of reason.
func (c *memberChecks) warn(m gossip.Member, kind, msg string, args ...interface{}) {
	c.l.Lock()
	same := c.warned[m.Name] == kind
	c.warned[m.Name] = kind
	c.l.Unlock()
	if same {
		return
	}
	c.logger.Warn(msg, append([]interface{}{"member", m.Name, "claimed_id", m.RaftID, "claimed_rpc_addr", m.RPCAddr}, args...)...)
}

// ok forgets a member's warning: it passed, and a later failure is news.
func (c *memberChecks) ok(name string) {
	c.l.Lock()
	delete(c.warned, name)
	c.l.Unlock()
}

// verifyError is why a claimed server did not verify; kind is short
// and stable (the once-per-reason key), err says the details.
type verifyError struct {
	kind string
	err  error
}

func (e *verifyError) Error() string { return e.err.Error() }

// localMember is implemented by memberships that know this agent's own
// entry (*gossip.Pool does); the region and node name come from it.
type localMember interface {
	LocalMember() gossip.Member
}

// localRegion returns this server's region as gossip advertises it, ""
// when unknown.
func (s *Server) localRegion() string {
	if lm, ok := s.config.Membership.(localMember); ok {
		return lm.LocalMember().Region
	}
	return ""
}

// otherRegion reports whether a member advertises a region that is not
// ours; members of another region are never our Raft peers.
func (s *Server) otherRegion(m gossip.Member) bool {
	ours := s.localRegion()
	return ours != "" && m.Region != "" && m.Region != ours
}

// verifyServer asks the server at m's claimed RPC address who it is and
// checks the answer against the claim.
func (s *Server) verifyServer(m gossip.Member) error {
	if m.RPCAddr == "" {
		return &verifyError{"no_addr", errors.New("the member advertises no RPC address")}
	}
	type result struct {
		info ServerInfo
		err  error
	}
	ch := make(chan result, 1)
	// The call runs on its own so that the wait is bounded even when the
	// pool's own timeouts are longer; it ends by itself at the latest
	// when Shutdown closes the pool (Peers given in Config must end
	// their calls by themselves).
	s.goFunc(func() {
		var info ServerInfo
		err := s.peers.RPC(m.RPCAddr, "Status.ServerInfo", &structs.GenericRequest{}, &info)
		ch <- result{info, err}
	})
	timer := time.NewTimer(verifyTimeout)
	defer timer.Stop()
	var r result
	select {
	case r = <-ch:
	case <-timer.C:
		return &verifyError{"timeout", fmt.Errorf("no answer from %s within %s", m.RPCAddr, verifyTimeout)}
	case <-s.shutdownCh:
		return &verifyError{"shutdown", errors.New("server shutting down")}
	}
	switch {
	case r.err != nil:
		return &verifyError{"unreachable", fmt.Errorf("cannot ask %s who it is: %w", m.RPCAddr, r.err)}
	case r.info.RaftID != m.RaftID:
		return &verifyError{"id_mismatch", fmt.Errorf("the server at %s has Raft ID %q, not the claimed %q", m.RPCAddr, r.info.RaftID, m.RaftID)}
	case s.localRegion() != "" && r.info.Region != "" && r.info.Region != s.localRegion():
		return &verifyError{"region", fmt.Errorf("the server at %s is in region %q, not ours (%q)", m.RPCAddr, r.info.Region, s.localRegion())}
	}
	return nil
}

// verifyServers verifies members in parallel; errs[i] is members[i]'s.
func (s *Server) verifyServers(members []gossip.Member) []error {
	errs := make([]error, len(members))
	sem := make(chan struct{}, maxParallelVerify)
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = s.verifyServer(m)
		}()
	}
	wg.Wait()
	return errs
}

// verifyKind is the once-per-reason key of a verification error.
func verifyKind(err error) string {
	var ve *verifyError
	if errors.As(err, &ve) {
		return ve.kind
	}
	return "other"
}

// bootstrapLoop bootstraps the Raft cluster once BootstrapExpect servers
// see each other in gossip. It runs only on a server started without
// Raft state and with BootstrapExpect > 1, and stops once the server has
// a Raft configuration: its own bootstrap, or a leader that added it.
func (s *Server) bootstrapLoop() {
	changes := s.config.Membership.Subscribe()
	checks := newMemberChecks(s.logger)
	ticker := time.NewTicker(bootstrapCheckInterval)
	defer ticker.Stop()
	for {
		if s.tryBootstrap(checks) {
			return
		}
		select {
		case <-s.shutdownCh:
			return
		case <-changes:
		case <-ticker.C:
		}
	}
}

// tryBootstrap bootstraps when it can and reports whether the server is
// done waiting. Only servers that verify count towards
// bootstrap_expect, and only they go into the first configuration.
func (s *Server) tryBootstrap(checks *memberChecks) bool {
	if s.hasRaftConfiguration() {
		return true
	}
	expect := s.config.BootstrapExpect
	self := s.config.RPCAdvertise.String()
	// This server is in the configuration by what it knows of itself,
	// not by what gossip says: another member may claim its ID.
	servers := []gossip.Member{{Name: s.localName(), Meta: gossip.Meta{Server: true, RaftID: s.raftID, RPCAddr: self, BootstrapExpect: expect}}}
	var candidates []gossip.Member
	for _, m := range s.config.Membership.Servers() {
		if m.Status != gossip.StatusAlive || m.RaftID == "" || m.RPCAddr == "" {
			continue
		}
		if m.RaftID == s.raftID {
			if m.RPCAddr != self {
				checks.warn(m, "claims_our_id", "ignoring a gossip member that claims this server's Raft ID at another address")
			}
			continue
		}
		if s.otherRegion(m) {
			checks.warn(m, "region", "ignoring a server of another region", "its_region", m.Region, "our_region", s.localRegion())
			continue
		}
		candidates = append(candidates, m)
	}
	seen := map[string]bool{s.raftID: true}
	for i, err := range s.verifyServers(candidates) {
		m := candidates[i]
		if err != nil {
			checks.warn(m, verifyKind(err), "not counting a gossip member that claims to be a server towards bootstrap_expect: it does not verify (retrying; a server that is still starting answers shortly)", "error", err)
			continue
		}
		checks.ok(m.Name)
		if seen[m.RaftID] {
			continue
		}
		seen[m.RaftID] = true
		if m.BootstrapExpect != expect {
			s.logger.Error("a server in the pool has a different bootstrap_expect; not bootstrapping until they agree",
				"server", m.Name, "its_bootstrap_expect", m.BootstrapExpect, "ours", expect)
			return false
		}
		servers = append(servers, m)
	}
	if len(servers) < expect {
		s.logger.Debug("waiting for servers to bootstrap", "verified", len(servers), "bootstrap_expect", expect)
		return false
	}
	// Bootstrapping twice would make two clusters: if any server already
	// belongs to one, wait to be added to it instead.
	for _, m := range servers {
		if m.RaftID == s.raftID {
			continue
		}
		var resp structs.RaftConfigurationResponse
		if err := s.peers.RPC(m.RPCAddr, "Status.RaftConfiguration", &structs.GenericRequest{}, &resp); err != nil {
			s.logger.Warn("cannot ask a server about its Raft state; retrying", "server", m.Name, "error", err)
			return false
		}
		if len(resp.Servers) > 0 {
			s.logger.Info("found an existing cluster; waiting for its leader to add this server", "server", m.Name)
			return true
		}
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].RaftID < servers[j].RaftID })
	var cfg raft.Configuration
	for _, m := range servers {
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(m.RaftID), Address: raft.ServerAddress(m.RPCAddr), Suffrage: raft.Voter})
	}
	if err := s.raft.BootstrapCluster(cfg).Error(); err != nil {
		if errors.Is(err, raft.ErrCantBootstrap) {
			return true
		}
		s.logger.Error("failed to bootstrap", "error", err)
		return false
	}
	names := make([]string, len(servers))
	for i, m := range servers {
		names[i] = m.Name
	}
	s.logger.Info("bootstrapped the cluster", "servers", names)
	return true
}

// localName is this server's node name: its gossip name when known.
func (s *Server) localName() string {
	if lm, ok := s.config.Membership.(localMember); ok {
		if n := lm.LocalMember().Name; n != "" {
			return n
		}
	}
	return s.config.NodeName
}

// hasRaftConfiguration reports whether this server belongs to a cluster.
func (s *Server) hasRaftConfiguration() bool {
	f := s.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// reconcileInterval is how often the leader reconciles Raft peers with
// gossip even without a membership change.
const reconcileInterval = 5 * time.Second

// reconcileMembers keeps the Raft configuration in line with gossip, on
// the leader: alive servers missing from Raft are added as voters (a new
// server joining an existing cluster) once they verify; servers that
// left gracefully are removed. Failed servers stay: they may come back,
// and an operator removes a dead one with `drover operator raft
// remove-peer`.
func (s *Server) reconcileMembers(stopCh <-chan struct{}) {
	if s.config.Membership == nil {
		return
	}
	changes := s.config.Membership.Subscribe()
	checks := newMemberChecks(s.logger)
	ticker := time.NewTicker(reconcileInterval)
	defer ticker.Stop()
	for {
		if err := s.reconcileOnce(checks); err != nil {
			s.logger.Warn("failed to reconcile Raft peers with gossip", "error", err)
		}
		select {
		case <-stopCh:
			return
		case <-changes:
		case <-ticker.C:
		}
	}
}

// reconcileOnce makes one pass. An alive server missing from Raft, or
// known under its ID at another address, is added (or re-addressed)
// only after it verifies as the server with that Raft ID: a member that
// claims an existing voter's ID with a bogus address would otherwise
// re-address that voter and leave the cluster without a leader.
func (s *Server) reconcileOnce(checks *memberChecks) error {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	known := make(map[string]string)
	var raftIDs []string
	for _, srv := range f.Configuration().Servers {
		known[string(srv.ID)] = string(srv.Address)
		raftIDs = append(raftIDs, string(srv.ID))
	}
	// Before any server is added: what it applies counts from now.
	members := s.config.Membership.Servers()
	s.updateLogTypes(raftIDs, members)
	// aliveIDs are the Raft IDs alive members claim at the address Raft
	// has for them: a "left" member claiming one of those is not that
	// server leaving.
	aliveIDs := make(map[string]bool)
	for _, m := range members {
		if m.Status == gossip.StatusAlive && m.RaftID != "" && known[m.RaftID] == m.RPCAddr {
			aliveIDs[m.RaftID] = true
		}
	}
	var candidates []gossip.Member
	for _, m := range members {
		if m.RaftID == "" {
			continue
		}
		if s.otherRegion(m) {
			checks.warn(m, "region", "ignoring a server of another region", "its_region", m.Region, "our_region", s.localRegion())
			continue
		}
		addr, inRaft := known[m.RaftID]
		if (m.Status == gossip.StatusFailed || m.Status == gossip.StatusLeft) && !aliveIDs[m.RaftID] {
			// Gone: what it held goes to other workers (a suspect
			// member may still answer).
			s.redeliverHeldBy(m)
		}
		switch m.Status {
		case gossip.StatusAlive:
			if inRaft && addr == m.RPCAddr {
				checks.ok(m.Name)
				continue
			}
			if m.RaftID == s.raftID {
				// The leader knows its own address; a member claiming its
				// ID elsewhere is not it.
				checks.warn(m, "claims_our_id", "ignoring a gossip member that claims this server's Raft ID at another address",
					"raft_addr", addr)
				continue
			}
			candidates = append(candidates, m)
		case gossip.StatusLeft:
			if !inRaft || m.RaftID == s.raftID {
				continue
			}
			// A server that leaves is in Raft at the address it
			// advertised; anything else is a member claiming someone
			// else's ID, and the server it names is not leaving.
			if addr != m.RPCAddr || aliveIDs[m.RaftID] {
				checks.warn(m, "left_mismatch", "not removing a Raft server for a left gossip member: an alive member is that server, or Raft has it at another address",
					"raft_addr", addr)
				continue
			}
			s.logger.Info("removing server that left from Raft", "server", m.Name, "id", m.RaftID)
			if err := s.raft.RemoveServer(raft.ServerID(m.RaftID), 0, 0).Error(); err != nil {
				return fmt.Errorf("remove server %s: %w", m.Name, err)
			}
		}
	}
	for i, err := range s.verifyServers(candidates) {
		m := candidates[i]
		if err != nil {
			checks.warn(m, verifyKind(err), "not adding a gossip member that claims to be a server but does not verify", "error", err)
			continue
		}
		checks.ok(m.Name)
		if addr, inRaft := known[m.RaftID]; inRaft {
			s.logger.Info("server verified at a new address; updating its Raft address", "server", m.Name, "id", m.RaftID, "old_address", addr, "address", m.RPCAddr)
		} else {
			s.logger.Info("adding verified server to Raft", "server", m.Name, "id", m.RaftID, "address", m.RPCAddr)
		}
		if err := s.raft.AddVoter(raft.ServerID(m.RaftID), raft.ServerAddress(m.RPCAddr), 0, 0).Error(); err != nil {
			return fmt.Errorf("add voter %s: %w", m.Name, err)
		}
		known[m.RaftID] = m.RPCAddr
	}
	return nil
}

// redeliverHeldBy hands back the evaluations that the server m, which
// gossip reports failed or left, took from this leader's broker: their
// deliveries would otherwise wait out the nack timeout. The caller
// skips a member whose Raft ID an alive member at Raft's address
// claims; a member that only claims a Raft ID gains nothing anyway:
// the evaluations go to other workers and the holder's tokens are void.
func (s *Server) redeliverHeldBy(m gossip.Member) {
	if m.RaftID == s.raftID {
		return
	}
	held, err := s.evalBroker.NackHeldBy(m.RaftID)
	if err != nil {
		s.logger.Warn("failed to hand back the evaluations of a server that is gone", "server", m.Name, "error", err)
	}
	if len(held) > 0 {
		s.logger.Info("server is gone while holding evaluations; redelivering them", "server", m.Name, "status", m.Status, "evals", held)
	}
}

// Leave takes this server out of the cluster gracefully before shutdown:
// a leader removes itself from Raft (handing leadership on); a follower
// is removed by the leader when gossip reports it left.
func (s *Server) Leave(timeout time.Duration) error {
	if !s.IsLeader() {
		return nil
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	if len(f.Configuration().Servers) <= 1 {
		return nil
	}
	s.logger.Info("leader leaving: removing itself from Raft")
	return s.raft.RemoveServer(raft.ServerID(s.raftID), 0, timeout).Error()
}

// raftServers returns the Raft configuration with leader flags and,
// where gossip knows them, node names.
func (s *Server) raftServers() (*structs.RaftConfigurationResponse, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	names := make(map[string]string)
	if s.config.Membership != nil {
		for _, m := range s.config.Membership.Servers() {
			names[m.RaftID] = m.Name
		}
	}
	_, leaderID := s.raft.LeaderWithID()
	out := &structs.RaftConfigurationResponse{Index: f.Index()}
	for _, srv := range f.Configuration().Servers {
		out.Servers = append(out.Servers, &structs.RaftServer{
			ID:      string(srv.ID),
			Node:    names[string(srv.ID)],
			Address: string(srv.Address),
			Leader:  srv.ID == leaderID,
			Voter:   srv.Suffrage == raft.Voter,
		})
	}
	return out, nil
}
