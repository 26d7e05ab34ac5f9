// Package gossip is Drover's cluster membership, on hashicorp/memberlist:
// every agent (server or client) joins one gossip pool on its gossip port
// and advertises, in its member metadata, its roles, its RPC address,
// its Raft ID and the bootstrap_expect it was started with. Servers use
// the pool to find each other and bootstrap Raft; clients use it to find
// servers. Liveness for scheduling is not decided here: the leader
// decides that from heartbeats, through Raft.
//
// gossip imports nothing internal.
package gossip
