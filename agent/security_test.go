package agent

import (
	"strings"
	"testing"
)

func TestConfig_SecurityNamesWhatIsOpen(t *testing.T) {
	yes := true
	secured := func(c *Config) {
		c.BindAddr = "10.0.0.5"
		c.Encrypt = "k"
		c.TLS = &TLSConfig{HTTP: true, RPC: true, VerifyHTTPSClient: &yes}
	}
	cases := []struct {
		name       string
		mutate     func(c *Config)
		secure     bool
		warnAbout  []string
		noWarnings bool
	}{
		{"dev on loopback is secure by reach", func(c *Config) {}, true, []string{"RPC is plaintext", "gossip is not encrypted", "HTTP API is plaintext"}, false},
		{"open on the network", func(c *Config) { c.BindAddr = "0.0.0.0" }, false, []string{"tls { rpc = true }", "encrypt", "verify_https_client"}, false},
		{"everything on", secured, true, nil, true},
		{"https without client certs", func(c *Config) { secured(c); c.TLS.VerifyHTTPSClient = nil }, false, []string{"does not require client certificates"}, false},
		{"no gossip key", func(c *Config) { secured(c); c.Encrypt = "" }, false, []string{"gossip is not encrypted"}, false},
		{"DNS opened to the network", func(c *Config) { secured(c); c.DNS = &DNSConfig{Addr: "10.0.0.5"} }, false, []string{"DNS on 10.0.0.5:8600", "without a token"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DevConfig()
			tc.mutate(c)
			s := c.Security()
			if s.Secure != tc.secure {
				t.Fatalf("Secure = %v, want %v (%v)", s.Secure, tc.secure, s.Warnings)
			}
			all := strings.Join(s.Warnings, "\n")
			for _, w := range tc.warnAbout {
				if !strings.Contains(all, w) {
					t.Errorf("warnings do not mention %q:\n%s", w, all)
				}
			}
			if tc.noWarnings && len(s.Warnings) > 0 {
				t.Errorf("unexpected warnings: %v", s.Warnings)
			}
		})
	}
}
