package template

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/droverhq/drover/structs"
)

// errWaiting aborts a rendering that reads something not there yet;
// the rendering's missing list says what.
var errWaiting = errors.New("waiting for a variable or service")

// errTooLarge aborts a rendering past MaxRenderedSize.
var errTooLarge = fmt.Errorf("the rendering is larger than %d bytes (1 MiB)", MaxRenderedSize)

// rendering is the state of one template's rendering, read by the
// template functions.
type rendering struct {
	missing []depView
}

// Instance is one passing instance of a service, as the service
// function returns it.
type Instance struct {
	ID        string
	Service   string
	Namespace string
	NodeID    string
	AllocID   string
	Address   string
	Port      int
	Tags      []string
	Canary    bool
}

// Node is the node a task runs on, as the node function returns it.
type Node struct {
	ID         string
	Name       string
	Datacenter string
	NodeClass  string
	NodePool   string
	Attributes map[string]string
	Meta       map[string]string
}

// funcs are the template functions structs.TemplateFuncNames names.
func (m *Manager) funcs() template.FuncMap {
	return template.FuncMap{
		"var":     m.fnVar,
		"service": m.fnService,
		"env":     m.fnEnv,
		"node":    m.fnNode,
	}
}

// fnVar is `var "PATH"`: the variable's items.
func (m *Manager) fnVar(path string) (map[string]string, error) {
	if err := structs.ValidateVariablePath(path); err != nil {
		return nil, err
	}
	v, items, _, err := m.use(kindVariable, path)
	if err != nil {
		return nil, err
	}
	if !v.fetched || !v.exists {
		m.cur.missing = append(m.cur.missing, v)
		return nil, errWaiting
	}
	return items, nil
}

// fnService is `service "NAME"`: its passing instances, by ID.
func (m *Manager) fnService(name string) ([]Instance, error) {
	if name == "" || len(name) > 63 {
		return nil, fmt.Errorf("service name %q: want 1 to 63 characters", name)
	}
	v, _, insts, err := m.use(kindService, name)
	if err != nil {
		return nil, err
	}
	if !v.fetched {
		m.cur.missing = append(m.cur.missing, v)
		return nil, errWaiting
	}
	return insts, nil
}

// fnEnv is `env "NAME"`: a variable of the task's environment, "" when
// unset.
func (m *Manager) fnEnv(name string) string {
	return m.cfg.Env[name]
}

// fnNode is `node`: the node's identity, attributes and meta.
func (m *Manager) fnNode() Node {
	n := m.cfg.Node
	if n == nil {
		return Node{}
	}
	return Node{
		ID: n.ID, Name: n.Name, Datacenter: n.Datacenter, NodeClass: n.NodeClass, NodePool: n.NodePool,
		Attributes: copyMap(n.Attributes), Meta: copyMap(n.Meta),
	}
}

// use returns what is known of a variable or service, starting its
// watch on first use. The items and instances returned are copies.
func (m *Manager) use(kind, name string) (depView, map[string]string, []Instance, error) {
	key := kind + "\x00" + name
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.pass[key]; ok {
		return p.view, copyMap(p.items), append([]Instance(nil), p.instances...), nil
	}
	d := m.deps[key]
	if d == nil {
		if len(m.deps) >= MaxWatches {
			return depView{}, nil, nil, fmt.Errorf("the task's templates read more than %d variables and services", MaxWatches)
		}
		d = &dep{kind: kind, name: name, exists: kind == kindService}
		m.deps[key] = d
		if !m.stopped {
			m.wg.Add(1)
			go m.watch(d)
		}
	}
	v := depView{kind: d.kind, name: d.name, fetched: d.fetched, exists: d.exists, err: d.err}
	if m.pass != nil {
		m.pass[key] = passView{view: v, items: copyMap(d.items), instances: append([]Instance(nil), d.instances...)}
	}
	return v, copyMap(d.items), append([]Instance(nil), d.instances...), nil
}

// passView is an input as the first template of a pass read it.
type passView struct {
	view      depView
	items     map[string]string
	instances []Instance
}

// renderAll renders every template with what is known now.
func (m *Manager) renderAll() []result {
	m.mu.Lock()
	m.pass = map[string]passView{}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.pass = nil
		m.mu.Unlock()
	}()
	out := make([]result, 0, len(m.tmpls))
	for _, t := range m.tmpls {
		m.cur = &rendering{}
		var buf limitedBuffer
		err := t.t.Execute(&buf, nil)
		r := result{t: t, missing: m.cur.missing}
		switch {
		case len(r.missing) > 0:
		case err != nil:
			r.err = err
		default:
			r.out = buf.String()
		}
		out = append(out, r)
	}
	m.cur = nil
	return out
}

// limitedBuffer fails writes past MaxRenderedSize.
type limitedBuffer struct {
	strings.Builder
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > MaxRenderedSize {
		return 0, errTooLarge
	}
	return b.Builder.Write(p)
}

// poke wakes the rendering loop (or a waiting Prestart).
func (m *Manager) poke() {
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

// watch follows one variable or service with blocking queries until
// the manager stops, recording each new value and poking the renderer
// when it changed.
func (m *Manager) watch(d *dep) {
	defer m.wg.Done()
	var index uint64
	wait := m.cfg.RetryWait
	for {
		began := time.Now()
		var (
			items map[string]string
			insts []*structs.ServiceInstance
			idx   uint64
			err   error
		)
		if d.kind == kindVariable {
			items, idx, err = m.cfg.Source.Variable(m.ctx, d.name, index)
		} else {
			insts, idx, err = m.cfg.Source.ServiceInstances(m.ctx, d.name, index)
		}
		if m.ctx.Err() != nil {
			return
		}
		if err != nil {
			m.readFailed(d, err)
			if !m.sleep(wait) {
				return
			}
			wait = min(wait*2, maxRetryWait)
			continue
		}
		wait = m.cfg.RetryWait
		if d.kind == kindVariable {
			m.updated(d, items != nil, items, nil)
		} else {
			m.updated(d, true, nil, passing(insts))
		}
		sent := index
		switch {
		case idx < index:
			// The servers' index went back (a restored snapshot):
			// start over.
			index = 0
		case idx == 0:
			// An empty table: wait for anything to be written.
			index = 1
		default:
			index = idx
		}
		if idx <= sent {
			if gap := minQueryGap - time.Since(began); gap > 0 && !m.sleep(gap) {
				return
			}
		}
	}
}

// sleep waits d or until the manager stops; false when it stopped.
func (m *Manager) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-m.ctx.Done():
		return false
	}
}

// readFailed records a failed read. A dep never read pokes the renderer, so
// Prestart can report the error.
func (m *Manager) readFailed(d *dep, err error) {
	m.mu.Lock()
	first := d.err == nil || d.err.Error() != err.Error()
	d.err = err
	fetched := d.fetched
	m.mu.Unlock()
	if first {
		m.log.Warn("template input could not be read", "input", d.String(), "error", err)
	}
	if first && !fetched {
		m.poke()
	}
}

// updated records a successful read and pokes the renderer when the
// value changed.
func (m *Manager) updated(d *dep, exists bool, items map[string]string, insts []Instance) {
	m.mu.Lock()
	changed := !d.fetched || d.exists != exists || !reflect.DeepEqual(d.items, items) || !reflect.DeepEqual(d.instances, insts)
	d.fetched, d.exists, d.items, d.instances, d.err = true, exists, items, insts, nil
	m.mu.Unlock()
	if changed {
		m.poke()
	}
}

// passing returns the passing instances, sorted by ID.
func passing(in []*structs.ServiceInstance) []Instance {
	var out []Instance
	for _, s := range in {
		if s == nil || s.Status != structs.ServiceStatusPassing {
			continue
		}
		out = append(out, Instance{
			ID: s.ID, Service: s.ServiceName, Namespace: s.Namespace, NodeID: s.NodeID, AllocID: s.AllocID,
			Address: s.Address, Port: s.Port, Tags: append([]string(nil), s.Tags...), Canary: s.Canary,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
