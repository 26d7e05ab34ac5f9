// Package rpcpool is the client side of Drover's RPC wire protocol:
// net/rpc with the msgpack codec, multiplexed over one yamux session per
// server, on the servers' RPC port. It holds the protocol bytes a
// connection starts with, and a pool of sessions used by servers (to
// forward requests to the leader) and by client agents (to reach the
// servers).
//
// rpcpool imports only structs.
package rpcpool
