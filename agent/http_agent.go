package agent

import (
	"net/http"
	"sort"

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
	tags := map[string]string{"dc": m.Datacenter, "region": nomadRegion, "http_addr": m.HTTPAddr}
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

// agentLeave makes the agent leave the cluster gracefully and shut down.
func (a *Agent) agentLeave(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	if err := a.Leave(); err != nil {
		return nil, err
	}
	return map[string]interface{}{"Left": true}, nil
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

// agentSelf describes this agent. Its shape is also Nomad's: Config
// holds Datacenter and Region, Member is this agent's gossip member
// (Name, Addr, Port, Status, Tags) and Stats["raft"] Raft's counters as
// strings, so Nomad's Agent().Self, NodeName, Datacenter and Region
// read it.
func (a *Agent) agentSelf(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var leader string
	if a.server != nil {
		leader = a.server.LeaderAddr()
	}
	self := map[string]interface{}{"Name": a.config.NodeName}
	if a.gossip != nil {
		member := memberJSON(a.gossip.LocalMember(), leader)
		self = map[string]interface{}{
			"Name": member.Name, "Addr": member.Addr, "Port": member.Port,
			"Status": member.Status, "Tags": member.Tags, "Leader": member.Leader,
		}
	}
	out := map[string]interface{}{
		"Member": self,
		"Config": map[string]interface{}{
			"Region":     nomadRegion,
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
		self["RPCAddr"] = a.server.RPCAddr().String()
		self["Leader"] = a.server.IsLeader()
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
