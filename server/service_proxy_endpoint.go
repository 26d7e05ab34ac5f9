package server

import (
	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Proxy reads what client proxies serve: every service of every
// namespace with a VIP or a published port, with all its instances,
// sorted by namespace and name (state.ProxiedServices). It is a
// blocking query on the service instances and the VIP allocations.
//
// A client node reads every namespace with its node secret (a wrong
// secret is refused); a token reads the namespaces where it has
// read-job, and the services of the others are left out, as a list of
// "*" does. The request's namespace is not used.
func (sv *Service) Proxy(args *structs.ServiceProxyRequest, reply *structs.ServiceProxyResponse) error {
	if done, err := sv.srv.forward("Service.Proxy", args, args, reply); done {
		return err
	}
	reader, err := sv.srv.authorizeServiceRead(args.NodeID, args.SecretID, args.AuthToken)
	if err != nil {
		return err
	}
	return sv.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		all, index, err := st.ProxiedServices(ws)
		if err != nil {
			return err
		}
		reply.Services = make([]*structs.ProxiedService, 0, len(all))
		for _, p := range all {
			if reader.can(p.Namespace) {
				reply.Services = append(reply.Services, p)
			}
		}
		// The tables' index, not the rows': a release or a deleted
		// instance must still move it forward.
		reply.Index = index
		return nil
	})
}
