package agent

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/server"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

func eventAgent(t *testing.T, bufferSize int) (*Agent, *httptest.Server) {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.RPCAddr = &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}
	cfg.NumSchedulers = 0
	cfg.EventBufferSize = bufferSize
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "server", Level: hclog.Warn})
	s, err := server.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown() })
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) { return s.IsLeader(), nil })
	a := httpAgent(s)
	ts := httptest.NewServer(a.routes())
	t.Cleanup(ts.Close)
	return a, ts
}

func registerMockJob(t *testing.T, a *Agent, id string) {
	t.Helper()
	job := mock.Job()
	job.ID, job.Name = id, id
	var resp structs.JobRegisterResponse
	if err := a.server.RPC("Job.Register", &structs.JobRegisterRequest{Job: job}, &resp); err != nil {
		t.Fatal(err)
	}
}

type streamLine struct {
	Topic, Type, Key, Namespace string
	Index                       uint64
	Payload                     map[string]json.RawMessage
}

// openStream opens the stream and returns a function that reads the
// next non-heartbeat line.
func openStream(t *testing.T, url string) (func() streamLine, func()) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() streamLine {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatal("stream ended")
				}
				if l == "{}" {
					continue
				}
				var sl streamLine
				if err := json.Unmarshal([]byte(l), &sl); err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
				return sl
			case <-time.After(10 * time.Second):
				t.Fatal("no event within 10s")
			}
		}
	}
	return next, func() { resp.Body.Close() }
}

func TestEventStreamHTTP_FollowsAndResumesExactlyAfterAnIndex(t *testing.T) {
	a, ts := eventAgent(t, 0)
	next, closeStream := openStream(t, ts.URL+"/v1/event/stream?topic=Job:*")
	registerMockJob(t, a, "one")
	first := next()
	if first.Topic != "Job" || first.Type != "JobRegistered" || first.Key != "one" || first.Namespace != "default" || first.Payload["Job"] == nil {
		t.Fatalf("first event: %+v", first)
	}
	closeStream()
	// Written while nobody listens.
	registerMockJob(t, a, "two")
	registerMockJob(t, a, "three")
	next, closeStream = openStream(t, fmt.Sprintf("%s/v1/event/stream?topic=Job:*&index=%d", ts.URL, first.Index))
	defer closeStream()
	if e := next(); e.Key != "two" || e.Index <= first.Index {
		t.Fatalf("resume after %d: %+v", first.Index, e)
	}
	if e := next(); e.Key != "three" {
		t.Fatalf("then: %+v", e)
	}
	// Key filters: Job:four sees four only.
	only, closeOnly := openStream(t, ts.URL+"/v1/event/stream?topic=Job:four")
	defer closeOnly()
	registerMockJob(t, a, "five")
	registerMockJob(t, a, "four")
	if e := only(); e.Key != "four" {
		t.Fatalf("Job:four saw %+v", e)
	}
}

func TestEventStreamHTTP_RefusesBadRequestsAndExpiredIndexes(t *testing.T) {
	a, ts := eventAgent(t, 3)
	for i := 0; i < 6; i++ {
		registerMockJob(t, a, fmt.Sprintf("j%d", i))
	}
	many := strings.Repeat("topic=Job:*&", 65)
	for _, c := range []struct {
		query string
		code  int
		want  string
	}{
		{"topic=Bogus:*", 400, "unknown topic"},
		{"topic=Job:", 400, "1-256 bytes"},
		{"index=abc", 400, "not a non-negative integer"},
		{many, 400, "the limit is 64"},
		{"index=1", 410, "older than the oldest event kept"},
	} {
		resp, err := http.Get(ts.URL + "/v1/event/stream?" + c.query)
		if err != nil {
			t.Fatal(err)
		}
		var body errorBody
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.Contains(body.Error, c.want) {
			t.Errorf("%s: %d %+v, want %d with %q", c.query, resp.StatusCode, body, c.code, c.want)
		}
	}
}

func TestEventStreamHTTP_ACLFiltersByNamespace(t *testing.T) {
	a := aclAgent(t, true)
	ts := httptest.NewServer(a.routes())
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/v1/event/stream")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("anonymous stream: %d", resp.StatusCode)
	}
	// A token that reads team-a only sees team-a's events in a stream
	// of every namespace.
	var boot structs.ACLTokenSecretResponse
	if err := a.server.RPC("ACL.Bootstrap", &structs.ACLBootstrapRequest{}, &boot); err != nil {
		t.Fatal(err)
	}
	ns := &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "team-a"}}}
	ns.AuthToken = boot.SecretID
	if err := a.server.RPC("Namespace.Upsert", ns, &structs.GenericResponse{}); err != nil {
		t.Fatal(err)
	}
	pol := &structs.ACLPolicyUpsertRequest{Policies: []*structs.ACLPolicy{{Name: "a-read", Rules: `namespace "team-a" { policy = "read" }`}}}
	pol.AuthToken = boot.SecretID
	if err := a.server.RPC("ACL.UpsertPolicies", pol, &structs.GenericResponse{}); err != nil {
		t.Fatal(err)
	}
	tok := &structs.ACLTokenCreateRequest{Name: "a-reader", Policies: []string{"a-read"}}
	tok.AuthToken = boot.SecretID
	var reader structs.ACLTokenSecretResponse
	if err := a.server.RPC("ACL.CreateToken", tok, &reader); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", ts.URL+"/v1/event/stream?topic=Job:*&namespace=*", nil)
	req.Header.Set("X-Drover-Token", reader.SecretID)
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("reader's stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() != "{}" {
				lines <- sc.Text()
			}
		}
	}()
	for _, n := range []string{"default", "team-a"} {
		job := mock.Job()
		job.ID, job.Name, job.Namespace = "in-"+n, "in-"+n, n
		reg := &structs.JobRegisterRequest{Job: job}
		reg.AuthToken = boot.SecretID
		reg.Namespace = n
		if err := a.server.RPC("Job.Register", reg, &structs.JobRegisterResponse{}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case l := <-lines:
		if !strings.Contains(l, `"Key":"in-team-a"`) {
			t.Fatalf("the team-a reader saw %s", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event for the team-a reader")
	}
}
