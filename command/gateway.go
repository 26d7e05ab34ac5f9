package command

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func newGatewayCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Inspect a client agent's HTTP ingress gateway: routes",
		Long: `A client agent started with -gateway (gateway { enabled = true }) sends
HTTP requests to the passing instances of the services whose route blocks
match their host and path. These commands read the live table of the
agent at -address (GET /v1/client/gateway, agent:read with ACLs on).

  drover gateway routes                      the agent's routing table
  drover -address http://10.0.0.5:4646 gateway routes -json`,
	}
	cmd.AddCommand(newGatewayRoutesCommand(g))
	return cmd
}

// gatewayStatus mirrors the agent's GET /v1/client/gateway answer (the
// command package does not import client/gateway).
type gatewayStatus struct {
	Listeners []struct {
		Kind    string
		Address string
	}
	Certificates []string
	Routes       []gatewayRoute
}

type gatewayRoute struct {
	Namespace    string
	Service      string
	Host         string `json:",omitempty"`
	Path         string
	StripPrefix  bool   `json:",omitempty"`
	HTTPSOnly    bool   `json:",omitempty"`
	CertName     string `json:",omitempty"`
	CanaryWeight int    `json:",omitempty"`
	Backends     []struct {
		Address  string
		Canary   bool `json:",omitempty"`
		Active   int64
		Requests uint64
		Failures uint64
	}
	Requests uint64
	Errors   uint64
}

func newGatewayRoutesCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "routes [-json]",
		Short: "Print the gateway's live routing table",
		Long: `Print the routing table of the gateway on the agent at -address: each
route's host ("*" for any host), path prefix, service and namespace, its
passing backends (canaries counted apart) and the requests it answered.

  drover gateway routes
  drover gateway routes -json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := getAgentJSON(g, "/v1/client/gateway")
			if err != nil {
				return err
			}
			if asJSON {
				g.ui.Printf("%s\n", strings.TrimSpace(string(raw)))
				return nil
			}
			var st gatewayStatus
			if err := json.Unmarshal(raw, &st); err != nil {
				return fmt.Errorf("decode the gateway's status: %w", err)
			}
			for _, l := range st.Listeners {
				g.ui.Printf("Listening (%s): %s\n", l.Kind, l.Address)
			}
			if len(st.Routes) == 0 {
				g.ui.Printf("No routes\n")
				return nil
			}
			rows := [][]string{{"HOST", "PATH", "SERVICE", "NAMESPACE", "BACKENDS", "REQUESTS"}}
			for _, r := range st.Routes {
				host := r.Host
				if host == "" {
					host = "*"
				}
				canary := 0
				for _, b := range r.Backends {
					if b.Canary {
						canary++
					}
				}
				backends := strconv.Itoa(len(r.Backends))
				if canary > 0 {
					backends += fmt.Sprintf(" (%d canary, %d%%)", canary, r.CanaryWeight)
				}
				rows = append(rows, []string{host, r.Path, r.Service, r.Namespace, backends, strconv.FormatUint(r.Requests, 10)})
			}
			printTable(g.ui, rows)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// getAgentJSON GETs an agent's own endpoint (path) at -address with the
// token and TLS settings of the other commands, and returns the body
// of a 2xx answer. The api package has no method for the client
// agents' own endpoints.
func getAgentJSON(g *globals, path string) ([]byte, error) {
	addr := g.address
	if addr == "" {
		addr = os.Getenv("DROVER_ADDR")
	}
	if addr == "" {
		addr = api.DefaultAddress
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	tr := &http.Transport{Proxy: nil}
	if strings.HasPrefix(addr, "https://") {
		tc, err := agentTLSConfig(g.tls)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = tc
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, strings.TrimSuffix(addr, "/")+path, nil)
	if err != nil {
		return nil, fmt.Errorf("invalid agent address %q: %w", addr, err)
	}
	token := g.token
	if token == "" {
		token = os.Getenv("DROVER_TOKEN")
	}
	if token != "" {
		req.Header.Set("X-Drover-Token", token)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb struct{ Error string }
		if json.Unmarshal(raw, &eb) == nil && eb.Error != "" {
			return nil, fmt.Errorf("%s (HTTP %d)", eb.Error, resp.StatusCode)
		}
		return nil, fmt.Errorf("GET %s: HTTP %d: %s", path, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	return raw, nil
}

// agentTLSConfig builds the HTTPS client setup from -ca-cert,
// -client-cert, -client-key, -tls-server-name and -tls-skip-verify, or
// their DROVER_* variables.
func agentTLSConfig(t api.TLSConfig) (*tls.Config, error) {
	env := func(v *string, name string) {
		if *v == "" {
			*v = os.Getenv(name)
		}
	}
	env(&t.CACert, "DROVER_CACERT")
	env(&t.ClientCert, "DROVER_CLIENT_CERT")
	env(&t.ClientKey, "DROVER_CLIENT_KEY")
	env(&t.TLSServerName, "DROVER_TLS_SERVER_NAME")
	if v := os.Getenv("DROVER_TLS_SKIP_VERIFY"); v != "" && !t.Insecure {
		t.Insecure, _ = strconv.ParseBool(v)
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.TLSServerName, InsecureSkipVerify: t.Insecure}
	if t.CACert != "" {
		pem, err := os.ReadFile(t.CACert)
		if err != nil {
			return nil, fmt.Errorf("read the CA certificate (-ca-cert, DROVER_CACERT): %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the CA certificate %s (-ca-cert, DROVER_CACERT) holds no PEM certificate", t.CACert)
		}
		conf.RootCAs = pool
	}
	if t.ClientCert != "" || t.ClientKey != "" {
		pair, err := tls.LoadX509KeyPair(t.ClientCert, t.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("load the client certificate %q and key %q (-client-cert, -client-key): %w", t.ClientCert, t.ClientKey, err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	return conf, nil
}
