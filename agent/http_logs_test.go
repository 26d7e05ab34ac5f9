package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/droverhq/drover/server"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/fakedriver"
	"github.com/droverhq/drover/testutil/mock"
)

// logsFixture is an agent with a server and a client running one
// allocation of a job with a logs block on the fake driver, and the
// base path of that task's stdout stream.
type logsFixture struct {
	srv     *httptest.Server
	allocID string
	jobID   string
	base    string
	drv     *fakedriver.Driver
	server  *server.Server
}

func newLogsFixture(t *testing.T) *logsFixture {
	t.Helper()
	s := testServer(t)
	drv := fakedriver.New()
	c := testClient(t, s, drv, t.TempDir())
	t.Cleanup(func() { _ = c.Shutdown() })
	<-c.Registered()
	job := mock.Job()
	job.TaskGroups[0].Count = 1
	job.TaskGroups[0].Tasks[0].LogConfig = &structs.LogConfig{MaxFiles: 3, MaxFileSizeMB: 5}
	registerJob(t, s, job)
	allocs := waitAllocs(t, s, job.ID, 1, structs.AllocClientStatusRunning)

	a := httpAgent(s)
	a.client = c
	srv := httptest.NewServer(a.routes())
	t.Cleanup(srv.Close)
	base, err := c.LogPath(allocs[0].ID, "server", "stdout")
	if err != nil {
		t.Fatal(err)
	}
	return &logsFixture{srv: srv, allocID: allocs[0].ID, jobID: job.ID, base: base, drv: drv, server: s}
}

func (f *logsFixture) write(t *testing.T, name, content string) {
	t.Helper()
	fh, err := os.OpenFile(f.base+name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteString(content); err != nil {
		t.Fatal(err)
	}
}

func (f *logsFixture) get(t *testing.T, query string) (int, string) {
	t.Helper()
	resp, err := http.Get(f.srv.URL + "/v1/client/fs/logs/" + f.allocID + "?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestClientLogs_ReadsAcrossRotatedFiles: the retained files of a
// stream are served as one stream, offsets counting over all of them,
// the task's logs block reaches the driver, and bad parameters are
// refused.
func TestClientLogs_ReadsAcrossRotatedFiles(t *testing.T) {
	f := newLogsFixture(t)
	cfg, _, ok := f.drv.Task(f.allocID + "-server")
	if !ok || cfg.LogMaxFiles != 3 || cfg.LogMaxFileSizeMB != 5 || cfg.StdoutPath != f.base {
		t.Fatalf("driver task config %+v: want the logs block (3 files of 5 MB) and stdout base %s", cfg, f.base)
	}
	// A v1 logger's file, then rotated files 3 to 5 (0 to 2 were
	// deleted by rotation).
	f.write(t, "", "OLD")
	f.write(t, ".3", "0123456789")
	f.write(t, ".4", "abcdefghij")
	f.write(t, ".5", "KLM")
	all := "OLD0123456789abcdefghijKLM"
	for _, tc := range []struct {
		query string
		want  string
	}{
		{"task=server", all},
		{"task=server&offset=3", all[3:]},
		{"task=server&offset=15", all[15:]},
		{"task=server&offset=13", all[13:]},
		{"task=server&offset=1000", ""},
		{"task=server&origin=end&offset=5", all[len(all)-5:]},
		{"task=server&origin=end&offset=14", all[len(all)-14:]},
		{"task=server&origin=end&offset=1000", all},
		{"task=server&origin=end", ""},
		{"offset=20", all[20:]}, // the only task is the default
	} {
		t.Run(tc.query, func(t *testing.T) {
			code, body := f.get(t, tc.query)
			if code != http.StatusOK || body != tc.want {
				t.Fatalf("%d %q, want 200 %q", code, body, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		query string
		code  int
	}{
		{"task=server&offset=-1", http.StatusBadRequest},
		{"task=server&offset=x", http.StatusBadRequest},
		{"task=server&origin=middle", http.StatusBadRequest},
		{"task=server&type=stdin", http.StatusBadRequest},
		{"task=nosuch", http.StatusNotFound},
	} {
		t.Run("refused "+tc.query, func(t *testing.T) {
			if code, body := f.get(t, tc.query); code != tc.code {
				t.Fatalf("%d %q, want %d", code, body, tc.code)
			}
		})
	}
}

// TestClientLogs_FollowMovesToNewFiles: a followed stream delivers what
// is appended to the current file and then what lands in the files the
// logger rotates to, and stops once the task is dead.
func TestClientLogs_FollowMovesToNewFiles(t *testing.T) {
	f := newLogsFixture(t)
	f.write(t, ".0", "first\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := url.Values{"task": {"server"}, "follow": {"true"}, "origin": {"end"}}
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/v1/client/fs/logs/"+f.allocID+"?"+q.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-lines:
			if got != want {
				t.Fatalf("followed line %q, want %q", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("no line %q", want)
		}
	}
	f.write(t, ".0", "second\n")
	expect("second")
	// The logger rotates: the rest of .0, then .1 and .2 (.0 is deleted
	// meanwhile, as rotation does; the open file is still read).
	f.write(t, ".0", "third\n")
	f.write(t, ".1", "fourth\n")
	f.write(t, ".2", "fifth\n")
	if err := os.Remove(f.base + ".0"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"third", "fourth", "fifth"} {
		expect(want)
	}
	// The job is stopped: the stream is sent to its end and closed.
	f.write(t, ".2", "last\n")
	expect("last")
	var dresp structs.JobDeregisterResponse
	if err := f.server.RPC("Job.Deregister", &structs.JobDeregisterRequest{JobID: f.jobID}, &dresp); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		select {
		case l, ok := <-lines:
			if ok {
				return false, fmt.Errorf("unexpected line %q", l)
			}
			return true, nil
		default:
			return false, fmt.Errorf("stream still open")
		}
	})
}
