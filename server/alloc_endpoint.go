package server

import (
	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Alloc is the RPC endpoint for allocations.
type Alloc struct {
	srv *Server
}

// GetAlloc reads one allocation.
func (a *Alloc) GetAlloc(args *structs.AllocSpecificRequest, reply *structs.SingleAllocResponse) error {
	if done, err := a.srv.forward("Alloc.GetAlloc", args, args, reply); done {
		return err
	}
	authz, err := a.srv.Authorize(args.AuthToken)
	if err != nil {
		return err
	}
	return a.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		alloc, err := st.AllocByID(ws, args.AllocID)
		if err != nil {
			return err
		}
		if alloc != nil {
			// Checked against the allocation's own namespace, not the
			// request's: IDs are global.
			if err := authz.authorizeObjectRead(alloc.Namespace); err != nil {
				reply.Alloc = nil
				return err
			}
		}
		reply.Alloc = alloc
		if alloc != nil {
			reply.Index = alloc.ModifyIndex
			return nil
		}
		reply.Index, err = st.Index(state.TableAllocs)
		return err
	})
}

// GetAllocs reads several allocations by ID for a client, without their
// placement metrics; unknown IDs are skipped.
func (a *Alloc) GetAllocs(args *structs.AllocsGetRequest, reply *structs.AllocsGetResponse) error {
	if done, err := a.srv.forward("Alloc.GetAllocs", args, args, reply); done {
		return err
	}
	// Allocations carry job specs: a node reads only its own.
	if _, err := a.srv.authNode(args.NodeID, args.SecretID); err != nil {
		return err
	}
	return a.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		reply.Allocs = make([]*structs.Allocation, 0, len(args.AllocIDs))
		for _, id := range args.AllocIDs {
			alloc, err := st.AllocByID(ws, id)
			if err != nil {
				return err
			}
			if alloc != nil && alloc.NodeID != args.NodeID {
				// Not this node's: as if unknown.
				continue
			}
			if alloc != nil {
				if alloc.Metrics != nil {
					// Clients do not read placement metrics; the
					// stored allocation is shared, so a copy.
					c := new(structs.Allocation)
					*c = *alloc
					c.Metrics = nil
					alloc = c
				}
				reply.Allocs = append(reply.Allocs, alloc)
			}
		}
		// The table's index, not the allocations': a client passes the
		// index of its watch as MinQueryIndex to mean "a server that has
		// applied at least this", and must not wait for these particular
		// allocations to change.
		var err error
		reply.Index, err = st.Index(state.TableAllocs)
		return err
	})
}

// List lists allocations, optionally by ID prefix.
func (a *Alloc) List(args *structs.AllocListRequest, reply *structs.AllocListResponse) error {
	if done, err := a.srv.forward("Alloc.List", args, args, reply); done {
		return err
	}
	authz, err := a.srv.Authorize(args.AuthToken)
	if err != nil {
		return err
	}
	if err := authz.listNamespaceAllowed(args.ListNamespace()); err != nil {
		return err
	}
	return a.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		allocs, err := st.AllocsByIDPrefix(ws, args.ListNamespace(), args.Prefix)
		if err != nil {
			return err
		}
		reply.Allocations = make([]*structs.AllocListStub, 0, len(allocs))
		for _, al := range allocs {
			if authz.CanNamespace(al.Namespace, acl.CapabilityListJobs) {
				reply.Allocations = append(reply.Allocations, al.Stub())
			}
		}
		reply.Index, err = st.Index(state.TableAllocs)
		return err
	})
}
