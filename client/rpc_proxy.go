package client

import (
	"context"
	"fmt"
	"time"

	"github.com/droverhq/drover/structs"
)

// serviceProxyMaxQueryTime is how long one Service.Proxy query waits for
// a change.
const serviceProxyMaxQueryTime = 5 * time.Minute

// ServiceProxy reads every proxied service (a VIP or a published port,
// every namespace) from the servers, as this node: the request carries
// the node's ID and secret, as ServiceInstances does. It is a blocking
// query: it returns once the servers' index passes minIndex, or after
// about five minutes with the same index. Any server may answer (a
// stale read). The agent's proxy watcher (client/proxy) calls it in a
// loop on its own goroutine.
//
// It returns when ctx is done even if the RPC has not: the call then
// goes on in the background until the server's wait or the RPCer's own
// timeout ends.
func (c *Client) ServiceProxy(ctx context.Context, minIndex uint64) (*structs.ServiceProxyResponse, error) {
	args := &structs.ServiceProxyRequest{
		NodeID:   c.nodeID,
		SecretID: c.secretID,
		QueryOptions: structs.QueryOptions{
			MinQueryIndex: minIndex, MaxQueryTime: serviceProxyMaxQueryTime, AllowStale: true,
		},
	}
	var reply structs.ServiceProxyResponse
	if err := c.rpcContext(ctx, "Service.Proxy", args, &reply); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("read the proxied services: %w", err)
	}
	return &reply, nil
}
