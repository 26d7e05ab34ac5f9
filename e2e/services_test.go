package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/testutil"
)

// serviceJob is webJob with a group service "name" on the http port
// and an HTTP check of path.
func serviceJob(id, image, name, path string, count int) string {
	job := webJob(id, image, count, 32)
	block := fmt.Sprintf(`
    service {
      name = %q
      port = "http"
      tags = ["v1", "e2e"]
      check {
        type     = "http"
        path     = %q
        interval = "1s"
        timeout  = "1s"
      }
    }
`, name, path)
	return strings.Replace(job, "    restart {", block+"    restart {", 1)
}

// instanceJSON is one instance in GET /v1/service/<name>: the fields
// the issue names are the contract.
type instanceJSON struct {
	ID          string
	ServiceName string
	Namespace   string
	NodeID      string
	AllocID     string
	Address     string
	Port        int
	Tags        []string
	Status      string
	Canary      bool
	Checks      []struct {
		Service, Check, Status, Output string
	}
}

// serviceInstances reads GET /v1/service/<name> (every status).
func serviceInstances(t *testing.T, a *agent, name string) []instanceJSON {
	t.Helper()
	resp, err := http.Get(a.url() + "/v1/service/" + name)
	if err != nil {
		t.Fatalf("GET /v1/service/%s: %v", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v1/service/%s: HTTP %d", name, resp.StatusCode)
	}
	if resp.Header.Get("X-Drover-Index") == "" {
		t.Fatalf("GET /v1/service/%s: no X-Drover-Index header for blocking queries", name)
	}
	var out []instanceJSON
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("GET /v1/service/%s: %v", name, err)
	}
	return out
}

// dnsResolver asks the agent's DNS server (port 8600 on its address).
func dnsResolver(a *agent) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, net.JoinHostPort(a.host, "8600"))
		},
	}
}

// TestServices_ChecksDiscoveryDNS: a count-3 HTTP job with an HTTP
// check on real containerd shows three passing instances in the API,
// the CLI and DNS (A and SRV), each instance reachable at the address
// and port it is registered with; a job whose check fails stays
// critical, with the check's output; stopping the job removes its
// instances from the API and DNS.
func TestServices_ChecksDiscoveryDNS(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()

	web := writeFile(t, "web.hcl", serviceJob("web", c.image, "web", "/", 3))
	if res := a.cli("job", "run", web); res.code != 0 {
		t.Fatalf("job run: %s", res)
	}

	var insts []instanceJSON
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		insts = serviceInstances(t, a, "web")
		passing := 0
		for _, in := range insts {
			if in.Status == "passing" {
				passing++
			}
		}
		return len(insts) == 3 && passing == 3, nil
	})
	ports := map[int]bool{}
	allocs := map[string]bool{}
	for _, al := range liveAllocs(t, a, "web") {
		allocs[al.ID] = true
	}
	for _, in := range insts {
		if in.ServiceName != "web" || in.Namespace != "default" || in.NodeID == "" || in.Address != a.host || in.Port == 0 {
			t.Fatalf("instance %+v: want service web in default on %s with a port", in, a.host)
		}
		if !allocs[in.AllocID] {
			t.Fatalf("instance %s names allocation %s, not one of the job's live allocations %v", in.ID, in.AllocID, allocs)
		}
		if len(in.Checks) != 1 || in.Checks[0].Status != "passing" {
			t.Fatalf("instance %s checks: %+v", in.ID, in.Checks)
		}
		if got := strings.Join(in.Tags, ","); got != "v1,e2e" {
			t.Fatalf("instance %s tags %q", in.ID, got)
		}
		ports[in.Port] = true
		// The instance answers where it is registered, and it is the
		// allocation the registration names.
		body, err := httpGet(fmt.Sprintf("http://%s:%d/", in.Address, in.Port))
		if err != nil || !strings.Contains(body, in.AllocID) {
			t.Fatalf("GET the instance %s at %s:%d: %q %v", in.ID, in.Address, in.Port, body, err)
		}
	}
	if len(ports) != 3 {
		t.Fatalf("instances share ports: %+v", insts)
	}

	// The list and the CLI.
	if res := a.cli("service", "list"); res.code != 0 || !strings.Contains(res.stdout, "web") {
		t.Fatalf("service list: %s", res)
	}
	info := a.cli("service", "info", "web")
	rows := 0
	for _, in := range insts {
		if strings.Contains(info.stdout, fmt.Sprintf("%s:%d  passing", in.Address, in.Port)) {
			rows++
		}
	}
	if info.code != 0 || rows != 3 {
		t.Fatalf("service info web: want 3 passing instances, got %s", info)
	}

	// DNS: A records of the passing instances, SRV with their ports.
	r := dnsResolver(a)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, "web.service.drover.")
	if err != nil || len(addrs) != 1 || addrs[0] != a.host {
		t.Fatalf("A web.service.drover: %v %v, want [%s]", addrs, err, a.host)
	}
	_, srvs, err := r.LookupSRV(ctx, "web", "tcp", "service.drover.")
	if err != nil {
		t.Fatalf("SRV _web._tcp.service.drover: %v", err)
	}
	var srvPorts []int
	for _, s := range srvs {
		srvPorts = append(srvPorts, int(s.Port))
	}
	sort.Ints(srvPorts)
	var wantPorts []int
	for p := range ports {
		wantPorts = append(wantPorts, p)
	}
	sort.Ints(wantPorts)
	if fmt.Sprint(srvPorts) != fmt.Sprint(wantPorts) {
		t.Fatalf("SRV ports %v, want the instances' ports %v", srvPorts, wantPorts)
	}
	if _, err := r.LookupHost(ctx, "nosuch.service.drover."); err == nil {
		t.Fatal("an unknown service resolved")
	} else if de, ok := err.(*net.DNSError); !ok || !de.IsNotFound {
		t.Fatalf("unknown service: want NXDOMAIN, got %v", err)
	}

	// A check that fails: the instance is critical, never passing, and
	// the allocation's checks say why.
	bad := writeFile(t, "bad.hcl", serviceJob("bad", c.image, "bad", "/missing", 1))
	if res := a.cli("job", "run", "-detach", bad); res.code != 0 {
		t.Fatalf("job run bad: %s", res)
	}
	var badInst instanceJSON
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		in := serviceInstances(t, a, "bad")
		// The first results may be "connection refused" while httpd
		// starts; wait for its answer.
		if len(in) != 1 || len(in[0].Checks) != 1 || !strings.Contains(in[0].Checks[0].Output, "404") {
			return false, fmt.Errorf("instances of bad: %+v", in)
		}
		badInst = in[0]
		return true, nil
	})
	if badInst.Status != "critical" || badInst.Checks[0].Status != "critical" || !strings.Contains(badInst.Checks[0].Output, "404") {
		t.Fatalf("failing check: %+v", badInst)
	}
	resp, err := http.Get(a.url() + "/v1/allocation/" + badInst.AllocID + "/checks")
	if err != nil {
		t.Fatal(err)
	}
	var checks map[string]struct{ Status, Output string }
	err = json.NewDecoder(resp.Body).Decode(&checks)
	resp.Body.Close()
	if err != nil || len(checks) != 1 {
		t.Fatalf("GET /v1/allocation/%s/checks: %v %v", badInst.AllocID, checks, err)
	}
	for k, v := range checks {
		if v.Status != "critical" || !strings.HasPrefix(k, "bad/") {
			t.Fatalf("alloc checks %s: %+v", k, v)
		}
	}
	if got := serviceInstances(t, a, "bad"); len(got) != 1 || got[0].Status == "passing" {
		t.Fatalf("failing instance turned passing: %+v", got)
	}
	if info := a.cli("service", "info", "bad"); strings.Contains(info.stdout, fmt.Sprintf(":%d", badInst.Port)) {
		t.Fatalf("service info shows passing instances only by default, but listed the critical one: %s", info)
	}

	// Stopping the job removes its instances from the API and DNS.
	if res := a.cli("job", "stop", "-detach", "web"); res.code != 0 {
		t.Fatalf("job stop: %s", res)
	}
	start := time.Now()
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		return len(serviceInstances(t, a, "web")) == 0, nil
	})
	t.Logf("instances gone from the API %v after job stop returned", time.Since(start))
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		addrs, err := r.LookupHost(ctx, "web.service.drover.")
		de, ok := err.(*net.DNSError)
		return ok && de.IsNotFound, fmt.Errorf("web.service.drover: %v %v", addrs, err)
	})
}

// TestServices_FailingCheckFailsDeployment: a new version whose tasks
// run but whose HTTP check fails never becomes healthy (the old
// "running for min_healthy_time" rule would have passed it): its
// deployment fails and auto-reverts to the version whose check passes.
func TestServices_FailingCheckFailsDeployment(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	withUpdate := func(path string) string {
		job := serviceJob("chk", c.image, "chk", path, 2)
		return strings.Replace(job, "    restart {", rollingUpdate(true, "6s", "8s")+"\n    restart {", 1)
	}
	if res := a.cli("job", "run", writeFile(t, "v1.hcl", withUpdate("/"))); res.code != 0 {
		t.Fatalf("job run v1: %s", res)
	}
	res := a.cli("job", "run", writeFile(t, "v2.hcl", withUpdate("/missing")))
	const rollback = " - rolling back to job version 0"
	if res.code != 1 || !strings.Contains(res.stdout+res.stderr, rollback) {
		t.Fatalf("job run of the version whose check fails: want exit 1 and %q, got %s", rollback, res)
	}
	deps, _, err := a.api.Jobs().Deployments("chk", nil)
	if err != nil {
		t.Fatal(err)
	}
	var failed bool
	for _, d := range deps {
		if d.JobVersion == 1 && d.Status == "failed" {
			failed = true
		}
	}
	if !failed {
		t.Fatalf("deployments %+v: want version 1's failed", deps)
	}
	// The reverted version (2, a copy of 0) serves passing instances
	// again, and only its allocations are registered.
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		insts := serviceInstances(t, a, "chk")
		live := map[string]uint64{}
		for _, al := range liveAllocs(t, a, "chk") {
			live[al.ID] = al.JobVersion
		}
		if len(insts) != 2 {
			return false, fmt.Errorf("%d instances, want 2", len(insts))
		}
		for _, in := range insts {
			if in.Status != "passing" || live[in.AllocID] != 2 {
				return false, fmt.Errorf("instance %s: %s, job version %d", in.ID, in.Status, live[in.AllocID])
			}
		}
		return true, nil
	})
}

// TestServices_KilledClientLeavesNoInstance: a client SIGKILLed with
// service instances on it: once its node is down, its instances are
// gone from the API (and so from DNS and every proxy), the replacements
// register on the other client, and no stale entry remains.
func TestServices_KilledClientLeavesNoInstance(t *testing.T) {
	cfg := writeFile(t, "server.hcl", `server {
  min_heartbeat_ttl = "1s"
  heartbeat_grace   = "1s"
}
`)
	h := startServers(t, 1, nil, nil, "-config", cfg)
	c1 := h.addClient("c1")
	c2 := h.addClient("c2")
	if res := c1.cli("job", "run", writeFile(t, "web.hcl", serviceJob("web", h.ctrd.image, "web", "/", 2))); res.code != 0 {
		t.Fatalf("job run: %s", res)
	}
	var insts []instanceJSON
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		insts = serviceInstances(t, c1, "web")
		passing := 0
		for _, in := range insts {
			if in.Status == "passing" {
				passing++
			}
		}
		return len(insts) == 2 && passing == 2, fmt.Errorf("%d instances, %d passing", len(insts), passing)
	})
	victimNode := insts[0].NodeID
	victim, survivor := c1, c2
	if n, _, err := c1.api.Nodes().Info(victimNode, nil); err != nil {
		t.Fatal(err)
	} else if n.Name == "c2" {
		victim, survivor = c2, c1
	}
	victim.kill()
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		n, _, err := survivor.api.Nodes().Info(victimNode, nil)
		if err != nil {
			return false, err
		}
		return n.Status == "down", fmt.Errorf("killed node is %s", n.Status)
	})
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		insts = serviceInstances(t, survivor, "web")
		for _, in := range insts {
			if in.NodeID == victimNode {
				return false, fmt.Errorf("instance %s of the down node is still listed (%s)", in.ID, in.Status)
			}
		}
		passing := 0
		for _, in := range insts {
			if in.Status == "passing" {
				passing++
			}
		}
		return len(insts) == 2 && passing == 2, fmt.Errorf("%d instances, %d passing", len(insts), passing)
	})
	// DNS on the survivor answers only addresses of live instances.
	r := dnsResolver(survivor)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, "web.service.drover.")
	if err != nil || len(addrs) != 1 || addrs[0] != survivor.host {
		t.Fatalf("A web.service.drover on the survivor: %v %v, want [%s]", addrs, err, survivor.host)
	}
}
