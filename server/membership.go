package server

import (
	"errors"
	"fmt"
	"sort"
	"time"

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

// bootstrapLoop bootstraps the Raft cluster once BootstrapExpect servers
// see each other in gossip. It runs only on a server started without
// Raft state and with BootstrapExpect > 1, and stops once the server has
// a Raft configuration: its own bootstrap, or a leader that added it.
func (s *Server) bootstrapLoop() {
	changes := s.config.Membership.Subscribe()
	ticker := time.NewTicker(bootstrapCheckInterval)
	defer ticker.Stop()
	for {
		if s.tryBootstrap() {
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
// done waiting.
func (s *Server) tryBootstrap() bool {
	if s.hasRaftConfiguration() {
		return true
	}
	expect := s.config.BootstrapExpect
	var servers []gossip.Member
	for _, m := range s.config.Membership.Servers() {
		if m.Status != gossip.StatusAlive || m.RaftID == "" || m.RPCAddr == "" {
			continue
		}
		if m.BootstrapExpect != expect {
			s.logger.Error("a server in the pool has a different bootstrap_expect; not bootstrapping until they agree",
				"server", m.Name, "its_bootstrap_expect", m.BootstrapExpect, "ours", expect)
			return false
		}
		servers = append(servers, m)
	}
	if len(servers) < expect {
		s.logger.Debug("waiting for servers to bootstrap", "seen", len(servers), "bootstrap_expect", expect)
		return false
	}
	// Bootstrapping twice would make two clusters: if any server already
	// belongs to one, wait to be added to it instead.
	for _, m := range servers {
		if m.RaftID == s.raftID {
			continue
		}
		var resp structs.RaftConfigurationResponse
		if err := s.connPool.RPC(m.RPCAddr, "Status.RaftConfiguration", &structs.GenericRequest{}, &resp); err != nil {
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
// server joining an existing cluster); servers that left gracefully are
// removed. Failed servers stay: they may come back, and an operator
// removes a dead one with `drover operator raft remove-peer`.
func (s *Server) reconcileMembers(stopCh <-chan struct{}) {
	if s.config.Membership == nil {
		return
	}
	changes := s.config.Membership.Subscribe()
	ticker := time.NewTicker(reconcileInterval)
	defer ticker.Stop()
	for {
		if err := s.reconcileOnce(); err != nil {
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

func (s *Server) reconcileOnce() error {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	known := make(map[string]string)
	for _, srv := range f.Configuration().Servers {
		known[string(srv.ID)] = string(srv.Address)
	}
	for _, m := range s.config.Membership.Servers() {
		if m.RaftID == "" {
			continue
		}
		addr, inRaft := known[m.RaftID]
		switch m.Status {
		case gossip.StatusAlive:
			if inRaft && addr == m.RPCAddr {
				continue
			}
			s.logger.Info("adding server to Raft", "server", m.Name, "id", m.RaftID, "address", m.RPCAddr)
			if err := s.raft.AddVoter(raft.ServerID(m.RaftID), raft.ServerAddress(m.RPCAddr), 0, 0).Error(); err != nil {
				return fmt.Errorf("add voter %s: %w", m.Name, err)
			}
		case gossip.StatusLeft:
			if !inRaft || m.RaftID == s.raftID {
				continue
			}
			s.logger.Info("removing server that left from Raft", "server", m.Name, "id", m.RaftID)
			if err := s.raft.RemoveServer(raft.ServerID(m.RaftID), 0, 0).Error(); err != nil {
				return fmt.Errorf("remove server %s: %w", m.Name, err)
			}
		}
	}
	return nil
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
