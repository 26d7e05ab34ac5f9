package agent

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/droverhq/drover/server"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/tlsutil"
)

// The agent's mutual TLS: the tls block loaded into a
// tlsutil.Configurator (a.tls) when tls.http or tls.rpc is on. The
// server takes it for its RPC port (server.Config.TLS), a client-only
// agent's pool dials the servers with it, the HTTPS API serves with it,
// and the logs proxy dials other agents with it. SIGHUP reloads it
// (Reload).

// regionPattern is what a region may look like: a DNS label, since it
// is one in every certificate name.
var regionPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// tlsOn reports whether the agent uses TLS anywhere.
func (c *Config) tlsOn() bool { return c.TLS != nil && (c.TLS.HTTP || c.TLS.RPC) }

// validateTLS checks the region and that tls.http or tls.rpc come with
// the three files; the files themselves are read at start (New).
func (c *Config) validateTLS() error {
	if c.Region != "" && !regionPattern.MatchString(c.Region) {
		return fmt.Errorf("region %q (-region): use lowercase letters, digits and dashes; it is a DNS label of the certificate names (server.<region>.drover)", c.Region)
	}
	if !c.tlsOn() {
		return nil
	}
	var on []string
	if c.TLS.RPC {
		on = append(on, "tls.rpc (-tls-rpc)")
	}
	if c.TLS.HTTP {
		on = append(on, "tls.http (-tls-http)")
	}
	var missing []string
	for _, f := range []struct{ name, flag, val string }{
		{"ca_file", "-tls-ca-file", c.TLS.CAFile},
		{"cert_file", "-tls-cert-file", c.TLS.CertFile},
		{"key_file", "-tls-key-file", c.TLS.KeyFile},
	} {
		if f.val == "" {
			missing = append(missing, fmt.Sprintf("%s (%s)", f.name, f.flag))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s needs the tls block's ca_file, cert_file and key_file; not set: %s (make them with drover tls ca create and drover tls cert create)",
			strings.Join(on, " and "), strings.Join(missing, ", "))
	}
	return nil
}

// tlsRoles are the certificate roles that fit the agent: a server's RPC
// port needs a server certificate; a client-only agent dials with a
// client (or server) certificate; the HTTPS API serves with either (a
// cli certificate cannot serve).
func (c *Config) tlsRoles() []tlsutil.Role {
	if c.TLS.RPC && c.Server.Enabled {
		return []tlsutil.Role{tlsutil.RoleServer}
	}
	if c.TLS.RPC {
		return []tlsutil.Role{tlsutil.RoleClient, tlsutil.RoleServer}
	}
	return []tlsutil.Role{tlsutil.RoleServer, tlsutil.RoleClient}
}

// setupTLS loads the agent's certificates when TLS is on. A missing,
// unreadable or mismatched file, or a certificate of the wrong role, is
// an error: the agent does not start.
func (a *Agent) setupTLS() error {
	c := a.config
	if c.TLS == nil {
		c.TLS = &TLSConfig{}
	}
	if !c.tlsOn() {
		return nil
	}
	region := c.Region
	if region == "" {
		region = tlsutil.DefaultRegion
	}
	conf, err := tlsutil.NewConfigurator(tlsutil.Config{
		CAFile:               c.TLS.CAFile,
		CertFile:             c.TLS.CertFile,
		KeyFile:              c.TLS.KeyFile,
		Region:               region,
		VerifyServerHostname: c.TLS.VerifyServerHostname == nil || *c.TLS.VerifyServerHostname,
		VerifyHTTPSClient:    c.TLS.VerifyHTTPSClient != nil && *c.TLS.VerifyHTTPSClient,
		Roles:                c.tlsRoles(),
	})
	if err != nil {
		return err
	}
	a.tls = conf
	a.logger.Info("TLS enabled", "rpc", c.TLS.RPC, "http", c.TLS.HTTP, "certificate", conf.Describe())
	return nil
}

// httpsListener returns l serving TLS when tls.http is on, l itself
// otherwise. The handshake runs in the HTTP server's connection
// goroutine, under its header timeout.
func (a *Agent) httpsListener(l net.Listener) net.Listener {
	if a.tls == nil || !a.config.TLS.HTTP {
		return l
	}
	return tls.NewListener(l, a.tls.IncomingHTTPS())
}

// HTTPScheme is "https" when the HTTP API serves TLS, else "http".
func (a *Agent) HTTPScheme() string {
	if a.tls != nil && a.config.TLS.HTTP {
		return "https"
	}
	return "http"
}

// Reload re-reads what a running agent can change: its TLS files. New
// connections (RPC, Raft, HTTPS, the pool's next sessions) use the new
// ones; open connections keep theirs. When a file is bad the ones in use
// stay and the error is returned (and logged): the agent keeps running.
func (a *Agent) Reload() error {
	// The ingress gateway's certificates (gateway { certificate }) are
	// its own: reloaded whether or not the agent's TLS is on.
	var gwErr error
	if a.gateway != nil {
		if gwErr = a.gateway.ReloadCertificates(); gwErr != nil {
			a.logger.Error("reloading the gateway's certificates failed; keeping the ones in use", "error", gwErr)
		} else {
			a.logger.Info("reloaded the gateway's certificates")
		}
	}
	if a.tls == nil {
		a.logger.Info("reload: TLS is off; no agent certificates to reload")
		return gwErr
	}
	if err := a.tls.Reload(); err != nil {
		a.logger.Error("reloading TLS certificates failed; keeping the ones in use", "error", err, "in_use", a.tls.Describe())
		return err
	}
	a.logger.Info("reloaded TLS certificates", "certificate", a.tls.Describe())
	return gwErr
}

// checkClientRPC refuses, before sending it, a call a client-only
// agent's certificate may not make: with tls.rpc its client certificate
// reaches the servers' client endpoints only, so the cluster API (jobs,
// nodes, operator...) must be asked of a server agent.
func (a *Agent) checkClientRPC(method string) error {
	if a.server != nil || a.tls == nil || !a.config.TLS.RPC || a.tls.OwnRole() != tlsutil.RoleClient || server.ClientEndpoint(method) {
		return nil
	}
	return structs.NewError(structs.CodePermission, fmt.Sprintf(
		"this agent is a client: with tls.rpc on, its certificate (%s) may call only the servers' client endpoints, not %s; "+
			"send cluster API calls to a server agent's HTTP address (e.g. -address %s://<server>:%d)",
		a.tls.RoleName(tlsutil.RoleClient), method, a.HTTPScheme(), a.config.Ports.HTTP))
}

// logsProxyTransport is how the logs proxy reaches other agents: https
// with the outgoing HTTPS config when tls.http is on (the other end must
// present a server or client certificate of the cluster, so an address
// that is not one of its agents is refused), plain http otherwise; no
// proxy from the environment, bounded dial and header waits.
func (a *Agent) logsProxyTransport() *http.Transport {
	a.logsTransportOnce.Do(func() {
		tr := &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
		}
		if a.tls != nil && a.config.TLS.HTTP {
			tr.TLSClientConfig = a.tls.OutgoingHTTPS()
		}
		a.logsTransport = tr
	})
	return a.logsTransport
}

// logsTarget is the URL of the agent of the node that runs an
// allocation, for the logs proxy. Only a registered, ready node is
// dialed, and only at its own advertised address: the HTTP address is
// what the node reported about itself, and a node that names another
// host (a metadata service, a database) must not make the agent dial it.
func (a *Agent) logsTarget(node *structs.Node, nodeID, allocID string) (*url.URL, error) {
	if node == nil {
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("node %s of allocation %s is not registered", nodeID, allocID))
	}
	if node.Status != structs.NodeStatusReady {
		return nil, structs.NewError(structs.CodeUnavailable, fmt.Sprintf("node %s (%s) of allocation %s is %s, not ready: its logs are read through its own agent, which is not reachable now", node.Name, node.ID, allocID, node.Status))
	}
	host, port, err := net.SplitHostPort(node.HTTPAddr)
	if err != nil || port == "" || port == "0" {
		return nil, structs.NewError(structs.CodeUnavailable, fmt.Sprintf("node %s (%s) has no usable HTTP address (%q); its logs cannot be read through another agent", node.Name, node.ID, node.HTTPAddr))
	}
	advertised := node.Attributes["unique.network.ip-address"]
	ip, adv := net.ParseIP(host), net.ParseIP(advertised)
	if ip == nil || adv == nil || !ip.Equal(adv) {
		return nil, structs.NewError(structs.CodeUnavailable, fmt.Sprintf(
			"refusing to proxy logs to node %s (%s): its HTTP address %s is not on its advertised address %q; read the logs at the node's agent directly",
			node.Name, node.ID, node.HTTPAddr, advertised))
	}
	scheme := "http"
	if a.tls != nil && a.config.TLS.HTTP {
		scheme = "https"
	}
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(adv.String(), port)}, nil
}
