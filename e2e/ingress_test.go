package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/testutil"
)

// routeJob is a job whose group serves "<body> <alloc ID>" at / and at
// /x, as service `name` with a check and the given route and update
// blocks.
func routeJob(id, image, name, body string, count int, route, update string) string {
	return fmt.Sprintf(`job %q {
  group "g" {
    count = %d
    network {
      port "http" {}
    }
%s
    restart {
      attempts = 5
      delay    = "1s"
    }
    service {
      name = %q
      port = "http"
      check {
        type     = "http"
        path     = "/"
        interval = "1s"
        timeout  = "1s"
      }
      shutdown_delay = "2s"
%s
    }
    task "server" {
      driver = "containerd"
      config {
        image   = %q
        command = "/bin/sh"
        args    = ["-c", "mkdir -p /tmp/www && echo \"%s $DROVER_ALLOC_ID\" > /tmp/www/index.html && cp /tmp/www/index.html /tmp/www/x && exec httpd -f -p $DROVER_PORT_http -h /tmp/www"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
      kill_timeout = "2s"
    }
  }
}
`, id, count, update, name, route, image, body)
}

// gatewayGet sends GET path with Host host to the gateway and returns
// the status and body.
func gatewayGet(c *http.Client, gw, host, path string) (int, string, error) {
	req, err := http.NewRequest("GET", "http://"+gw+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// testCA makes a CA and a certificate for names signed by it, written
// as PEM files in dir; it returns the CA pool and the file paths.
func testCA(t *testing.T, dir string, names ...string) (*x509.CertPool, string, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e ingress CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "shop.pem"), filepath.Join(dir, "shop-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, certFile, keyFile
}

// TestIngress_GatewayRoutesHostsAndPaths is the ingress issue on real
// containerd: jobs api and web behind routes shop.test/api (prefix
// stripped) and shop.test/ on a client's gateway; unknown hosts get
// 404; a route whose only instance stops gets 503; a rolling update and
// a SIGKILL of a web container under a steady stream fail no request;
// a canary with canary_weight = 20 gets 10-30% of 1,000 requests and,
// once promoted, the new version gets them all; HTTPS answers with the
// route's certificate for its SNI name.
func TestIngress_GatewayRoutesHostsAndPaths(t *testing.T) {
	c := newCluster(t)
	pool, certFile, keyFile := testCA(t, t.TempDir(), "shop.test")
	cfg := writeFile(t, "gateway.hcl", fmt.Sprintf(`gateway {
  enabled    = true
  http_port  = 8088
  https_port = 8443
  certificate "shop" {
    cert_file = %q
    key_file  = %q
  }
}
`, certFile, keyFile))
	a := c.startDevAgent("-config", cfg)
	gw := a.host + ":8088"

	apiRoute := `      route {
        host         = "shop.test"
        path         = "/api"
        strip_prefix = true
      }`
	webRoute := func(weight int) string {
		return fmt.Sprintf(`      route {
        host          = "shop.test"
        path          = "/"
        canary_weight = %d
        tls {
          cert = "shop"
        }
      }`, weight)
	}
	rolling := `    update {
      max_parallel      = 1
      min_healthy_time  = "2s"
      healthy_deadline  = "30s"
      progress_deadline = "60s"
    }`
	if res := a.cli("job", "run", writeFile(t, "api.hcl", routeJob("api", c.image, "api", "api", 1, apiRoute, ""))); res.code != 0 {
		t.Fatalf("job run api: %s", res)
	}
	if res := a.cli("job", "run", writeFile(t, "web.hcl", routeJob("web", c.image, "web", "web-v1", 2, webRoute(20), rolling))); res.code != 0 {
		t.Fatalf("job run web: %s", res)
	}
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		code, body, err := gatewayGet(cl, gw, "shop.test", "/api/x")
		return err == nil && code == 200 && strings.HasPrefix(body, "api "), fmt.Errorf("GET shop.test/api/x: %d %q %v", code, body, err)
	})
	// /api/x reaches api with the prefix stripped (httpd serves /x),
	// / reaches web, an unknown host gets 404.
	if code, body, err := gatewayGet(cl, gw, "shop.test", "/"); err != nil || code != 200 || !strings.HasPrefix(body, "web-v1 ") {
		t.Fatalf("GET shop.test/: %d %q %v", code, body, err)
	}
	if code, body, err := gatewayGet(cl, gw, "nosuch.test", "/"); err != nil || code != 404 || !strings.Contains(body, "no route") {
		t.Fatalf("GET nosuch.test/: %d %q %v, want 404 naming no route", code, body, err)
	}

	// HTTPS: the route's certificate for its SNI name, verified against
	// the CA that made it.
	tc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "shop.test"},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, a.host+":8443")
		},
	}}
	resp, err := tc.Get("https://shop.test/")
	if err != nil {
		t.Fatalf("HTTPS GET shop.test: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "web-v1 ") || resp.TLS == nil || resp.TLS.PeerCertificates[0].Subject.CommonName != "shop.test" {
		t.Fatalf("HTTPS GET shop.test: %d %q", resp.StatusCode, b)
	}

	// Steady stream to web: a SIGKILL of one web container and a
	// rolling update fail no request.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			code, body, err := gatewayGet(cl, gw, "shop.test", "/")
			if err != nil || code != 200 || !strings.HasPrefix(body, "web-") {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %q %v", code, body, err))
			} else {
				ok.Add(1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	webAllocs := liveAllocs(t, a, "web")
	kill := exec.Command("ctr", "-a", c.ctrd.Address, "-n", c.ns, "task", "kill", "-s", "KILL", webAllocs[0].ID+"-server")
	if out, err := kill.CombinedOutput(); err != nil {
		t.Fatalf("ctr task kill: %v\n%s", err, out)
	}
	time.Sleep(3 * time.Second)
	if res := a.cli("job", "run", writeFile(t, "web2.hcl", routeJob("web", c.image, "web", "web-v2", 2, webRoute(20), rolling))); res.code != 0 {
		t.Fatalf("rolling update of web: %s", res)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("through the gateway during the kill and the rolling update: %d served, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed (first: %v)", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}

	// A canary with canary_weight = 20: 10-30% of 1,000 requests.
	canary := `    update {
      max_parallel      = 1
      canary            = 1
      min_healthy_time  = "2s"
      healthy_deadline  = "30s"
      progress_deadline = "60s"
    }`
	if res := a.cli("job", "run", "-detach", writeFile(t, "web3.hcl", routeJob("web", c.image, "web", "web-v3", 2, webRoute(20), canary))); res.code != 0 {
		t.Fatalf("job run web v3 with a canary: %s", res)
	}
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		for _, in := range serviceInstances(t, a, "web") {
			if in.Status == "passing" && in.Canary {
				return true, nil
			}
		}
		return false, fmt.Errorf("no passing canary instance of web")
	})
	count := func(n int) map[string]int {
		got := map[string]int{}
		for i := 0; i < n; i++ {
			code, body, err := gatewayGet(cl, gw, "shop.test", "/")
			if err != nil || code != 200 {
				t.Fatalf("request %d: %d %q %v", i, code, body, err)
			}
			got[strings.Fields(body)[0]]++
		}
		return got
	}
	got := count(1000)
	t.Logf("1,000 requests with one canary at weight 20: %v", got)
	if got["web-v3"] < 100 || got["web-v3"] > 300 {
		t.Fatalf("the canary got %d of 1,000 requests, want 100-300", got["web-v3"])
	}
	deps, _, err := a.api.Jobs().Deployments("web", nil)
	if err != nil {
		t.Fatal(err)
	}
	var depID string
	for _, d := range deps {
		if d.Status == "running" {
			depID = d.ID
		}
	}
	if depID == "" {
		t.Fatalf("no running deployment of web: %+v", deps)
	}
	// Promote takes healthy canaries: passing checks for
	// min_healthy_time, which the 1,000 requests may not have lasted.
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		d, _, err := a.api.Deployments().Info(depID, nil)
		if err != nil {
			return false, err
		}
		for name, st := range d.TaskGroups {
			if st.HealthyAllocs < st.DesiredCanaries {
				return false, fmt.Errorf("group %s: %d of %d canaries healthy", name, st.HealthyAllocs, st.DesiredCanaries)
			}
		}
		return true, nil
	})
	if res := a.cli("deployment", "promote", depID); res.code != 0 {
		t.Fatalf("deployment promote: %s", res)
	}
	testutil.WaitFor(t, 90*time.Second, func() (bool, error) {
		d, _, err := a.api.Deployments().Info(depID, nil)
		if err != nil {
			return false, err
		}
		return d.Status == "successful", fmt.Errorf("deployment %s", d.Status)
	})
	testutil.WaitFor(t, 20*time.Second, func() (bool, error) {
		got := count(50)
		return got["web-v3"] == 50, fmt.Errorf("after promote: %v", got)
	})
	if got := count(1000); got["web-v3"] != 1000 {
		t.Fatalf("after promote, 1,000 requests: %v, want all web-v3", got)
	}

	// The route whose only instance stops answers 503.
	if res := a.cli("job", "stop", "-detach", "api"); res.code != 0 {
		t.Fatalf("job stop api: %s", res)
	}
	stopped := time.Now()
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		code, body, err := gatewayGet(cl, gw, "shop.test", "/api/x")
		return err == nil && code == 503, fmt.Errorf("GET shop.test/api/x after stop: %d %q %v", code, body, err)
	})
	t.Logf("503 for the stopped route %v after job stop returned", time.Since(stopped).Round(time.Millisecond))
}
