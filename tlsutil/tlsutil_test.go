package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testCA is a CA written to a temp dir, issuing role certificates.
type testCA struct {
	dir      string
	cert     []byte
	key      []byte
	certFile string
	n        int
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	cert, key, err := GenerateCA(CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := &testCA{dir: dir, cert: cert, key: key, certFile: filepath.Join(dir, "ca.pem")}
	writeFile(t, ca.certFile, cert)
	return ca
}

// issue writes a certificate of role signed by the CA and returns its
// files.
func (ca *testCA) issue(t *testing.T, role Role, mutate func(*CertOptions)) (certFile, keyFile string) {
	t.Helper()
	o := CertOptions{Role: role, CACert: ca.cert, CAKey: ca.key}
	if mutate != nil {
		mutate(&o)
	}
	cert, key, err := GenerateCert(o)
	if err != nil {
		t.Fatal(err)
	}
	ca.n++
	certFile = filepath.Join(ca.dir, string(role)+"-"+string(rune('a'+ca.n))+".pem")
	keyFile = strings.TrimSuffix(certFile, ".pem") + "-key.pem"
	writeFile(t, certFile, cert)
	writeFile(t, keyFile, key)
	return certFile, keyFile
}

// configurator loads a fresh certificate of role.
func (ca *testCA) configurator(t *testing.T, role Role, mutate func(*Config)) *Configurator {
	t.Helper()
	certFile, keyFile := ca.issue(t, role, nil)
	c := Config{CAFile: ca.certFile, CertFile: certFile, KeyFile: keyFile, VerifyServerHostname: true, VerifyHTTPSClient: true}
	if mutate != nil {
		mutate(&c)
	}
	conf, err := NewConfigurator(c)
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// handshake runs a TLS handshake over loopback TCP (a net.Pipe has no
// buffer, so an alert written while the other side writes would block)
// and returns the server's view of the connection and each side's
// error. The client reads one byte the server sends after its
// handshake, because with TLS 1.3 the client finishes before the server
// has checked its certificate.
func handshake(t *testing.T, server, client *tls.Config) (tls.ConnectionState, error, error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	deadline := time.Now().Add(10 * time.Second)
	type result struct {
		state tls.ConnectionState
		err   error
	}
	done := make(chan result, 1)
	go func() {
		sc, err := l.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer sc.Close()
		_ = sc.SetDeadline(deadline)
		s := tls.Server(sc, server)
		if err := s.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		_, err = s.Write([]byte{1})
		done <- result{state: s.ConnectionState(), err: err}
	}()
	cc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = cc.SetDeadline(deadline)
	c := tls.Client(cc, client)
	clientErr := c.Handshake()
	if clientErr == nil {
		_, clientErr = c.Read(make([]byte, 1))
	}
	cc.Close()
	r := <-done
	return r.state, r.err, clientErr
}

func TestGenerateCert_NamesAndUsages(t *testing.T) {
	ca := newTestCA(t)
	caCert, err := ParseCertificate(ca.cert)
	if err != nil {
		t.Fatal(err)
	}
	if !caCert.IsCA || caCert.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("CA: IsCA=%v algorithm %v", caCert.IsCA, caCert.PublicKeyAlgorithm)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	cases := []struct {
		role    Role
		extraIP string
		dns     []string
		ips     []string
		usages  []x509.ExtKeyUsage
	}{
		{RoleServer, "10.0.0.5", []string{"server.west.drover", "localhost", "server.example.com"}, []string{"127.0.0.1", "10.0.0.5"},
			[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
		{RoleClient, "", []string{"client.west.drover", "localhost", "server.example.com"}, []string{"127.0.0.1"},
			[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
		{RoleCLI, "", []string{"cli.west.drover", "localhost", "server.example.com"}, nil,
			[]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	}
	for _, tc := range cases {
		t.Run(string(tc.role), func(t *testing.T) {
			o := CertOptions{Role: tc.role, Region: "west", CACert: ca.cert, CAKey: ca.key, DNSNames: []string{"server.example.com", "localhost"}}
			if tc.extraIP != "" {
				o.IPAddresses = []net.IP{net.ParseIP(tc.extraIP)}
			}
			certPEM, keyPEM, err := GenerateCert(o)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
				t.Fatalf("certificate and key do not pair: %v", err)
			}
			cert, err := ParseCertificate(certPEM)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cert.DNSNames, tc.dns) {
				t.Errorf("DNS names %v, want %v", cert.DNSNames, tc.dns)
			}
			var ips []string
			for _, ip := range cert.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tc.ips) {
				t.Errorf("IPs %v, want %v", ips, tc.ips)
			}
			if !slices.Equal(cert.ExtKeyUsage, tc.usages) {
				t.Errorf("extended key usages %v, want %v", cert.ExtKeyUsage, tc.usages)
			}
			if cert.IsCA || cert.PublicKeyAlgorithm != x509.ECDSA {
				t.Errorf("IsCA=%v algorithm %v", cert.IsCA, cert.PublicKeyAlgorithm)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: tc.usages}); err != nil {
				t.Errorf("does not verify against the CA: %v", err)
			}
			if d := cert.NotAfter.Sub(cert.NotBefore); d < 364*24*time.Hour || d > 366*24*time.Hour {
				t.Errorf("valid for %s, want a year", d)
			}
		})
	}
}

func TestGenerateCert_Refusals(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	leafPEM, leafKey, err := GenerateCert(CertOptions{Role: RoleServer, CACert: ca.cert, CAKey: ca.key})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		o    CertOptions
		want string
	}{
		{"unknown role", CertOptions{Role: "admin", CACert: ca.cert, CAKey: ca.key}, "want server, client or cli"},
		{"key of another CA", CertOptions{Role: RoleServer, CACert: ca.cert, CAKey: other.key}, "does not belong"},
		{"not PEM", CertOptions{Role: RoleServer, CACert: []byte("junk"), CAKey: ca.key}, "no PEM CERTIFICATE"},
		{"a leaf as CA", CertOptions{Role: RoleServer, CACert: leafPEM, CAKey: leafKey}, "is not a CA"},
		{"negative days", CertOptions{Role: RoleServer, CACert: ca.cert, CAKey: ca.key, Days: -1}, "positive number of days"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := GenerateCert(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestConfigurator_PeerRoleFromSANs(t *testing.T) {
	ca := newTestCA(t)
	srv := ca.configurator(t, RoleServer, nil)
	for _, role := range []Role{RoleServer, RoleClient, RoleCLI} {
		t.Run(string(role), func(t *testing.T) {
			peer := ca.configurator(t, role, nil)
			if peer.OwnRole() != role {
				t.Fatalf("own role %s, want %s", peer.OwnRole(), role)
			}
			state, serr, cerr := handshake(t, srv.IncomingRPC(), peer.OutgoingRPC())
			if serr != nil || cerr != nil {
				t.Fatalf("handshake: server %v, client %v", serr, cerr)
			}
			if got := srv.PeerRole(state); got != role {
				t.Fatalf("PeerRole = %s, want %s", got, role)
			}
			if got, want := srv.PeerName(state), role.Name("global", "drover"); got != want {
				t.Fatalf("PeerName = %q, want %q", got, want)
			}
		})
	}
	t.Run("another region", func(t *testing.T) {
		east := ca.configurator(t, RoleServer, func(c *Config) { c.Region = "east" })
		if east.OwnRole() != RoleNone {
			t.Fatalf("a server.global.drover certificate has role %s in region east", east.OwnRole())
		}
		state, serr, cerr := handshake(t, east.IncomingRPC(), srv.OutgoingRPC())
		if serr != nil {
			t.Fatalf("server: %v", serr)
		}
		// The dialer wants server.global.drover; east's certificate is
		// one, so only the role check on the accepting side differs.
		if cerr != nil {
			t.Fatalf("client: %v", cerr)
		}
		if got := east.PeerRole(state); got != RoleNone {
			t.Fatalf("PeerRole of a global certificate in region east = %s, want none", got)
		}
	})
	t.Run("no verified chain", func(t *testing.T) {
		if got := srv.PeerRole(tls.ConnectionState{}); got != RoleNone {
			t.Fatalf("PeerRole of an unverified connection = %s", got)
		}
	})
}

func TestConfigurator_WrongCARejected(t *testing.T) {
	ca := newTestCA(t)
	stranger := newTestCA(t)
	srv := ca.configurator(t, RoleServer, nil)
	client := ca.configurator(t, RoleClient, nil)
	foreign := stranger.configurator(t, RoleServer, nil)

	t.Run("incoming RPC refuses a foreign client certificate", func(t *testing.T) {
		_, serr, _ := handshake(t, srv.IncomingRPC(), foreign.OutgoingRPC())
		if serr == nil {
			t.Fatal("a certificate of another CA was accepted")
		}
	})
	t.Run("outgoing RPC refuses a foreign server", func(t *testing.T) {
		_, _, cerr := handshake(t, foreign.IncomingRPC(), client.OutgoingRPC())
		if cerr == nil || !strings.Contains(cerr.Error(), "not valid for this cluster") {
			t.Fatalf("client err = %v, want a refusal of the server's certificate", cerr)
		}
	})
	t.Run("incoming RPC refuses no certificate", func(t *testing.T) {
		_, serr, _ := handshake(t, srv.IncomingRPC(), &tls.Config{InsecureSkipVerify: true})
		if serr == nil {
			t.Fatal("a client without a certificate was accepted")
		}
	})
	t.Run("incoming HTTPS with verify_https_client refuses no certificate", func(t *testing.T) {
		_, serr, cerr := handshake(t, srv.IncomingHTTPS(), &tls.Config{InsecureSkipVerify: true})
		if serr == nil || cerr == nil || !strings.Contains(cerr.Error(), "certificate") {
			t.Fatalf("server %v, client %v: want the handshake refused for a missing certificate", serr, cerr)
		}
	})
	t.Run("incoming HTTPS without verify_https_client takes no certificate", func(t *testing.T) {
		open := ca.configurator(t, RoleServer, func(c *Config) { c.VerifyHTTPSClient = false })
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(ca.cert)
		_, serr, cerr := handshake(t, open.IncomingHTTPS(), &tls.Config{RootCAs: roots, ServerName: "localhost"})
		if serr != nil || cerr != nil {
			t.Fatalf("server %v, client %v", serr, cerr)
		}
	})
}

func TestConfigurator_ExpiredRejected(t *testing.T) {
	ca := newTestCA(t)
	srv := ca.configurator(t, RoleServer, nil)
	old := func(o *CertOptions) { o.Now = time.Now().Add(-72 * time.Hour); o.Days = 1 }

	t.Run("at load", func(t *testing.T) {
		certFile, keyFile := ca.issue(t, RoleServer, old)
		_, err := NewConfigurator(Config{CAFile: ca.certFile, CertFile: certFile, KeyFile: keyFile})
		if err == nil || !strings.Contains(err.Error(), "not now") {
			t.Fatalf("err = %v, want the expired certificate refused", err)
		}
	})
	t.Run("a peer's", func(t *testing.T) {
		// Build the expired peer's config by hand: NewConfigurator
		// refuses to load it.
		certFile, keyFile := ca.issue(t, RoleClient, old)
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(ca.cert)
		_, serr, _ := handshake(t, srv.IncomingRPC(), &tls.Config{RootCAs: roots, ServerName: "server.global.drover", Certificates: []tls.Certificate{pair}})
		if serr == nil {
			t.Fatal("an expired client certificate was accepted")
		}
		expiredSrv := &tls.Config{Certificates: []tls.Certificate{pair}}
		client := ca.configurator(t, RoleClient, nil)
		_, _, cerr := handshake(t, expiredSrv, client.OutgoingHTTPS())
		if cerr == nil {
			t.Fatal("an expired server certificate was accepted")
		}
	})
}

func TestConfigurator_VerifyServerHostname(t *testing.T) {
	ca := newTestCA(t)
	// A client certificate listening where a server should be.
	impostor := ca.configurator(t, RoleClient, nil)
	cases := []struct {
		name   string
		verify bool
		ok     bool
	}{
		{"verified", true, false},
		{"CA only", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dialer := ca.configurator(t, RoleClient, func(c *Config) { c.VerifyServerHostname = tc.verify })
			_, _, cerr := handshake(t, impostor.IncomingRPC(), dialer.OutgoingRPC())
			if tc.ok && cerr != nil {
				t.Fatalf("handshake: %v", cerr)
			}
			if !tc.ok && (cerr == nil || !strings.Contains(cerr.Error(), "want server.global.drover")) {
				t.Fatalf("err = %v, want the client certificate refused as a server", cerr)
			}
		})
	}
	t.Run("outgoing HTTPS refuses a cli certificate", func(t *testing.T) {
		cli := ca.configurator(t, RoleCLI, nil)
		pair, err := tls.LoadX509KeyPair(ca.issue(t, RoleCLI, nil))
		if err != nil {
			t.Fatal(err)
		}
		_, _, cerr := handshake(t, &tls.Config{Certificates: []tls.Certificate{pair}}, cli.OutgoingHTTPS())
		// A cli certificate cannot serve at all (no ServerAuth usage).
		if cerr == nil {
			t.Fatal("a cli certificate was accepted as an agent")
		}
	})
}

func TestConfigurator_Reload(t *testing.T) {
	ca := newTestCA(t)
	certFile, keyFile := ca.issue(t, RoleServer, nil)
	conf, err := NewConfigurator(Config{CAFile: ca.certFile, CertFile: certFile, KeyFile: keyFile, VerifyServerHostname: true})
	if err != nil {
		t.Fatal(err)
	}
	client := ca.configurator(t, RoleClient, nil)
	serial := func() string {
		t.Helper()
		_, serr, cerr := handshake(t, conf.IncomingRPC(), client.OutgoingRPC())
		if serr != nil || cerr != nil {
			t.Fatalf("handshake: server %v, client %v", serr, cerr)
		}
		return conf.material.Load().leaf.SerialNumber.String()
	}
	first := serial()
	incoming := conf.IncomingRPC() // built before the reload, used after

	t.Run("swaps", func(t *testing.T) {
		newCert, newKey := ca.issue(t, RoleServer, nil)
		copyFile(t, newCert, certFile)
		copyFile(t, newKey, keyFile)
		if err := conf.Reload(); err != nil {
			t.Fatal(err)
		}
		if got := serial(); got == first {
			t.Fatal("the reload kept the old certificate")
		}
		sc, cc := net.Pipe()
		defer sc.Close()
		defer cc.Close()
		go func() { _ = tls.Server(sc, incoming).Handshake() }()
		c := tls.Client(cc, client.OutgoingRPC())
		if err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		want, _ := ParseCertificate(mustRead(t, newCert))
		if got := c.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(want.SerialNumber) != 0 {
			t.Fatalf("a config built before the reload presents serial %s, want the new %s", got, want.SerialNumber)
		}
	})
	t.Run("a bad reload keeps the old material", func(t *testing.T) {
		before := conf.material.Load()
		stranger := newTestCA(t)
		foreignCert, foreignKey := stranger.issue(t, RoleServer, nil)
		cases := []struct {
			name       string
			cert, key  string
			wantErrSub string
		}{
			{"garbage certificate", writeTemp(t, "not a certificate"), keyFile, "cert_file"},
			{"key of another certificate", certFile, foreignKey, "cert_file"},
			{"certificate of another CA", foreignCert, foreignKey, "is not signed by the CA"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				saveCert, saveKey := mustRead(t, certFile), mustRead(t, keyFile)
				defer func() { writeFile(t, certFile, saveCert); writeFile(t, keyFile, saveKey) }()
				copyFile(t, tc.cert, certFile)
				copyFile(t, tc.key, keyFile)
				err := conf.Reload()
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSub) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErrSub)
				}
				if conf.material.Load() != before {
					t.Fatal("a failed reload replaced the material")
				}
				serial()
			})
		}
		if err := os.Remove(ca.certFile); err != nil {
			t.Fatal(err)
		}
		if err := conf.Reload(); err == nil || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("reload without the CA file: %v", err)
		}
		if conf.material.Load() != before {
			t.Fatal("a failed reload replaced the material")
		}
	})
}

func TestNewConfigurator_Errors(t *testing.T) {
	ca := newTestCA(t)
	certFile, keyFile := ca.issue(t, RoleServer, nil)
	_, otherKey := ca.issue(t, RoleServer, nil)
	cases := []struct {
		name string
		c    Config
		want string
	}{
		{"nothing set", Config{}, "ca_file, cert_file, key_file not set"},
		{"no key", Config{CAFile: ca.certFile, CertFile: certFile}, "key_file not set"},
		{"missing CA file", Config{CAFile: filepath.Join(t.TempDir(), "nope.pem"), CertFile: certFile, KeyFile: keyFile}, "tls ca_file"},
		{"CA file not PEM", Config{CAFile: writeTemp(t, "hello"), CertFile: certFile, KeyFile: keyFile}, "holds no PEM CERTIFICATE"},
		{"mismatched key", Config{CAFile: ca.certFile, CertFile: certFile, KeyFile: otherKey}, "private key does not match"},
		{"wrong role", Config{CAFile: ca.certFile, CertFile: certFile, KeyFile: keyFile, Roles: []Role{RoleClient}},
			"is server.global.drover, but this agent needs a client certificate (client.global.drover)"},
		{"wrong region", Config{CAFile: ca.certFile, CertFile: certFile, KeyFile: keyFile, Region: "east", Roles: []Role{RoleServer}},
			"needs a server certificate (server.east.drover): make one with drover tls cert create -server -region east"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewConfigurator(tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	writeFile(t, to, mustRead(t, from))
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "file.pem")
	writeFile(t, p, []byte(content))
	return p
}
