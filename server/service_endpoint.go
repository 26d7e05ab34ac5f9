package server

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Service is the RPC endpoint for service discovery: the instances the
// state store derives from allocations (state/services.go).
//
// Reading services takes read-job in their namespace, as reading the
// jobs that offer them does; a list of "*" keeps the namespaces where
// the token has it. A client node may also read every namespace's
// services with its node secret (NodeID and SecretID, no token): the
// DNS server and the proxy on every client resolve names for tasks of
// any namespace.
type Service struct {
	srv *Server
}

// maxServiceNameLen bounds a requested service name (a DNS label).
const maxServiceNameLen = 253

// serviceReader is who reads services: a token's Authz, or a client
// node (authz nil) that may read every namespace.
type serviceReader struct {
	authz *Authz
}

// authorizeServiceRead authenticates a service read: by node secret
// when the request names a node (a wrong secret is refused, never
// retried as a token), by token otherwise.
func (s *Server) authorizeServiceRead(nodeID, secretID, token string) (serviceReader, error) {
	if nodeID != "" || secretID != "" {
		if _, err := s.authNode(nodeID, secretID); err != nil {
			return serviceReader{}, err
		}
		return serviceReader{}, nil
	}
	z, err := s.Authorize(token)
	if err != nil {
		return serviceReader{}, err
	}
	return serviceReader{authz: z}, nil
}

// can reports whether the reader may see namespace ns's services.
func (r serviceReader) can(ns string) bool {
	return r.authz == nil || r.authz.CanNamespace(ns, acl.CapabilityReadJob)
}

// check refuses a read of namespace ns's services the reader may not
// make; "*" is allowed (and filtered with can).
func (r serviceReader) check(ns string) error {
	if r.authz == nil || ns == structs.AllNamespaces {
		return nil
	}
	return r.authz.Namespace(ns, acl.CapabilityReadJob)
}

// List lists service names with their instance counts, per namespace.
func (sv *Service) List(args *structs.ServiceListRequest, reply *structs.ServiceListResponse) error {
	if done, err := sv.srv.forward("Service.List", args, args, reply); done {
		return err
	}
	reader, err := sv.srv.authorizeServiceRead(args.NodeID, args.SecretID, args.AuthToken)
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
		stubs, err := st.ServiceNames(ws, ns)
		if err != nil {
			return err
		}
		reply.Services = make([]*structs.ServiceListStub, 0, len(stubs))
		for _, stub := range stubs {
			if reader.can(stub.Namespace) {
				reply.Services = append(reply.Services, stub)
			}
		}
		reply.Index, err = st.Index(state.TableServiceInstances)
		return err
	})
}

// Instances reads the instances of one service name in one namespace,
// sorted by ID, optionally only those in one status. An unknown name
// has no instances: an empty list, not an error.
func (sv *Service) Instances(args *structs.ServiceInstancesRequest, reply *structs.ServiceInstancesResponse) error {
	if done, err := sv.srv.forward("Service.Instances", args, args, reply); done {
		return err
	}
	if err := checkInstancesRequest(args); err != nil {
		return err
	}
	reader, err := sv.srv.authorizeServiceRead(args.NodeID, args.SecretID, args.AuthToken)
	if err != nil {
		return err
	}
	ns := structs.NamespaceOrDefault(args.Namespace)
	if err := reader.check(ns); err != nil {
		return err
	}
	return sv.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		all, err := st.ServiceInstancesByName(ws, ns, args.ServiceName)
		if err != nil {
			return err
		}
		reply.Instances = make([]*structs.ServiceInstance, 0, len(all))
		for _, inst := range all {
			if args.Status == "" || inst.Status == args.Status {
				reply.Instances = append(reply.Instances, inst)
			}
		}
		// The table's index, not the instances': with a deletion the
		// highest remaining ModifyIndex could go back below the
		// caller's index, and its next blocking query would sleep
		// through the change.
		reply.Index, err = st.Index(state.TableServiceInstances)
		return err
	})
}

// checkInstancesRequest refuses a malformed Service.Instances request.
func checkInstancesRequest(args *structs.ServiceInstancesRequest) error {
	switch {
	case args.ServiceName == "":
		return structs.NewError(structs.CodeInvalid, "service name must be set")
	case len(args.ServiceName) > maxServiceNameLen:
		return structs.NewError(structs.CodeInvalid, fmt.Sprintf("service name is %d bytes, over %d", len(args.ServiceName), maxServiceNameLen))
	case args.Namespace == structs.AllNamespaces:
		return structs.NewError(structs.CodeInvalid, "the instances of a service are read in one namespace, not \"*\"")
	}
	if err := ValidServiceStatus(args.Status); err != nil {
		return err
	}
	return nil
}

// ValidServiceStatus refuses a status filter that is not "" or an
// instance status.
func ValidServiceStatus(status string) error {
	switch status {
	case "", structs.ServiceStatusPassing, structs.ServiceStatusWarning, structs.ServiceStatusCritical, structs.ServiceStatusTerminating:
		return nil
	}
	return structs.NewError(structs.CodeInvalid, fmt.Sprintf("status %.64q is not an instance status; use passing, warning, critical or terminating", status))
}
