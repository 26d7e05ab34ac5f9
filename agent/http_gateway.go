package agent

import (
	"net/http"

	"github.com/droverhq/drover/structs"
)

// GET /v1/client/gateway is this client agent's ingress gateway
// (client/gateway): its listeners, certificate names and routing table,
// each route with its backends and request counts. It needs agent:read
// when ACLs are on, like /v1/client/proxy. An agent without a client,
// or without gateway { enabled = true }, answers 404 saying so.
func (a *Agent) clientGateway(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	if a.gateway == nil {
		if a.client == nil && (a.config == nil || !a.config.Client.Enabled) {
			return nil, structs.NewError(structs.CodeNotFound, "this agent runs no client, so no ingress gateway: ask a client agent with gateway { enabled = true }")
		}
		return nil, structs.NewError(structs.CodeNotFound, "the ingress gateway is off on this agent (turn it on with gateway { enabled = true } or -gateway)")
	}
	return a.gateway.Status(), nil
}
