package template

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"text/template"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/structs"
)

// Limits of one task's rendering.
const (
	// MaxRenderedSize bounds what one template renders (bytes).
	MaxRenderedSize = 1 << 20
	// MaxWatches bounds the variables and services one task's templates
	// read (each is a blocking query held open).
	MaxWatches = 100
)

// Timing of the watches.
const (
	defaultRetryWait = time.Second
	maxRetryWait     = 30 * time.Second
	// minQueryGap spaces queries that came back without waiting (a
	// server that does not block), so a watch never spins.
	minQueryGap = 500 * time.Millisecond
)

// ErrStopped is returned by Prestart when the manager was stopped
// while it waited.
var ErrStopped = errors.New("template manager stopped")

// Source reads what templates render for one task: variables and
// services of its allocation's namespace, read as its node. A Manager
// calls it from one goroutine per variable or service. Each call may
// block until the value's index passes minIndex or the server's wait
// ends, and must return once ctx is done.
type Source interface {
	// Variable reads the variable at path: its items, nil when it does
	// not exist, and the index to pass as minIndex next.
	Variable(ctx context.Context, path string, minIndex uint64) (map[string]string, uint64, error)
	// ServiceInstances reads a service's passing instances.
	ServiceInstances(ctx context.Context, name string, minIndex uint64) ([]*structs.ServiceInstance, uint64, error)
}

// Config configures a Manager.
type Config struct {
	// Templates are the task's template blocks, validated.
	Templates []*structs.Template
	// Dirs maps each of structs.TemplateDirs to the directory on this
	// node it stands for (the task's local and secrets, the group's
	// alloc).
	Dirs map[string]string
	// Env is the task's environment, for the env function.
	Env map[string]string
	// Node is the node the task runs on, for the node function.
	Node *structs.Node
	// Source reads variables and services.
	Source Source
	// OnEvent reports what the task's events should show: a variable
	// that is missing, a template that cannot be rendered after the
	// start. It is called without the manager's locks held.
	OnEvent func(msg string)
	// OnChange is called, after the splay, when templates whose
	// change_mode is restart or signal were rendered anew after the
	// task started. It is called on a timer's goroutine, possibly once
	// more just after Stop.
	OnChange func(Change)
	Logger   hclog.Logger
	// Rand returns a random duration in [0, max] for the splay; nil
	// draws from math/rand.
	Rand func(max time.Duration) time.Duration
	// RetryWait is the first wait after a failed read (then doubled,
	// up to 30s); default 1s.
	RetryWait time.Duration
}

// Change is what rendering anew asks of the task.
type Change struct {
	// Restart: a restart template changed; the task is to be stopped
	// and started again (with its env templates' new values).
	Restart bool
	// Signals are the change signals of the signal templates that
	// changed, sorted.
	Signals []string
	// Templates are the destinations of the templates that changed,
	// sorted.
	Templates []string
}

// MissingError is Prestart's failure when a template still lacked what
// it reads after its WaitMissing.
type MissingError struct {
	// Template is the template's destination.
	Template string
	Waited   time.Duration
	// Missing describes what it lacks: "variable app/config", with the
	// read error when reading failed.
	Missing []string
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("template %s: missing %s after waiting %s", e.Template, strings.Join(e.Missing, ", "), e.Waited)
}

// Manager renders one task's templates and keeps them current. Use New,
// then Prestart (before the task starts) or Resume (for a task that
// already runs), and Stop when the task is done for good.
type Manager struct {
	cfg   Config
	log   hclog.Logger
	tmpls []*tmpl

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// notify is poked when a watched value changed.
	notify chan struct{}

	// renderMu serializes renderings (Prestart, then the loop); cur is
	// the rendering in progress, read by the template functions.
	renderMu sync.Mutex
	cur      *rendering
	// pass holds what each input read as in the pass of renderAll in
	// progress (nil between passes; guarded by mu): every template of
	// one pass sees the same values, so a watch that lands mid-pass
	// cannot render one template new and another old (two changes,
	// and two restarts of the task, for one update).
	pass map[string]passView

	// mu guards deps, the fields of every dep, the tmpls' last, known
	// and env fields, pending, timer, stopped and reported.
	mu      sync.Mutex
	deps    map[string]*dep
	pending *Change
	timer   *time.Timer
	stopped bool
	// reported are the messages of the missing inputs last reported,
	// so each is reported once while it lasts.
	reported map[string]bool
	// failed are the render errors last reported, by destination.
	failed map[string]string
}

// tmpl is one parsed template and what was last written.
type tmpl struct {
	spec *structs.Template
	t    *template.Template
	// dir is the directory on the node; rel the path below it.
	dir, rel string
	perm     fs.FileMode
	// last is what the file holds, as far as the manager knows; known
	// is whether it knows. env is last parsed (env templates).
	last  string
	known bool
	env   map[string]string
}

// Dependency kinds.
const (
	kindVariable = "variable"
	kindService  = "service"
)

// dep is one variable or service the templates read, and its watch.
type dep struct {
	kind, name string
	// fetched: a read succeeded; exists: the variable exists (services
	// always do); err: the last read failed with it.
	fetched, exists bool
	items           map[string]string
	instances       []Instance
	err             error
}

func (d *dep) String() string { return d.kind + " " + d.name }

// New parses the templates and resolves their destinations; it starts
// nothing.
func New(cfg Config) (*Manager, error) {
	if cfg.Source == nil {
		return nil, errors.New("templates need a source of variables and services")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Rand == nil {
		cfg.Rand = func(max time.Duration) time.Duration {
			if max <= 0 {
				return 0
			}
			return time.Duration(rand.Int64N(int64(max) + 1))
		}
	}
	if cfg.RetryWait <= 0 {
		cfg.RetryWait = defaultRetryWait
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(string) {}
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func(Change) {}
	}
	m := &Manager{
		cfg:      cfg,
		log:      cfg.Logger,
		notify:   make(chan struct{}, 1),
		deps:     map[string]*dep{},
		reported: map[string]bool{},
		failed:   map[string]string{},
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	for _, spec := range cfg.Templates {
		d, rel, err := structs.TemplateDest(spec.DestPath)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", spec.DestPath, err)
		}
		dir := cfg.Dirs[d]
		if dir == "" {
			return nil, fmt.Errorf("template %s: this task has no %s directory", spec.DestPath, d)
		}
		perm, err := spec.FileMode()
		if err != nil {
			return nil, fmt.Errorf("template %s: perms: %w", spec.DestPath, err)
		}
		t, err := structs.ParseTemplateText(spec.DestPath, spec.EmbeddedTmpl, m.funcs())
		if err != nil {
			return nil, err
		}
		m.tmpls = append(m.tmpls, &tmpl{spec: spec, t: t, dir: dir, rel: rel, perm: fs.FileMode(perm)})
	}
	return m, nil
}

// Prestart renders every template and writes the files, before the
// task starts. While a template lacks a variable (or a read fails) it
// waits, reporting "Missing: variable PATH" through OnEvent, at most
// the template's WaitMissing; then it returns a *MissingError. A
// template that renders with an error (a missing item, too much
// output, a bad env line) or cannot be written fails it at once. On
// success the templates are watched from then on; call it once.
func (m *Manager) Prestart(ctx context.Context) error {
	m.renderMu.Lock()
	defer m.renderMu.Unlock()
	start := time.Now()
	m.prefetch()
	for {
		results := m.renderAll()
		var waiting []result
		for _, r := range results {
			if r.err != nil {
				return fmt.Errorf("template %s: %w", r.t.spec.DestPath, r.err)
			}
			if len(r.missing) > 0 {
				waiting = append(waiting, r)
			}
		}
		if len(waiting) == 0 {
			for _, r := range results {
				if err := m.write(r.t, r.out); err != nil {
					return err
				}
			}
			m.reportMissing(nil)
			m.startLoop()
			return nil
		}
		m.reportMissing(waiting)
		next := time.Duration(-1)
		for _, w := range waiting {
			left := time.Until(start.Add(w.t.spec.WaitMissing))
			if left <= 0 {
				return &MissingError{Template: w.t.spec.DestPath, Waited: w.t.spec.WaitMissing, Missing: w.missingText()}
			}
			if next < 0 || left < next {
				next = left
			}
		}
		timer := time.NewTimer(next)
		select {
		case <-m.notify:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-m.ctx.Done():
			timer.Stop()
			return ErrStopped
		}
		timer.Stop()
	}
}

// Resume takes over the templates of a task that already runs (the
// client restarted): the files on disk are what the task has, and a
// rendering that differs from them is written and acted on as any
// change. It does not wait.
func (m *Manager) Resume() {
	m.mu.Lock()
	for _, t := range m.tmpls {
		if s, ok := readFile(t.dir, t.rel, MaxRenderedSize); ok {
			t.last, t.known = s, true
			if t.spec.Envvars {
				if env, err := ParseEnv(s); err == nil {
					t.env = env
				}
			}
		}
	}
	m.mu.Unlock()
	m.prefetch()
	m.startLoop()
	m.poke()
}

// prefetch starts the watches of the variables the templates name with
// constant paths, so they are read side by side rather than one per
// rendering.
func (m *Manager) prefetch() {
	for _, t := range m.tmpls {
		paths, err := t.spec.VariablePaths()
		if err != nil {
			continue
		}
		for _, p := range paths {
			if structs.ValidateVariablePath(p) == nil {
				_, _, _, _ = m.use(kindVariable, p)
			}
		}
	}
}

// Env returns the variables the env templates set, as last written
// (a later template wins over an earlier one).
func (m *Manager) Env() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for _, t := range m.tmpls {
		for k, v := range t.env {
			out[k] = v
		}
	}
	return out
}

// Stop ends the watches and any pending change, and returns once the
// manager's goroutines have.
func (m *Manager) Stop() {
	m.mu.Lock()
	m.stopped = true
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
	m.pending = nil
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

// startLoop starts the goroutine that renders anew on every change.
func (m *Manager) startLoop() {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			select {
			case <-m.ctx.Done():
				return
			case <-m.notify:
			}
			m.renderMu.Lock()
			m.rerender()
			m.renderMu.Unlock()
		}
	}()
}

// rerender renders every template after the start: a complete
// rendering that differs from the file is written; the changes are
// acted on after the splay. What cannot be rendered keeps its file.
func (m *Manager) rerender() {
	var changed []*tmpl
	var waiting []result
	for _, r := range m.renderAll() {
		dest := r.t.spec.DestPath
		switch {
		case len(r.missing) > 0:
			waiting = append(waiting, r)
		case r.err != nil:
			m.reportFailure(dest, fmt.Sprintf("template %s could not be rendered; the task keeps the last file: %v", dest, r.err))
		default:
			m.mu.Lock()
			same := r.t.known && r.t.last == r.out
			m.mu.Unlock()
			if same {
				m.reportFailure(dest, "")
				continue
			}
			if err := m.write(r.t, r.out); err != nil {
				m.reportFailure(dest, fmt.Sprintf("%v; the task keeps the last file", err))
				continue
			}
			m.reportFailure(dest, "")
			m.log.Info("template rendered anew", "template", dest)
			changed = append(changed, r.t)
		}
	}
	m.reportMissing(waiting)
	if len(changed) > 0 {
		m.schedule(changed)
	}
}

// write writes a rendering (an env template's only once it parses).
func (m *Manager) write(t *tmpl, out string) error {
	var env map[string]string
	if t.spec.Envvars {
		var err error
		if env, err = ParseEnv(out); err != nil {
			return fmt.Errorf("template %s: env: %w", t.spec.DestPath, err)
		}
	}
	if err := writeFile(t.dir, t.rel, []byte(out), t.perm); err != nil {
		return fmt.Errorf("template %s: write: %w", t.spec.DestPath, err)
	}
	m.mu.Lock()
	t.last, t.known, t.env = out, true, env
	m.mu.Unlock()
	return nil
}

// schedule adds changed templates to the pending change and, unless a
// timer already waits, acts on it after a random time up to the
// largest splay of the templates that ask for an action.
func (m *Manager) schedule(changed []*tmpl) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	c := m.pending
	if c == nil {
		c = &Change{}
	}
	var splay time.Duration
	act := c.Restart || len(c.Signals) > 0
	for _, t := range changed {
		c.Templates = addSorted(c.Templates, t.spec.DestPath)
		switch t.spec.ChangeMode {
		case structs.TemplateChangeRestart:
			c.Restart, act = true, true
		case structs.TemplateChangeSignal:
			c.Signals, act = addSorted(c.Signals, structs.NormalizeSignalName(t.spec.ChangeSignal)), true
		default:
			continue
		}
		splay = max(splay, t.spec.Splay)
	}
	if !act {
		// Only noop templates changed: nothing to do.
		return
	}
	m.pending = c
	if m.timer == nil {
		m.timer = time.AfterFunc(m.cfg.Rand(splay), m.fire)
	}
}

// fire hands the pending change to OnChange.
func (m *Manager) fire() {
	m.mu.Lock()
	c := m.pending
	m.pending, m.timer = nil, nil
	stopped := m.stopped
	m.mu.Unlock()
	if c == nil || stopped {
		return
	}
	m.cfg.OnChange(*c)
}

func addSorted(list []string, s string) []string {
	i := sort.SearchStrings(list, s)
	if i < len(list) && list[i] == s {
		return list
	}
	list = append(list, "")
	copy(list[i+1:], list[i:])
	list[i] = s
	return list
}

// reportMissing reports, once each while it lasts, what the waiting
// templates lack that is known to be missing (a variable that does not
// exist, a read that failed), through OnEvent.
func (m *Manager) reportMissing(waiting []result) {
	now := map[string]bool{}
	for _, w := range waiting {
		for _, d := range w.missing {
			if d.fetched || d.err != nil {
				now[d.eventText()] = true
			}
		}
	}
	var msgs []string
	m.mu.Lock()
	for msg := range now {
		if !m.reported[msg] {
			msgs = append(msgs, msg)
		}
	}
	m.reported = now
	m.mu.Unlock()
	sort.Strings(msgs)
	for _, msg := range msgs {
		m.log.Warn("template input missing", "missing", msg)
		m.cfg.OnEvent(msg)
	}
}

// reportFailure reports a template's new failure once; "" clears it.
func (m *Manager) reportFailure(dest, msg string) {
	m.mu.Lock()
	prev := m.failed[dest]
	if msg == "" {
		delete(m.failed, dest)
	} else {
		m.failed[dest] = msg
	}
	m.mu.Unlock()
	if msg != "" && msg != prev {
		m.log.Warn("template not rendered", "template", dest, "error", msg)
		m.cfg.OnEvent(msg)
	}
}

// depView is what a rendering saw of a dep.
type depView struct {
	kind, name      string
	fetched, exists bool
	err             error
}

func (d depView) String() string { return d.kind + " " + d.name }

// eventText is the task event of a missing input.
func (d depView) eventText() string {
	if d.err != nil && !d.fetched {
		return fmt.Sprintf("Missing: %s (could not read it: %v)", d, d.err)
	}
	return "Missing: " + d.String()
}

// result is one template's rendering.
type result struct {
	t   *tmpl
	out string
	// missing: what it read that is not there yet; err: it failed.
	missing []depView
	err     error
}

func (r result) missingText() []string {
	var out []string
	for _, d := range r.missing {
		s := d.String()
		if d.err != nil && !d.fetched {
			s += fmt.Sprintf(" (could not read it: %v)", d.err)
		}
		out = append(out, s)
	}
	return out
}
