package tlsutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Defaults of the certificate tooling.
const (
	// DefaultDomain is the last label of every role name.
	DefaultDomain = "drover"
	// DefaultRegion is the region of an agent that sets none.
	DefaultRegion = "global"
	// DefaultCADays is how long a CA is valid (five years).
	DefaultCADays = 1825
	// DefaultCertDays is how long a role certificate is valid.
	DefaultCertDays = 365
)

// clockSkew backdates NotBefore so that a certificate made on one
// machine is already valid on another whose clock is a little behind.
const clockSkew = time.Minute

// Role is what a certificate lets its holder be in the cluster.
type Role string

// Roles, from the DNS names of a certificate.
const (
	// RoleNone is a peer without a verified certificate of a known role.
	RoleNone Role = "none"
	// RoleServer holds server.<region>.drover: Raft, forwarding and
	// every RPC endpoint.
	RoleServer Role = "server"
	// RoleClient holds client.<region>.drover: the client endpoints
	// only.
	RoleClient Role = "client"
	// RoleCLI holds cli.<region>.drover: the HTTP API only.
	RoleCLI Role = "cli"
)

// Name is the DNS name a certificate of the role carries, e.g.
// server.global.drover.
func (r Role) Name(region, domain string) string {
	return string(r) + "." + region + "." + domain
}

// CAOptions configure GenerateCA. Zero fields take the defaults.
type CAOptions struct {
	// Days the CA is valid (DefaultCADays).
	Days int
	// Domain names the CA in its default common name (DefaultDomain).
	Domain string
	// CommonName of the CA (default "Drover Agent CA <serial>").
	CommonName string
	// Now is the issue time (time.Now); tests set it.
	Now time.Time
}

// GenerateCA makes a self-signed ECDSA P-256 CA and returns its
// certificate and private key as PEM.
func GenerateCA(o CAOptions) (certPEM, keyPEM []byte, err error) {
	if o.Days == 0 {
		o.Days = DefaultCADays
	}
	if o.Days < 0 {
		return nil, nil, fmt.Errorf("CA validity of %d days: want a positive number of days", o.Days)
	}
	if o.Domain == "" {
		o.Domain = DefaultDomain
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	cn := o.CommonName
	if cn == "" {
		cn = fmt.Sprintf("Drover Agent CA %x", serial.Bytes()[:8])
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{o.Domain}},
		NotBefore:             o.Now.Add(-clockSkew),
		NotAfter:              o.Now.AddDate(0, 0, o.Days),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The CA signs leaf certificates only, never another CA.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// CertOptions configure GenerateCert. Zero fields take the defaults.
type CertOptions struct {
	// Role is RoleServer, RoleClient or RoleCLI.
	Role Role
	// Region and Domain make the role name (DefaultRegion,
	// DefaultDomain).
	Region string
	Domain string
	// Days the certificate is valid (DefaultCertDays).
	Days int
	// CACert and CAKey are the signing CA's PEM certificate and key.
	CACert []byte
	CAKey  []byte
	// DNSNames and IPAddresses are added to the role's own names.
	DNSNames    []string
	IPAddresses []net.IP
	// Now is the issue time (time.Now); tests set it.
	Now time.Time
}

// GenerateCert makes an ECDSA P-256 certificate of a role, signed by the
// CA, and returns it and its private key as PEM. Its names are the role
// name and localhost, plus 127.0.0.1 for servers and clients (so local
// agents reach each other by IP), plus the additional ones. Server and
// client certificates serve and dial (ServerAuth and ClientAuth: a
// client agent serves its HTTPS API and dials the servers); cli
// certificates only dial.
func GenerateCert(o CertOptions) (certPEM, keyPEM []byte, err error) {
	var usage []x509.ExtKeyUsage
	switch o.Role {
	case RoleServer, RoleClient:
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	case RoleCLI:
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		return nil, nil, fmt.Errorf("certificate role %q: want server, client or cli", o.Role)
	}
	if o.Region == "" {
		o.Region = DefaultRegion
	}
	if o.Domain == "" {
		o.Domain = DefaultDomain
	}
	if o.Days == 0 {
		o.Days = DefaultCertDays
	}
	if o.Days < 0 {
		return nil, nil, fmt.Errorf("certificate validity of %d days: want a positive number of days", o.Days)
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	caCert, caKey, err := ParseCA(o.CACert, o.CAKey)
	if err != nil {
		return nil, nil, err
	}
	name := o.Role.Name(o.Region, o.Domain)
	dns := uniqueStrings(append([]string{name, "localhost"}, o.DNSNames...))
	var ips []net.IP
	if o.Role != RoleCLI {
		ips = append(ips, net.IPv4(127, 0, 0, 1))
	}
	ips = uniqueIPs(append(ips, o.IPAddresses...))

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             o.Now.Add(-clockSkew),
		NotAfter:              o.Now.AddDate(0, 0, o.Days),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usage,
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign %s certificate: %w", o.Role, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// ParseCA parses a CA's PEM certificate and private key and checks that
// they belong together and that the certificate is a CA.
func ParseCA(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, nil, fmt.Errorf("CA certificate %q is not a CA (basic constraints CA:FALSE)", cert.Subject.CommonName)
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, nil, errors.New("the CA key does not belong to the CA certificate")
	}
	return cert, key, nil
}

// ParseCertificate returns the first certificate of a PEM file.
func ParseCertificate(certPEM []byte) (*x509.Certificate, error) {
	for rest := certPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM CERTIFICATE block found")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		return cert, nil
	}
}

// parsePrivateKey reads the first private key of a PEM file: SEC 1 EC,
// PKCS #8 or PKCS #1 RSA, so that a CA made by other tools also signs.
func parsePrivateKey(keyPEM []byte) (crypto.Signer, error) {
	for rest := keyPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key block found")
		}
		switch block.Type {
		case "EC PRIVATE KEY":
			return x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			return x509.ParsePKCS1PrivateKey(block.Bytes)
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("a %T key cannot sign", k)
			}
			return s, nil
		}
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// randomSerial returns a random 128-bit serial number: unique without
// any state kept between runs of the tool.
func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	// Never zero, and never so small that Bytes() is short.
	return n.SetBit(n, 127, 1), nil
}

func uniqueStrings(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := in[:0:0]
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func uniqueIPs(in []net.IP) []net.IP {
	seen := make(map[string]bool, len(in))
	var out []net.IP
	for _, ip := range in {
		if ip == nil || seen[ip.String()] {
			continue
		}
		seen[ip.String()] = true
		out = append(out, ip)
	}
	return out
}
