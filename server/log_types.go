package server

import (
	"github.com/droverhq/drover/gossip"
	"github.com/droverhq/drover/structs"
)

// Mixed versions.
//
// A server's FSM refuses a log entry of a message type it does not know
// (fsm.Apply): logged, the state left unchanged. During a rolling
// upgrade, a new leader's plan results in the compact encoding would
// thus be refused by every older follower, whose state would silently
// lose every allocation placed until it is upgraded. So the leader
// writes only what every server applies: servers advertise the highest
// message type they apply in gossip (gossip.Meta.LogTypes), the leader
// keeps the lowest over the Raft configuration and the alive servers
// about to join it (clusterLogTypes, on each reconcile), and each writer
// of a type above structs.LegacyMaxMessageType checks it:
//
//   - plan results: the compact batch (31), else the msgpack batch (16);
//   - client allocation updates: compact (32), else msgpack (7);
//   - garbage collection batches (30): none is written; the collector
//     tries again on its next pass.
//
// Without gossip (Config.Membership nil: single-process tests, which run
// one build) every server is taken to be this build.

// errOlderServers refuses a write that some server would not apply.
var errOlderServers = structs.NewError(structs.CodeUnavailable, "not written: a server of an older version would refuse this log entry; it is written once every server is upgraded")

// clusterLogTypes returns the highest message type every server applies,
// and the name of a server that holds it lowest ("" when all are this
// build): every server of the Raft configuration (raftIDs; one that
// gossip does not know counts as the oldest), and every alive server
// member of this region with a Raft ID, which the leader may add next.
// self is this server's Raft ID.
func clusterLogTypes(self string, raftIDs []string, members []gossip.Member, region string) (structs.MessageType, string) {
	level, lowest := structs.MaxMessageType, ""
	lower := func(l structs.MessageType, name string) {
		if l < level {
			level, lowest = l, name
		}
	}
	byID := make(map[string]gossip.Member, len(members))
	for _, m := range members {
		if !m.Server || m.RaftID == "" || m.RaftID == self {
			continue
		}
		if region != "" && m.Region != "" && m.Region != region {
			continue
		}
		if prev, ok := byID[m.RaftID]; ok && prev.Status == gossip.StatusAlive {
			continue // an alive member's claim wins over a failed or left one
		}
		byID[m.RaftID] = m
	}
	inRaft := make(map[string]bool, len(raftIDs))
	for _, id := range raftIDs {
		inRaft[id] = true
		if id == self {
			continue
		}
		m, ok := byID[id]
		if !ok {
			lower(structs.LegacyMaxMessageType, "raft server "+id+" (not in gossip)")
			continue
		}
		lower(memberLogTypes(m), m.Name)
	}
	for id, m := range byID {
		if !inRaft[id] && m.Status == gossip.StatusAlive {
			lower(memberLogTypes(m), m.Name)
		}
	}
	return level, lowest
}

// memberLogTypes is what a member says it applies, capped at this
// build's highest (a newer server knows types this leader does not
// write anyway).
func memberLogTypes(m gossip.Member) structs.MessageType {
	if m.LogTypes <= 0 {
		return structs.LegacyMaxMessageType
	}
	if m.LogTypes > int(structs.MaxMessageType) {
		return structs.MaxMessageType
	}
	return structs.MessageType(m.LogTypes)
}

// updateLogTypes recomputes what the leader may write from the Raft
// configuration's IDs and the gossip members, and logs when it changes
// (the first time too: logTypes starts at 0, not yet known).
func (s *Server) updateLogTypes(raftIDs []string, members []gossip.Member) {
	level, lowest := clusterLogTypes(s.raftID, raftIDs, members, s.localRegion())
	if old := structs.MessageType(s.logTypes.Swap(uint32(level))); old == level {
		return
	}
	if level < structs.MaxMessageType {
		s.logger.Warn("a server applies only older log entries; writing the older encodings, and no garbage collection, until it is upgraded",
			"server", lowest, "its_highest_type", uint8(level), "ours", uint8(structs.MaxMessageType))
	} else {
		s.logger.Info("every server applies this version's log entries", "highest_type", uint8(level))
	}
}

// writes reports whether every server applies entries of type t. Until
// the first reconcile has looked at the servers, only the older types.
func (s *Server) writes(t structs.MessageType) bool {
	level := structs.MessageType(s.logTypes.Load())
	if level == 0 {
		level = structs.LegacyMaxMessageType
	}
	return level >= t
}

// planResultsType is the message type plan result batches are written
// as: compact where every server applies it.
func (s *Server) planResultsType() structs.MessageType {
	if s.writes(structs.ApplyPlanResultsCompactRequestType) {
		return structs.ApplyPlanResultsCompactRequestType
	}
	return structs.ApplyPlanResultsBatchRequestType
}

// allocUpdateType is the message type client allocation updates are
// written as: compact where every server applies it.
func (s *Server) allocUpdateType() structs.MessageType {
	if s.writes(structs.AllocClientUpdateCompactRequestType) {
		return structs.AllocClientUpdateCompactRequestType
	}
	return structs.AllocClientUpdateRequestType
}

// checkWrites refuses a write of type t that some server would refuse.
func (s *Server) checkWrites(t structs.MessageType) error {
	if !s.writes(t) {
		return errOlderServers
	}
	return nil
}
