package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	clientdns "github.com/droverhq/drover/client/dns"
	"github.com/droverhq/drover/testutil/fakedriver"
)

// TestDNS_LookupAsNode runs the agent's wiring against a real server: the
// client reads Service.Instances with its node secret (a refused read
// would be SERVFAIL), and an unknown service is NXDOMAIN.
func TestDNS_LookupAsNode(t *testing.T) {
	s := testServer(t)
	c := testClient(t, s, fakedriver.New(), t.TempDir())
	t.Cleanup(func() { _ = c.Shutdown() })
	select {
	case <-c.Registered():
	case <-time.After(10 * time.Second):
		t.Fatal("client did not register")
	}
	if _, err := c.ServiceInstances(context.Background(), "default", "web"); err != nil {
		t.Fatalf("ServiceInstances as the node: %v", err)
	}
	d, err := clientdns.New(clientdns.Config{Addr: "127.0.0.1:0", Lookup: c.ServiceInstances})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown() })
	m := new(mdns.Msg)
	m.SetQuestion("web.service.drover.", mdns.TypeA)
	r, _, err := (&mdns.Client{Timeout: 5 * time.Second}).Exchange(m, d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != mdns.RcodeNameError {
		t.Fatalf("rcode = %s, want NXDOMAIN", mdns.RcodeToString[r.Rcode])
	}
}

func TestConfig_DNSBlock(t *testing.T) {
	for _, tc := range []struct {
		name string
		hcl  string
		// base is the config the file is merged onto.
		base func() *Config
		want string
	}{
		{name: "dev default", base: DevConfig, want: "127.0.0.1:8600"},
		{name: "client bound to every interface keeps DNS on loopback", base: dnsTestClientConfig,
			want: "127.0.0.1:8600"},
		{name: "server only serves no DNS", base: dnsTestServerConfig, want: ""},
		{name: "port and addr", base: DevConfig,
			hcl: "dns {\n  enabled = true\n  port = 53\n  addr = \"10.1.2.3\"\n}\n", want: "10.1.2.3:53"},
		{name: "disabled", base: DevConfig, hcl: "dns {\n  enabled = false\n}\n", want: ""},
		{name: "port 0 disables", base: DevConfig, hcl: "dns {\n  port = 0\n}\n", want: ""},
		{name: "empty block keeps defaults", base: DevConfig, hcl: "dns {}\n", want: "127.0.0.1:8600"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.base()
			if tc.hcl != "" {
				c.Merge(loadDNSTestHCL(t, tc.hcl))
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got := c.DNSAddr(); got != tc.want {
				t.Fatalf("DNSAddr = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConfig_DNSMergeKeepsEarlierSettings(t *testing.T) {
	c := DevConfig()
	c.Merge(loadDNSTestHCL(t, "dns {\n  port = 5353\n}\n"))
	c.Merge(loadDNSTestHCL(t, "dns {\n  addr = \"127.0.0.2\"\n}\n"))
	if got := c.DNSAddr(); got != "127.0.0.2:5353" {
		t.Fatalf("DNSAddr = %q, want 127.0.0.2:5353", got)
	}
	// The -dns-port flag: a later Merge with Port set wins, 0 turns it off.
	zero := 0
	c.Merge(&Config{DNS: &DNSConfig{Port: &zero}})
	if got := c.DNSAddr(); got != "" {
		t.Fatalf("DNSAddr after port 0 = %q, want none", got)
	}
}

func TestConfig_DNSInvalid(t *testing.T) {
	for _, tc := range []struct{ name, hcl, want string }{
		{"port out of range", "dns {\n  port = 70000\n}\n", "dns port = 70000"},
		{"negative port", "dns {\n  port = -1\n}\n", "dns port = -1"},
		{"addr not an IP", "dns {\n  addr = \"localhost\"\n}\n", `dns addr = "localhost"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DevConfig()
			c.Merge(loadDNSTestHCL(t, tc.hcl))
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// A misspelt attribute is an HCL error with its position.
	path := filepath.Join(t.TempDir(), "agent.hcl")
	if err := os.WriteFile(path, []byte("dns {\n  prot = 53\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfigFile(path); err == nil || !strings.Contains(err.Error(), "agent.hcl:2") {
		t.Fatalf("LoadConfigFile = %v, want an error at agent.hcl:2", err)
	}
}

func loadDNSTestHCL(t *testing.T, src string) *Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.hcl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfigFile(path)
	if err != nil {
		t.Fatalf("LoadConfigFile: %v", err)
	}
	return c
}

func dnsTestClientConfig() *Config {
	c := DefaultConfig()
	c.Client.Enabled = true
	c.Client.Servers = []string{"10.0.0.1:4647"}
	return c
}

func dnsTestServerConfig() *Config {
	c := DefaultConfig()
	c.Server.Enabled = true
	return c
}
