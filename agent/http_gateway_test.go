package agent

import (
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	hclog "github.com/hashicorp/go-hclog"

	clientgateway "github.com/droverhq/drover/client/gateway"
	"github.com/droverhq/drover/structs"
)

func TestAgentHTTP_ClientGateway(t *testing.T) {
	g, err := clientgateway.New(clientgateway.Config{HTTPAddr: "127.0.0.1:0", ErrorLog: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	g.Update([]*structs.ProxiedService{{Namespace: "default", Name: "web",
		Routes:    []*structs.ServiceRoute{{Host: "web.example.com", Path: "/api"}},
		Instances: []*structs.ServiceInstance{{Address: "127.0.0.1", Port: 9, Status: structs.ServiceStatusPassing}}}})

	withGateway := &Agent{config: DefaultConfig(), logger: hclog.NewNullLogger(), gateway: g}
	code, body := call(t, withGateway.routes(), "GET", "/v1/client/gateway", "", nil)
	if code != 200 || !strings.Contains(body, `"Kind":"http","Address":"`+g.HTTPAddr()+`"`) ||
		!strings.Contains(body, `"Namespace":"default","Service":"web","Host":"web.example.com","Path":"/api"`) ||
		!strings.Contains(body, `"Backends":[{"Address":"127.0.0.1:9"`) {
		t.Fatalf("%d %s", code, body)
	}

	noClient := &Agent{config: DefaultConfig(), logger: hclog.NewNullLogger()}
	code, body = call(t, noClient.routes(), "GET", "/v1/client/gateway", "", nil)
	if code != 404 || !strings.Contains(body, "runs no client") {
		t.Fatalf("agent without a client: %d %s", code, body)
	}
	off := DefaultConfig()
	off.Client.Enabled = true
	code, body = call(t, (&Agent{config: off, logger: hclog.NewNullLogger()}).routes(), "GET", "/v1/client/gateway", "", nil)
	if code != 404 || !strings.Contains(body, "gateway is off") {
		t.Fatalf("gateway off: %d %s", code, body)
	}
}

// TestAgentHTTP_ClientGatewayNeedsAgentRead: with ACLs on, anonymous
// requests are refused before the gateway is looked at.
func TestAgentHTTP_ClientGatewayNeedsAgentRead(t *testing.T) {
	a := aclAgent(t, true)
	code, body := call(t, a.routes(), "GET", "/v1/client/gateway", "", nil)
	if code != 403 {
		t.Fatalf("anonymous: %d %s", code, body)
	}
}

func TestConfig_GatewayBlock(t *testing.T) {
	for _, tc := range []struct {
		name      string
		hcl       string
		client    bool
		enabled   bool
		http      int
		https     int
		certNames string
		err       string
	}{
		{name: "off by default", client: true, http: 80, https: 443},
		{name: "on", hcl: "gateway {\n  enabled = true\n}\n", client: true, enabled: true, http: 80, https: 443},
		{name: "ports and certificates", client: true, enabled: true, http: 8080, https: 8443, certNames: "shop,blog",
			hcl: "gateway {\n  enabled = true\n  http_port = 8080\n  https_port = 8443\n  access_log = \"/tmp/gw.log\"\n" +
				"  certificate \"shop\" {\n    cert_file = \"shop.crt\"\n    key_file = \"shop.key\"\n  }\n" +
				"  certificate \"blog\" {\n    cert_file = \"blog.crt\"\n    key_file = \"blog.key\"\n  }\n}\n"},
		{name: "needs a client", hcl: "gateway {\n  enabled = true\n}\n", client: false, err: "needs a client agent"},
		{name: "same ports", hcl: "gateway {\n  enabled = true\n  http_port = 8080\n  https_port = 8080\n}\n", client: true, err: "both 8080"},
		{name: "agent port", hcl: "gateway {\n  enabled = true\n  http_port = 4646\n}\n", client: true, err: "the agent's http port"},
		{name: "bad port", hcl: "gateway {\n  http_port = 70000\n}\n", client: true, err: "gateway http_port = 70000"},
		{name: "duplicate certificate", client: true, err: `certificate "a" is declared twice`,
			hcl: "gateway {\n  enabled = true\n  certificate \"a\" {\n    cert_file = \"x\"\n    key_file = \"y\"\n  }\n  certificate \"a\" {\n    cert_file = \"x\"\n    key_file = \"y\"\n  }\n}\n"},
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
			h, s := c.GatewayPorts()
			if c.GatewayEnabled() != tc.enabled || h != tc.http || s != tc.https {
				t.Fatalf("enabled %v ports %d %d", c.GatewayEnabled(), h, s)
			}
			var names []string
			if c.Gateway != nil {
				for _, cert := range c.Gateway.Certificates {
					names = append(names, cert.Name)
				}
			}
			if got := strings.Join(names, ","); got != tc.certNames {
				t.Fatalf("certificates %q, want %q", got, tc.certNames)
			}
		})
	}
}

// TestAgent_GatewayPortInUse: a gateway port taken fails the start with
// an error naming the port and the setting.
func TestAgent_GatewayPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	c := DevConfig()
	on := true
	c.Gateway = &GatewayConfig{Enabled: &on, HTTPPort: port, HTTPSPort: freeTCPPort(t)}
	a := &Agent{config: c, logger: hclog.NewNullLogger()}
	err = a.setupGateway()
	if err == nil {
		a.gateway.Stop()
		t.Fatal("gateway started on a port in use")
	}
	for _, want := range []string{"127.0.0.1:" + strconv.Itoa(port), "http_port = " + strconv.Itoa(port), "-gateway-http-port"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not name %q", err, want)
		}
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
