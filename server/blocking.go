package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/rpcpool"
	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

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
			err := s.connPool.RPC(leader, method, args, reply)
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

// verifyLeader makes a consistent read safe. It confirms with a quorum
// that this server still leads, so a partitioned ex-leader cannot answer
// from stale state; and it waits until this leader's barrier has
// applied every entry committed in earlier terms, so a new leader does
// not answer before its state holds every write an earlier leader
// acknowledged.
func (s *Server) verifyLeader() error {
	if err := s.raft.VerifyLeader().Error(); err != nil {
		if err == raft.ErrNotLeader || err == raft.ErrLeadershipLost {
			return structs.NewError(structs.CodeNoLeader, fmt.Sprintf("no cluster leader: %v", err))
		}
		return err
	}
	deadline := time.Now().Add(s.config.RPCHoldTimeout)
	for !s.consistentReadReady.Load() {
		if time.Now().After(deadline) || !s.IsLeader() {
			return structs.NewError(structs.CodeNoLeader, "no cluster leader: this leader has not caught up with its term yet")
		}
		select {
		case <-s.shutdownCh:
			return structs.ErrNoLeader
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// queryFn runs a read against st, registering what it read in ws, and
// fills the response's QueryMeta.Index.
type queryFn func(ws memdb.WatchSet, st *state.StateStore) error

// blockingRPC serves a read. Consistent reads confirm leadership first.
// With MinQueryIndex set, it re-runs fn each time something fn read
// changes, until meta.Index passes MinQueryIndex or the query's wait
// (QueryOptions.QueryWait, plus up to 1/QueryJitterFraction jitter)
// elapses.
func (s *Server) blockingRPC(opts *structs.QueryOptions, meta *structs.QueryMeta, fn queryFn) error {
	if !opts.AllowStale {
		if err := s.verifyLeader(); err != nil {
			return err
		}
	}
	var ctx context.Context = context.Background()
	if opts.MinQueryIndex > 0 {
		wait := opts.QueryWait()
		wait += time.Duration(rand.Int63n(int64(wait)/structs.QueryJitterFraction + 1))
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	for {
		st := s.State()
		ws := memdb.NewWatchSet()
		ws.Add(st.AbandonCh())
		ws.Add(s.shutdownCh)
		err := fn(ws, st)
		s.setQueryMeta(meta)
		if meta.Index < 1 {
			meta.Index = 1
		}
		if err != nil || opts.MinQueryIndex == 0 || meta.Index > opts.MinQueryIndex {
			return err
		}
		if err := ws.WatchCtx(ctx); err != nil {
			// Timed out: answer with what we have.
			return nil
		}
		select {
		case <-s.shutdownCh:
			return nil
		default:
		}
	}
}

func (s *Server) setQueryMeta(meta *structs.QueryMeta) {
	if s.IsLeader() {
		meta.KnownLeader = true
		meta.LastContact = 0
		return
	}
	meta.KnownLeader = s.LeaderAddr() != ""
	if last := s.raft.LastContact(); !last.IsZero() {
		meta.LastContact = time.Since(last)
	}
}

// maxIndex returns the highest of the tables' indexes.
func maxIndex(st *state.StateStore, tables ...string) (uint64, error) {
	var max uint64
	for _, t := range tables {
		idx, err := st.Index(t)
		if err != nil {
			return 0, err
		}
		if idx > max {
			max = idx
		}
	}
	return max, nil
}
