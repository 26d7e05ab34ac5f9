package command

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/tlsutil"
)

func newTLSCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "Create the CA and certificates for mTLS between agents and the CLI",
		Long: `Create the certificate authority and the certificates a closed cluster
uses for mutual TLS:

  drover tls ca create                  once, keep the key offline
  drover tls cert create -server        for server agents
  drover tls cert create -client        for client agents
  drover tls cert create -cli           for operators' CLI

Servers hold server.<region>.drover, clients client.<region>.drover and
the CLI cli.<region>.drover; servers let only server certificates speak
Raft and call every RPC endpoint, and client certificates call the
client endpoints only. Files are written to the current directory.`,
	}
	ca := &cobra.Command{Use: "ca", Short: "Create a certificate authority"}
	ca.AddCommand(newTLSCACreateCommand(g))
	cert := &cobra.Command{Use: "cert", Short: "Create certificates signed by the CA"}
	cert.AddCommand(newTLSCertCreateCommand(g))
	cmd.AddCommand(ca, cert)
	return cmd
}

func newTLSCACreateCommand(g *globals) *cobra.Command {
	var (
		days       int
		domain     string
		commonName string
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a CA: <domain>-agent-ca.pem and <domain>-agent-ca-key.pem",
		Long: `Create a self-signed certificate authority (ECDSA P-256) in the current
directory: drover-agent-ca.pem (give it to every agent and CLI as the CA
file) and drover-agent-ca-key.pem (mode 0600; needed only to make
certificates: keep it off the agents).

An existing CA is never overwritten: every certificate it signed would
stop working.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if days <= 0 {
				return fmt.Errorf("-days %d: want a positive number of days", days)
			}
			certFile, keyFile := caFileNames(domain)
			for _, f := range []string{certFile, keyFile} {
				if _, err := os.Stat(f); err == nil {
					return fmt.Errorf("%s already exists in the current directory: refusing to overwrite a CA (every certificate it signed would stop working); move it away or run in another directory", f)
				}
			}
			certPEM, keyPEM, err := tlsutil.GenerateCA(tlsutil.CAOptions{Days: days, Domain: domain, CommonName: commonName})
			if err != nil {
				return err
			}
			if err := writeNewFile(keyFile, keyPEM, 0o600); err != nil {
				return err
			}
			if err := writeNewFile(certFile, certPEM, 0o644); err != nil {
				os.Remove(keyFile)
				return err
			}
			ca, err := tlsutil.ParseCertificate(certPEM)
			if err != nil {
				return err
			}
			g.ui.Printf("==> Saved %s (CA %q, valid until %s)\n", certFile, ca.Subject.CommonName, ca.NotAfter.UTC().Format(time.DateOnly))
			g.ui.Printf("==> Saved %s (mode 0600; keep it off the agents)\n", keyFile)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&days, "days", tlsutil.DefaultCADays, "days the CA is valid")
	f.StringVar(&domain, "domain", tlsutil.DefaultDomain, "domain of the cluster's certificate names (<role>.<region>.<domain>)")
	f.StringVar(&commonName, "common-name", "", "common name of the CA (default \"Drover Agent CA <serial>\")")
	return cmd
}

// caFileNames are the CA's files for a domain.
func caFileNames(domain string) (certFile, keyFile string) {
	return domain + "-agent-ca.pem", domain + "-agent-ca-key.pem"
}

func newTLSCertCreateCommand(g *globals) *cobra.Command {
	var (
		server, client, cli bool
		dc, region, domain  string
		days                int
		caFile, keyFile     string
		dnsNames, ips       []string
	)
	cmd := &cobra.Command{
		Use:   "create -server|-client|-cli",
		Short: "Create a server, client or cli certificate signed by the CA",
		Long: `Create a certificate and its key (ECDSA P-256), signed by the CA in the
current directory, as <dc>-<role>-drover-<n>.pem and
<dc>-<role>-drover-<n>-key.pem with n the first unused number
(dc1-server-drover-0.pem, then dc1-server-drover-1.pem, ...).

Names in the certificate:
  -server   server.<region>.drover, localhost, 127.0.0.1
  -client   client.<region>.drover, localhost, 127.0.0.1
  -cli      cli.<region>.drover, localhost
plus every -additional-dnsname and -additional-ipaddress. The CLI checks
the name of the agent it dials: add the addresses agents are reached at,
or pass -tls-server-name server.<region>.drover to the CLI.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var roles []tlsutil.Role
			for _, r := range []struct {
				set  bool
				role tlsutil.Role
			}{{server, tlsutil.RoleServer}, {client, tlsutil.RoleClient}, {cli, tlsutil.RoleCLI}} {
				if r.set {
					roles = append(roles, r.role)
				}
			}
			if len(roles) != 1 {
				return errors.New("give exactly one of -server, -client or -cli")
			}
			role := roles[0]
			if days <= 0 {
				return fmt.Errorf("-days %d: want a positive number of days", days)
			}
			if dc == "" || region == "" || domain == "" {
				return errors.New("-dc, -region and -domain must not be empty")
			}
			var ipList []net.IP
			for _, s := range ips {
				ip := net.ParseIP(s)
				if ip == nil {
					return fmt.Errorf("-additional-ipaddress %q is not an IP address", s)
				}
				ipList = append(ipList, ip)
			}
			defCA, defKey := caFileNames(domain)
			if !cmd.Flags().Changed("ca") {
				caFile = defCA
			}
			if !cmd.Flags().Changed("key") {
				keyFile = defKey
			}
			caPEM, err := os.ReadFile(caFile)
			if err != nil {
				return fmt.Errorf("read the CA certificate (-ca): %w; create one with drover tls ca create", err)
			}
			caKeyPEM, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("read the CA key (-key): %w", err)
			}
			certPEM, keyPEM, err := tlsutil.GenerateCert(tlsutil.CertOptions{
				Role: role, Region: region, Domain: domain, Days: days,
				CACert: caPEM, CAKey: caKeyPEM, DNSNames: dnsNames, IPAddresses: ipList,
			})
			if err != nil {
				return err
			}
			certOut, keyOut, err := writeCertPair(fmt.Sprintf("%s-%s-%s", dc, role, domain), certPEM, keyPEM)
			if err != nil {
				return err
			}
			cert, err := tlsutil.ParseCertificate(certPEM)
			if err != nil {
				return err
			}
			ca, err := tlsutil.ParseCertificate(caPEM)
			if err != nil {
				return err
			}
			var ipNames []string
			for _, ip := range cert.IPAddresses {
				ipNames = append(ipNames, ip.String())
			}
			g.ui.Printf("==> Using CA %s and key %s\n", caFile, keyFile)
			g.ui.Printf("==> Saved %s (%s certificate; DNS names: %s; IP addresses: %s; valid until %s)\n",
				certOut, role, strings.Join(cert.DNSNames, ", "), orNone(strings.Join(ipNames, ", ")), cert.NotAfter.UTC().Format(time.DateOnly))
			g.ui.Printf("==> Saved %s (mode 0600)\n", keyOut)
			if cert.NotAfter.After(ca.NotAfter) {
				g.ui.Printf("==> WARNING: the CA expires on %s, before this certificate: it stops verifying then\n", ca.NotAfter.UTC().Format(time.DateOnly))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&server, "server", false, "a server certificate (server.<region>.<domain>)")
	f.BoolVar(&client, "client", false, "a client agent certificate (client.<region>.<domain>)")
	f.BoolVar(&cli, "cli", false, "a CLI certificate (cli.<region>.<domain>)")
	f.StringVar(&dc, "dc", "dc1", "datacenter, the first part of the file names")
	f.StringVar(&region, "region", tlsutil.DefaultRegion, "region of the cluster, the <region> of the certificate name")
	f.StringVar(&domain, "domain", tlsutil.DefaultDomain, "domain of the certificate name")
	f.IntVar(&days, "days", tlsutil.DefaultCertDays, "days the certificate is valid")
	f.StringVar(&caFile, "ca", "drover-agent-ca.pem", "CA certificate")
	f.StringVar(&keyFile, "key", "drover-agent-ca-key.pem", "CA private key")
	f.StringArrayVar(&dnsNames, "additional-dnsname", nil, "another DNS name for the certificate (repeatable)")
	f.StringArrayVar(&ips, "additional-ipaddress", nil, "another IP address for the certificate (repeatable)")
	return cmd
}

// writeCertPair writes <prefix>-<n>.pem and <prefix>-<n>-key.pem for the
// first n for which neither file exists, and returns their names.
func writeCertPair(prefix string, certPEM, keyPEM []byte) (string, string, error) {
	for n := 0; n < 10000; n++ {
		certFile := fmt.Sprintf("%s-%d.pem", prefix, n)
		keyFile := fmt.Sprintf("%s-%d-key.pem", prefix, n)
		if exists(certFile) || exists(keyFile) {
			continue
		}
		if err := writeNewFile(keyFile, keyPEM, 0o600); err != nil {
			if errors.Is(err, os.ErrExist) {
				continue // another run took this number meanwhile
			}
			return "", "", err
		}
		if err := writeNewFile(certFile, certPEM, 0o644); err != nil {
			os.Remove(keyFile)
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return "", "", err
		}
		return certFile, keyFile, nil
	}
	return "", "", fmt.Errorf("%s-0.pem to %s-9999.pem all exist", prefix, prefix)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// writeNewFile creates path with data and mode, failing (os.ErrExist)
// rather than overwriting an existing file.
func writeNewFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
