package server

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// maxNamespacesPerWrite bounds the namespaces one upsert or delete
// names: operators write one at a time, and every server applies the
// entry.
const maxNamespacesPerWrite = 64

// Namespace is the RPC endpoint for namespaces. Writes go through Raft
// on the leader; whether a namespace may be deleted (not the default
// one, no jobs left) is decided by the state store in log order, so a
// job registered just before the delete commits keeps its namespace.
type Namespace struct {
	srv *Server
}

// List lists namespaces, by name (those starting with Prefix).
func (n *Namespace) List(args *structs.NamespaceListRequest, reply *structs.NamespaceListResponse) error {
	if done, err := n.srv.forward("Namespace.List", args, args, reply); done {
		return err
	}
	authz, err := n.srv.Authorize(args.AuthToken)
	if err != nil {
		return err
	}
	return n.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		list, err := st.NamespacesByNamePrefix(ws, args.Prefix)
		if err != nil {
			return err
		}
		// Only the namespaces the token has some capability in: the
		// others' names are not its business.
		reply.Namespaces = make([]*structs.Namespace, 0, len(list))
		for _, ns := range list {
			if authz.CanAnyNamespace(ns.Name) {
				reply.Namespaces = append(reply.Namespaces, ns)
			}
		}
		reply.Index, err = st.Index(state.TableNamespaces)
		return err
	})
}

// Get reads one namespace; Namespace is nil when it does not exist.
func (n *Namespace) Get(args *structs.NamespaceSpecificRequest, reply *structs.SingleNamespaceResponse) error {
	if done, err := n.srv.forward("Namespace.Get", args, args, reply); done {
		return err
	}
	if err := structs.ValidateNamespaceName(args.Name); err != nil {
		return structs.NewError(structs.CodeInvalid, err.Error())
	}
	authz, err := n.srv.Authorize(args.AuthToken)
	if err != nil {
		return err
	}
	if err := authz.AnyNamespace(args.Name); err != nil {
		return err
	}
	return n.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		ns, err := st.NamespaceByName(ws, args.Name)
		if err != nil {
			return err
		}
		reply.Namespace = ns
		if ns != nil && ns.ModifyIndex > 0 {
			reply.Index = ns.ModifyIndex
			return nil
		}
		reply.Index, err = st.Index(state.TableNamespaces)
		return err
	})
}

// Upsert creates or updates namespaces. Each is checked
// (Namespace.Validate) before anything is written; the indexes are the
// state store's to set.
func (n *Namespace) Upsert(args *structs.NamespaceUpsertRequest, reply *structs.GenericResponse) error {
	if done, err := n.srv.forward("Namespace.Upsert", args, args, reply); done {
		return err
	}
	if _, err := n.srv.requireManagement(args.AuthToken, "Namespace.Upsert (drover namespace apply)"); err != nil {
		return err
	}
	if len(args.Namespaces) == 0 {
		return structs.NewError(structs.CodeInvalid, "no namespace to write; send at least one")
	}
	if len(args.Namespaces) > maxNamespacesPerWrite {
		return structs.NewError(structs.CodeInvalid, fmt.Sprintf("%d namespaces in one write; the limit is %d", len(args.Namespaces), maxNamespacesPerWrite))
	}
	req := &structs.NamespaceUpsertRequest{Namespaces: make([]*structs.Namespace, 0, len(args.Namespaces))}
	seen := make(map[string]bool, len(args.Namespaces))
	for _, ns := range args.Namespaces {
		if err := ns.Validate(); err != nil {
			return structs.NewError(structs.CodeInvalid, err.Error())
		}
		if seen[ns.Name] {
			return structs.NewError(structs.CodeInvalid, fmt.Sprintf("namespace %q is named twice in one write", ns.Name))
		}
		seen[ns.Name] = true
		c := ns.Copy()
		c.CreateIndex, c.ModifyIndex = 0, 0
		req.Namespaces = append(req.Namespaces, c)
	}
	_, index, err := n.srv.raftApply(structs.NamespaceUpsertRequestType, req)
	if err != nil {
		return err
	}
	reply.Index = index
	return nil
}

// Delete deletes namespaces by name, all or none: the default namespace
// is refused (400), an unknown one is 404, and one that still holds
// jobs is 409, naming how many.
func (n *Namespace) Delete(args *structs.NamespaceDeleteRequest, reply *structs.GenericResponse) error {
	if done, err := n.srv.forward("Namespace.Delete", args, args, reply); done {
		return err
	}
	if _, err := n.srv.requireManagement(args.AuthToken, "Namespace.Delete (drover namespace delete)"); err != nil {
		return err
	}
	if len(args.Names) == 0 {
		return structs.NewError(structs.CodeInvalid, "no namespace to delete; name at least one")
	}
	if len(args.Names) > maxNamespacesPerWrite {
		return structs.NewError(structs.CodeInvalid, fmt.Sprintf("%d namespaces in one delete; the limit is %d", len(args.Names), maxNamespacesPerWrite))
	}
	st := n.srv.State()
	for _, name := range args.Names {
		if err := structs.ValidateNamespaceName(name); err != nil {
			return structs.NewError(structs.CodeInvalid, err.Error())
		}
		if name == structs.DefaultNamespace {
			return structs.NewError(structs.CodeInvalid, fmt.Sprintf("the %q namespace cannot be deleted: it holds every job that names no namespace", structs.DefaultNamespace))
		}
		// A fast answer for an unknown name; the FSM decides again.
		ns, err := st.NamespaceByName(nil, name)
		if err != nil {
			return err
		}
		if ns == nil {
			return structs.NewError(structs.CodeNotFound, fmt.Sprintf("namespace %q not found", name))
		}
	}
	_, index, err := n.srv.raftApply(structs.NamespaceDeleteRequestType, &structs.NamespaceDeleteRequest{Names: args.Names})
	if err != nil {
		return err
	}
	reply.Index = index
	return nil
}
