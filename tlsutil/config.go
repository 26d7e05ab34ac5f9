package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is what a Configurator loads: an agent's tls block.
type Config struct {
	// CAFile, CertFile and KeyFile are PEM files: the CA that signs
	// every agent's certificate, and this agent's certificate and key.
	CAFile   string
	CertFile string
	KeyFile  string
	// Region and Domain make the role names (DefaultRegion,
	// DefaultDomain).
	Region string
	Domain string
	// VerifyServerHostname makes outgoing RPC require that the other end
	// holds a server certificate of the region; without it any
	// certificate of the CA is accepted.
	VerifyServerHostname bool
	// VerifyHTTPSClient makes the HTTPS API require a client
	// certificate signed by the CA.
	VerifyHTTPSClient bool
	// Roles, when set, are the roles this agent's certificate may have:
	// a certificate of another role is refused at load and at reload,
	// so that a reload cannot turn a server into a client.
	Roles []Role
}

// Configurator holds an agent's TLS material and builds the tls.Config
// of each kind of connection from it. The configs it returns read the
// material at every handshake (GetConfigForClient, GetClientCertificate,
// VerifyConnection), so Reload takes effect for new connections without
// rebuilding listeners or pools; established connections keep the
// material they were made with.
type Configurator struct {
	config Config
	// material is replaced whole by Reload and read without a lock by
	// handshakes.
	material atomic.Pointer[material]
	// reloadLock serializes Reload, so that two reloads (two SIGHUPs)
	// do not interleave their reads and stores.
	reloadLock sync.Mutex
}

// material is one consistent load of the three files.
type material struct {
	pool *x509.CertPool
	cert *tls.Certificate
	leaf *x509.Certificate
	role Role
}

// NewConfigurator loads the files. Every problem is an error naming the
// setting and the file: missing, unreadable, not PEM, a key that does
// not belong to the certificate, a certificate that the CA did not sign
// or that expired.
func NewConfigurator(c Config) (*Configurator, error) {
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	var missing []string
	for _, f := range []struct{ name, val string }{{"ca_file", c.CAFile}, {"cert_file", c.CertFile}, {"key_file", c.KeyFile}} {
		if f.val == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("tls: %s not set: mTLS needs ca_file, cert_file and key_file", strings.Join(missing, ", "))
	}
	cfg := &Configurator{config: c}
	m, err := cfg.load()
	if err != nil {
		return nil, err
	}
	cfg.material.Store(m)
	return cfg, nil
}

// Reload reads the files again and, when they are good, makes new
// connections use them. When they are not, the material in use stays
// and the error says what is wrong.
func (c *Configurator) Reload() error {
	c.reloadLock.Lock()
	defer c.reloadLock.Unlock()
	m, err := c.load()
	if err != nil {
		return err
	}
	c.material.Store(m)
	return nil
}

func (c *Configurator) load() (*material, error) {
	caPEM, err := os.ReadFile(c.config.CAFile)
	if err != nil {
		return nil, fmt.Errorf("tls ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := caPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		ca, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file %s: %w", c.config.CAFile, err)
		}
		pool.AddCert(ca)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("tls ca_file %s holds no PEM CERTIFICATE block", c.config.CAFile)
	}
	pair, err := tls.LoadX509KeyPair(c.config.CertFile, c.config.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls cert_file %s and key_file %s: %w", c.config.CertFile, c.config.KeyFile, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls cert_file %s: %w", c.config.CertFile, err)
		}
		pair.Leaf = leaf
	}
	opts := x509.VerifyOptions{Roots: pool, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	for _, der := range pair.Certificate[1:] {
		if ic, err := x509.ParseCertificate(der); err == nil {
			opts.Intermediates.AddCert(ic)
		}
	}
	if _, err := leaf.Verify(opts); err != nil {
		var invalid x509.CertificateInvalidError
		var unknown x509.UnknownAuthorityError
		switch {
		case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
			return nil, fmt.Errorf("tls cert_file %s (%s) is valid from %s to %s, not now: make a new one with drover tls cert create",
				c.config.CertFile, describe(leaf), leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
		case errors.As(err, &unknown):
			return nil, fmt.Errorf("tls cert_file %s (%s) is not signed by the CA in ca_file %s", c.config.CertFile, describe(leaf), c.config.CAFile)
		}
		return nil, fmt.Errorf("tls cert_file %s (%s) does not verify against ca_file %s: %w", c.config.CertFile, describe(leaf), c.config.CAFile, err)
	}
	role := c.roleOf(leaf)
	if len(c.config.Roles) > 0 && !slices.Contains(c.config.Roles, role) {
		var want []string
		for _, r := range c.config.Roles {
			want = append(want, fmt.Sprintf("a %s certificate (%s)", r, c.RoleName(r)))
		}
		return nil, fmt.Errorf("tls cert_file %s is %s, but this agent needs %s: make one with drover tls cert create -%s -region %s",
			c.config.CertFile, describe(leaf), strings.Join(want, " or "), c.config.Roles[0], c.config.Region)
	}
	return &material{pool: pool, cert: &pair, leaf: leaf, role: role}, nil
}

// Region is the region of the role names.
func (c *Configurator) Region() string { return c.config.Region }

// RoleName is the DNS name of a role in this cluster, e.g.
// server.global.drover.
func (c *Configurator) RoleName(r Role) string { return r.Name(c.config.Region, c.config.Domain) }

// OwnRole is the role of this agent's own certificate.
func (c *Configurator) OwnRole() Role { return c.material.Load().role }

// Describe says which certificate is in use, for logs: its role name
// (or subject), serial number and expiry.
func (c *Configurator) Describe() string {
	m := c.material.Load()
	return fmt.Sprintf("%s (serial %s, expires %s)", describe(m.leaf), m.leaf.SerialNumber, m.leaf.NotAfter.UTC().Format(time.RFC3339))
}

// roleOf reads the role from a certificate's DNS names; a certificate
// that names several roles gets the strongest.
func (c *Configurator) roleOf(cert *x509.Certificate) Role {
	for _, r := range []Role{RoleServer, RoleClient, RoleCLI} {
		want := c.RoleName(r)
		for _, n := range cert.DNSNames {
			if strings.EqualFold(n, want) {
				return r
			}
		}
	}
	return RoleNone
}

// PeerRole is the role of the other end of a connection, read from the
// leaf of its verified chain: RoleNone when the peer's certificate was
// not verified (or it sent none) or names no role of this region. It is
// for the accepting side, where the handshake verified the chain.
func (c *Configurator) PeerRole(cs tls.ConnectionState) Role {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return RoleNone
	}
	return c.roleOf(cs.VerifiedChains[0][0])
}

// PeerName says what the other end of a connection presented, for
// refusals: its role name, or its subject when it has no role here.
func (c *Configurator) PeerName(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return "no certificate"
	}
	return describe(cs.PeerCertificates[0])
}

// describe names a certificate by its first DNS name, or its subject.
func describe(cert *x509.Certificate) string {
	if len(cert.DNSNames) > 0 {
		return cert.DNSNames[0]
	}
	if cert.Subject.CommonName != "" {
		return cert.Subject.CommonName
	}
	return "a certificate without names"
}

// minVersion: TLS 1.2 and newer; every Drover agent and CLI speaks 1.3.
const minVersion = tls.VersionTLS12

// IncomingRPC is the config of the RPC port: the agent presents its
// certificate and requires a client certificate signed by the CA. What
// the peer may do is decided from PeerRole.
func (c *Configurator) IncomingRPC() *tls.Config {
	return &tls.Config{
		MinVersion: minVersion,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := c.material.Load()
			return &tls.Config{
				MinVersion:   minVersion,
				Certificates: []tls.Certificate{*m.cert},
				ClientCAs:    m.pool,
				ClientAuth:   tls.RequireAndVerifyClientCert,
				// A resumed session would skip checking the client's
				// certificate against a CA loaded since.
				SessionTicketsDisabled: true,
			}, nil
		},
	}
}

// IncomingHTTPS is the config of the HTTPS API: the agent presents its
// certificate; with VerifyHTTPSClient a caller without a certificate
// signed by the CA fails the handshake.
func (c *Configurator) IncomingHTTPS() *tls.Config {
	return &tls.Config{
		MinVersion: minVersion,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := c.material.Load()
			conf := &tls.Config{
				MinVersion:             minVersion,
				Certificates:           []tls.Certificate{*m.cert},
				NextProtos:             []string{"http/1.1"},
				SessionTicketsDisabled: true,
			}
			if c.config.VerifyHTTPSClient {
				conf.ClientCAs = m.pool
				conf.ClientAuth = tls.RequireAndVerifyClientCert
			}
			return conf, nil
		},
	}
}

// OutgoingRPC is the config for dialing servers' RPC ports (client
// agents, forwarding, Raft): the agent presents its certificate and
// requires the server's to be signed by the CA and, with
// VerifyServerHostname, to be a server certificate of the region.
func (c *Configurator) OutgoingRPC() *tls.Config {
	var names []string
	if c.config.VerifyServerHostname {
		names = []string{c.RoleName(RoleServer)}
	}
	return c.outgoing(names)
}

// OutgoingHTTPS is the config for dialing another agent's HTTPS API
// (the logs proxy): the agent presents its certificate and requires the
// other's to be signed by the CA and to be a server or client
// certificate of the region, so that an address that is not a Drover
// agent of this cluster is refused.
func (c *Configurator) OutgoingHTTPS() *tls.Config {
	conf := c.outgoing([]string{c.RoleName(RoleClient), c.RoleName(RoleServer)})
	conf.NextProtos = []string{"http/1.1"}
	return conf
}

func (c *Configurator) outgoing(names []string) *tls.Config {
	return &tls.Config{
		MinVersion: minVersion,
		// Go's own verification would pin the CA into this config (and
		// match the dialed address, which is an IP the certificate need
		// not name). It is done in VerifyConnection instead, against the
		// material loaded at handshake time, with the role names.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return c.material.Load().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			return c.verifyPeer(cs, names)
		},
	}
}

// verifyPeer checks the certificate a server presented: signed by the
// CA, usable to serve, valid now, and naming one of names (any name when
// names is empty).
func (c *Configurator) verifyPeer(cs tls.ConnectionState, names []string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: the other end presented no certificate")
	}
	m := c.material.Load()
	leaf := cs.PeerCertificates[0]
	opts := x509.VerifyOptions{Roots: m.pool, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, ic := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(ic)
	}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("tls: the other end's certificate (%s) is not valid for this cluster: %w", describe(leaf), err)
	}
	if len(names) == 0 {
		return nil
	}
	for _, n := range names {
		if leaf.VerifyHostname(n) == nil {
			return nil
		}
	}
	return fmt.Errorf("tls: the other end presented %s; want %s", describe(leaf), strings.Join(names, " or "))
}
