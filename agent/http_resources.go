package agent

import (
	"fmt"
	"net/http"

	"github.com/droverhq/drover/structs"
)

func (a *Agent) allocList(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args structs.AllocListRequest
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.AllocListResponse
	if err := a.RPC("Alloc.List", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	return resp.Allocations, nil
}

func (a *Agent) allocGet(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.AllocSpecificRequest{AllocID: r.PathValue("id")}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.SingleAllocResponse
	if err := a.RPC("Alloc.GetAlloc", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Alloc == nil {
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("allocation %q not found", args.AllocID))
	}
	return resp.Alloc, nil
}

func (a *Agent) nodeList(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args structs.NodeListRequest
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.NodeListResponse
	if err := a.RPC("Node.List", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	return resp.Nodes, nil
}

func (a *Agent) nodeGet(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.NodeSpecificRequest{NodeID: r.PathValue("id")}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.SingleNodeResponse
	if err := a.RPC("Node.GetNode", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Node == nil {
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("node %q not found", args.NodeID))
	}
	return resp.Node, nil
}

func (a *Agent) nodeAllocations(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.NodeSpecificRequest{NodeID: r.PathValue("id")}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.NodeAllocsResponse
	if err := a.RPC("Node.GetAllocs", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	return resp.Allocs, nil
}

func (a *Agent) evalGet(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.EvalSpecificRequest{EvalID: r.PathValue("id")}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.SingleEvalResponse
	if err := a.RPC("Eval.GetEval", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Eval == nil {
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("evaluation %q not found", args.EvalID))
	}
	return resp.Eval, nil
}

func (a *Agent) evalAllocations(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.EvalSpecificRequest{EvalID: r.PathValue("id")}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.JobAllocationsResponse
	if err := a.RPC("Eval.Allocations", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	return resp.Allocations, nil
}

// statusLeader returns the leader's RPC address as a JSON string.
func (a *Agent) statusLeader(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var leader string
	if err := a.RPC("Status.Leader", &structs.GenericRequest{}, &leader); err != nil {
		return nil, err
	}
	return leader, nil
}

func (a *Agent) statusPeers(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var peers []string
	if err := a.RPC("Status.Peers", &structs.GenericRequest{}, &peers); err != nil {
		return nil, err
	}
	return peers, nil
}

// agentSelf describes this agent.
func (a *Agent) agentSelf(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	out := map[string]interface{}{
		"Config": map[string]interface{}{
			"Dev":        a.config.Dev,
			"BindAddr":   a.config.BindAddr,
			"DataDir":    a.config.DataDir,
			"Datacenter": a.config.Datacenter,
			"NodeName":   a.config.NodeName,
			"Ports":      a.config.Ports,
			"Server":     a.config.Server.Enabled,
			"Client":     a.config.Client.Enabled,
			"Containerd": a.config.Containerd,
		},
	}
	if a.server != nil {
		out["Stats"] = map[string]interface{}{"raft": a.server.Stats()}
		out["Member"] = map[string]interface{}{"RPCAddr": a.server.RPCAddr().String(), "Leader": a.server.IsLeader()}
	}
	if a.client != nil {
		out["NodeID"] = a.client.NodeID()
	}
	sec := a.Security()
	out["Secure"] = sec.Secure
	out["Security"] = sec
	return out, nil
}

// agentHealth answers 200 when the agent's parts work: a server that
// knows a leader, a client that registered.
func (a *Agent) agentHealth(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	out := map[string]interface{}{}
	if a.server != nil {
		ok := a.server.LeaderAddr() != ""
		out["server"] = map[string]interface{}{"ok": ok, "message": map[bool]string{true: "ok", false: "no cluster leader"}[ok]}
		if !ok {
			return nil, structs.ErrNoLeader
		}
	}
	if a.client != nil {
		select {
		case <-a.client.Registered():
			out["client"] = map[string]interface{}{"ok": true, "message": "ok"}
		default:
			return nil, structs.NewError(structs.CodeUnavailable, "client has not registered with a server yet")
		}
	}
	return out, nil
}
