package server

import (
	"github.com/droverhq/drover/structs"
)

// Status is the RPC endpoint for cluster status.
type Status struct {
	srv *Server
}

// Ping answers, to check that a server is reachable.
func (s *Status) Ping(args *structs.GenericRequest, reply *struct{}) error {
	return nil
}

// Leader returns the leader's RPC address, "" when there is none.
func (s *Status) Leader(args *structs.GenericRequest, reply *string) error {
	*reply = s.srv.LeaderAddr()
	return nil
}

// Peers returns the RPC addresses of the Raft voters.
func (s *Status) Peers(args *structs.GenericRequest, reply *[]string) error {
	*reply = s.srv.serverAddrs()
	return nil
}

// RaftConfiguration returns this server's own view of the Raft
// configuration (empty before it joined a cluster). Servers waiting to
// bootstrap ask each other with it; it is never forwarded.
func (s *Status) RaftConfiguration(args *structs.GenericRequest, reply *structs.RaftConfigurationResponse) error {
	resp, err := s.srv.raftServers()
	if err != nil {
		return err
	}
	*reply = *resp
	return nil
}

// ServerInfo is who a server is, as Status.ServerInfo answers it.
type ServerInfo struct {
	// RaftID is the server's stable Raft ID.
	RaftID string
	// NodeName is its name in gossip (or its configured node name).
	NodeName string
	// Region is the region it advertises in gossip, "" when unknown.
	Region string
	// RPCAddr is the RPC address it advertises.
	RPCAddr string
}

// ServerInfo says who this server is. Servers call it on the address a
// gossip member claims before making that member a Raft peer or voter
// (server/membership.go): the Raft ID answered must be the one claimed.
// It is read-only, answered locally and never forwarded.
func (s *Status) ServerInfo(args *structs.GenericRequest, reply *ServerInfo) error {
	*reply = ServerInfo{
		RaftID:   s.srv.raftID,
		NodeName: s.srv.localName(),
		Region:   s.srv.localRegion(),
		RPCAddr:  s.srv.config.RPCAdvertise.String(),
	}
	return nil
}
