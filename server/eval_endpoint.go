package server

import (
	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/acl"
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
	authz, err := e.srv.Authorize(args.AuthToken)
	if err != nil {
		return err
	}
	return e.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		eval, err := st.EvalByID(ws, args.EvalID)
		if err != nil {
			return err
		}
		if eval != nil {
			if err := authz.authorizeObjectRead(eval.Namespace); err != nil {
				reply.Eval = nil
				return err
			}
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
	authz, err := e.srv.Authorize(args.AuthToken)
	if err != nil {
		return err
	}
	return e.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		// The evaluation's namespace decides; its allocations share it.
		if eval, err := st.EvalByID(ws, args.EvalID); err != nil {
			return err
		} else if eval != nil {
			if err := authz.authorizeObjectRead(eval.Namespace); err != nil {
				reply.Allocations = nil
				return err
			}
		}
		allocs, err := st.AllocsByEval(ws, args.EvalID)
		if err != nil {
			return err
		}
		reply.Allocations = make([]*structs.AllocListStub, 0, len(allocs))
		for _, a := range allocs {
			// Also when the evaluation is gone (garbage collected).
			if authz.CanNamespace(a.Namespace, acl.CapabilityReadJob) {
				reply.Allocations = append(reply.Allocations, a.Stub())
			}
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
	authz, err := e.srv.Authorize(args.AuthToken)
	if err != nil {
		return err
	}
	if err := authz.listNamespaceAllowed(args.ListNamespace()); err != nil {
		return err
	}
	return e.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		evals, err := st.EvalsByIDPrefix(ws, args.ListNamespace(), args.Prefix)
		if err != nil {
			return err
		}
		// A fresh slice: evals may be the store's own.
		reply.Evaluations = make([]*structs.Evaluation, 0, len(evals))
		for _, ev := range evals {
			if authz.CanNamespace(ev.Namespace, acl.CapabilityListJobs) {
				reply.Evaluations = append(reply.Evaluations, ev)
			}
		}
		reply.Index, err = st.Index(state.TableEvals)
		return err
	})
}
