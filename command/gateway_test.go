package command

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestGatewayCommand_Routes(t *testing.T) {
	var tokens []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokens = append(tokens, r.Header.Get("X-Drover-Token"))
		if r.URL.Path != "/v1/client/gateway" {
			w.WriteHeader(404)
			w.Write([]byte(`{"Code":"not_found","Error":"no such endpoint"}`))
			return
		}
		w.Write([]byte(`{"Listeners":[{"Kind":"http","Address":"0.0.0.0:80"}],"Certificates":[],"Routes":[
			{"Namespace":"default","Service":"shop","Host":"shop.test","Path":"/api","Backends":[
				{"Address":"10.0.0.1:20000","Active":0,"Requests":7,"Failures":0},
				{"Address":"10.0.0.2:20001","Canary":true,"Active":0,"Requests":1,"Failures":0}],"CanaryWeight":20,"Requests":8,"Errors":0},
			{"Namespace":"team","Service":"any","Path":"/","Backends":[],"Requests":0,"Errors":0}]}`))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"table", []string{"gateway", "routes"}, []string{"Listening (http): 0.0.0.0:80", "HOST", "PATH", "SERVICE", "NAMESPACE", "BACKENDS", "REQUESTS",
			"shop.test", "/api", "shop", "default", "2 (1 canary, 20%)", "8", "*"}},
		{"json", []string{"gateway", "routes", "-json"}, []string{`"Service":"shop"`, `"CanaryWeight":20`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := aclCLI(append([]string{"-address", srv.URL, "-token", "secret"}, tc.args...)...)
			if code != ExitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Fatalf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if len(tokens) == 0 || tokens[0] != "secret" {
		t.Fatalf("tokens sent: %q", tokens)
	}
}

func TestGatewayCommand_GatewayOff(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404)
		w.Write([]byte(`{"Code":"not_found","Error":"the ingress gateway is off on this agent (turn it on with gateway { enabled = true } or -gateway)"}`))
	}))
	defer srv.Close()
	code, _, errOut := aclCLI("-address", srv.URL, "gateway", "routes")
	if code == ExitOK || !strings.Contains(errOut, "the ingress gateway is off") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestAgentFlags_Gateway(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		enabled   bool
		httpPort  int
		httpsPort int
	}{
		{nil, false, 80, 443},
		{[]string{"--gateway"}, true, 80, 443},
		{[]string{"--gateway", "--gateway-http-port", "8080", "--gateway-https-port", "8443"}, true, 8080, 8443},
	} {
		var f agentFlags
		f.httpMaxConnsPerClient, f.rpcMaxConnsPerClient, f.dnsPort = -1, -1, -1
		cmd := &cobra.Command{}
		fl := cmd.Flags()
		fl.BoolVar(&f.gateway, "gateway", false, "")
		fl.IntVar(&f.gatewayHTTPPort, "gateway-http-port", 0, "")
		fl.IntVar(&f.gatewayHTTPSPort, "gateway-https-port", 0, "")
		fl.Bool("tls-verify-server-hostname", true, "")
		fl.Bool("tls-verify-https-client", false, "")
		if err := fl.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		f.dev = true
		cfg, err := f.config(cmd)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		h, s := cfg.GatewayPorts()
		if cfg.GatewayEnabled() != tc.enabled || h != tc.httpPort || s != tc.httpsPort {
			t.Fatalf("%v: enabled %v ports %d %d", tc.args, cfg.GatewayEnabled(), h, s)
		}
	}
}
