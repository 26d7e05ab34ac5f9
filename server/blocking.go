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
