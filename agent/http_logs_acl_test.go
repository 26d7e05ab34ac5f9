package agent

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/server"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/fakedriver"
	"github.com/droverhq/drover/testutil/mock"
)

// TestClientLogs_ReadLogsOnTheServingAgent: with ACLs on, the agent
// that runs the allocation refuses its logs without read-logs in the
// allocation's namespace (read-job is not enough), whoever asks; a
// server agent that proxies the request refuses it before proxying,
// and passes the token on to the serving agent, which checks it again.
func TestClientLogs_ReadLogsOnTheServingAgent(t *testing.T) {
	// aclAgent's server runs no scheduler: this one does.
	scfg := server.DefaultConfig()
	scfg.DataDir = t.TempDir()
	scfg.RPCAddr = &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}
	scfg.ACLEnabled = true
	scfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "server", Level: hclog.Warn})
	s, err := server.NewServer(scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown() })
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) { return s.IsLeader(), nil })
	a := httpAgent(s)
	a.config.ACL = &ACLConfig{Enabled: true}
	_, body := call(t, a.routes(), "PUT", "/v1/acl/bootstrap", "", nil)
	mgmtSecret := decodeAs[aclTokenJSON](t, body).SecretID
	mgmt := map[string]string{"X-Drover-Token": mgmtSecret}
	token := func(name, rules string) map[string]string {
		t.Helper()
		h := a.routes()
		if code, body := call(t, h, "PUT", "/v1/acl/policy/"+name, `{"Rules":`+jsonString(rules)+`}`, mgmt); code != 200 {
			t.Fatalf("policy %s: %d %s", name, code, body)
		}
		_, body := call(t, h, "PUT", "/v1/acl/token", `{"Name":"`+name+`","Policies":["`+name+`"]}`, mgmt)
		return map[string]string{"X-Drover-Token": decodeAs[aclTokenJSON](t, body).SecretID}
	}
	logs := token("logs", `namespace "default" { capabilities = ["read-logs"] }`)
	reader := token("reader", `namespace "default" { policy = "read" }`)
	elsewhere := token("elsewhere", `namespace "team-b" { policy = "write" }`)

	// The serving agent: its HTTP address is the one its node
	// advertises, so the proxy below reaches it.
	serving := httptest.NewUnstartedServer(nil)
	addr := serving.Listener.Addr().String()
	drv := fakedriver.New()
	c, err := client.New(&client.Config{
		DataDir: t.TempDir(), NodeName: "logs-node", RPC: s,
		Drivers:     map[string]driver.Driver{"containerd": drv},
		CPUTotalMHz: 4000, MemoryTotalMB: 4096,
		HTTPAddr: addr, NetworkIP: "127.0.0.1",
		Logger: hclog.New(&hclog.LoggerOptions{Name: "client", Level: hclog.Warn}),

		// Fake tasks outlive the test: no tmpfs to leave mounted.
		SecretsOnDisk: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown() })
	<-c.Registered()
	job := mock.Job()
	job.TaskGroups[0].Count = 1
	var reg structs.JobRegisterResponse
	if err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: job, WriteRequest: structs.WriteRequest{AuthToken: mgmtSecret}}, &reg); err != nil {
		t.Fatal(err)
	}
	allocID := waitAllocs(t, s, job.ID, 1, structs.AllocClientStatusRunning)[0].ID
	base, err := c.LogPath(allocID, "server", "stdout")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".0", []byte("hello from the task\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A client-only agent runs the allocation (it asks the servers as
	// its node, not with the caller's token).
	cfg := DefaultConfig()
	cfg.ACL = &ACLConfig{Enabled: true}
	clientAgent := &Agent{config: cfg, logger: hclog.NewNullLogger(), rpc: s, client: c}
	serving.Config.Handler = clientAgent.routes()
	serving.Start()
	t.Cleanup(serving.Close)
	// A server agent without a client proxies to it.
	proxy := httptest.NewServer(a.routes())
	t.Cleanup(proxy.Close)

	get := func(base string, headers map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/v1/client/fs/logs/"+allocID+"?task=server&type=stdout", nil)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	denied := func(name, hint string) string {
		return `{"Code":"permission_denied","Error":"token \"` + name + `\" lacks capability read-logs in namespace \"default\"` + hint + `"}` + "\n"
	}
	for _, at := range []struct{ name, url string }{{"serving agent", serving.URL}, {"proxying agent", proxy.URL}} {
		t.Run(at.name, func(t *testing.T) {
			cases := []struct {
				who     string
				headers map[string]string
				status  int
				want    string
			}{
				{"anonymous", nil, 403, denied("anonymous", ` (no token was sent: pass -token or set DROVER_TOKEN)`)},
				{"read-job without read-logs", reader, 403, denied("reader", "")},
				{"write in another namespace", elsewhere, 403, denied("elsewhere", "")},
				{"unknown token", map[string]string{"X-Drover-Token": "nope"}, 403, `{"Code":"token_not_found","Error":"ACL token not found"}` + "\n"},
				{"read-logs", logs, 200, "hello from the task\n"},
				{"management", mgmt, 200, "hello from the task\n"},
			}
			for _, tc := range cases {
				code, body := get(at.url, tc.headers)
				if code != tc.status || body != tc.want {
					t.Fatalf("%s: %d %q, want %d %q", tc.who, code, body, tc.status, tc.want)
				}
			}
		})
	}
	// A forwarded request without the token is refused by the serving
	// agent itself: it does not trust the proxy's word.
	code, body := get(serving.URL, nil)
	if code != 403 {
		t.Fatalf("serving agent without a token: %d %s", code, body)
	}
	// An unknown allocation is 404 on both.
	for _, u := range []string{serving.URL, proxy.URL} {
		req, _ := http.NewRequest("GET", u+"/v1/client/fs/logs/00000000-0000-0000-0000-000000000000?task=server", nil)
		req.Header.Set("X-Drover-Token", mgmtSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("%s: unknown allocation: %d", u, resp.StatusCode)
		}
	}
}
