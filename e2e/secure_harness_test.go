package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/testutil"
)

// secureMaterial is what an operator makes with the drover CLI before
// starting a closed cluster: a CA, server, client and CLI certificates
// (`drover tls ...`) and a gossip key (`drover operator gossip keyring
// generate`). The server certificate names every server address and the
// client certificate every client address, as -additional-ipaddress.
type secureMaterial struct {
	dir                   string
	ca                    string
	serverCert, serverKey string
	clientCert, clientKey string
	cliCert, cliKey       string
	gossipKey             string
	serverHosts           []string
	clientHosts           []string
}

// newSecureMaterial makes the material for nServers servers and
// nClients clients, on fresh loopback addresses.
func newSecureMaterial(t testing.TB, nServers, nClients int) *secureMaterial {
	t.Helper()
	m := &secureMaterial{dir: t.TempDir()}
	for i := 0; i < nServers; i++ {
		m.serverHosts = append(m.serverHosts, newHost())
	}
	for i := 0; i < nClients; i++ {
		m.clientHosts = append(m.clientHosts, newHost())
	}
	m.run(t, "tls", "ca", "create")
	args := []string{"tls", "cert", "create", "-server", "-dc", "dc1"}
	for _, h := range m.serverHosts {
		args = append(args, "-additional-ipaddress", h)
	}
	m.run(t, args...)
	args = []string{"tls", "cert", "create", "-client", "-dc", "dc1"}
	for _, h := range m.clientHosts {
		args = append(args, "-additional-ipaddress", h)
	}
	m.run(t, args...)
	m.run(t, "tls", "cert", "create", "-cli", "-dc", "dc1")
	m.gossipKey = strings.TrimSpace(m.run(t, "operator", "gossip", "keyring", "generate"))

	p := func(name string) string {
		path := filepath.Join(m.dir, name)
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("drover tls did not write %s: %v", name, err)
		}
		return path
	}
	m.ca = p("drover-agent-ca.pem")
	m.serverCert, m.serverKey = p("dc1-server-drover-0.pem"), p("dc1-server-drover-0-key.pem")
	m.clientCert, m.clientKey = p("dc1-client-drover-0.pem"), p("dc1-client-drover-0-key.pem")
	m.cliCert, m.cliKey = p("dc1-cli-drover-0.pem"), p("dc1-cli-drover-0-key.pem")
	return m
}

// run runs the drover CLI in the material's directory and returns its
// standard output.
func (m *secureMaterial) run(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, droverBin, args...)
	cmd.Dir = m.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("drover %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// clientHost returns the address of the i-th client.
func (m *secureMaterial) clientHost(i int) string {
	if i >= len(m.clientHosts) {
		panic(fmt.Sprintf("secure material made for %d clients", len(m.clientHosts)))
	}
	return m.clientHosts[i]
}

// agentArgs are the flags that turn on mTLS (RPC and HTTPS with client
// certificates) and gossip encryption for an agent of the given role.
func (m *secureMaterial) agentArgs(role string) []string {
	cert, key := m.serverCert, m.serverKey
	if role == "client" {
		cert, key = m.clientCert, m.clientKey
	}
	return []string{"-tls-http", "-tls-rpc", "-tls-verify-https-client",
		"-tls-ca-file", m.ca, "-tls-cert-file", cert, "-tls-key-file", key,
		"-encrypt", m.gossipKey}
}

// apply makes a (not yet started) agent run with the material and talks
// to it as an operator with the CLI certificate would: HTTPS API
// client, raw HTTP client and CLI environment.
func (m *secureMaterial) apply(a *agent, role string) {
	a.t.Helper()
	a.args = append(a.args, m.agentArgs(role)...)
	a.scheme = "https"
	cl, err := api.NewClient(&api.Config{Address: a.url(), TLSConfig: &api.TLSConfig{
		CACert: m.ca, ClientCert: m.cliCert, ClientKey: m.cliKey}})
	if err != nil {
		a.t.Fatal(err)
	}
	a.api = cl
	a.httpc = m.httpClient(a.t, true)
	a.cliEnv = []string{"DROVER_ADDR=" + a.url(), "DROVER_CACERT=" + m.ca,
		"DROVER_CLIENT_CERT=" + m.cliCert, "DROVER_CLIENT_KEY=" + m.cliKey}
}

// httpClient returns an HTTPS client that trusts the CA and, with
// withCert, presents the CLI certificate.
func (m *secureMaterial) httpClient(t testing.TB, withCert bool) *http.Client {
	t.Helper()
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: m.tlsConfig(t, withCert, m.cliCert, m.cliKey)}}
}

// tlsConfig trusts the CA and, with withCert, presents cert/key.
func (m *secureMaterial) tlsConfig(t testing.TB, withCert bool, cert, key string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(m.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CA file holds no certificate")
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if withCert {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

// waitSecureClientReady waits until a client agent of a secure cluster
// reports healthy and the servers see its node ready. (The client
// agent's own HTTP API cannot list nodes with mTLS on: its certificate
// may call only client endpoints.)
func (h *haCluster) waitSecureClientReady(a *agent) {
	h.t.Helper()
	testutil.WaitFor(h.t, 30*time.Second, func() (bool, error) {
		if !a.alive() {
			h.t.Fatalf("agent exited during start:\n%s", tail(a.logPath, 40))
		}
		if err := a.api.Agent().Health(); err != nil {
			return false, err
		}
		for _, s := range h.alive() {
			nodes, _, err := s.api.Nodes().List(nil)
			if err != nil {
				continue
			}
			for _, n := range nodes {
				if n.Name == a.name && n.Status == "ready" {
					return true, nil
				}
			}
		}
		return false, fmt.Errorf("node %s not ready yet", a.name)
	})
}
