package server

import (
	"errors"
	"fmt"
	"time"

	"github.com/droverhq/drover/rpcpool"
	"github.com/droverhq/drover/structs"
)

// Peers calls RPC endpoints on other servers, by the RPC address they
// advertise (which is also their Raft address). The server calls it to
// forward requests to the leader and to ask a server that gossip
// claims exists who it is (membership.go), from any goroutine, at once.
//
// *rpcpool.Pool is the network implementation and the default. Tests
// run several servers in one process with one that calls Server.RPC on
// the other server; it must behave as the network does:
//   - args and reply are not shared with the other server (the pool
//     encodes them);
//   - an error wraps rpcpool.ErrNotSent when the request certainly did
//     not reach the server (unknown address, no connection): it may be
//     sent again, even a write; and rpcpool.ErrUnreachable, alone,
//     when it was lost after sending (the outcome is unknown);
//   - an error the endpoint returned comes back as a
//     *structs.CodedError when it carries a code.
type Peers interface {
	RPC(addr, method string, args, reply interface{}) error
}

// newConnPool returns the pool for calls to other servers: TLS with the
// server certificate when the RPC port is TLS.
func newConnPool(config *Config) *rpcpool.Pool {
	if config.TLS == nil {
		return rpcpool.New()
	}
	return rpcpool.New(rpcpool.WithTLS(config.TLS.OutgoingRPC()))
}

// leaderPollInterval is how often a request waiting for a leader looks
// again.
const leaderPollInterval = 20 * time.Millisecond

// forward decides where a request is served. Writes, and reads without
// AllowStale, must be served by the leader: if this server leads it
// returns false (serve here). Otherwise it forwards the call to the
// leader and returns true with the result, waiting up to RPCHoldTimeout
// for a leader to be known and reachable: while the cluster elects a new
// leader, or the known leader turns out to be dead, the request waits
// and retries rather than failing. A request another server already
// forwarded is never forwarded again (two servers with stale views
// would bounce it); the first server retries instead.
//
// A retried write may have been applied by a leader that died before
// answering; Drover's writes are idempotent for the same request
// (registering the same job spec again changes nothing but adds an
// evaluation).
func (s *Server) forward(method string, info structs.RPCInfo, args, reply interface{}) (bool, error) {
	if info.IsRead() && info.AllowStaleRead() {
		return false, nil
	}
	if info.IsForwarded() && !s.IsLeader() {
		return true, structs.NewError(structs.CodeNoLeader, "no cluster leader: the server this request was forwarded to no longer leads")
	}
	deadline := time.Now().Add(s.config.RPCHoldTimeout)
	var lastErr error = structs.ErrNoLeader
	for {
		if s.IsLeader() {
			return false, nil
		}
		leader := s.LeaderAddr()
		if leader != "" && leader != s.config.RPCAdvertise.String() {
			info.SetForwarded()
			err := s.peers.RPC(leader, method, args, reply)
			if !retryableForward(err) {
				if errors.Is(err, rpcpool.ErrUnreachable) {
					err = structs.NewError(structs.CodeOutcomeUnknown, fmt.Sprintf("lost the connection to the leader after forwarding; the request may or may not have been applied: %v", err))
				}
				return true, err
			}
			lastErr = err
		}
		if time.Now().After(deadline) {
			if errors.Is(lastErr, rpcpool.ErrNotSent) {
				return true, structs.NewError(structs.CodeNoLeader, fmt.Sprintf("no cluster leader reachable: %v", lastErr))
			}
			return true, structs.ErrNoLeader
		}
		select {
		case <-s.shutdownCh:
			return true, structs.ErrNoLeader
		case <-time.After(leaderPollInterval):
		}
	}
}

// retryableForward reports whether a forwarded call may be sent again:
// only when the leader certainly did not act on it. A request that was
// not sent at all, or that a server refused because it does not lead,
// is retried; a connection lost after sending, a timeout, or a leader
// that lost leadership mid-commit leaves the outcome unknown, and
// retrying a write could apply it twice (after a later write), which
// readers would see. Those errors go back to the caller.
func retryableForward(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, rpcpool.ErrNotSent) {
		return true
	}
	if ce := structs.ParseCodedError(err); ce != nil {
		return ce.Code == structs.CodeNoLeader
	}
	return false
}
