package template

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
)

// fakeSource is an in-memory Source with the servers' index semantics:
// a variable's index is its ModifyIndex, a missing one's the table's;
// a read blocks while the index is not past minIndex.
type fakeSource struct {
	mu      sync.Mutex
	index   uint64
	vars    map[string]fakeVar
	svcs    map[string][]*structs.ServiceInstance
	fail    map[string]error
	changed chan struct{}
	reads   map[string]int
}

type fakeVar struct {
	items  map[string]string
	modify uint64
}

func newFakeSource() *fakeSource {
	return &fakeSource{index: 10, vars: map[string]fakeVar{}, svcs: map[string][]*structs.ServiceInstance{},
		fail: map[string]error{}, changed: make(chan struct{}), reads: map[string]int{}}
}

// bumpLocked moves the index and wakes blocked reads.
func (s *fakeSource) bumpLocked() uint64 {
	s.index++
	close(s.changed)
	s.changed = make(chan struct{})
	return s.index
}

func (s *fakeSource) put(path string, items map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vars[path] = fakeVar{items: items, modify: s.bumpLocked()}
}

func (s *fakeSource) del(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.vars, path)
	s.bumpLocked()
}

func (s *fakeSource) setService(name string, insts []*structs.ServiceInstance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.svcs[name] = insts
	s.bumpLocked()
}

func (s *fakeSource) setFail(path string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.fail, path)
	} else {
		s.fail[path] = err
	}
	s.bumpLocked()
}

func (s *fakeSource) readsOf(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads[path]
}

func (s *fakeSource) Variable(ctx context.Context, path string, minIndex uint64) (map[string]string, uint64, error) {
	for {
		s.mu.Lock()
		s.reads[path]++
		if err := s.fail[path]; err != nil {
			s.mu.Unlock()
			return nil, 0, err
		}
		v, ok := s.vars[path]
		idx := s.index
		if ok {
			idx = v.modify
		}
		ch := s.changed
		if idx > minIndex {
			var items map[string]string
			if ok {
				items = copyMap(v.items)
			}
			s.mu.Unlock()
			return items, idx, nil
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
}

func (s *fakeSource) ServiceInstances(ctx context.Context, name string, minIndex uint64) ([]*structs.ServiceInstance, uint64, error) {
	for {
		s.mu.Lock()
		idx, ch := s.index, s.changed
		if idx > minIndex {
			out := append([]*structs.ServiceInstance(nil), s.svcs[name]...)
			s.mu.Unlock()
			return out, idx, nil
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
}

// harness is a manager over a fake source with the task's three
// directories, recording its events and changes.
type harness struct {
	t       *testing.T
	src     *fakeSource
	dirs    map[string]string
	mu      sync.Mutex
	events  []string
	changes []Change
	splays  []time.Duration
}

func newHarness(t *testing.T) *harness {
	root := t.TempDir()
	h := &harness{t: t, src: newFakeSource(), dirs: map[string]string{}}
	for _, d := range structs.TemplateDirs {
		h.dirs[d] = filepath.Join(root, d)
		if err := os.MkdirAll(h.dirs[d], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func (h *harness) manager(templates ...*structs.Template) *Manager {
	h.t.Helper()
	for _, tm := range templates {
		if tm.ChangeMode == "" {
			tm.ChangeMode = structs.TemplateChangeRestart
		}
		if tm.WaitMissing == 0 {
			tm.WaitMissing = 5 * time.Second
		}
	}
	m, err := New(Config{
		Templates: templates,
		Dirs:      h.dirs,
		Env:       map[string]string{"DROVER_ALLOC_ID": "a1", "APP": "shop"},
		Node:      &structs.Node{ID: "n1", Name: "node-1", Datacenter: "dc1", Meta: map[string]string{"rack": "r7"}},
		Source:    h.src,
		OnEvent: func(msg string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.events = append(h.events, msg)
		},
		OnChange: func(c Change) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.changes = append(h.changes, c)
		},
		Rand: func(max time.Duration) time.Duration {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.splays = append(h.splays, max)
			return 0
		},
		RetryWait: 20 * time.Millisecond,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(m.Stop)
	return m
}

func (h *harness) read(dest string) string {
	dir, rel, _ := strings.Cut(dest, "/")
	b, err := os.ReadFile(filepath.Join(h.dirs[dir], rel))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func (h *harness) gotEvents() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.events...)
}

func (h *harness) gotChanges() []Change {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Change(nil), h.changes...)
}

func (h *harness) waitFile(dest, want string) {
	h.t.Helper()
	testutil.WaitFor(h.t, 5*time.Second, func() (bool, error) {
		if got := h.read(dest); got != want {
			return false, fmt.Errorf("%s holds %q, want %q", dest, got, want)
		}
		return true, nil
	})
}

func (h *harness) waitChanges(n int) []Change {
	h.t.Helper()
	testutil.WaitFor(h.t, 5*time.Second, func() (bool, error) {
		if got := len(h.gotChanges()); got != n {
			return false, fmt.Errorf("%d changes, want %d", got, n)
		}
		return true, nil
	})
	return h.gotChanges()
}

const greeting = `{{ with var "app/config" }}{{ .greeting }}{{ end }}`

func TestManager_FunctionsAreTheOnesValidationKnows(t *testing.T) {
	m := &Manager{}
	var names []string
	for n := range m.funcs() {
		names = append(names, n)
	}
	sort.Strings(names)
	want := append([]string(nil), structs.TemplateFuncNames...)
	sort.Strings(want)
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("client functions %v, validation knows %v", names, want)
	}
}

func TestManager_RendersBeforeStart(t *testing.T) {
	h := newHarness(t)
	h.src.put("app/config", map[string]string{"greeting": "hello", "password": "s3cret"})
	h.src.setService("db", []*structs.ServiceInstance{
		{ID: "b-db", ServiceName: "db", Address: "10.0.0.2", Port: 5432, Status: structs.ServiceStatusPassing},
		{ID: "a-db", ServiceName: "db", Address: "10.0.0.1", Port: 5433, Status: structs.ServiceStatusPassing},
		{ID: "c-db", ServiceName: "db", Address: "10.0.0.3", Port: 5434, Status: structs.ServiceStatusCritical},
	})
	m := h.manager(
		&structs.Template{EmbeddedTmpl: greeting, DestPath: "local/index.html", Perms: "0644"},
		&structs.Template{EmbeddedTmpl: `{{ range service "db" }}{{ .Address }}:{{ .Port }} {{ end }}app={{ env "APP" }} node={{ (node).Name }} rack={{ (node).Meta.rack }}`,
			DestPath: "alloc/conf/app.conf", Perms: "0640"},
		&structs.Template{EmbeddedTmpl: `PASSWORD="{{ (var "app/config").password }}"`, DestPath: "secrets/app.env", Envvars: true, Perms: "0600"},
	)
	if err := m.Prestart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := h.read("local/index.html"); got != "hello" {
		t.Fatalf("index.html = %q", got)
	}
	if got, want := h.read("alloc/conf/app.conf"), "10.0.0.1:5433 10.0.0.2:5432 app=shop node=node-1 rack=r7"; got != want {
		t.Fatalf("app.conf = %q, want %q (passing instances, sorted)", got, want)
	}
	for dest, perm := range map[string]os.FileMode{"local/index.html": 0o644, "alloc/conf/app.conf": 0o640, "secrets/app.env": 0o600} {
		dir, rel, _ := strings.Cut(dest, "/")
		fi, err := os.Stat(filepath.Join(h.dirs[dir], rel))
		if err != nil || fi.Mode().Perm() != perm {
			t.Fatalf("%s: %v, mode %v; want %o", dest, err, fi, perm)
		}
	}
	if env := m.Env(); !reflect.DeepEqual(env, map[string]string{"PASSWORD": "s3cret"}) {
		t.Fatalf("Env = %v", env)
	}
	if len(h.gotChanges()) != 0 || len(h.gotEvents()) != 0 {
		t.Fatalf("the first rendering reported changes %v or events %v", h.gotChanges(), h.gotEvents())
	}
}

func TestManager_ChangeModes(t *testing.T) {
	cases := []struct {
		name    string
		tm      *structs.Template
		want    *Change
		splayed time.Duration
	}{
		{"restart", &structs.Template{EmbeddedTmpl: greeting, DestPath: "local/index.html", Splay: 7 * time.Second},
			&Change{Restart: true, Templates: []string{"local/index.html"}}, 7 * time.Second},
		{"signal", &structs.Template{EmbeddedTmpl: greeting, DestPath: "local/index.html", ChangeMode: "signal", ChangeSignal: "hup", Splay: time.Second},
			&Change{Signals: []string{"SIGHUP"}, Templates: []string{"local/index.html"}}, time.Second},
		{"noop", &structs.Template{EmbeddedTmpl: greeting, DestPath: "local/index.html", ChangeMode: "noop"}, nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.src.put("app/config", map[string]string{"greeting": "hello"})
			m := h.manager(tc.tm)
			if err := m.Prestart(context.Background()); err != nil {
				t.Fatal(err)
			}
			// A write that changes nothing renders the same: no change.
			h.src.put("app/config", map[string]string{"greeting": "hello"})
			h.src.put("other/path", map[string]string{"x": "y"})
			time.Sleep(100 * time.Millisecond)
			if c := h.gotChanges(); len(c) != 0 {
				t.Fatalf("an unchanged rendering reported %v", c)
			}
			h.src.put("app/config", map[string]string{"greeting": "bye"})
			h.waitFile("local/index.html", "bye")
			if tc.want == nil {
				time.Sleep(100 * time.Millisecond)
				if c := h.gotChanges(); len(c) != 0 {
					t.Fatalf("noop template reported %v", c)
				}
				return
			}
			got := h.waitChanges(1)
			if !reflect.DeepEqual(got[0], *tc.want) {
				t.Fatalf("change %+v, want %+v", got[0], *tc.want)
			}
			h.mu.Lock()
			splays := append([]time.Duration(nil), h.splays...)
			h.mu.Unlock()
			if len(splays) != 1 || splays[0] != tc.splayed {
				t.Fatalf("splay drawn up to %v, want [%v]", splays, tc.splayed)
			}
		})
	}
}

// TestManager_SplayGathersChanges: changes during the splay are acted
// on once, the strongest action with every signal asked for.
func TestManager_SplayGathersChanges(t *testing.T) {
	h := newHarness(t)
	h.src.put("a", map[string]string{"v": "1"})
	h.src.put("b", map[string]string{"v": "1"})
	m := h.manager(
		&structs.Template{EmbeddedTmpl: `{{ (var "a").v }}`, DestPath: "local/a", ChangeMode: "signal", ChangeSignal: "SIGUSR1", Splay: 300 * time.Millisecond},
		&structs.Template{EmbeddedTmpl: `{{ (var "b").v }}`, DestPath: "local/b", ChangeMode: "restart", Splay: 300 * time.Millisecond},
	)
	m.cfg.Rand = func(max time.Duration) time.Duration { return max }
	if err := m.Prestart(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.src.put("a", map[string]string{"v": "2"})
	h.waitFile("local/a", "2")
	h.src.put("b", map[string]string{"v": "2"})
	h.waitFile("local/b", "2")
	got := h.waitChanges(1)
	want := Change{Restart: true, Signals: []string{"SIGUSR1"}, Templates: []string{"local/a", "local/b"}}
	if !reflect.DeepEqual(got[0], want) {
		t.Fatalf("change %+v, want %+v", got[0], want)
	}
	time.Sleep(400 * time.Millisecond)
	if n := len(h.gotChanges()); n != 1 {
		t.Fatalf("%d changes, want the two gathered into one", n)
	}
}

func TestManager_MissingVariableFailsAfterWaitMissing(t *testing.T) {
	h := newHarness(t)
	m := h.manager(&structs.Template{EmbeddedTmpl: `{{ (var "app/missing").x }}`, DestPath: "local/x", WaitMissing: 300 * time.Millisecond})
	start := time.Now()
	err := m.Prestart(context.Background())
	var merr *MissingError
	if !errors.As(err, &merr) {
		t.Fatalf("Prestart = %v, want a *MissingError", err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("gave up after %v, before wait_missing", waited)
	}
	if msg := err.Error(); !strings.Contains(msg, "variable app/missing") || !strings.Contains(msg, "local/x") || !strings.Contains(msg, "300ms") {
		t.Fatalf("error %q does not name the template, the path and the wait", msg)
	}
	if ev := h.gotEvents(); len(ev) != 1 || ev[0] != "Missing: variable app/missing" {
		t.Fatalf("events %q, want one Missing: variable app/missing", ev)
	}
	if got := h.read("local/x"); !strings.HasPrefix(got, "<") {
		t.Fatalf("a file was written: %q", got)
	}
}

func TestManager_MissingVariableThatAppears(t *testing.T) {
	h := newHarness(t)
	m := h.manager(&structs.Template{EmbeddedTmpl: greeting, DestPath: "local/index.html", WaitMissing: 10 * time.Second})
	done := make(chan error, 1)
	go func() { done <- m.Prestart(context.Background()) }()
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		return len(h.gotEvents()) == 1, nil
	})
	h.src.put("app/config", map[string]string{"greeting": "late"})
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Prestart did not see the variable appear")
	}
	if got := h.read("local/index.html"); got != "late" {
		t.Fatalf("index.html = %q", got)
	}
}

func TestManager_ReadErrorsRetriedThenReported(t *testing.T) {
	h := newHarness(t)
	h.src.setFail("app/config", errors.New("permission denied"))
	m := h.manager(&structs.Template{EmbeddedTmpl: greeting, DestPath: "local/index.html", WaitMissing: 300 * time.Millisecond})
	err := m.Prestart(context.Background())
	if err == nil || !strings.Contains(err.Error(), "could not read it: permission denied") {
		t.Fatalf("Prestart = %v, want the read error", err)
	}
	if n := h.src.readsOf("app/config"); n < 3 {
		t.Fatalf("read %d times, want the failed reads retried", n)
	}
	if ev := h.gotEvents(); len(ev) != 1 || !strings.Contains(ev[0], "permission denied") {
		t.Fatalf("events %q", ev)
	}
}

func TestManager_RenderErrorsFailAtOnce(t *testing.T) {
	cases := map[string]struct {
		text, phrase string
		env          bool
	}{
		"missing item":    {`{{ (var "app/config").nope }}`, "map has no entry for key", false},
		"too large":       {`{{ range $i := 1000 }}{{ range $j := 1000 }}0123456789{{ end }}{{ end }}`, "larger than", false},
		"bad env":         {`not an env line`, "line 1", true},
		"client variable": {`DROVER_ALLOC_ID=forged`, "DROVER_", true},
		"bad path":        {`{{ var (printf "..%s" "/x") }}`, "not a path segment", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.src.put("app/config", map[string]string{"greeting": "hi"})
			m := h.manager(&structs.Template{EmbeddedTmpl: tc.text, DestPath: "local/x", Envvars: tc.env})
			start := time.Now()
			err := m.Prestart(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.phrase) || !strings.Contains(err.Error(), "local/x") {
				t.Fatalf("Prestart = %v, want an error with %q naming the template", err, tc.phrase)
			}
			if time.Since(start) > 4*time.Second {
				t.Fatal("a render error waited for wait_missing")
			}
		})
	}
}

// TestManager_RefusesEscapingDestination: a task that made a directory
// of its destination a symlink out of its directories fails the
// rendering; nothing is written outside.
func TestManager_RefusesEscapingDestination(t *testing.T) {
	h := newHarness(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(h.dirs["local"], "conf")); err != nil {
		t.Fatal(err)
	}
	h.src.put("app/config", map[string]string{"greeting": "hi"})
	m := h.manager(&structs.Template{EmbeddedTmpl: greeting, DestPath: "local/conf/app.conf"})
	if err := m.Prestart(context.Background()); err == nil || !strings.Contains(err.Error(), "write") {
		t.Fatalf("Prestart = %v, want a write error", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("wrote outside the task directory: %v", entries)
	}
	if _, err := New(Config{Source: h.src, Dirs: h.dirs, Templates: []*structs.Template{{EmbeddedTmpl: "x", DestPath: "local/../../etc/passwd"}}}); err == nil {
		t.Fatal("New accepted an escaping destination")
	}
}

// TestManager_AfterStart: a variable deleted after the start keeps the
// file and reports it missing; a rendering error keeps the file and is
// reported once; both recover.
func TestManager_AfterStart(t *testing.T) {
	h := newHarness(t)
	h.src.put("app/config", map[string]string{"greeting": "hello"})
	m := h.manager(&structs.Template{EmbeddedTmpl: `{{ (var "app/config").greeting }}`, DestPath: "local/index.html"})
	if err := m.Prestart(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.src.del("app/config")
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		ev := h.gotEvents()
		return len(ev) == 1 && ev[0] == "Missing: variable app/config", fmt.Errorf("events %q", ev)
	})
	h.src.put("app/config", map[string]string{"other": "x"})
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		ev := h.gotEvents()
		return len(ev) == 2 && strings.Contains(ev[1], "keeps the last file"), fmt.Errorf("events %q", ev)
	})
	if got := h.read("local/index.html"); got != "hello" {
		t.Fatalf("file = %q, want the last rendering kept", got)
	}
	if c := h.gotChanges(); len(c) != 0 {
		t.Fatalf("changes %v while nothing could be rendered", c)
	}
	h.src.put("app/config", map[string]string{"greeting": "back"})
	h.waitFile("local/index.html", "back")
	h.waitChanges(1)
}

// TestManager_Resume: a restarted client compares with the files the
// task has: the same rendering changes nothing, a different one is
// written and acted on.
func TestManager_Resume(t *testing.T) {
	h := newHarness(t)
	h.src.put("app/config", map[string]string{"greeting": "hello"})
	tm := &structs.Template{EmbeddedTmpl: greeting, DestPath: "local/index.html"}
	envTm := &structs.Template{EmbeddedTmpl: `G={{ (var "app/config").greeting }}`, DestPath: "secrets/g.env", Envvars: true}
	first := h.manager(tm, envTm)
	if err := first.Prestart(context.Background()); err != nil {
		t.Fatal(err)
	}
	first.Stop()

	same := h.manager(tm, envTm)
	same.Resume()
	if env := same.Env(); env["G"] != "hello" {
		t.Fatalf("resumed env %v, want the file's", env)
	}
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) { return h.src.readsOf("app/config") >= 2, nil })
	time.Sleep(100 * time.Millisecond)
	if c := h.gotChanges(); len(c) != 0 {
		t.Fatalf("resuming with unchanged files reported %v", c)
	}
	same.Stop()

	h.src.put("app/config", map[string]string{"greeting": "changed while down"})
	again := h.manager(tm, envTm)
	again.Resume()
	h.waitFile("local/index.html", "changed while down")
	got := h.waitChanges(1)
	if !got[0].Restart || !reflect.DeepEqual(got[0].Templates, []string{"local/index.html", "secrets/g.env"}) {
		t.Fatalf("change %+v", got[0])
	}
	if env := again.Env(); env["G"] != "changed while down" {
		t.Fatalf("env %v", env)
	}
}

func TestManager_StopEndsWatchesAndChanges(t *testing.T) {
	h := newHarness(t)
	h.src.put("app/config", map[string]string{"greeting": "hello"})
	m := h.manager(&structs.Template{EmbeddedTmpl: greeting, DestPath: "local/index.html", Splay: time.Hour})
	m.cfg.Rand = func(max time.Duration) time.Duration { return 200 * time.Millisecond }
	if err := m.Prestart(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.src.put("app/config", map[string]string{"greeting": "bye"})
	h.waitFile("local/index.html", "bye")
	done := make(chan struct{})
	go func() { m.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return")
	}
	time.Sleep(300 * time.Millisecond)
	if c := h.gotChanges(); len(c) != 0 {
		t.Fatalf("a change was reported after Stop: %v", c)
	}
	// Prestart of a stopped manager does not wait.
	m2 := h.manager(&structs.Template{EmbeddedTmpl: `{{ var "never" }}`, DestPath: "local/y"})
	go func() { time.Sleep(50 * time.Millisecond); m2.Stop() }()
	if err := m2.Prestart(context.Background()); !errors.Is(err, ErrStopped) {
		t.Fatalf("Prestart of a stopped manager = %v", err)
	}
}

func TestManager_TooManyWatches(t *testing.T) {
	h := newHarness(t)
	m := h.manager(&structs.Template{EmbeddedTmpl: `{{ range $i := 200 }}{{ var (printf "v/%d" $i) }}{{ end }}`, DestPath: "local/x", WaitMissing: time.Second})
	for i := 0; i < 200; i++ {
		h.src.put(fmt.Sprintf("v/%d", i), map[string]string{"a": "b"})
	}
	err := m.Prestart(context.Background())
	if err == nil || !strings.Contains(err.Error(), "more than 100") {
		t.Fatalf("Prestart = %v", err)
	}
}
