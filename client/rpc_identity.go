package client

import (
	"context"
	"fmt"

	"github.com/droverhq/drover/structs"
)

// ServiceInstances reads every instance of a service in a namespace
// (any status) from the servers, as this node: the request carries the
// node's ID and secret, which is how a client agent reads services
// without an ACL token. Any server may answer (a stale read), and the
// read does not block. The agent's DNS server calls it on its own
// goroutines.
//
// It returns when ctx is done even if the RPC has not: the call then
// goes on in the background until the RPCer's own timeout.
//
// The node's secret stays inside the client: this is why the client
// offers the call rather than its secret.
func (c *Client) ServiceInstances(ctx context.Context, namespace, name string) ([]*structs.ServiceInstance, error) {
	args := &structs.ServiceInstancesRequest{
		ServiceName:  name,
		NodeID:       c.nodeID,
		SecretID:     c.secretID,
		QueryOptions: structs.QueryOptions{Namespace: namespace, AllowStale: true},
	}
	type result struct {
		insts []*structs.ServiceInstance
		err   error
	}
	done := make(chan result, 1)
	go func() {
		var reply structs.ServiceInstancesResponse
		err := c.config.RPC.RPC("Service.Instances", args, &reply)
		done <- result{reply.Instances, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("read instances of service %q in namespace %q: %w", name, namespace, r.err)
		}
		return r.insts, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
