package command

import (
	"bytes"
	"crypto/x509"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/droverhq/drover/tlsutil"
)

// runCLI runs the CLI in the current directory and returns its exit
// code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tlsutil.ParseCertificate(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTLSCACreate_WritesAndRefusesOverwrite(t *testing.T) {
	t.Chdir(t.TempDir())
	code, out, errOut := runCLI(t, "tls", "ca", "create", "-common-name", "Test CA", "-days", "30")
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	for _, f := range []string{"drover-agent-ca.pem", "drover-agent-ca-key.pem"} {
		if !strings.Contains(out, "Saved "+f) {
			t.Errorf("output does not say %s was saved:\n%s", f, out)
		}
	}
	ca := readCert(t, "drover-agent-ca.pem")
	if !ca.IsCA || ca.Subject.CommonName != "Test CA" || ca.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("CA: IsCA=%v CN=%q algorithm %v", ca.IsCA, ca.Subject.CommonName, ca.PublicKeyAlgorithm)
	}
	st, err := os.Stat("drover-agent-ca-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("CA key mode %v, want 0600", st.Mode().Perm())
	}

	before, _ := os.ReadFile("drover-agent-ca-key.pem")
	code, _, errOut = runCLI(t, "tls", "ca", "create")
	if code == 0 || !strings.Contains(errOut, "refusing to overwrite a CA") {
		t.Fatalf("second ca create: exit %d, %q; want a refusal", code, errOut)
	}
	after, _ := os.ReadFile("drover-agent-ca-key.pem")
	if !bytes.Equal(before, after) {
		t.Fatal("the CA key changed")
	}
}

func TestTLSCertCreate_NamesAndNumbering(t *testing.T) {
	t.Chdir(t.TempDir())
	if code, out, errOut := runCLI(t, "tls", "ca", "create"); code != 0 {
		t.Fatalf("ca create: %s%s", out, errOut)
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, "drover-agent-ca.pem"))
	cases := []struct {
		name    string
		args    []string
		file    string
		dns     []string
		ips     []string
		usages  []x509.ExtKeyUsage
		wantKey string
	}{
		{"server", []string{"-server"}, "dc1-server-drover-0.pem", []string{"server.global.drover", "localhost"}, []string{"127.0.0.1"},
			[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, "dc1-server-drover-0-key.pem"},
		{"second server", []string{"-server", "-additional-ipaddress", "127.0.0.5", "-additional-dnsname", "s1.example"}, "dc1-server-drover-1.pem",
			[]string{"server.global.drover", "localhost", "s1.example"}, []string{"127.0.0.1", "127.0.0.5"},
			[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, "dc1-server-drover-1-key.pem"},
		{"client in another dc and region", []string{"-client", "-dc", "east1", "-region", "east"}, "east1-client-drover-0.pem",
			[]string{"client.east.drover", "localhost"}, []string{"127.0.0.1"},
			[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, "east1-client-drover-0-key.pem"},
		{"cli", []string{"-cli"}, "dc1-cli-drover-0.pem", []string{"cli.global.drover", "localhost"}, nil,
			[]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, "dc1-cli-drover-0-key.pem"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"tls", "cert", "create"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s%s", code, out, errOut)
			}
			if !strings.Contains(out, "Saved "+tc.file) || !strings.Contains(out, "Saved "+tc.wantKey) {
				t.Fatalf("output does not name %s and %s:\n%s", tc.file, tc.wantKey, out)
			}
			cert := readCert(t, tc.file)
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
				t.Errorf("usages %v, want %v", cert.ExtKeyUsage, tc.usages)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: tc.usages}); err != nil {
				t.Errorf("does not verify against the CA: %v", err)
			}
			st, err := os.Stat(tc.wantKey)
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("key file: %v, mode %v; want 0600", err, st.Mode().Perm())
			}
		})
	}
}

func TestTLSCertCreate_Refusals(t *testing.T) {
	t.Chdir(t.TempDir())
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no CA yet", []string{"-server"}, "drover tls ca create"},
		{"no role", nil, "exactly one of -server, -client or -cli"},
		{"two roles", []string{"-server", "-client"}, "exactly one of"},
		{"bad IP", []string{"-server", "-additional-ipaddress", "10.0.0.300"}, `"10.0.0.300" is not an IP address`},
		{"zero days", []string{"-cli", "-days", "0"}, "positive number of days"},
		{"a CA that is not a CA", []string{"-server", "-ca", "dc1-server-drover-0.pem", "-key", "dc1-server-drover-0-key.pem"}, "is not a CA"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if i == 1 {
				if code, out, errOut := runCLI(t, "tls", "ca", "create"); code != 0 {
					t.Fatalf("ca create: %s%s", out, errOut)
				}
			}
			if tc.name == "a CA that is not a CA" {
				if code, out, errOut := runCLI(t, "tls", "cert", "create", "-server"); code != 0 {
					t.Fatalf("cert create: %s%s", out, errOut)
				}
			}
			entries, _ := os.ReadDir(".")
			code, _, errOut := runCLI(t, append([]string{"tls", "cert", "create"}, tc.args...)...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want a failure saying %q", code, errOut, tc.want)
			}
			if after, _ := os.ReadDir("."); len(after) != len(entries) {
				t.Fatalf("a refused run wrote files: %d before, %d after", len(entries), len(after))
			}
		})
	}
}
