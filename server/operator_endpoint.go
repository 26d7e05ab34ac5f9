package server

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Operator is the RPC endpoint for cluster operations.
type Operator struct {
	srv *Server
}

// RaftGetConfiguration returns the Raft configuration as the leader sees
// it.
func (o *Operator) RaftGetConfiguration(args *structs.GenericRequest, reply *structs.RaftConfigurationResponse) error {
	if done, err := o.srv.forward("Operator.RaftGetConfiguration", args, args, reply); done {
		return err
	}
	if err := o.srv.authorizeOperator(args.AuthToken, false); err != nil {
		return err
	}
	resp, err := o.srv.raftServers()
	if err != nil {
		return err
	}
	*reply = *resp
	return nil
}

// RaftRemovePeer removes a server from Raft by ID or address; it is how
// an operator removes a dead server.
func (o *Operator) RaftRemovePeer(args *structs.RaftPeerRequest, reply *structs.GenericResponse) error {
	if done, err := o.srv.forward("Operator.RaftRemovePeer", args, args, reply); done {
		return err
	}
	if err := o.srv.authorizeOperator(args.AuthToken, true); err != nil {
		return err
	}
	if (args.ID == "") == (args.Address == "") {
		return structs.NewError(structs.CodeInvalid, "name the peer by ID or by address, not both")
	}
	f := o.srv.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == args.ID || string(srv.Address) == args.Address {
			if err := o.srv.raft.RemoveServer(srv.ID, 0, 0).Error(); err != nil {
				return fmt.Errorf("remove peer %s: %w", srv.ID, err)
			}
			o.srv.logger.Info("removed Raft peer", "id", srv.ID, "address", srv.Address)
			reply.Index = o.srv.raft.AppliedIndex()
			return nil
		}
	}
	return structs.NewError(structs.CodeNotFound, fmt.Sprintf("no Raft peer with ID %q or address %q", args.ID, args.Address))
}

// StateHash fingerprints this server's own state store; it is never
// forwarded (the point is to compare servers).
func (o *Operator) StateHash(args *structs.GenericRequest, reply *structs.StateHashResponse) error {
	if err := o.srv.authorizeOperator(args.AuthToken, false); err != nil {
		return err
	}
	// One view for both, so the counts are of the hashed state.
	st := o.srv.State().Snapshot()
	index, tables, err := st.Hash()
	if err != nil {
		return err
	}
	rows, err := st.AllRowCounts()
	if err != nil {
		return err
	}
	reply.Server = o.srv.config.RPCAdvertise.String()
	reply.Index = index
	reply.Tables = tables
	reply.Rows = rows
	return nil
}

// SchedulerGetConfiguration returns the scheduler configuration.
func (o *Operator) SchedulerGetConfiguration(args *structs.GenericRequest, reply *structs.SchedulerConfigResponse) error {
	if done, err := o.srv.forward("Operator.SchedulerGetConfiguration", args, args, reply); done {
		return err
	}
	if err := o.srv.authorizeOperator(args.AuthToken, false); err != nil {
		return err
	}
	return o.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		idx, cfg, err := st.SchedulerConfig()
		if err != nil {
			return err
		}
		reply.Config = cfg
		reply.Index = idx
		return nil
	})
}

// SchedulerSetConfiguration replaces the scheduler configuration.
func (o *Operator) SchedulerSetConfiguration(args *structs.SchedulerSetConfigRequest, reply *structs.GenericResponse) error {
	if done, err := o.srv.forward("Operator.SchedulerSetConfiguration", args, args, reply); done {
		return err
	}
	if err := o.srv.authorizeOperator(args.AuthToken, true); err != nil {
		return err
	}
	_, index, err := o.srv.raftApply(structs.SchedulerConfigRequestType, args)
	reply.Index = index
	return err
}
