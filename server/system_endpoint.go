package server

import "github.com/droverhq/drover/structs"

// System is the RPC endpoint for cluster-wide maintenance.
type System struct {
	srv *Server
}

// GarbageCollect runs a garbage collection on the leader now, with every
// age threshold at zero (server/gc: whatever is finished goes; the caps
// and the rules that protect live jobs hold), or with DryRun only
// reports what it would delete. It needs operator:write.
func (s *System) GarbageCollect(args *structs.SystemGCRequest, reply *structs.SystemGCResponse) error {
	if done, err := s.srv.forward("System.GarbageCollect", args, args, reply); done {
		return err
	}
	if err := s.srv.authorizeOperator(args.AuthToken, true); err != nil {
		return err
	}
	resp, err := s.srv.gc.Collect(true, args.DryRun)
	if resp != nil {
		*reply = *resp
	}
	if err != nil {
		return err
	}
	if !args.DryRun && resp.Chosen.Total() > 0 {
		s.srv.logger.Info("forced garbage collection", "deleted", resp.Deleted.Total(), "skipped", resp.Skipped.Total(), "entries", resp.Entries)
	}
	return nil
}
