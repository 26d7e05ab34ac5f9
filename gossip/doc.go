// Package gossip is Drover's cluster membership, on hashicorp/memberlist:
// every agent (server or client) joins one gossip pool on its gossip port
// and advertises, in its member metadata, its roles, its RPC address,
// its Raft ID, its region and the bootstrap_expect it was started with.
// Servers use the pool to find each other and bootstrap Raft; clients
// use it to find servers. Liveness for scheduling is not decided here:
// the leader decides that from heartbeats, through Raft. What a member
// claims about itself is not proof: servers verify a claimed server over
// RPC before making it a Raft peer (server/membership.go).
//
// The package also owns gossip encryption: the keyring (persisted in
// the data dir), and the cluster-wide install/use/remove operations that
// travel as encrypted user messages (keyring.go, keyring_ops.go).
//
// gossip imports nothing internal.
package gossip
