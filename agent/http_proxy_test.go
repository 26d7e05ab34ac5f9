package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	clientproxy "github.com/droverhq/drover/client/proxy"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/fakedriver"
)

func TestAgentHTTP_ClientProxy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p, err := clientproxy.New(clientproxy.Config{PublishHost: "127.0.0.1", ErrorLog: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	taken := l.Addr().(*net.TCPAddr).Port
	p.Update([]*structs.ProxiedService{{Namespace: "default", Name: "web", PublishedPort: taken,
		Instances: []*structs.ServiceInstance{{Address: "127.0.0.1", Port: 9, Status: structs.ServiceStatusPassing}}}})

	withProxy := &Agent{config: DefaultConfig(), logger: hclog.NewNullLogger(), proxy: p}
	code, body := call(t, withProxy.routes(), "GET", "/v1/client/proxy", "", nil)
	want := fmt.Sprintf(`"Address":"127.0.0.1:%d","Namespace":"default","Service":"web","Kind":"published","Error":`, taken)
	if code != 200 || !strings.Contains(body, want) || !strings.Contains(body, `"Backends":[{"Address":"127.0.0.1:9","Status":"passing","Passing":true`) {
		t.Fatalf("%d %s", code, body)
	}

	noClient := &Agent{config: DefaultConfig(), logger: hclog.NewNullLogger()}
	code, body = call(t, noClient.routes(), "GET", "/v1/client/proxy", "", nil)
	if code != 404 || !strings.Contains(body, "runs no client") {
		t.Fatalf("agent without a client: %d %s", code, body)
	}
	off := DefaultConfig()
	off.Client.Enabled = true
	disabled := false
	off.Proxy = &ProxyConfig{Enabled: &disabled}
	code, body = call(t, (&Agent{config: off, logger: hclog.NewNullLogger()}).routes(), "GET", "/v1/client/proxy", "", nil)
	if code != 404 || !strings.Contains(body, "proxy is off") {
		t.Fatalf("proxy off: %d %s", code, body)
	}
}

// TestAgentHTTP_ClientProxyNeedsAgentRead: with ACLs on, anonymous
// requests are refused before the proxy is looked at.
func TestAgentHTTP_ClientProxyNeedsAgentRead(t *testing.T) {
	a := aclAgent(t, true)
	code, body := call(t, a.routes(), "GET", "/v1/client/proxy", "", nil)
	if code != 403 {
		t.Fatalf("anonymous: %d %s", code, body)
	}
}

func TestConfig_ProxyBlock(t *testing.T) {
	for _, tc := range []struct {
		name     string
		hcl      string
		client   bool
		enabled  bool
		balance  string
		noReplay bool
		err      string
	}{
		{name: "default on clients", client: true, enabled: true},
		{name: "never without a client", client: false, enabled: false},
		{name: "off", hcl: "proxy {\n  enabled = false\n}\n", client: true, enabled: false},
		{name: "round robin", hcl: "proxy {\n  balance = \"round_robin\"\n}\n", client: true, enabled: true, balance: "round_robin"},
		{name: "no replay", hcl: "proxy {\n  no_replay = true\n}\n", client: true, enabled: true, noReplay: true},
		{name: "bad balance", hcl: "proxy {\n  balance = \"random\"\n}\n", client: true, err: `proxy balance = "random": want "least_conn"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DevConfig()
			c.Client.Enabled = tc.client
			if tc.hcl != "" {
				path := t.TempDir() + "/agent.hcl"
				if err := os.WriteFile(path, []byte(tc.hcl), 0o600); err != nil {
					t.Fatal(err)
				}
				fc, err := LoadConfigFile(path)
				if err != nil {
					t.Fatal(err)
				}
				c.Merge(fc)
			}
			err := c.Validate()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.noReplay && (c.Proxy == nil || !c.Proxy.NoReplay) {
				t.Fatalf("no_replay not taken: %+v", c.Proxy)
			}
			if c.ProxyEnabled() != tc.enabled || (tc.balance != "" && c.Proxy.Balance != tc.balance) {
				t.Fatalf("enabled %v balance %q", c.ProxyEnabled(), c.Proxy.Balance)
			}
		})
	}
}

// TestProxy_FetchAsNode runs the agent's wiring against a real server:
// the client reads Service.Proxy with its node secret, and the proxy's
// watcher applies the (empty) answer.
func TestProxy_FetchAsNode(t *testing.T) {
	s := testServer(t)
	c := testClient(t, s, fakedriver.New(), t.TempDir())
	t.Cleanup(func() { _ = c.Shutdown() })
	select {
	case <-c.Registered():
	case <-time.After(10 * time.Second):
		t.Fatal("client did not register")
	}
	resp, err := c.ServiceProxy(context.Background(), 0)
	if err != nil {
		t.Fatalf("ServiceProxy as the node: %v", err)
	}
	if resp.Index == 0 || len(resp.Services) != 0 {
		t.Fatalf("answer %+v", resp)
	}
	// A blocking query at the answer's index waits.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.ServiceProxy(ctx, resp.Index); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blocking query at index %d: %v", resp.Index, err)
	}
}
