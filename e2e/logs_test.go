package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/testutil"
)

// TestDev_TaskLogsRotate: the logs block of a job file reaches the task
// logger through the whole stack: a batch task writing 5 MiB with
// logs { max_files = 2, max_file_size = 1 } leaves two 1 MiB files of
// stdout on the node, and `GET /v1/client/fs/logs` serves them as one
// 2 MiB stream. A logs block out of range is refused with its position.
func TestDev_TaskLogsRotate(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()

	bad := writeFile(t, "bad.hcl", logsJob("bad", c.image, "max_files = 0"))
	if res := a.cli("job", "run", bad); res.code == 0 || !strings.Contains(res.stderr+res.stdout, "logs.max_files") {
		t.Fatalf("job run with max_files = 0: %s; want a refusal naming logs.max_files", res)
	}

	job := writeFile(t, "chatty.hcl", logsJob("chatty", c.image, "max_files = 2\n        max_file_size = 1"))
	if res := a.cli("job", "run", job); res.code != 0 {
		t.Fatalf("job run: %s", res)
	}
	var allocID string
	testutil.WaitFor(t, time.Minute, func() (bool, error) {
		stubs, _, err := a.api.Jobs().Allocations("chatty", nil)
		if err != nil || len(stubs) != 1 {
			return false, fmt.Errorf("allocations: %d, %v", len(stubs), err)
		}
		allocID = stubs[0].ID
		return stubs[0].ClientStatus == "complete", fmt.Errorf("allocation is %s", stubs[0].ClientStatus)
	})

	logsDir := filepath.Join(a.dataDir, "alloc", allocID, "alloc", "logs")
	var names []string
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		entries, err := os.ReadDir(logsDir)
		if err != nil {
			return false, err
		}
		names = names[:0]
		var total int64
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "writer.stdout") {
				fi, err := e.Info()
				if err != nil {
					return false, err
				}
				names = append(names, e.Name())
				total += fi.Size()
			}
		}
		if len(names) > 2 || total > 2<<20 {
			t.Fatalf("stdout keeps %v, %d bytes: over 2 files of 1 MiB", names, total)
		}
		return total == 2<<20, fmt.Errorf("stdout files %v hold %d bytes, want 2 MiB", names, total)
	})
	if strings.Join(names, " ") != "writer.stdout.3 writer.stdout.4" {
		t.Fatalf("stdout files %v, want writer.stdout.3 and .4 (5 MiB in 1 MiB files, the newest 2 kept)", names)
	}

	resp, err := http.Get(fmt.Sprintf("http://%s:4646/v1/client/fs/logs/%s?task=writer", a.host, allocID))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || n != 2<<20 {
		t.Fatalf("logs API: %d, %d bytes (%v); want 200 with the 2 MiB retained", resp.StatusCode, n, err)
	}
}

// logsJob is a batch job whose task writes 5 MiB to stdout, with the
// given logs block body.
func logsJob(id, image, logs string) string {
	return fmt.Sprintf(`job %q {
  type        = "batch"
  datacenters = ["dc1"]
  group "g" {
    task "writer" {
      driver = "containerd"
      config {
        image   = %q
        command = "/bin/sh"
        args    = ["-c", "dd if=/dev/zero bs=1048576 count=5 2>/dev/null"]
      }
      logs {
        %s
      }
      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
`, id, image, logs)
}
