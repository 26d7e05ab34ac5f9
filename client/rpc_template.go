package client

import (
	"context"
	"fmt"
	"time"

	"github.com/droverhq/drover/structs"
)

// templateMaxQueryTime is how long one of a template's blocking reads
// waits for a change. Short enough that a watch cancelled by a stopped
// task does not leave its call waiting long on the server.
const templateMaxQueryTime = time.Minute

// templateSource reads what one allocation's templates render, as this
// node: Variable.Read and Service.Instances with the node's ID and
// secret, in the allocation's namespace. It implements
// template.Source; the node's secret stays in the client.
type templateSource struct {
	c         *Client
	allocID   string
	namespace string
}

// Variable implements template.Source: a blocking Variable.Read.
func (s *templateSource) Variable(ctx context.Context, path string, minIndex uint64) (map[string]string, uint64, error) {
	args := &structs.VariableReadRequest{
		Path:     path,
		AllocID:  s.allocID,
		NodeID:   s.c.nodeID,
		SecretID: s.c.secretID,
		QueryOptions: structs.QueryOptions{
			Namespace: s.namespace, MinQueryIndex: minIndex, MaxQueryTime: templateMaxQueryTime, AllowStale: true,
		},
	}
	var reply structs.VariableReadResponse
	if err := s.c.rpcContext(ctx, "Variable.Read", args, &reply); err != nil {
		if ctx.Err() != nil {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("read variable %q: %w", path, err)
	}
	if reply.Data == nil {
		return nil, reply.Index, nil
	}
	items := reply.Data.Items
	if items == nil {
		items = map[string]string{}
	}
	return items, reply.Index, nil
}

// ServiceInstances implements template.Source: a blocking
// Service.Instances of the passing instances.
func (s *templateSource) ServiceInstances(ctx context.Context, name string, minIndex uint64) ([]*structs.ServiceInstance, uint64, error) {
	args := &structs.ServiceInstancesRequest{
		ServiceName: name,
		Status:      structs.ServiceStatusPassing,
		NodeID:      s.c.nodeID,
		SecretID:    s.c.secretID,
		QueryOptions: structs.QueryOptions{
			Namespace: s.namespace, MinQueryIndex: minIndex, MaxQueryTime: templateMaxQueryTime, AllowStale: true,
		},
	}
	var reply structs.ServiceInstancesResponse
	if err := s.c.rpcContext(ctx, "Service.Instances", args, &reply); err != nil {
		if ctx.Err() != nil {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("read instances of service %q: %w", name, err)
	}
	return reply.Instances, reply.Index, nil
}
