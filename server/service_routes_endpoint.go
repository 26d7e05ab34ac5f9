package server

import (
	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Routes lists the routes of the services of a namespace ("*": of
// every namespace the token may read), with each route's passing
// backends, sorted by host then path (state.ServiceRoutes). It is a
// blocking query on the jobs and the service instances.
//
// It takes read-job in the namespace, as Service.List does; a list of
// "*" keeps the namespaces where the token has it. Gateways read
// routes with Service.Proxy, not here.
func (sv *Service) Routes(args *structs.RouteListRequest, reply *structs.RouteListResponse) error {
	if done, err := sv.srv.forward("Service.Routes", args, args, reply); done {
		return err
	}
	reader, err := sv.srv.authorizeServiceRead("", "", args.AuthToken)
	if err != nil {
		return err
	}
	ns := args.Namespace
	if ns != structs.AllNamespaces {
		ns = structs.NamespaceOrDefault(ns)
	}
	if err := reader.check(ns); err != nil {
		return err
	}
	return sv.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		all, index, err := st.ServiceRoutes(ws, ns)
		if err != nil {
			return err
		}
		reply.Routes = make([]*structs.RouteListStub, 0, len(all))
		for _, r := range all {
			if reader.can(r.Namespace) {
				reply.Routes = append(reply.Routes, r)
			}
		}
		// The tables' index: a deleted route or instance must still
		// move it forward.
		reply.Index = index
		return nil
	})
}
