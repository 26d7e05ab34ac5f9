// Package rpcpool is the client side of Drover's RPC wire protocol:
// net/rpc with the msgpack codec, multiplexed over one yamux session per
// server, on the servers' RPC port. It holds the protocol bytes a
// connection starts with, and a pool of sessions used by servers (to
// forward requests to the leader) and by client agents (to reach the
// servers).
//
// With WithTLS, sessions are TLS from their first byte (the protocol
// byte travels inside TLS); the *tls.Config comes from the caller
// (tlsutil's outgoing RPC config), so rpcpool itself needs no tlsutil.
//
// rpcpool imports only structs.
package rpcpool
