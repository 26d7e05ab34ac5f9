package server

import (
	"context"
	"fmt"
	"math/rand"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Blocking query limits.
const (
	defaultQueryTime = 5 * time.Minute
	maxQueryTime     = 10 * time.Minute
	// leaderPollInterval is how often a request waiting for a leader
	// looks again.
	leaderPollInterval = 20 * time.Millisecond
)

// forward decides where a request is served. Writes, and reads without
// AllowStale, must be served by the leader: if this server leads it
// returns false (serve here); otherwise it waits up to RPCHoldTimeout
// for a leader to be known, forwards the call to it and returns true
// with the result. opts is nil for writes.
func (s *Server) forward(method string, opts *structs.QueryOptions, args, reply interface{}) (bool, error) {
	if opts != nil && opts.AllowStale {
		return false, nil
	}
	deadline := time.Now().Add(s.config.RPCHoldTimeout)
	for {
		if s.IsLeader() {
			return false, nil
		}
		leader := s.LeaderAddr()
		if leader != "" && leader != s.config.RPCAdvertise.String() {
			return true, s.connPool.RPC(leader, method, args, reply)
		}
		if time.Now().After(deadline) {
			return true, structs.ErrNoLeader
		}
		select {
		case <-s.shutdownCh:
			return true, structs.ErrNoLeader
		case <-time.After(leaderPollInterval):
		}
	}
}

// verifyLeader confirms with a quorum that this server still leads, so a
// partitioned ex-leader cannot serve a consistent read from stale state.
func (s *Server) verifyLeader() error {
	if err := s.raft.VerifyLeader().Error(); err != nil {
		if err == raft.ErrNotLeader || err == raft.ErrLeadershipLost {
			return structs.NewError(structs.CodeNoLeader, fmt.Sprintf("no cluster leader: %v", err))
		}
		return err
	}
	return nil
}

// queryFn runs a read against st, registering what it read in ws, and
// fills the response's QueryMeta.Index.
type queryFn func(ws memdb.WatchSet, st *state.StateStore) error

// blockingRPC serves a read. Consistent reads confirm leadership first.
// With MinQueryIndex set, it re-runs fn each time something fn read
// changes, until meta.Index passes MinQueryIndex or MaxQueryTime
// (default 5m, at most 10m, plus up to 1/16 jitter) elapses.
func (s *Server) blockingRPC(opts *structs.QueryOptions, meta *structs.QueryMeta, fn queryFn) error {
	if !opts.AllowStale {
		if err := s.verifyLeader(); err != nil {
			return err
		}
	}
	var ctx context.Context = context.Background()
	if opts.MinQueryIndex > 0 {
		wait := opts.MaxQueryTime
		if wait <= 0 {
			wait = defaultQueryTime
		}
		if wait > maxQueryTime {
			wait = maxQueryTime
		}
		wait += time.Duration(rand.Int63n(int64(wait)/16 + 1))
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
