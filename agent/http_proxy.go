package agent

import (
	"net/http"

	"github.com/droverhq/drover/structs"
)

// GET /v1/client/proxy is this client agent's services proxy
// (client/proxy): its listeners (with the error of any address it
// cannot listen on, such as a published port in use), each service's
// backends with their connection counts, and totals. It needs
// agent:read when ACLs are on, like the agent's other own endpoints.
// An agent without a client, or with proxy { enabled = false }, answers
// 404 saying so.
func (a *Agent) clientProxy(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	if a.proxy == nil {
		if a.client == nil && (a.config == nil || !a.config.Client.Enabled) {
			return nil, structs.NewError(structs.CodeNotFound, "this agent runs no client, so no services proxy: ask a client agent")
		}
		return nil, structs.NewError(structs.CodeNotFound, "the services proxy is off on this agent (proxy { enabled = false })")
	}
	return a.proxy.Status(), nil
}
