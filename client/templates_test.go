package client

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/fakedriver"
	"github.com/droverhq/drover/testutil/mock"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; the client agent runs as root")
	}
}

// TestTaskDirs_SecretsTmpfs: the secrets directory is a 0700 tmpfs,
// kept over a client restart (prepare again) with what it holds, and
// gone with it once released.
func TestTaskDirs_SecretsTmpfs(t *testing.T) {
	requireRoot(t)
	alloc := t.TempDir()
	d := newTaskDirs(alloc, "server", true)
	t.Cleanup(func() { _ = d.release() })
	if err := d.prepare(); err != nil {
		t.Fatal(err)
	}
	mounted, err := isTmpfsMount(d.secrets)
	if err != nil || !mounted {
		t.Fatalf("secrets is not a tmpfs mount: %v %v", mounted, err)
	}
	if fi, err := os.Stat(d.secrets); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("secrets mode: %v %v", fi, err)
	}
	if fi, err := os.Stat(d.local); err != nil || !fi.IsDir() {
		t.Fatalf("local: %v %v", fi, err)
	}
	if d.local != filepath.Join(alloc, "tasks", "server", "local") || d.alloc != filepath.Join(alloc, "alloc") {
		t.Fatalf("layout: %+v", d)
	}
	secret := filepath.Join(d.secrets, "token")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The tmpfs is bounded.
	if err := os.WriteFile(filepath.Join(d.secrets, "big"), make([]byte, secretsTmpfsSize+1), 0o600); err == nil {
		t.Fatal("wrote more than the secrets tmpfs size")
	}
	_ = os.Remove(filepath.Join(d.secrets, "big"))

	// A restarted client prepares again: the same mount, the same files.
	if err := d.prepare(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "s3cret" {
		t.Fatalf("after prepare again: %q %v", b, err)
	}
	if n := countMounts(t, d.secrets); n != 1 {
		t.Fatalf("%d mounts on the secrets directory, want 1", n)
	}

	if err := d.release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.secrets); !os.IsNotExist(err) {
		t.Fatalf("secrets directory still there: %v", err)
	}
	if n := countMounts(t, d.secrets); n != 0 {
		t.Fatalf("%d mounts left on the secrets directory", n)
	}
	// Releasing again is fine.
	if err := d.release(); err != nil {
		t.Fatal(err)
	}
}

func TestTaskDirs_SecretsOnDisk(t *testing.T) {
	d := newTaskDirs(t.TempDir(), "server", false)
	if err := d.prepare(); err != nil {
		t.Fatal(err)
	}
	if mounted, _ := isTmpfsMount(d.secrets); mounted {
		t.Fatal("SecretsOnDisk mounted a tmpfs")
	}
	if fi, err := os.Stat(d.secrets); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("secrets mode: %v %v", fi, err)
	}
	if err := d.release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.secrets); !os.IsNotExist(err) {
		t.Fatalf("secrets directory still there: %v", err)
	}
}

// countMounts counts the mounts at dir in this process's mount table.
func countMounts(t *testing.T, dir string) int {
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

// varServers are reportServers that also answer Variable.Read (blocking
// on the index, as the servers do) for the node they expect.
type varServers struct {
	*reportServers
	mu      sync.Mutex
	index   uint64
	vars    map[string]*structs.VariableDecrypted
	changed chan struct{}
	// reads are the Variable.Read requests seen.
	reads []structs.VariableReadRequest
}

func newVarServers(t *testing.T) *varServers {
	return &varServers{reportServers: newReportServers(t), index: 100, vars: map[string]*structs.VariableDecrypted{}, changed: make(chan struct{})}
}

func (s *varServers) put(path string, items map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index++
	s.vars[path] = &structs.VariableDecrypted{VariableMetadata: structs.VariableMetadata{Path: path, ModifyIndex: s.index}, Items: items}
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *varServers) RPC(method string, args, reply interface{}) error {
	if method != "Variable.Read" {
		return s.reportServers.RPC(method, args, reply)
	}
	req := args.(*structs.VariableReadRequest)
	deadline := time.After(req.MaxQueryTime)
	for {
		s.mu.Lock()
		if len(s.reads) < 1000 {
			s.reads = append(s.reads, *req)
		}
		v := s.vars[req.Path]
		idx, ch := s.index, s.changed
		if v != nil {
			idx = v.ModifyIndex
		}
		if idx > req.MinQueryIndex {
			out := reply.(*structs.VariableReadResponse)
			out.Index = idx
			if v != nil {
				c := *v
				out.Data = &c
			}
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			reply.(*structs.VariableReadResponse).Index = idx
			return nil
		case <-s.block:
			return fmt.Errorf("test over")
		}
	}
}

func (s *varServers) lastRead() structs.VariableReadRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads[len(s.reads)-1]
}

// templateClient is a client on varServers with a fake driver, running
// one allocation of a job whose task has tmpls.
type templateClient struct {
	t     *testing.T
	c     *Client
	srv   *varServers
	drv   *fakedriver.Driver
	alloc *structs.Allocation
	id    string
}

func newTemplateClient(t *testing.T, srv *varServers, restart *structs.RestartPolicy, tmpls ...*structs.Template) *templateClient {
	t.Helper()
	drv := fakedriver.New()
	c, err := New(&Config{
		DataDir: t.TempDir(), RPC: srv, SecretsOnDisk: true,
		Drivers:     map[string]driver.Driver{"containerd": drv},
		CPUTotalMHz: 4000, MemoryTotalMB: 4096,
		Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown() })
	job := mock.Job()
	job.Namespace = "team-a"
	if restart != nil {
		job.TaskGroups[0].RestartPolicy = restart
	}
	job.TaskGroups[0].Tasks[0].Templates = tmpls
	job.Canonicalize()
	if err := job.Validate(); err != nil {
		t.Fatal(err)
	}
	alloc := mock.Alloc(job, c.Node(), 0)
	alloc.Namespace = job.Namespace
	alloc.NodeID = c.NodeID()
	c.applyAlloc(alloc)
	return &templateClient{t: t, c: c, srv: srv, drv: drv, alloc: alloc, id: alloc.ID + "-server"}
}

func (tc *templateClient) state() *structs.TaskState {
	ts, err := tc.c.TaskState(tc.alloc.ID, "server")
	if err != nil {
		tc.t.Fatal(err)
	}
	return ts
}

// waitPID waits until the task runs and returns its PID.
func (tc *templateClient) waitRunning() int {
	tc.t.Helper()
	var pid int
	testutil.WaitFor(tc.t, 10*time.Second, func() (bool, error) {
		_, p, ok := tc.drv.Task(tc.id)
		if !ok || tc.state().State != structs.TaskStateRunning {
			return false, fmt.Errorf("task not running: %s", tc.state().State)
		}
		pid = p
		return true, nil
	})
	return pid
}

func (tc *templateClient) events(typ string) []string {
	var out []string
	for _, e := range tc.state().Events {
		if e.Type == typ {
			out = append(out, e.Message)
		}
	}
	return out
}

func (tc *templateClient) localFile(rel string) string {
	b, err := os.ReadFile(filepath.Join(tc.c.allocRoot, tc.alloc.ID, "tasks", "server", rel))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func TestClient_TemplatesRenderBeforeStart(t *testing.T) {
	srv := newVarServers(t)
	srv.put("app/config", map[string]string{"greeting": "hello", "password": "s3cret"})
	tc := newTemplateClient(t, srv, nil,
		&structs.Template{EmbeddedTmpl: `{{ with var "app/config" }}{{ .greeting }}{{ end }} from {{ env "DROVER_TASK_NAME" }}`, DestPath: "local/index.html"},
		&structs.Template{EmbeddedTmpl: `DB_PASSWORD={{ (var "app/config").password }}`, DestPath: "secrets/db.env", Envvars: true, Perms: "0600"},
	)
	tc.waitRunning()
	cfg, _, _ := tc.drv.Task(tc.id)
	if cfg.Env["DB_PASSWORD"] != "s3cret" || cfg.Env["GREETING"] != "hello" {
		t.Fatalf("task env: DB_PASSWORD=%q GREETING=%q", cfg.Env["DB_PASSWORD"], cfg.Env["GREETING"])
	}
	dir := filepath.Join(tc.c.allocRoot, tc.alloc.ID, "tasks", "server")
	if cfg.LocalDir != filepath.Join(dir, "local") || cfg.SecretsDir != filepath.Join(dir, "secrets") || cfg.AllocDir != filepath.Join(tc.c.allocRoot, tc.alloc.ID, "alloc") {
		t.Fatalf("task directories: %q %q %q", cfg.LocalDir, cfg.SecretsDir, cfg.AllocDir)
	}
	if got := tc.localFile("local/index.html"); got != "hello from server" {
		t.Fatalf("index.html = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, "secrets", "db.env")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("db.env: %v %v", fi, err)
	}
	// Read as this node, for this allocation, in its namespace.
	r := srv.lastRead()
	if r.NodeID != tc.c.NodeID() || r.SecretID != tc.c.secretID || r.AllocID != tc.alloc.ID || r.Namespace != "team-a" || r.Path != "app/config" {
		t.Fatalf("Variable.Read request %+v", r)
	}
}

// TestClient_TemplateChangeRestartsTask: a changed restart template
// restarts the task with the new file and env (a new PID), and the
// restart does not count against the restart policy: with no attempts
// left, a crash would fail the task, the template restarts do not.
func TestClient_TemplateChangeRestartsTask(t *testing.T) {
	srv := newVarServers(t)
	srv.put("app/config", map[string]string{"greeting": "hello"})
	noRestarts := &structs.RestartPolicy{Attempts: 0, Interval: time.Hour, Delay: time.Second, Mode: structs.RestartPolicyModeFail}
	tc := newTemplateClient(t, srv, noRestarts,
		&structs.Template{EmbeddedTmpl: `{{ (var "app/config").greeting }}`, DestPath: "local/index.html"},
		&structs.Template{EmbeddedTmpl: `GREETING={{ (var "app/config").greeting }}`, DestPath: "secrets/g.env", Envvars: true},
	)
	pid := tc.waitRunning()
	for i, word := range []string{"bye", "again"} {
		srv.put("app/config", map[string]string{"greeting": word})
		testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
			cfg, p, ok := tc.drv.Task(tc.id)
			if !ok || p == pid || cfg.Env["GREETING"] != word || tc.state().State != structs.TaskStateRunning {
				return false, fmt.Errorf("task not restarted with %q yet", word)
			}
			pid = p
			return true, nil
		})
		if got := tc.localFile("local/index.html"); got != word {
			t.Fatalf("index.html = %q, want %q", got, word)
		}
		if st := tc.state(); st.Restarts != uint64(i+1) || st.Failed {
			t.Fatalf("after restart %d: restarts %d failed %v", i+1, st.Restarts, st.Failed)
		}
	}
	if ev := tc.events(structs.TaskEventRestartSignal); len(ev) != 2 || !strings.Contains(ev[0], "local/index.html") {
		t.Fatalf("restart events %q", ev)
	}
	if starts, _, _, _, _ := tc.drv.Counts(); starts != 3 {
		t.Fatalf("%d starts, want 3", starts)
	}
}

// TestClient_TemplateChangeSignalsTask: a changed signal template
// sends its signal; the task keeps running with the same PID.
func TestClient_TemplateChangeSignalsTask(t *testing.T) {
	srv := newVarServers(t)
	srv.put("app/config", map[string]string{"greeting": "hello"})
	tc := newTemplateClient(t, srv, nil, &structs.Template{EmbeddedTmpl: `{{ (var "app/config").greeting }}`, DestPath: "local/index.html",
		ChangeMode: structs.TemplateChangeSignal, ChangeSignal: "SIGHUP"})
	pid := tc.waitRunning()
	srv.put("app/config", map[string]string{"greeting": "bye"})
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		sigs := tc.drv.Signals(tc.id)
		return len(sigs) == 1 && sigs[0] == syscall.SIGHUP, fmt.Errorf("signals %v", sigs)
	})
	if got := tc.localFile("local/index.html"); got != "bye" {
		t.Fatalf("index.html = %q", got)
	}
	if _, p, ok := tc.drv.Task(tc.id); !ok || p != pid {
		t.Fatalf("pid %d (exists %v), want %d", p, ok, pid)
	}
	if starts, _, stops, _, _ := tc.drv.Counts(); starts != 1 || stops != 0 {
		t.Fatalf("starts %d stops %d; want the task left running", starts, stops)
	}
	if ev := tc.events(structs.TaskEventSignaling); len(ev) != 1 || !strings.Contains(ev[0], "sent SIGHUP") {
		t.Fatalf("signal events %q", ev)
	}
}

// TestClient_TemplateMissingVariableFailsTask: a template waiting for a
// variable that never comes fails its task after wait_missing, never
// started, with the path in its events; the allocation fails.
func TestClient_TemplateMissingVariableFailsTask(t *testing.T) {
	srv := newVarServers(t)
	tc := newTemplateClient(t, srv, nil, &structs.Template{EmbeddedTmpl: `{{ (var "app/missing").x }}`, DestPath: "local/x", WaitMissing: 500 * time.Millisecond})
	report := srv.waitReport(t, tc.alloc.ID, func(a *structs.Allocation) bool { return a.ClientStatus == structs.AllocClientStatusFailed })
	st := report.TaskStates["server"]
	if st.State != structs.TaskStateDead || !st.Failed {
		t.Fatalf("task state %+v", st)
	}
	var missing, failure bool
	for _, e := range st.Events {
		missing = missing || (e.Type == structs.TaskEventTemplate && e.Message == "Missing: variable app/missing")
		failure = failure || (e.Type == structs.TaskEventSetupFailure && strings.Contains(e.Message, "missing variable app/missing after waiting 500ms"))
	}
	if !missing || !failure {
		t.Fatalf("events %+v; want a Missing event and a setup failure naming the path", st.Events)
	}
	if starts, _, _, _, _ := tc.drv.Counts(); starts != 0 {
		t.Fatalf("the task was started %d times", starts)
	}
	// Done for good: its secrets directory is gone.
	if _, err := os.Stat(filepath.Join(tc.c.allocRoot, tc.alloc.ID, "tasks", "server", "secrets")); !os.IsNotExist(err) {
		t.Fatalf("secrets directory of a failed task: %v", err)
	}
}

// TestClient_StoppedTaskReleasesSecrets: the secrets tmpfs of a task
// stopped for good is unmounted and removed; nothing of what was
// rendered there stays on the node.
func TestClient_StoppedTaskReleasesSecrets(t *testing.T) {
	requireRoot(t)
	srv := newVarServers(t)
	srv.put("app/config", map[string]string{"password": "s3cret"})
	drv := fakedriver.New()
	c, err := New(&Config{
		DataDir: t.TempDir(), RPC: srv,
		Drivers:     map[string]driver.Driver{"containerd": drv},
		CPUTotalMHz: 4000, MemoryTotalMB: 4096,
		Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown() })
	job := mock.Job()
	job.TaskGroups[0].Tasks[0].Templates = []*structs.Template{{EmbeddedTmpl: `{{ (var "app/config").password }}`, DestPath: "secrets/pw"}}
	job.Canonicalize()
	alloc := mock.Alloc(job, c.Node(), 0)
	alloc.NodeID = c.NodeID()
	c.applyAlloc(alloc)
	secrets := filepath.Join(c.allocRoot, alloc.ID, "tasks", "server", "secrets")
	t.Cleanup(func() { _ = newTaskDirs(filepath.Join(c.allocRoot, alloc.ID), "server", true).release() })
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		b, err := os.ReadFile(filepath.Join(secrets, "pw"))
		return err == nil && string(b) == "s3cret", err
	})
	if mounted, err := isTmpfsMount(secrets); err != nil || !mounted {
		t.Fatalf("secrets is not a tmpfs: %v %v", mounted, err)
	}
	stopped := alloc.Copy()
	stopped.DesiredStatus = structs.AllocDesiredStatusStop
	stopped.AllocModifyIndex++
	c.applyAlloc(stopped)
	srv.waitReport(t, alloc.ID, func(a *structs.Allocation) bool { return a.ClientStatus == structs.AllocClientStatusComplete })
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		_, err := os.Stat(secrets)
		return os.IsNotExist(err), fmt.Errorf("secrets still there: %v", err)
	})
	if n := countMounts(t, secrets); n != 0 {
		t.Fatalf("%d mounts left", n)
	}
	// The local directory stays until the allocation is collected.
	if _, err := os.Stat(filepath.Join(c.allocRoot, alloc.ID, "tasks", "server", "local")); err != nil {
		t.Fatalf("local directory: %v", err)
	}
}

func TestReleaseTaskDirs(t *testing.T) {
	requireRoot(t)
	dataDir := t.TempDir()
	var dirs []*taskDirs
	for _, task := range []string{"a", "b"} {
		d := newTaskDirs(filepath.Join(dataDir, "alloc", "3f1c6a52"), task, true)
		if err := d.prepare(); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	if err := ReleaseTaskDirs(dataDir); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if n := countMounts(t, d.secrets); n != 0 {
			t.Fatalf("%s still mounted", d.secrets)
		}
	}
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatalf("the data dir cannot be removed: %v", err)
	}
}
