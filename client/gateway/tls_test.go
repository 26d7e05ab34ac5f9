package gateway

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

// testCA makes a CA and signs leaf certificates with it.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	dir  string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, dir: t.TempDir()}
}

// leaf writes a certificate for names and its key; it returns their
// files.
func (ca *testCA) leaf(t *testing.T, name string, names ...string) Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := Certificate{Name: name, CertFile: filepath.Join(ca.dir, name+".crt"), KeyFile: filepath.Join(ca.dir, name+".key")}
	if err := os.WriteFile(c.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGateway_TLSCertificateBySNI(t *testing.T) {
	ca := newTestCA(t)
	shop := ca.leaf(t, "shop", "shop.example.com")
	blog := ca.leaf(t, "blog", "*.blog.example.com")
	be := startBackend(t, "b1")
	var logs bytes.Buffer
	g := newTestGateway(t, Config{Certificates: []Certificate{shop, blog}, ErrorLog: log.New(&logs, "", 0)})
	g.Update([]*structs.ProxiedService{
		service("shop", []*structs.ServiceRoute{{Host: "shop.example.com", Path: "/", TLS: &structs.RouteTLS{CertName: "shop"}}}, instance(t, be.addr, false)),
		service("blog", []*structs.ServiceRoute{
			{Host: "*.blog.example.com", Path: "/", TLS: &structs.RouteTLS{CertName: "blog"}},
			{Host: "odd.example.com", Path: "/", TLS: &structs.RouteTLS{CertName: "missing"}},
			{Host: "odd2.example.com", Path: "/", TLS: &structs.RouteTLS{CertName: "missing"}},
		}, instance(t, be.addr, false)),
	})
	for _, tc := range []struct {
		sni, wantCN string
		// valid: the served certificate is valid for the name (the
		// default one is not), so the chain is verified too.
		valid bool
	}{
		{"shop.example.com", "shop.example.com", true},
		{"en.blog.example.com", "*.blog.example.com", true},
		{"odd.example.com", "shop.example.com", false}, // unknown name: the default
		{"other.org", "shop.example.com", false},
	} {
		t.Run(tc.sni, func(t *testing.T) {
			conn, err := tls.Dial("tcp", g.HTTPSAddr(), &tls.Config{ServerName: tc.sni, RootCAs: ca.pool, InsecureSkipVerify: !tc.valid})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != tc.wantCN {
				t.Fatalf("SNI %s: served %s, want %s", tc.sni, cn, tc.wantCN)
			}
		})
	}
	if n := strings.Count(logs.String(), `names certificate "missing"`); n != 1 {
		t.Fatalf("unknown certificate logged %d times, want once:\n%s", n, logs.String())
	}

	// A request over HTTPS (HTTP/2) reaches the backend with
	// X-Forwarded-Proto https.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "shop.example.com"},
		ForceAttemptHTTP2: true}, Timeout: 5 * time.Second}
	req, _ := http.NewRequest("GET", "https://"+g.HTTPSAddr()+"/x", nil)
	req.Host = "shop.example.com"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "b1 /x" || resp.ProtoMajor != 2 {
		t.Fatalf("HTTPS: %s HTTP %d %q, want HTTP/2 200", resp.Proto, resp.StatusCode, body)
	}
	if got := be.last().Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Fatalf("X-Forwarded-Proto = %q, want https", got)
	}
}

// TestGateway_ReloadCertificates: a reload (the agent's SIGHUP) serves
// the certificate now in the files; a reload that cannot load them
// keeps the ones in use.
func TestGateway_ReloadCertificates(t *testing.T) {
	ca := newTestCA(t)
	shop := ca.leaf(t, "shop", "shop.example.com")
	g := newTestGateway(t, Config{Certificates: []Certificate{shop}})
	serial := func() string {
		t.Helper()
		conn, err := tls.Dial("tcp", g.HTTPSAddr(), &tls.Config{ServerName: "shop.example.com", RootCAs: ca.pool})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	// The same files, a new certificate (ca.leaf writes name.crt/key).
	ca.leaf(t, "shop", "shop.example.com")
	if err := g.ReloadCertificates(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	renewed := serial()
	if renewed == before {
		t.Fatal("the reloaded certificate is not served")
	}
	if err := os.WriteFile(shop.KeyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.ReloadCertificates(); err == nil || !strings.Contains(err.Error(), `gateway certificate "shop"`) {
		t.Fatalf("reload of a broken key: %v, want an error naming the certificate", err)
	}
	if got := serial(); got != renewed {
		t.Fatal("a failed reload changed the served certificate")
	}
}
