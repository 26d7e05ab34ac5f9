package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/testutil"
)

// eventsJob is a count-2 job whose version goes into the environment,
// so a new version is a rolling update with max_parallel = 1.
func eventsJob(version string) string {
	return fmt.Sprintf(`job "ev" {
  group "g" {
    count = 2
    update {
      max_parallel     = 1
      min_healthy_time = "1s"
      healthy_deadline = "30s"
    }
    task "t" {
      driver = "containerd"
      env {
        VERSION = %q
      }
      config {
        image   = %q
        command = "/bin/sh"
        args    = ["-c", "exec sleep 3600"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
      kill_timeout = "1s"
    }
  }
}
`, version, testutil.BusyboxRef)
}

// eventConsumer reads /v1/event/stream. With hangUp set it disconnects
// every few lines and resumes from the last index it received whole,
// dropping the part of a batch it had read: events of one index are
// flushed together, and a batch is known whole once a later index
// arrives.
type eventConsumer struct {
	url    string
	hangUp bool

	mu         sync.Mutex
	committed  []string
	last       uint64
	reconnects int
	stop       chan struct{}
	done       chan struct{}
	err        error
}

func startConsumer(url string, hangUp bool) *eventConsumer {
	c := &eventConsumer{url: url, hangUp: hangUp, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *eventConsumer) run() {
	defer close(c.done)
	var pending []string
	var pendingIdx uint64
	commit := func() {
		c.mu.Lock()
		c.committed = append(c.committed, pending...)
		if pendingIdx > 0 {
			c.last = pendingIdx
		}
		c.mu.Unlock()
		pending = nil
	}
	first := true
	for n := 0; ; n++ {
		url := c.url
		if !first {
			url += fmt.Sprintf("&index=%d", c.last)
		}
		resp, err := http.Get(url)
		if err != nil || resp.StatusCode != 200 {
			c.err = fmt.Errorf("connect %s: %v %v", url, resp, err)
			return
		}
		if !first {
			c.mu.Lock()
			c.reconnects++
			c.mu.Unlock()
		}
		first = false
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 16<<20)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		pending, pendingIdx = nil, 0
		committedHere := 0
		limit := 2 + n%4
	read:
		for {
			select {
			case <-c.stop:
				resp.Body.Close()
				commit() // what was read since the last batch boundary
				return
			case l, ok := <-lines:
				if !ok {
					c.err = fmt.Errorf("stream ended")
					return
				}
				if l == "{}" {
					continue
				}
				var ev struct {
					Topic, Type, Key string
					Index            uint64
				}
				if err := json.Unmarshal([]byte(l), &ev); err != nil {
					c.err = fmt.Errorf("line %q: %v", l, err)
					return
				}
				if ev.Index != pendingIdx {
					if pendingIdx != 0 {
						commit()
						committedHere++
					}
					pendingIdx = ev.Index
				}
				pending = append(pending, fmt.Sprintf("%d %s %s %s", ev.Index, ev.Topic, ev.Type, ev.Key))
				if c.hangUp && committedHere > 0 && len(pending) >= 1 && committedHere >= limit/2 {
					// Hang up mid-batch: what was read of pendingIdx is
					// dropped and comes again after the resume.
					resp.Body.Close()
					for range lines {
					}
					break read
				}
			}
		}
	}
}

func (c *eventConsumer) finish(t *testing.T) []string {
	t.Helper()
	close(c.stop)
	<-c.done
	if c.err != nil {
		t.Fatal(c.err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.committed
}

// TestEvents_ResumingConsumerSeesEveryEventOnce: across a rolling update
// on real containerd, a consumer of /v1/event/stream that hangs up every
// few events (mid-batch) and resumes from the last index it received
// whole gets exactly the events, in order and once each, of a consumer
// that never hung up; an index older than what the server keeps gets
// 410.
func TestEvents_ResumingConsumerSeesEveryEventOnce(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	url := a.url() + "/v1/event/stream?topic=Job:ev&topic=Allocation:ev"
	ref := startConsumer(url, false)
	res := startConsumer(url, true)
	time.Sleep(500 * time.Millisecond)

	deployed := func(version string) {
		t.Helper()
		if r := a.cli("job", "run", writeFile(t, "ev.hcl", eventsJob(version))); r.code != 0 {
			t.Fatalf("job run %s: %d %s %s", version, r.code, r.stdout, r.stderr)
		}
		testutil.WaitFor(t, 90*time.Second, func() (bool, error) {
			j, _, err := a.api.Jobs().Info("ev", nil)
			if err != nil {
				return false, err
			}
			d, _, err := a.api.Jobs().LatestDeployment("ev", nil)
			if err != nil || d == nil {
				return j.Version == 0 && len(liveAllocs(t, a, "ev")) == 2, nil
			}
			return d.JobVersion == j.Version && d.Status == "successful", fmt.Errorf("deployment %s of version %d", d.Status, d.JobVersion)
		})
	}
	deployed("v1")
	deployed("v2")
	// Let the last client updates arrive.
	time.Sleep(3 * time.Second)

	want := ref.finish(t)
	got := res.finish(t)
	t.Logf("%d events; the hanging-up consumer reconnected %d times", len(want), res.reconnects)
	if res.reconnects < 5 {
		t.Fatalf("only %d reconnects: the test did not exercise resuming", res.reconnects)
	}
	seen := map[string]bool{}
	for _, e := range got {
		if seen[e] {
			t.Errorf("event delivered twice: %s", e)
		}
		seen[e] = true
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the resuming consumer's events differ from the continuous one's:\nresuming (%d):\n%s\ncontinuous (%d):\n%s",
			len(got), strings.Join(got, "\n"), len(want), strings.Join(want, "\n"))
	}
	count := func(substr string) int {
		n := 0
		for _, e := range want {
			if strings.Contains(e, substr) {
				n++
			}
		}
		return n
	}
	if count("Job JobRegistered ev") != 2 || count("AllocationCreated") != 4 {
		t.Fatalf("expected 2 JobRegistered and 4 AllocationCreated (2 + 2 replacements):\n%s", strings.Join(want, "\n"))
	}

	// An expired index: a server keeping only a few events.
	cfg := writeFile(t, "events.hcl", "server {\n  event_buffer_size = 3\n}\n")
	host := newHost()
	srv := newAgent(t, "ev-srv", host, "", []string{"agent", "-server", "-bootstrap-expect", "1", "-bind", host, "-node-name", "ev-srv", "-config", cfg})
	srv.start()
	testutil.WaitFor(t, 20*time.Second, func() (bool, error) {
		return srv.api.Agent().Health() == nil, nil
	})
	for i := 0; i < 5; i++ {
		job := strings.ReplaceAll(eventsJob("v"), `job "ev"`, fmt.Sprintf(`job "ev%d"`, i))
		if r := srv.cli("job", "run", "-detach", writeFile(t, "j.hcl", job)); r.code != 0 {
			t.Fatalf("job run: %s %s", r.stdout, r.stderr)
		}
	}
	resp, err := http.Get(srv.url() + "/v1/event/stream?index=1")
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Code, Error string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGone || body.Code != "gone" || !strings.Contains(body.Error, "older than the oldest event kept") {
		t.Fatalf("expired index: %d %+v", resp.StatusCode, body)
	}
	if r := srv.cli("event", "stream", "-index", "1"); r.code == 0 || !strings.Contains(r.stderr, "run without -index") {
		t.Fatalf("drover event stream -index 1: %d %s %s", r.code, r.stdout, r.stderr)
	}
}
