package server

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// maxQuotasPerWrite bounds the quota specs one upsert or delete names.
const maxQuotasPerWrite = 64

// Quota is the RPC endpoint for quota specs and their usage. Writes go
// through Raft on the leader; whether a spec may bind its namespace, or
// be deleted, is decided by the state store in log order (the checks
// here only answer the common mistakes fast). Reads need quota:read,
// writes quota:write (a management token has both; with ACLs disabled
// everything is allowed).
type Quota struct {
	srv *Server
}

// List lists quota specs, by name (those starting with Prefix).
func (q *Quota) List(args *structs.QuotaListRequest, reply *structs.QuotaListResponse) error {
	if done, err := q.srv.forward("Quota.List", args, args, reply); done {
		return err
	}
	if err := q.srv.AuthorizeQuotaRead(args.AuthToken); err != nil {
		return err
	}
	return q.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		list, err := st.QuotasByNamePrefix(ws, args.Prefix)
		if err != nil {
			return err
		}
		reply.Quotas = list
		if reply.Quotas == nil {
			reply.Quotas = []*structs.QuotaSpec{}
		}
		reply.Index, err = st.Index(state.TableQuotas)
		return err
	})
}

// Get reads one quota spec; Quota is nil when it does not exist.
func (q *Quota) Get(args *structs.QuotaSpecificRequest, reply *structs.SingleQuotaResponse) error {
	if done, err := q.srv.forward("Quota.Get", args, args, reply); done {
		return err
	}
	if err := q.srv.AuthorizeQuotaRead(args.AuthToken); err != nil {
		return err
	}
	if err := structs.ValidateQuotaName(args.Name); err != nil {
		return structs.NewError(structs.CodeInvalid, err.Error())
	}
	return q.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		spec, err := st.QuotaByName(ws, args.Name)
		if err != nil {
			return err
		}
		reply.Quota = spec
		reply.Index, err = st.Index(state.TableQuotas)
		return err
	})
}

// Usage reads a quota's limits and what its namespace's allocations
// use; Usage is nil when the quota does not exist. A blocking query
// wakes when the quota, the namespaces or any allocation changes.
func (q *Quota) Usage(args *structs.QuotaSpecificRequest, reply *structs.QuotaUsageResponse) error {
	if done, err := q.srv.forward("Quota.Usage", args, args, reply); done {
		return err
	}
	if err := q.srv.AuthorizeQuotaRead(args.AuthToken); err != nil {
		return err
	}
	if err := structs.ValidateQuotaName(args.Name); err != nil {
		return structs.NewError(structs.CodeInvalid, err.Error())
	}
	return q.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		u, err := st.QuotaUsage(ws, args.Name)
		if err != nil {
			return err
		}
		reply.Usage = u
		var idx uint64
		for _, t := range []string{state.TableQuotas, state.TableNamespaces, state.TableAllocs} {
			i, err := st.Index(t)
			if err != nil {
				return err
			}
			idx = max(idx, i)
		}
		reply.Index = idx
		return nil
	})
}

// Upsert creates or updates quota specs. Each is checked
// (QuotaSpec.Validate) before anything is written; the indexes are the
// state store's to set.
func (q *Quota) Upsert(args *structs.QuotaUpsertRequest, reply *structs.GenericResponse) error {
	if done, err := q.srv.forward("Quota.Upsert", args, args, reply); done {
		return err
	}
	if err := q.srv.AuthorizeQuotaWrite(args.AuthToken); err != nil {
		return err
	}
	if len(args.Quotas) == 0 {
		return structs.NewError(structs.CodeInvalid, "no quota to write; send at least one")
	}
	if len(args.Quotas) > maxQuotasPerWrite {
		return structs.NewError(structs.CodeInvalid, fmt.Sprintf("%d quotas in one write; the limit is %d", len(args.Quotas), maxQuotasPerWrite))
	}
	req := &structs.QuotaUpsertRequest{Quotas: make([]*structs.QuotaSpec, 0, len(args.Quotas))}
	seen := make(map[string]bool, len(args.Quotas))
	for _, spec := range args.Quotas {
		if err := spec.Validate(); err != nil {
			return structs.NewError(structs.CodeInvalid, err.Error())
		}
		if seen[spec.Name] {
			return structs.NewError(structs.CodeInvalid, fmt.Sprintf("quota %q is named twice in one write", spec.Name))
		}
		seen[spec.Name] = true
		c := spec.Copy()
		c.CreateIndex, c.ModifyIndex = 0, 0
		req.Quotas = append(req.Quotas, c)
	}
	_, index, err := q.srv.raftApply(structs.QuotaUpsertRequestType, req)
	if err != nil {
		return err
	}
	reply.Index = index
	return nil
}

// Delete deletes quota specs by name, all or none: an unknown one is
// 404, one that a namespace's quota field names is 409.
func (q *Quota) Delete(args *structs.QuotaDeleteRequest, reply *structs.GenericResponse) error {
	if done, err := q.srv.forward("Quota.Delete", args, args, reply); done {
		return err
	}
	if err := q.srv.AuthorizeQuotaWrite(args.AuthToken); err != nil {
		return err
	}
	if len(args.Names) == 0 {
		return structs.NewError(structs.CodeInvalid, "no quota to delete; name at least one")
	}
	if len(args.Names) > maxQuotasPerWrite {
		return structs.NewError(structs.CodeInvalid, fmt.Sprintf("%d quotas in one delete; the limit is %d", len(args.Names), maxQuotasPerWrite))
	}
	st := q.srv.State()
	for _, name := range args.Names {
		if err := structs.ValidateQuotaName(name); err != nil {
			return structs.NewError(structs.CodeInvalid, err.Error())
		}
		// A fast answer for an unknown name; the FSM decides again.
		spec, err := st.QuotaByName(nil, name)
		if err != nil {
			return err
		}
		if spec == nil {
			return structs.NewError(structs.CodeNotFound, fmt.Sprintf("quota %q not found", name))
		}
	}
	_, index, err := q.srv.raftApply(structs.QuotaDeleteRequestType, &structs.QuotaDeleteRequest{Names: args.Names})
	if err != nil {
		return err
	}
	reply.Index = index
	return nil
}
