package server

import (
	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Eval is the RPC endpoint for evaluations.
type Eval struct {
	srv *Server
}

// GetEval reads one evaluation.
func (e *Eval) GetEval(args *structs.EvalSpecificRequest, reply *structs.SingleEvalResponse) error {
	if done, err := e.srv.forward("Eval.GetEval", args, args, reply); done {
		return err
	}
	return e.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		eval, err := st.EvalByID(ws, args.EvalID)
		if err != nil {
			return err
		}
		reply.Eval = eval
		if eval != nil {
			reply.Index = eval.ModifyIndex
			return nil
		}
		reply.Index, err = st.Index(state.TableEvals)
		return err
	})
}

// Allocations lists the allocations an evaluation placed.
func (e *Eval) Allocations(args *structs.EvalSpecificRequest, reply *structs.JobAllocationsResponse) error {
	if done, err := e.srv.forward("Eval.Allocations", args, args, reply); done {
		return err
	}
	return e.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		allocs, err := st.AllocsByEval(ws, args.EvalID)
		if err != nil {
			return err
		}
		reply.Allocations = make([]*structs.AllocListStub, 0, len(allocs))
		for _, a := range allocs {
			reply.Allocations = append(reply.Allocations, a.Stub())
		}
		reply.Index, err = st.Index(state.TableAllocs)
		return err
	})
}

// List lists the evaluations of the request's namespace (of every
// namespace for "*"), optionally by ID prefix.
func (e *Eval) List(args *structs.EvalListRequest, reply *structs.EvalListResponse) error {
	if done, err := e.srv.forward("Eval.List", args, args, reply); done {
		return err
	}
	return e.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		evals, err := st.EvalsByIDPrefix(ws, args.ListNamespace(), args.Prefix)
		if err != nil {
			return err
		}
		reply.Evaluations = evals
		if reply.Evaluations == nil {
			reply.Evaluations = []*structs.Evaluation{}
		}
		reply.Index, err = st.Index(state.TableEvals)
		return err
	})
}
