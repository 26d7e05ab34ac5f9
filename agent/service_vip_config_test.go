package agent

import (
	"strings"
	"testing"
)

func TestConfig_ServiceVIPRange(t *testing.T) {
	c := dnsTestServerConfig()
	c.Merge(loadDNSTestHCL(t, "server {\n  service_vip_range = \"127.42.0.0/24\"\n}\n"))
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	sc, err := c.serverConfig()
	if err != nil {
		t.Fatal(err)
	}
	if sc.ServiceVIPRange != "127.42.0.0/24" {
		t.Fatalf("server config range %q", sc.ServiceVIPRange)
	}
	// A later file without the attribute keeps it.
	c.Merge(loadDNSTestHCL(t, "server {\n  enabled = true\n}\n"))
	if c.Server.ServiceVIPRange != "127.42.0.0/24" {
		t.Fatalf("merged away: %q", c.Server.ServiceVIPRange)
	}
	for _, tc := range []struct{ name, cidr, want string }{
		{"not loopback", "10.0.0.0/16", "not inside 127.0.0.0/8"},
		{"too small", "127.99.0.0/29", "needs at least 16"},
		{"ipv6", "::1/128", "not IPv4"},
		{"not a cidr", "127.99.0.1", "not a CIDR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dnsTestServerConfig()
			c.Merge(loadDNSTestHCL(t, "server {\n  service_vip_range = \""+tc.cidr+"\"\n}\n"))
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "service_vip_range") {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
