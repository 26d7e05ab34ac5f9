package agent

import (
	"net"
)

// Security is what /v1/agent/self and `drover agent info` say about how
// closed the agent is to strangers on its network.
type Security struct {
	// Secure is true when every listener is protected (mTLS on RPC and
	// HTTP with client certificates, gossip encrypted), or when the
	// agent listens on loopback only.
	Secure bool
	// LoopbackOnly is true when the agent binds a loopback address, so
	// only processes on this host reach it.
	LoopbackOnly bool
	// Warnings says what is open and how to close it; empty when the
	// agent is fully protected.
	Warnings []string
}

// Security reports which of a running agent's ports are open to anyone
// who reaches them. Gossip counts as encrypted when the pool runs with a
// keyring, also one kept in the data dir from an earlier run without
// -encrypt now.
func (a *Agent) Security() Security {
	return a.config.security(a.gossip != nil && a.gossip.Encrypted())
}

// Security reports which of the ports of an agent started with this
// configuration are open to anyone who reaches them.
func (c *Config) Security() Security {
	return c.security(c.Encrypt != "")
}

func (c *Config) security(gossipEncrypted bool) Security {
	var s Security
	if ip := net.ParseIP(c.BindAddr); ip != nil && ip.IsLoopback() {
		s.LoopbackOnly = true
	}
	tls := c.TLS
	if tls == nil {
		tls = &TLSConfig{}
	}
	if !tls.RPC {
		s.Warnings = append(s.Warnings, "RPC is plaintext: anyone who reaches the RPC port can call every endpoint and speak Raft to servers (on a server: including fetching the key-encryption key of variables); set tls { rpc = true } with ca_file, cert_file and key_file")
	}
	if !gossipEncrypted {
		s.Warnings = append(s.Warnings, "gossip is not encrypted: anyone who reaches the gossip port can join the pool and claim to be a server; set encrypt (drover operator gossip keyring generate)")
	}
	switch {
	case !tls.HTTP:
		s.Warnings = append(s.Warnings, "the HTTP API is plaintext and unauthenticated: anyone who reaches it can run jobs; set tls { http = true, verify_https_client = true }")
	case tls.VerifyHTTPSClient == nil || !*tls.VerifyHTTPSClient:
		s.Warnings = append(s.Warnings, "the HTTPS API does not require client certificates: anyone who reaches it can run jobs; set tls { verify_https_client = true }")
	}
	if addr := c.DNSAddr(); addr != "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				s.Warnings = append(s.Warnings, "DNS on "+addr+" answers the names, addresses and ports of every namespace's services to anyone who reaches it, without a token; set dns { addr = \"127.0.0.1\" } (tasks share the host's network) or dns { enabled = false }")
			}
		}
	}
	s.Secure = len(s.Warnings) == 0 || s.LoopbackOnly
	return s
}
