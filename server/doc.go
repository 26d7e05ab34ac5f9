// Package server is a Drover server: it runs Raft (hashicorp/raft over
// raft-boltdb) with the FSM, serves the RPC endpoints (jobs, nodes,
// allocations, evaluations, status) on the RPC port, with Raft traffic
// multiplexed on the same port, and, while it leads, runs the leader
// loops: the eval broker, blocked evaluations, scheduler workers, the
// plan applier and node heartbeat timers.
//
// server imports structs, state, fsm and scheduler. Nothing imports
// server except agent.
package server
