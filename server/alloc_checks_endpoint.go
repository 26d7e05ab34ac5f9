package server

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// maxAllocIDLen bounds an allocation ID in a request (a UUID is 36).
const maxAllocIDLen = 128

// Checks reads an allocation's service check results, as its client
// last reported them, keyed by structs.CheckKey. Like GetAlloc it takes
// read-job in the allocation's own namespace; an unknown allocation is
// not_found.
func (a *Alloc) Checks(args *structs.AllocChecksRequest, reply *structs.AllocChecksResponse) error {
	if done, err := a.srv.forward("Alloc.Checks", args, args, reply); done {
		return err
	}
	if args.AllocID == "" || len(args.AllocID) > maxAllocIDLen {
		return structs.NewError(structs.CodeInvalid, fmt.Sprintf("allocation ID must be 1 to %d bytes", maxAllocIDLen))
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
		if alloc == nil {
			reply.Checks = nil
			return structs.NewError(structs.CodeNotFound, fmt.Sprintf("allocation %.128q not found", args.AllocID))
		}
		if err := authz.authorizeObjectRead(alloc.Namespace); err != nil {
			reply.Checks = nil
			return err
		}
		// Stored check results are never modified: shared, in a new
		// map the reply owns.
		reply.Checks = make(map[string]*structs.CheckStatus, len(alloc.Checks))
		for k, c := range alloc.Checks {
			reply.Checks[k] = c
		}
		reply.Index = alloc.ModifyIndex
		return nil
	})
}
