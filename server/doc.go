// Package server is a Drover server: it runs Raft (hashicorp/raft over
// raft-boltdb) with the FSM, serves the RPC endpoints (jobs, nodes,
// allocations, evaluations, status) on the RPC port, with Raft traffic
// multiplexed on the same port, and, while it leads, runs the leader
// loops: the eval broker, blocked evaluations, scheduler workers, the
// plan applier and node heartbeat timers.
//
// With mTLS (Config.TLS) the RPC port is TLS from its first byte and a
// peer's certificate decides what it may do: a server certificate
// speaks Raft and calls every endpoint, a client certificate only the
// client endpoints (rpc.go), anything else is dropped.
//
// server imports structs, state, fsm and scheduler (and rpcpool,
// gossip, connlimit and tlsutil for the wire). Nothing imports
// server except agent.
package server
