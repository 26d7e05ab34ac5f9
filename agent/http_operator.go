package agent

import (
	"net/http"
	"sort"
	"strconv"

	"github.com/droverhq/drover/gossip"
	"github.com/droverhq/drover/structs"
)

// MemberJSON is one gossip member in GET /v1/agent/members.
type MemberJSON struct {
	Name   string
	Addr   string
	Port   int
	Status string
	// Tags describe the member, as in Nomad: role ("server"/"client"),
	// rpc_addr, id, bootstrap_expect, dc, http_addr.
	Tags map[string]string
	// Leader is true for the server that leads.
	Leader bool
}

// agentMembers lists the gossip members this agent knows, servers
// first, with the leader marked.
func (a *Agent) agentMembers(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var leader string
	if err := a.RPC("Status.Leader", &structs.GenericRequest{QueryOptions: structs.QueryOptions{AllowStale: true}}, &leader); err != nil {
		leader = ""
	}
	members := a.gossip.Members()
	sort.SliceStable(members, func(i, j int) bool { return members[i].Server && !members[j].Server })
	out := make([]MemberJSON, 0, len(members))
	for _, m := range members {
		out = append(out, memberJSON(m, leader))
	}
	return map[string]interface{}{"ServerName": a.gossip.LocalName(), "Members": out}, nil
}

func memberJSON(m gossip.Member, leader string) MemberJSON {
	tags := map[string]string{"dc": m.Datacenter, "http_addr": m.HTTPAddr}
	switch {
	case m.Server && m.Client:
		tags["role"] = "server,client"
	case m.Server:
		tags["role"] = "server"
	default:
		tags["role"] = "client"
	}
	if m.Server {
		tags["rpc_addr"] = m.RPCAddr
		tags["id"] = m.RaftID
		tags["bootstrap_expect"] = itoa(m.BootstrapExpect)
	}
	return MemberJSON{
		Name: m.Name, Addr: m.Addr, Port: m.Port, Status: m.Status, Tags: tags,
		Leader: m.Server && leader != "" && m.RPCAddr == leader && m.Status == gossip.StatusAlive,
	}
}

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
// forwarded), so servers can be compared.
func (a *Agent) stateHash(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	if a.server == nil {
		return nil, structs.NewError(structs.CodeNotFound, "this agent runs no server")
	}
	var resp structs.StateHashResponse
	if err := a.server.RPC("Operator.StateHash", &structs.GenericRequest{}, &resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// agentLeave makes the agent leave the cluster gracefully and shut down.
func (a *Agent) agentLeave(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	if err := a.Leave(); err != nil {
		return nil, err
	}
	return map[string]interface{}{"Left": true}, nil
}

func itoa(n int) string { return strconv.Itoa(n) }
