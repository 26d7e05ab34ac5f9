// Package heartbeat owns the leader's per-node heartbeat timers: a
// client's heartbeat resets its node's timer, and a node whose timer
// runs out (its TTL plus a grace period) is marked down through Raft,
// so that every server agrees it is down and its allocations are
// replaced.
//
// The timers read the cluster through State, a read-only view this
// package defines (the state store and its snapshots satisfy it), and
// write only through Raft, a one-method interface the server
// implements. Time comes from an injectable Clock, so tests move it by
// hand.
//
// heartbeat imports structs only (and go-memdb and go-hclog); never
// server, state or fsm.
package heartbeat
