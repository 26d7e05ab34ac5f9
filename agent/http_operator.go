package agent

import (
	"net/http"
	"strconv"

	"github.com/droverhq/drover/structs"
)

func (a *Agent) raftConfiguration(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args structs.GenericRequest
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.RaftConfigurationResponse
	if err := a.RPC("Operator.RaftGetConfiguration", &args, &resp); err != nil {
		return nil, err
	}
	return resp, nil
}

func (a *Agent) raftRemovePeer(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	q := r.URL.Query()
	args := structs.RaftPeerRequest{ID: q.Get("id"), Address: q.Get("address")}
	args.AuthToken = authToken(r)
	if (args.ID == "") == (args.Address == "") {
		return nil, badRequest("name the peer with ?id= or ?address= (one of them)")
	}
	var resp structs.GenericResponse
	if err := a.RPC("Operator.RaftRemovePeer", &args, &resp); err != nil {
		return nil, err
	}
	return map[string]interface{}{"Removed": true}, nil
}

// stateHash fingerprints this agent's own server state (never
// forwarded), so servers can be compared. The route checks
// operator:read (http_authz.go) and the token goes along for the
// server to check too.
func (a *Agent) stateHash(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	if a.server == nil {
		return nil, structs.NewError(structs.CodeNotFound, "this agent runs no server")
	}
	var resp structs.StateHashResponse
	args := structs.GenericRequest{QueryOptions: structs.QueryOptions{AuthToken: authToken(r)}}
	if err := a.server.RPC("Operator.StateHash", &args, &resp); err != nil {
		return nil, err
	}
	return resp, nil
}

func itoa(n int) string { return strconv.Itoa(n) }

func (a *Agent) schedulerConfigGet(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args structs.GenericRequest
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.SchedulerConfigResponse
	if err := a.RPC("Operator.SchedulerGetConfiguration", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	return map[string]interface{}{"SchedulerConfig": resp.Config, "Index": resp.Index}, nil
}

func (a *Agent) schedulerConfigSet(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var body structs.SchedulerConfiguration
	if err := a.decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	args := structs.SchedulerSetConfigRequest{Config: body}
	args.AuthToken = authToken(r)
	var resp structs.GenericResponse
	if err := a.RPC("Operator.SchedulerSetConfiguration", &args, &resp); err != nil {
		return nil, err
	}
	return map[string]interface{}{"Updated": true, "Index": resp.Index}, nil
}
