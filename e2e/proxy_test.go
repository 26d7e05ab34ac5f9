package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/testutil"
)

// vipJob is a count-N HTTP job whose service "web" has a check every
// second, a VIP on port 80 and port 8080 published on every client;
// version goes into the environment so a new version replaces the
// allocations (max_parallel = 1).
func vipJob(image, version string, count int) string {
	return fmt.Sprintf(`job "web" {
  group "web" {
    count = %d
    network {
      port "http" {}
    }
    update {
      max_parallel      = 1
      min_healthy_time  = "2s"
      healthy_deadline  = "30s"
      progress_deadline = "60s"
    }
    restart {
      attempts = 5
      delay    = "1s"
    }
    service {
      name = "web"
      port = "http"
      check {
        type     = "http"
        path     = "/"
        interval = "1s"
        timeout  = "1s"
      }
      vip {
        port = 80
      }
      published_port = 8080
      # Leave the proxies' backends before the task is signalled.
      shutdown_delay = "2s"
    }
    task "server" {
      driver = "containerd"
      env {
        VERSION = %q
      }
      config {
        image   = %q
        command = "/bin/sh"
        args    = ["-c", "mkdir -p /tmp/www && echo \"alloc $DROVER_ALLOC_ID\" > /tmp/www/index.html && exec httpd -f -p $DROVER_PORT_http -h /tmp/www"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
      kill_timeout = "2s"
    }
  }
}
`, count, version, image)
}

// oneShot is an HTTP client with a new connection per request, so
// every request is balanced by the proxy on its own.
var oneShot = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// getAlloc fetches url and returns the allocation ID the instance
// serves.
func getAlloc(url string) (string, error) {
	resp, err := oneShot.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	id, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "alloc ")
	if !ok {
		return "", fmt.Errorf("unexpected body %q", b)
	}
	return id, nil
}

// spread sends n requests to url and counts them per allocation.
func spread(t *testing.T, url string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		id, err := getAlloc(url)
		if err != nil {
			t.Fatalf("request %d to %s: %v", i, url, err)
		}
		got[id]++
	}
	return got
}

// TestServices_VIPAndPublishedPortProxy is the load-balancing proxy on
// real containerd: a count-3 job with a check, a VIP and a published
// port; 300 requests to the VIP and 300 to the published port spread
// over all three instances; under a steady stream of requests to the
// VIP, killing one instance's container with ctr and a rolling update
// (max_parallel = 1) fail no request; a task of another job reaches the
// service by name (web.vip.drover) from inside its container; stopping
// the job closes the VIP.
func TestServices_VIPAndPublishedPortProxy(t *testing.T) {
	c := newCluster(t)
	// DNS on port 53 of the agent's own loopback address: tasks get it
	// as their nameserver.
	a := c.startDevAgent("-dns-port", "53")

	if res := a.cli("job", "run", writeFile(t, "v1.hcl", vipJob(c.image, "v1", 3))); res.code != 0 {
		t.Fatalf("job run: %s", res)
	}
	var insts []instanceJSON
	var vip string
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		resp, err := http.Get(a.url() + "/v1/service/web?status=passing")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		var raw []struct {
			instanceJSON
			VIP     string
			VIPPort int
		}
		if err := jsonDecode(resp.Body, &raw); err != nil {
			return false, err
		}
		insts = insts[:0]
		for _, r := range raw {
			insts = append(insts, r.instanceJSON)
			vip = r.VIP
			if r.VIPPort != 80 {
				return false, fmt.Errorf("instance %s VIPPort %d", r.ID, r.VIPPort)
			}
		}
		return len(insts) == 3 && vip != "", fmt.Errorf("%d passing instances, VIP %q", len(insts), vip)
	})
	if ip := net.ParseIP(vip); ip == nil || !ip.IsLoopback() || !strings.HasPrefix(vip, "127.99.") {
		t.Fatalf("VIP %q is not from the default range 127.99.0.0/16", vip)
	}
	vipURL := "http://" + vip + ":80/"
	pubURL := "http://" + a.host + ":8080/"
	testutil.WaitFor(t, 20*time.Second, func() (bool, error) {
		_, err := getAlloc(vipURL)
		return err == nil, err
	})

	for _, url := range []string{vipURL, pubURL} {
		got := spread(t, url, 300)
		t.Logf("300 requests to %s: %v", url, got)
		if len(got) != 3 {
			t.Fatalf("requests to %s reached %d instances, want 3: %v", url, len(got), got)
		}
		for id, n := range got {
			if n < 50 {
				t.Fatalf("instance %s got %d of 300 requests to %s, want at least 50: %v", id, n, url, got)
			}
		}
	}

	// The proxy's own view.
	var status map[string]interface{}
	if resp, err := http.Get(a.url() + "/v1/client/proxy"); err != nil {
		t.Fatal(err)
	} else {
		err = jsonDecode(resp.Body, &status)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /v1/client/proxy: HTTP %d %v", resp.StatusCode, err)
		}
	}
	if s := fmt.Sprint(status); !strings.Contains(s, vip+":80") || !strings.Contains(s, a.host+":8080") {
		t.Fatalf("GET /v1/client/proxy does not show both listeners: %s", s)
	}

	// A steady stream of requests to the VIP, counting failures.
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
			if _, err := getAlloc(vipURL); err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			} else {
				ok.Add(1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	// Kill one instance's container the way an operator would.
	victim := insts[0]
	kill := exec.Command("ctr", "-a", c.ctrd.Address, "-n", c.ns, "task", "kill", "-s", "KILL", victim.AllocID+"-server")
	if out, err := kill.CombinedOutput(); err != nil {
		t.Fatalf("ctr task kill: %v\n%s", err, out)
	}
	killed := time.Now()
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		for _, in := range serviceInstances(t, a, "web") {
			if in.AllocID == victim.AllocID && in.Status == "critical" {
				return true, nil
			}
		}
		return false, nil
	})
	t.Logf("killed instance critical %v after the kill (check interval 1s)", time.Since(killed).Round(time.Millisecond))
	// It is restarted in place and passes again.
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		for _, in := range serviceInstances(t, a, "web") {
			if in.AllocID == victim.AllocID && in.Status == "passing" {
				return true, nil
			}
		}
		return false, nil
	})

	// A rolling update, one allocation at a time.
	if res := a.cli("job", "run", writeFile(t, "v2.hcl", vipJob(c.image, "v2", 3))); res.code != 0 {
		t.Fatalf("rolling update: %s", res)
	}
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		insts := serviceInstances(t, a, "web")
		passing := 0
		for _, in := range insts {
			if in.Status == "passing" && in.AllocID != victim.AllocID {
				passing++
			}
		}
		return len(insts) == 3 && passing == 3, fmt.Errorf("%d instances, %d new passing", len(insts), passing)
	})
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	t.Logf("during the kill and the rolling update: %d requests served, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests to the VIP failed during the kill and the rolling update (first: %v)", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d requests were made during the kill and the update", ok.Load())
	}

	// Another job's task reaches the service by name from inside its
	// container.
	clientJob := fmt.Sprintf(`job "caller" {
  type = "batch"
  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
    task "wget" {
      driver = "containerd"
      config {
        image   = %q
        command = "/bin/sh"
        args    = ["-c", "wget -q -O - http://web.vip.drover/"]
      }
      resources {
        cpu    = 50
        memory = 16
      }
    }
  }
}
`, c.image)
	if res := a.cli("job", "run", writeFile(t, "caller.hcl", clientJob)); res.code != 0 {
		t.Fatalf("job run caller: %s", res)
	}
	callers := liveAllocs(t, a, "caller")
	if len(callers) == 0 {
		all, _, _ := a.api.Jobs().Allocations("caller", nil)
		if len(all) == 0 {
			t.Fatal("caller has no allocation")
		}
		callers = append(callers, all...)
	}
	logs := a.cli("alloc", "logs", callers[0].ID, "wget")
	if logs.code != 0 || !strings.Contains(logs.stdout, "alloc ") {
		t.Fatalf("the caller's wget of http://web.vip.drover/ from its container: %s", logs)
	}

	// Stopping the job closes the VIP and the published port.
	if res := a.cli("job", "stop", "-detach", "web"); res.code != 0 {
		t.Fatalf("job stop: %s", res)
	}
	stopped := time.Now()
	// At once: no instance passes (they are terminating during their
	// shutdown_delay), so the proxies send them nothing new.
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		for _, in := range serviceInstances(t, a, "web") {
			if in.Status == "passing" {
				return false, nil
			}
		}
		return true, nil
	})
	t.Logf("no passing instance %v after job stop returned", time.Since(stopped).Round(time.Millisecond))
	// Once the tasks stopped, the instances are gone and the VIP's
	// listener with them.
	testutil.WaitFor(t, 20*time.Second, func() (bool, error) {
		conn, err := net.DialTimeout("tcp", vip+":80", time.Second)
		if err == nil {
			conn.Close()
		}
		return err != nil, nil
	})
	t.Logf("VIP closed %v after job stop returned", time.Since(stopped).Round(time.Millisecond))
}

// jsonDecode decodes one JSON value from r.
func jsonDecode(r io.Reader, v interface{}) error { return json.NewDecoder(r).Decode(v) }
