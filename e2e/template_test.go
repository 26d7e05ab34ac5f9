package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/testutil"
)

// templateJob is a one-task service whose task (busybox sh running
// script, with port "http") has the template blocks given.
func templateJob(id, image, script, templates string) string {
	return fmt.Sprintf(`job %q {
  datacenters = ["dc1"]
  group "web" {
    network {
      port "http" {}
    }
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
    task "server" {
      driver = "containerd"
      config {
        image   = %q
        command = "/bin/sh"
        args    = ["-c", %q]
      }
%s
      resources {
        cpu    = 100
        memory = 32
      }
      kill_timeout = "1s"
    }
  }
}
`, id, image, script, templates)
}

// templateAlloc waits for the job's one live allocation to run and
// returns it with its http address.
func templateAlloc(t *testing.T, a *agent, jobID string) (*api.Allocation, string) {
	t.Helper()
	var alloc *api.Allocation
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		live := liveAllocs(t, a, jobID)
		if len(live) != 1 {
			return false, fmt.Errorf("%d live allocations", len(live))
		}
		full, _, err := a.api.Allocations().Info(live[0].ID, nil)
		if err != nil {
			return false, err
		}
		alloc = full
		return full.ClientStatus == "running", fmt.Errorf("allocation %s is %s", full.ID, full.ClientStatus)
	})
	for _, p := range alloc.AllocatedResources.Shared.Ports {
		if p.Label == "http" {
			return alloc, fmt.Sprintf("http://%s:%d", p.HostIP, p.Value)
		}
	}
	t.Fatalf("allocation %s has no http port", alloc.ID)
	return nil, ""
}

// serves waits until GET url returns want (trimmed).
func serves(t *testing.T, url, want string, within time.Duration) {
	t.Helper()
	testutil.WaitFor(t, within, func() (bool, error) {
		body, err := httpGet(url)
		if err != nil {
			return false, err
		}
		return strings.TrimSpace(body) == want, fmt.Errorf("GET %s = %q, want %q", url, body, want)
	})
}

// taskPID is the PID containerd reports for a task's container.
func (c *cluster) taskPID(t *testing.T, allocID, task string) uint32 {
	t.Helper()
	pid, err := c.tryTaskPID(allocID, task)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// tryTaskPID is taskPID for a task that may be between containers.
func (c *cluster) tryTaskPID(allocID, task string) (uint32, error) {
	cl, ctx := c.containerd()
	container, err := cl.LoadContainer(ctx, allocID+"-"+task)
	if err != nil {
		return 0, fmt.Errorf("load container of %s/%s: %w", allocID, task, err)
	}
	tk, err := container.Task(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("task of %s/%s: %w", allocID, task, err)
	}
	return tk.Pid(), nil
}

func varPut(t *testing.T, a *agent, path string, items ...string) {
	t.Helper()
	if r := a.cli(append([]string{"var", "put", path}, items...)...); r.code != 0 {
		t.Fatalf("var put %s: %s", path, r)
	}
}

// TestTemplates_RestartOnChange: a job serving a template that reads
// app/config serves what the variable holds; `var put` of a new value
// makes it serve that within 5 s, through a restart: the container's
// PID changes, and the restart is in the task's events.
func TestTemplates_RestartOnChange(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	varPut(t, a, "app/config", "greeting=hello")

	job := writeFile(t, "restart.hcl", templateJob("tmpl-restart", c.image,
		`exec httpd -f -p $DROVER_PORT_http -h /local`, `      template {
        data        = <<EOT
{{ with var "app/config" }}{{ .greeting }}{{ end }}
EOT
        destination = "local/index.html"
        change_mode = "restart"
        splay       = "1s"
      }`))
	if r := a.cli("job", "run", job); r.code != 0 {
		t.Fatalf("job run: %s", r)
	}
	alloc, url := templateAlloc(t, a, "tmpl-restart")
	serves(t, url+"/", "hello", 10*time.Second)
	pid := c.taskPID(t, alloc.ID, "server")

	varPut(t, a, "app/config", "greeting=bye")
	changed := time.Now()
	// The file is rewritten at once (httpd serves it from then on);
	// the restart follows within the splay (1s) and the kill timeout.
	serves(t, url+"/", "bye", 5*time.Second)
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		now, err := c.tryTaskPID(alloc.ID, "server")
		if err != nil {
			return false, err
		}
		return now != pid, fmt.Errorf("PID still %d: the task was not restarted", pid)
	})
	serves(t, url+"/", "bye", 5*time.Second-time.Since(changed))
	status := a.cli("alloc", "status", alloc.ID)
	if !strings.Contains(status.stdout, "Restart Signaled") || !strings.Contains(status.stdout, "local/index.html") {
		t.Fatalf("alloc status shows no template restart:\n%s", status)
	}
	// Not counted against the restart policy (attempts = 0): the
	// allocation is still the same one, running.
	if live := liveAllocs(t, a, "tmpl-restart"); len(live) != 1 || live[0].ID != alloc.ID {
		t.Fatalf("allocations after the restart: %+v", live)
	}
}

// TestTemplates_SignalEnvAndSecrets: a signal template rewrites the file
// and sends SIGHUP, which the task traps, with the same PID; an env
// template's items are in the task's environment; /secrets in the task
// is a tmpfs (on the node too, so nothing rendered there touches the
// disk), and once the task stops nothing of it is left in the
// allocation directory.
func TestTemplates_SignalEnvAndSecrets(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	varPut(t, a, "app/sig", "greeting=hola", "token=tok-e2e-secret")

	// The task shows its environment without writing the token to
	// local/ (on the disk).
	script := `trap 'echo hup >> /local/hup.log' HUP; ` +
		`if [ "$TOKEN" = tok-e2e-secret ]; then tok=token-ok; else tok=token-missing; fi; ` +
		`echo "$GREETING $tok" > /local/env.txt; ` +
		`grep ' /secrets ' /proc/mounts > /local/mounts.txt; ` +
		`httpd -p $DROVER_PORT_http -h /local; ` +
		`while true; do sleep 0.2; done`
	job := writeFile(t, "signal.hcl", templateJob("tmpl-signal", c.image, script, `      template {
        data          = "{{ with var \"app/sig\" }}{{ .greeting }}{{ end }}"
        destination   = "local/index.html"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        splay         = "0s"
      }
      template {
        data        = <<EOT
{{ with var "app/sig" }}GREETING={{ .greeting }}
TOKEN="{{ .token }}"{{ end }}
EOT
        destination = "secrets/app.env"
        env         = true
        change_mode = "noop"
        perms       = "0600"
      }`))
	if r := a.cli("job", "run", job); r.code != 0 {
		t.Fatalf("job run: %s", r)
	}
	alloc, url := templateAlloc(t, a, "tmpl-signal")
	serves(t, url+"/", "hola", 10*time.Second)
	// env = true: the items are in the task's environment.
	serves(t, url+"/env.txt", "hola token-ok", 10*time.Second)

	// /secrets in the task is a tmpfs, mounted nosuid and nodev.
	mounts, err := httpGet(url + "/mounts.txt")
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(mounts); len(f) < 4 || f[2] != "tmpfs" || !strings.Contains(","+f[3]+",", ",nosuid,") || !strings.Contains(","+f[3]+",", ",nodev,") {
		t.Fatalf("/secrets in the task: %q, want a tmpfs mounted nosuid,nodev", mounts)
	}
	// On the node, the secrets directory is a tmpfs too: the rendered
	// secret is in memory, not on the disk.
	allocDir := filepath.Join(a.dataDir, "alloc", alloc.ID)
	secrets := filepath.Join(allocDir, "tasks", "server", "secrets")
	var st syscall.Statfs_t
	if err := syscall.Statfs(secrets, &st); err != nil || st.Type != 0x01021994 { // TMPFS_MAGIC
		t.Fatalf("%s on the node: statfs type %#x, %v; want a tmpfs", secrets, st.Type, err)
	}
	if fi, err := os.Stat(filepath.Join(secrets, "app.env")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secrets/app.env: %v %v, want mode 0600", fi, err)
	}

	pid := c.taskPID(t, alloc.ID, "server")
	varPut(t, a, "app/sig", "greeting=adios", "token=tok-e2e-secret")
	serves(t, url+"/", "adios", 5*time.Second)
	serves(t, url+"/hup.log", "hup", 5*time.Second)
	if now := c.taskPID(t, alloc.ID, "server"); now != pid {
		t.Fatalf("PID %d after the signal, was %d: the task was restarted", now, pid)
	}
	// noop: the environment stays what the task started with.
	serves(t, url+"/env.txt", "hola token-ok", time.Second)
	if status := a.cli("alloc", "status", alloc.ID); !strings.Contains(status.stdout, "sent SIGHUP") {
		t.Fatalf("alloc status shows no signal:\n%s", status)
	}

	// Stopped for good: the tmpfs is unmounted and removed, and the
	// secret is nowhere in the allocation directory on the disk.
	if r := a.cli("job", "stop", "tmpl-signal"); r.code != 0 {
		t.Fatalf("job stop: %s", r)
	}
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		full, _, err := a.api.Allocations().Info(alloc.ID, nil)
		if err != nil {
			return false, err
		}
		_, serr := os.Stat(secrets)
		return full.ClientStatus == "complete" && os.IsNotExist(serr), fmt.Errorf("allocation %s, secrets dir: %v", full.ClientStatus, serr)
	})
	err = filepath.WalkDir(allocDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == "app.env" {
			return fmt.Errorf("%s is on the disk", p)
		}
		if d.Type().IsRegular() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), "tok-e2e-secret") {
				return fmt.Errorf("%s holds the secret", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after the task stopped: %v", err)
	}
	if _, err := os.Stat(filepath.Join(allocDir, "tasks", "server", "local", "index.html")); err != nil {
		t.Fatalf("local/ should stay until the allocation is collected: %v", err)
	}
}

// missingJob is a job whose template reads a variable nobody wrote,
// waiting 3s for it.
func missingJob(image string) string {
	return templateJob("tmpl-missing", image, `exec httpd -f -p $DROVER_PORT_http -h /local`, `      template {
        data         = "{{ with var \"app/missing\" }}{{ .greeting }}{{ end }}"
        destination  = "local/index.html"
        wait_missing = "3s"
      }`)
}

// TestTemplates_MissingVariableFailsTask: a template naming a variable
// that does not exist fails its task after wait_missing, and `drover
// alloc status` names the path.
func TestTemplates_MissingVariableFailsTask(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	job := writeFile(t, "missing.hcl", missingJob(c.image))
	start := time.Now()
	if r := a.cli("job", "run", "-detach", job); r.code != 0 {
		t.Fatalf("job run: %s", r)
	}
	var allocID string
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		live := liveAllocs(t, a, "tmpl-missing")
		if len(live) != 1 {
			return false, fmt.Errorf("%d allocations", len(live))
		}
		allocID = live[0].ID
		return live[0].ClientStatus == "failed", fmt.Errorf("allocation is %s", live[0].ClientStatus)
	})
	if waited := time.Since(start); waited < 3*time.Second {
		t.Fatalf("failed after %v, before wait_missing (3s)", waited)
	}
	status := a.cli("alloc", "status", allocID)
	for _, want := range []string{"Missing: variable app/missing", "Setup Failure", "missing variable app/missing after waiting 3s"} {
		if !strings.Contains(status.stdout, want) {
			t.Errorf("alloc status lacks %q:\n%s", want, status)
		}
	}
	if !regexp.MustCompile(`Failed\s+= true`).MatchString(status.stdout) {
		t.Errorf("alloc status does not show the task failed:\n%s", status)
	}
	cl, ctx := c.containerd()
	if _, err := cl.LoadContainer(ctx, allocID+"-server"); err == nil {
		t.Fatal("a container was created for a task whose template could not render")
	}
}

// TestTemplates_PlanWarnsMissingVariable: `drover job plan` warns about
// a template reading a variable that does not exist, naming its path.
func TestTemplates_PlanWarnsMissingVariable(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	job := writeFile(t, "missing.hcl", missingJob(c.image))
	r := a.cli("job", "plan", job)
	if !strings.Contains(strings.ToLower(r.stdout+r.stderr), "warning") || !strings.Contains(r.stdout+r.stderr, "app/missing") {
		t.Fatalf("job plan does not warn about the missing variable app/missing:\n%s", r)
	}
}

// TestTemplates_AgentRestartReattaches: a dev agent killed and started
// again re-attaches to a task with templates without restarting it; its
// secrets tmpfs is the same mount with what it held (not mounted
// twice), and its templates follow changes again: a new value restarts
// the task.
func TestTemplates_AgentRestartReattaches(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	varPut(t, a, "app/config", "greeting=hello", "token=t1")
	job := writeFile(t, "reattach.hcl", templateJob("tmpl-reattach", c.image,
		`exec httpd -f -p $DROVER_PORT_http -h /local`, `      template {
        data        = "{{ with var \"app/config\" }}{{ .greeting }}{{ end }}"
        destination = "local/index.html"
        splay       = "0s"
      }
      template {
        data        = "{{ with var \"app/config\" }}{{ .token }}{{ end }}"
        destination = "secrets/token"
        change_mode = "noop"
      }`))
	if r := a.cli("job", "run", job); r.code != 0 {
		t.Fatalf("job run: %s", r)
	}
	alloc, url := templateAlloc(t, a, "tmpl-reattach")
	serves(t, url+"/", "hello", 10*time.Second)
	pid := c.taskPID(t, alloc.ID, "server")
	secrets := filepath.Join(a.dataDir, "alloc", alloc.ID, "tasks", "server", "secrets")
	if n := mountsAt(t, secrets); n != 1 {
		t.Fatalf("%d mounts on %s, want its tmpfs", n, secrets)
	}

	a.kill()
	a.restart()
	a.waitReady()
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		full, _, err := a.api.Allocations().Info(alloc.ID, nil)
		if err != nil {
			return false, err
		}
		for _, e := range full.TaskStates["server"].Events {
			if e.Type == "Reattached" {
				return true, nil
			}
		}
		return false, fmt.Errorf("no Reattached event yet")
	})
	if now := c.taskPID(t, alloc.ID, "server"); now != pid {
		t.Fatalf("PID %d after the agent restart, was %d", now, pid)
	}
	if n := mountsAt(t, secrets); n != 1 {
		t.Fatalf("%d mounts on %s after the restart, want the same one", n, secrets)
	}
	if b, err := os.ReadFile(filepath.Join(secrets, "token")); err != nil || string(b) != "t1" {
		t.Fatalf("secrets/token after the restart: %q %v", b, err)
	}

	varPut(t, a, "app/config", "greeting=after-restart", "token=t2")
	serves(t, url+"/", "after-restart", 10*time.Second)
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		now, err := c.tryTaskPID(alloc.ID, "server")
		if err != nil {
			return false, err
		}
		return now != pid, fmt.Errorf("PID still %d", pid)
	})
	if b, err := os.ReadFile(filepath.Join(secrets, "token")); err != nil || string(b) != "t2" {
		t.Fatalf("secrets/token: %q %v", b, err)
	}
}

// mountsAt counts the mounts at dir in the test's mount table.
func mountsAt(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			n++
		}
	}
	return n
}
