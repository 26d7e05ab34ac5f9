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
	var reply structs.ServiceInstancesResponse
	if err := c.rpcContext(ctx, "Service.Instances", args, &reply); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("read instances of service %q in namespace %q: %w", name, namespace, err)
	}
	return reply.Instances, nil
}

// rpcContext makes an RPC to the servers and returns when it answers or
// ctx ends (then with ctx's error; the call runs on and its reply,
// which the caller no longer reads, is dropped).
func (c *Client) rpcContext(ctx context.Context, method string, args, reply interface{}) error {
	done := make(chan error, 1)
	go func() { done <- c.config.RPC.RPC(method, args, reply) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
