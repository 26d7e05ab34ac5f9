package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
	"github.com/droverhq/drover/tlsutil"
)

// agentPKI is a CA and certificate files made with tlsutil, as an
// operator makes them with drover tls.
type agentPKI struct {
	t      *testing.T
	dir    string
	caFile string
	caCert []byte
	caKey  []byte
	n      int
}

func newAgentPKI(t *testing.T) *agentPKI {
	t.Helper()
	cert, key, err := tlsutil.GenerateCA(tlsutil.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := &agentPKI{t: t, dir: t.TempDir(), caCert: cert, caKey: key}
	p.caFile = filepath.Join(p.dir, "ca.pem")
	p.write(p.caFile, cert)
	return p
}

func (p *agentPKI) write(path string, data []byte) {
	p.t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		p.t.Fatal(err)
	}
}

// issue writes a new certificate of role and returns its files.
func (p *agentPKI) issue(role tlsutil.Role) (certFile, keyFile string) {
	p.t.Helper()
	cert, key, err := tlsutil.GenerateCert(tlsutil.CertOptions{Role: role, CACert: p.caCert, CAKey: p.caKey})
	if err != nil {
		p.t.Fatal(err)
	}
	p.n++
	certFile = filepath.Join(p.dir, fmt.Sprintf("%s-%d.pem", role, p.n))
	keyFile = filepath.Join(p.dir, fmt.Sprintf("%s-%d-key.pem", role, p.n))
	p.write(certFile, cert)
	p.write(keyFile, key)
	return certFile, keyFile
}

// clientTLS trusts the CA and, when role is set, presents a new
// certificate of that role.
func (p *agentPKI) clientTLS(role tlsutil.Role) *tls.Config {
	p.t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.caCert)
	conf := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if role != "" {
		pair, err := tls.LoadX509KeyPair(p.issue(role))
		if err != nil {
			p.t.Fatal(err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	return conf
}

// tlsAgentConfig is a server agent on 127.0.0.1 with mTLS on RPC and
// HTTPS, client certificates required.
func tlsAgentConfig(t *testing.T, p *agentPKI) *Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.BindAddr = "127.0.0.1"
	cfg.Ports = &Ports{HTTP: freePort(t), RPC: freePort(t), Gossip: freePort(t)}
	cfg.DataDir = t.TempDir()
	cfg.NodeName = "tls"
	cfg.Server.Enabled = true
	cfg.Server.NumSchedulers = 1
	certFile, keyFile := p.issue(tlsutil.RoleServer)
	yes := true
	cfg.TLS = &TLSConfig{HTTP: true, RPC: true, CAFile: p.caFile, CertFile: certFile, KeyFile: keyFile, VerifyHTTPSClient: &yes}
	return cfg
}

func startAgent(t *testing.T, cfg *Config) *Agent {
	t.Helper()
	a, err := New(cfg, hclog.New(&hclog.LoggerOptions{Name: "agent", Level: hclog.Warn}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Shutdown)
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) { return a.server.IsLeader(), nil })
	return a
}

func TestAgentTLS_HTTPSWithClientCertificates(t *testing.T) {
	p := newAgentPKI(t)
	a := startAgent(t, tlsAgentConfig(t, p))
	url := "https://" + a.HTTPAddr()
	if a.HTTPScheme() != "https" {
		t.Fatalf("scheme %q", a.HTTPScheme())
	}
	get := func(conf *tls.Config, path string) (*http.Response, error) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
		return c.Get(url + path)
	}

	t.Run("no client certificate fails the handshake", func(t *testing.T) {
		resp, err := get(p.clientTLS(""), "/v1/agent/self")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("answered HTTP %d without a client certificate", resp.StatusCode)
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v, want a certificate error", err)
		}
	})
	t.Run("a certificate of another CA fails the handshake", func(t *testing.T) {
		stranger := newAgentPKI(t)
		conf := stranger.clientTLS(tlsutil.RoleCLI)
		conf.RootCAs = p.clientTLS("").RootCAs
		if resp, err := get(conf, "/v1/agent/self"); err == nil {
			resp.Body.Close()
			t.Fatalf("answered HTTP %d to a certificate of another CA", resp.StatusCode)
		}
	})
	t.Run("cli certificate gets 200", func(t *testing.T) {
		resp, err := get(p.clientTLS(tlsutil.RoleCLI), "/v1/agent/self")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d", resp.StatusCode)
		}
	})
	t.Run("plain HTTP is not served", func(t *testing.T) {
		resp, err := http.Get("http://" + a.HTTPAddr() + "/v1/agent/self")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("the HTTPS port answered plain HTTP with 200")
			}
		}
	})
	t.Run("api client", func(t *testing.T) {
		certFile, keyFile := p.issue(tlsutil.RoleCLI)
		cases := []struct {
			name string
			addr string
			tls  *api.TLSConfig
			want string
		}{
			{"with a cli certificate", url, &api.TLSConfig{CACert: p.caFile, ClientCert: certFile, ClientKey: keyFile}, ""},
			{"without a client certificate", url, &api.TLSConfig{CACert: p.caFile},
				"requires a client certificate: pass -client-cert and -client-key or set DROVER_CLIENT_CERT/DROVER_CLIENT_KEY"},
			{"without the CA", url, &api.TLSConfig{ClientCert: certFile, ClientKey: keyFile}, "pass -ca-cert or set DROVER_CACERT"},
			{"plain http to the HTTPS port", "http://" + a.HTTPAddr(), nil, "serves HTTPS only: use https://"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				for _, env := range []string{"DROVER_CACERT", "DROVER_CLIENT_CERT", "DROVER_CLIENT_KEY", "DROVER_TLS_SERVER_NAME", "DROVER_TLS_SKIP_VERIFY"} {
					t.Setenv(env, "")
				}
				c, err := api.NewClient(&api.Config{Address: tc.addr, TLSConfig: tc.tls})
				if err != nil {
					t.Fatal(err)
				}
				self, err := c.Agent().Self()
				if tc.want == "" {
					if err != nil || self["Secure"] != true {
						t.Fatalf("Self: %v %v", self["Secure"], err)
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("the error is not one line: %q", err)
				}
			})
		}
	})
}

func TestAgentTLS_ConfigErrors(t *testing.T) {
	p := newAgentPKI(t)
	clientCert, clientKey := p.issue(tlsutil.RoleClient)
	_, otherKey := p.issue(tlsutil.RoleServer)
	cases := []struct {
		name   string
		mutate func(c *Config)
		want   string
	}{
		{"tls.rpc without files", func(c *Config) { c.TLS = &TLSConfig{RPC: true} },
			"tls.rpc (-tls-rpc) needs the tls block's ca_file, cert_file and key_file; not set: ca_file (-tls-ca-file), cert_file (-tls-cert-file), key_file (-tls-key-file)"},
		{"tls.http without a key", func(c *Config) { c.TLS = &TLSConfig{HTTP: true, CAFile: p.caFile, CertFile: clientCert} },
			"not set: key_file (-tls-key-file)"},
		{"bad region", func(c *Config) { c.Region = "Global Region" }, `region "Global Region" (-region)`},
		{"key of another certificate", func(c *Config) { c.TLS.KeyFile = otherKey }, "private key does not match public key"},
		{"missing CA file", func(c *Config) { c.TLS.CAFile = filepath.Join(p.dir, "nope.pem") }, "tls ca_file"},
		{"client certificate on a server", func(c *Config) { c.TLS.CertFile, c.TLS.KeyFile = clientCert, clientKey },
			"is client.global.drover, but this agent needs a server certificate (server.global.drover)"},
		{"server certificate of another region", func(c *Config) { c.Region = "east" }, "needs a server certificate (server.east.drover)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tlsAgentConfig(t, p)
			tc.mutate(cfg)
			a, err := New(cfg, hclog.NewNullLogger())
			if err == nil {
				a.Shutdown()
				t.Fatal("the agent started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// peerSerial is the serial of the certificate a TLS server presents.
func peerSerial(t *testing.T, addr string, conf *tls.Config) string {
	t.Helper()
	conf = conf.Clone()
	conf.ServerName = "127.0.0.1"
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func TestAgentTLS_Reload(t *testing.T) {
	p := newAgentPKI(t)
	cfg := tlsAgentConfig(t, p)
	a := startAgent(t, cfg)
	cli := p.clientTLS(tlsutil.RoleCLI)
	before := peerSerial(t, a.HTTPAddr(), cli)
	rpcAddr := a.server.RPCAddr().String()
	rpcBefore := peerSerial(t, rpcAddr, p.clientTLS(tlsutil.RoleClient))
	if before != rpcBefore {
		t.Fatalf("HTTPS presents %s, RPC %s", before, rpcBefore)
	}

	// A bad file keeps the certificate in use.
	saved, err := os.ReadFile(cfg.TLS.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	p.write(cfg.TLS.CertFile, []byte("garbage"))
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), "cert_file") {
		t.Fatalf("reload of a garbage certificate: %v", err)
	}
	if got := peerSerial(t, a.HTTPAddr(), cli); got != before {
		t.Fatalf("after a failed reload the agent presents %s, want the old %s", got, before)
	}
	// A client certificate in the server's files is refused too.
	clientCert, clientKey := p.issue(tlsutil.RoleClient)
	copyInto(t, clientCert, cfg.TLS.CertFile)
	copyInto(t, clientKey, cfg.TLS.KeyFile+".new")
	if err := os.Rename(cfg.TLS.KeyFile+".new", cfg.TLS.KeyFile); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), "needs a server certificate") {
		t.Fatalf("reload of a client certificate on a server: %v", err)
	}
	p.write(cfg.TLS.CertFile, saved)

	// New files are used by new connections, HTTPS and RPC.
	newCert, newKey := p.issue(tlsutil.RoleServer)
	copyInto(t, newCert, cfg.TLS.CertFile)
	copyInto(t, newKey, cfg.TLS.KeyFile)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	after := peerSerial(t, a.HTTPAddr(), cli)
	if after == before {
		t.Fatal("the reload kept the old certificate on HTTPS")
	}
	if got := peerSerial(t, rpcAddr, p.clientTLS(tlsutil.RoleClient)); got != after {
		t.Fatalf("RPC presents %s after the reload, want %s", got, after)
	}
	if !a.server.IsLeader() {
		t.Fatal("the server stopped leading")
	}
}

func copyInto(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAgent_CheckClientRPC(t *testing.T) {
	p := newAgentPKI(t)
	certFile, keyFile := p.issue(tlsutil.RoleClient)
	conf, err := tlsutil.NewConfigurator(tlsutil.Config{CAFile: p.caFile, CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.TLS.RPC = true
	a := &Agent{config: cfg, tls: conf}
	for _, m := range []string{"Node.Register", "Node.UpdateStatus", "Status.Leader", "Status.Peers"} {
		if err := a.checkClientRPC(m); err != nil {
			t.Errorf("%s refused: %v", m, err)
		}
	}
	err = a.checkClientRPC("Job.Register")
	ce := structs.ParseCodedError(err)
	if ce == nil || ce.Status != http.StatusForbidden || !strings.Contains(ce.Message, "send cluster API calls to a server agent's HTTP address") {
		t.Fatalf("Job.Register from a client agent: %v", err)
	}
	cfg.TLS.RPC = false
	if err := a.checkClientRPC("Job.Register"); err != nil {
		t.Fatalf("without tls.rpc: %v", err)
	}
}

func TestAgent_LogsTarget(t *testing.T) {
	a := &Agent{config: DefaultConfig()}
	good := mock.Node()
	good.HTTPAddr = "10.0.0.7:4646"
	good.Attributes["unique.network.ip-address"] = "10.0.0.7"
	down := mock.Node()
	down.Status = structs.NodeStatusDown
	rogue := mock.Node()
	rogue.HTTPAddr = "169.254.169.254:80"
	bare := mock.Node()
	delete(bare.Attributes, "unique.network.ip-address")
	noPort := mock.Node()
	noPort.HTTPAddr = "127.0.0.1"
	cases := []struct {
		name   string
		node   *structs.Node
		status int
		want   string
	}{
		{"ready node at its address", good, 0, "http://10.0.0.7:4646"},
		{"not registered", nil, http.StatusNotFound, "is not registered"},
		{"down", down, http.StatusServiceUnavailable, "is down, not ready"},
		{"address elsewhere", rogue, http.StatusServiceUnavailable, "refusing to proxy logs to node " + rogue.Name},
		{"no advertised address", bare, http.StatusServiceUnavailable, "is not on its advertised address"},
		{"no port", noPort, http.StatusServiceUnavailable, "no usable HTTP address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := a.logsTarget(tc.node, "n1", "a1")
			if tc.status == 0 {
				if err != nil || u.String() != tc.want {
					t.Fatalf("target %v, %v; want %s", u, err, tc.want)
				}
				return
			}
			ce := structs.ParseCodedError(err)
			if ce == nil || ce.Status != tc.status || !strings.Contains(ce.Message, tc.want) {
				t.Fatalf("err = %v, want HTTP %d saying %q", err, tc.status, tc.want)
			}
		})
	}
}

func TestAgentTLS_LogsProxyDialsOnlyClusterAgents(t *testing.T) {
	p := newAgentPKI(t)
	a := startAgent(t, tlsAgentConfig(t, p))

	// The node's agent: an HTTPS server whose certificate and answer the
	// test switches.
	clientPair, err := tls.LoadX509KeyPair(p.issue(tlsutil.RoleClient))
	if err != nil {
		t.Fatal(err)
	}
	stranger := newAgentPKI(t)
	strangerPair, err := tls.LoadX509KeyPair(stranger.issue(tlsutil.RoleClient))
	if err != nil {
		t.Fatal(err)
	}
	var cert atomic.Pointer[tls.Certificate]
	var redirect atomic.Bool
	var gotQuery atomic.Value
	target := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery.Store(r.URL.RawQuery)
		if redirect.Load() {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
			return
		}
		io.WriteString(w, "hello from the task\n")
	}))
	// GetConfigForClient, not GetCertificate: httptest adds its own
	// certificate, which wins over GetCertificate when there is no SNI.
	target.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{Certificates: []tls.Certificate{*cert.Load()}}, nil
	}}
	target.StartTLS()
	defer target.Close()

	node := mock.Node()
	node.HTTPAddr = target.Listener.Addr().String()
	var reg structs.NodeUpdateResponse
	if err := a.server.RPC("Node.Register", &structs.NodeRegisterRequest{Node: node}, &reg); err != nil {
		t.Fatal(err)
	}
	job := mock.Job()
	var jr structs.JobRegisterResponse
	if err := a.server.RPC("Job.Register", &structs.JobRegisterRequest{Job: job}, &jr); err != nil {
		t.Fatal(err)
	}
	var allocID string
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		allocs, err := a.server.State().AllocsByJob(nil, "", job.ID)
		if err != nil || len(allocs) == 0 {
			return false, errors.New("no allocation placed yet")
		}
		allocID = allocs[0].ID
		return true, nil
	})
	cli := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: p.clientTLS(tlsutil.RoleCLI)},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	logs := func() (int, string) {
		t.Helper()
		// A kept-alive connection to the node keeps the certificate it
		// was made with; each case dials anew.
		a.logsProxyTransport().CloseIdleConnections()
		resp, err := cli.Get("https://" + a.HTTPAddr() + "/v1/client/fs/logs/" + allocID + "?task=server")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	t.Run("an agent of the cluster", func(t *testing.T) {
		cert.Store(&clientPair)
		redirect.Store(false)
		code, body := logs()
		if code != http.StatusOK || body != "hello from the task\n" {
			t.Fatalf("HTTP %d %q", code, body)
		}
		if q, _ := gotQuery.Load().(string); !strings.Contains(q, "forwarded=1") || !strings.Contains(q, "task=server") {
			t.Fatalf("the node's agent got query %q", q)
		}
	})
	t.Run("a certificate of another CA", func(t *testing.T) {
		cert.Store(&strangerPair)
		redirect.Store(false)
		code, body := logs()
		if code != http.StatusServiceUnavailable || !strings.Contains(body, node.Name) || !strings.Contains(body, "certificate") {
			t.Fatalf("HTTP %d %s", code, body)
		}
	})
	t.Run("a redirect is not passed on", func(t *testing.T) {
		cert.Store(&clientPair)
		redirect.Store(true)
		code, body := logs()
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "redirect") {
			t.Fatalf("HTTP %d %s", code, body)
		}
	})
}
