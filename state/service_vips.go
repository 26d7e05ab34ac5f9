package state

import (
	"encoding/binary"
	"fmt"
	"net"
	"sort"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// Service virtual addresses.
//
// A (namespace, service name) gets a virtual address when a job
// registers with a `vip` block for the name and the name has none yet.
// The allocation is made by the FSM, inside the job's register
// transaction, from the range the leader stamped into the entry
// (structs.JobRegisterRequest.ServiceVIPRange): the lowest address of
// the range that no allocation holds, the network address and the last
// address of the range aside. It depends only on the state and the
// entry, so every server allocates the same address. A range with no
// free address refuses the register, on every server alike (the leader
// checks first with CheckJobServices, so users normally get the refusal
// before anything is written).
//
// An allocation is kept while any job record of its namespace, stopped
// or not, declares a `vip` for the name, so the address survives job
// updates, stops and replacements by another job; it is released in the
// transaction that removes the last such declaration (a purge, or a
// register without the block). Allocations outside the configured range
// (the range changed) are kept as they are.
//
// Service instances carry their name's address (ServiceInstance.VIP):
// deriveInstances reads it from this table, and every allocation or
// release rewrites the instances of its name in the same transaction.
//
// The table is in snapshots (fsm/snapshot.go) and in the state hash.

// TableServiceVIPs holds the structs.ServiceVIPAllocation rows.
const TableServiceVIPs = "service_vips"

func serviceVIPsSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableServiceVIPs,
		Indexes: map[string]*memdb.IndexSchema{
			"id":      {Name: "id", Unique: true, Indexer: namespacedIndex("ServiceName")},
			"address": {Name: "address", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Address"}},
		},
	}
}

// jobVIPNames returns the sorted names of the job's services that have
// a vip block.
func jobVIPNames(job *structs.Job) []string {
	if job == nil {
		return nil
	}
	seen := make(map[string]bool)
	var out []string
	for _, tg := range job.TaskGroups {
		for _, svc := range tg.GroupServices() {
			if svc != nil && svc.VIP != nil && svc.Name != "" && !seen[svc.Name] {
				seen[svc.Name] = true
				out = append(out, svc.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// vipRange is a parsed VIP range with the addresses it has in use.
type vipRange struct {
	cidr  string
	first uint32 // network address + 1
	last  uint32 // last address - 1
	used  map[uint32]bool
}

// newVIPRange reads the allocations in cidr.
func newVIPRange(txn *memdb.Txn, cidr string) (*vipRange, error) {
	ipn, err := structs.ParseServiceVIPRange(cidr)
	if err != nil {
		return nil, structs.NewError(structs.CodeInvalid, err.Error())
	}
	ones, bits := ipn.Mask.Size()
	base := binary.BigEndian.Uint32(ipn.IP.To4())
	size := uint32(1) << (bits - ones)
	r := &vipRange{cidr: ipn.String(), first: base + 1, last: base + size - 2, used: make(map[uint32]bool)}
	all, err := collect[*structs.ServiceVIPAllocation](txn, nil, TableServiceVIPs, "id")
	if err != nil {
		return nil, err
	}
	for _, v := range all {
		ip := net.ParseIP(v.Address).To4()
		if ip == nil {
			continue
		}
		if a := binary.BigEndian.Uint32(ip); ipn.Contains(ip) {
			r.used[a] = true
		}
	}
	return r, nil
}

// next takes the lowest free address, or refuses with a conflict.
func (r *vipRange) next() (string, error) {
	for a := r.first; a <= r.last; a++ {
		// 127.0.0.1 is the host's own loopback address (in a range
		// as wide as 127.0.0.0/8): never a service's.
		if !r.used[a] && a != 0x7f000001 {
			r.used[a] = true
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], a)
			return net.IP(b[:]).String(), nil
		}
	}
	return "", structs.NewError(structs.CodeConflict, fmt.Sprintf("no free virtual address in %s (%d in use); purge jobs whose services no longer need a vip, or widen the servers' service_vip_range", r.cidr, len(r.used)))
}

// vipDeclaredTxn reports whether any job record of namespace ns
// declares a vip for service name.
func vipDeclaredTxn(txn *memdb.Txn, ns, name string) (bool, error) {
	jobs, err := collect[*structs.Job](txn, nil, TableJobs, "id_prefix", ns, "")
	if err != nil {
		return false, err
	}
	for _, j := range jobs {
		for _, n := range jobVIPNames(j) {
			if n == name {
				return true, nil
			}
		}
	}
	return false, nil
}

// syncServiceVIPsTxn allocates and releases the VIPs of namespace ns
// after a job record changed from old to job (either nil: created or
// deleted), the jobs table already written. With cidr "" nothing is
// allocated (a stop, which never adds a vip block; a dry run). The
// instances of every name whose address changed are rewritten.
func syncServiceVIPsTxn(txn *memdb.Txn, index uint64, ns string, old, job *structs.Job, cidr string) error {
	var touched []string
	if cidr != "" {
		var r *vipRange
		for _, name := range jobVIPNames(job) {
			raw, err := txn.First(TableServiceVIPs, "id", ns, name)
			if err != nil {
				return fmt.Errorf("%s lookup: %w", TableServiceVIPs, err)
			}
			if raw != nil {
				continue
			}
			if r == nil {
				if r, err = newVIPRange(txn, cidr); err != nil {
					return err
				}
			}
			addr, err := r.next()
			if err != nil {
				return err
			}
			v := &structs.ServiceVIPAllocation{Namespace: ns, ServiceName: name, Address: addr, CreateIndex: index, ModifyIndex: index}
			if err := txn.Insert(TableServiceVIPs, v); err != nil {
				return fmt.Errorf("%s insert: %w", TableServiceVIPs, err)
			}
			touched = append(touched, name)
		}
	}
	for _, name := range jobVIPNames(old) {
		declared, err := vipDeclaredTxn(txn, ns, name)
		if err != nil {
			return err
		}
		if declared {
			continue
		}
		raw, err := txn.First(TableServiceVIPs, "id", ns, name)
		if err != nil {
			return fmt.Errorf("%s lookup: %w", TableServiceVIPs, err)
		}
		if raw == nil {
			continue
		}
		if err := txn.Delete(TableServiceVIPs, raw); err != nil {
			return fmt.Errorf("%s delete: %w", TableServiceVIPs, err)
		}
		touched = append(touched, name)
	}
	if len(touched) == 0 {
		return nil
	}
	changed := false
	for _, name := range touched {
		c, err := refreshVIPInstancesTxn(txn, index, ns, name)
		if err != nil {
			return err
		}
		changed = changed || c
	}
	if changed {
		if err := setIndex(txn, index, TableServiceInstances); err != nil {
			return err
		}
	}
	return setIndex(txn, index, TableServiceVIPs)
}

// serviceVIPTxn returns the address of (ns, name), "" for none.
func serviceVIPTxn(txn *memdb.Txn, ns, name string) (string, error) {
	raw, err := txn.First(TableServiceVIPs, "id", ns, name)
	if err != nil {
		return "", fmt.Errorf("%s lookup: %w", TableServiceVIPs, err)
	}
	if raw == nil {
		return "", nil
	}
	return raw.(*structs.ServiceVIPAllocation).Address, nil
}

// refreshVIPInstancesTxn sets the VIP of the instances of (ns, name) to
// the name's current address and reports whether any changed.
func refreshVIPInstancesTxn(txn *memdb.Txn, index uint64, ns, name string) (bool, error) {
	addr, err := serviceVIPTxn(txn, ns, name)
	if err != nil {
		return false, err
	}
	insts, err := collect[*structs.ServiceInstance](txn, nil, TableServiceInstances, "service", ns, name)
	if err != nil {
		return false, err
	}
	changed := false
	for _, inst := range insts {
		if inst.VIP == addr {
			continue
		}
		n := *inst
		n.VIP, n.ModifyIndex = addr, index
		if err := txn.Insert(TableServiceInstances, &n); err != nil {
			return false, fmt.Errorf("%s insert: %w", TableServiceInstances, err)
		}
		changed = true
	}
	return changed, nil
}

// checkPublishedPortsTxn refuses a job (not stopped) whose service
// publishes a port another (namespace, service name) of a job that is
// not stopped already publishes: every client's proxy listens on a
// published port, for one service. Several jobs offering the same name
// in one namespace may publish the same port (their instances add up).
// Jobs are walked in (namespace, ID) order, so the refusal names the
// same service on every server. It also makes the route check
// (checkRoutesTxn), so that RegisterJob and the leader's
// CheckJobServices refuse conflicting routes alike.
func checkPublishedPortsTxn(txn *memdb.Txn, job *structs.Job) error {
	if job == nil || job.Stop {
		return nil
	}
	if err := checkRoutesTxn(txn, job); err != nil {
		return err
	}
	ns := structs.NamespaceOrDefault(job.Namespace)
	mine := make(map[int]string)
	for _, tg := range job.TaskGroups {
		for _, svc := range tg.GroupServices() {
			if svc != nil && svc.PublishedPort > 0 {
				mine[svc.PublishedPort] = svc.Name
			}
		}
	}
	if len(mine) == 0 {
		return nil
	}
	others, err := collect[*structs.Job](txn, nil, TableJobs, "id")
	if err != nil {
		return err
	}
	for _, other := range others {
		if other.Stop || (other.Namespace == ns && other.ID == job.ID) {
			continue
		}
		for _, tg := range other.TaskGroups {
			for _, svc := range tg.GroupServices() {
				if svc == nil || svc.PublishedPort <= 0 {
					continue
				}
				name, ok := mine[svc.PublishedPort]
				if !ok || (other.Namespace == ns && svc.Name == name) {
					continue
				}
				return structs.NewError(structs.CodeConflict, fmt.Sprintf("published_port %d is already used by service %q in namespace %q (job %q); every client's proxy forwards a published port to one service: choose another port",
					svc.PublishedPort, svc.Name, other.Namespace, other.ID))
			}
		}
	}
	return nil
}

// jobRoutes returns the routes of the job's services by
// structs.RouteKey, each with the name of the first service declaring
// it.
func jobRoutes(job *structs.Job) map[string]string {
	var out map[string]string
	for _, tg := range job.TaskGroups {
		for _, svc := range tg.GroupServices() {
			if svc == nil {
				continue
			}
			for _, r := range svc.Routes {
				if r == nil {
					continue
				}
				if out == nil {
					out = make(map[string]string)
				}
				if k := structs.RouteKey(r.Host, r.Path); out[k] == "" {
					out[k] = svc.Name
				}
			}
		}
	}
	return out
}

// checkRoutesTxn refuses a job (not stopped) with a route (host and
// path) that a service of another job of its namespace, not stopped,
// already has: a gateway sends a request to one service. Another job
// offering the same service name may declare the same route (the
// instances add up, as for published ports). Jobs are walked in ID
// order, so the refusal names the same job on every server.
func checkRoutesTxn(txn *memdb.Txn, job *structs.Job) error {
	mine := jobRoutes(job)
	if len(mine) == 0 {
		return nil
	}
	// Every namespace's jobs: the gateways serve all namespaces, so a
	// host and path can lead to one service only, cluster-wide.
	ns := structs.NamespaceOrDefault(job.Namespace)
	others, err := collect[*structs.Job](txn, nil, TableJobs, "id")
	if err != nil {
		return err
	}
	for _, other := range others {
		otherNS := structs.NamespaceOrDefault(other.Namespace)
		if other.Stop || (other.ID == job.ID && otherNS == ns) {
			continue
		}
		for _, tg := range other.TaskGroups {
			for _, svc := range tg.GroupServices() {
				if svc == nil {
					continue
				}
				for _, r := range svc.Routes {
					if r == nil {
						continue
					}
					k := structs.RouteKey(r.Host, r.Path)
					name, ok := mine[k]
					if !ok || (name == svc.Name && otherNS == ns) {
						continue
					}
					if otherNS != ns {
						// Do not tell one namespace what another runs.
						return structs.NewError(structs.CodeConflict, fmt.Sprintf("route %s is already used by a service in another namespace; a gateway sends a route's requests to one service: choose another host or path", k))
					}
					return structs.NewError(structs.CodeConflict, fmt.Sprintf("route %s is already used by service %q of job %q in namespace %q; a gateway sends a route's requests to one service: choose another host or path",
						k, svc.Name, other.ID, ns))
				}
			}
		}
	}
	return nil
}

// checkJobServicesTxn is the check RegisterJob makes before writing:
// the job's published ports and routes are free and, with cidr set, its
// new vip names fit in the range.
func checkJobServicesTxn(txn *memdb.Txn, job *structs.Job, cidr string) error {
	if err := checkPublishedPortsTxn(txn, job); err != nil {
		return err
	}
	if cidr == "" {
		return nil
	}
	ns := structs.NamespaceOrDefault(job.Namespace)
	var r *vipRange
	for _, name := range jobVIPNames(job) {
		addr, err := serviceVIPTxn(txn, ns, name)
		if err != nil {
			return err
		}
		if addr != "" {
			continue
		}
		if r == nil {
			if r, err = newVIPRange(txn, cidr); err != nil {
				return err
			}
		}
		if _, err := r.next(); err != nil {
			return err
		}
	}
	return nil
}

// CheckJobServices answers, without writing, whether RegisterJob would
// refuse job for its services: a published port used by another
// service, a route another job's service has, or no free address in
// cidr ("" is
// structs.DefaultServiceVIPRange) for a new vip. The leader calls it
// before the Raft write, for a refusal with nothing written; the FSM
// makes the same check in log order.
func (s *StateStore) CheckJobServices(job *structs.Job, cidr string) error {
	if cidr == "" {
		cidr = structs.DefaultServiceVIPRange
	}
	return checkJobServicesTxn(s.db.Txn(false), job, cidr)
}

// ServiceVIPs returns every VIP allocation, sorted by namespace and
// name; with ws, it watches them.
func (s *StateStore) ServiceVIPs(ws memdb.WatchSet) ([]*structs.ServiceVIPAllocation, error) {
	return collect[*structs.ServiceVIPAllocation](s.db.Txn(false), ws, TableServiceVIPs, "id")
}

// ServiceVIP returns the VIP allocation of (ns, name), or nil.
func (s *StateStore) ServiceVIP(ws memdb.WatchSet, ns, name string) (*structs.ServiceVIPAllocation, error) {
	raw, err := first(s.db.Txn(false), ws, TableServiceVIPs, "id", structs.NamespaceOrDefault(ns), name)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*structs.ServiceVIPAllocation), nil
}

// ServiceVIPRestore loads one VIP allocation.
func (r *Restore) ServiceVIPRestore(v *structs.ServiceVIPAllocation) error {
	v.Namespace = structs.NamespaceOrDefault(v.Namespace)
	return r.insert(TableServiceVIPs, v)
}

// ProxiedServices returns every service (of every namespace) that
// client proxies and gateways serve, sorted by namespace and name:
// those with a VIP allocation, an instance with a published port or a
// route, each with all its instances sorted by ID. VIPPort and
// PublishedPort are the first instance's that has one (jobs offering
// one name should agree); a VIP without instances has no VIPPort.
// Routes are those of the name's service blocks in the jobs of its
// namespace that are not stopped (their current versions), a route several
// jobs declare once. With ws, it watches the instances, the VIP
// allocations and the jobs. It also returns the highest of the three
// tables' indexes, for a blocking query.
func (s *StateStore) ProxiedServices(ws memdb.WatchSet) ([]*structs.ProxiedService, uint64, error) {
	txn := s.db.Txn(false)
	vips, err := collect[*structs.ServiceVIPAllocation](txn, ws, TableServiceVIPs, "id")
	if err != nil {
		return nil, 0, err
	}
	insts, err := collect[*structs.ServiceInstance](txn, ws, TableServiceInstances, "id")
	if err != nil {
		return nil, 0, err
	}
	jobs, err := collect[*structs.Job](txn, ws, TableJobs, "id")
	if err != nil {
		return nil, 0, err
	}
	type key struct{ ns, name string }
	byKey := make(map[key]*structs.ProxiedService)
	var out []*structs.ProxiedService
	get := func(k key) *structs.ProxiedService {
		p := byKey[k]
		if p == nil {
			p = &structs.ProxiedService{Namespace: k.ns, Name: k.name, Instances: []*structs.ServiceInstance{}}
			byKey[k] = p
			out = append(out, p)
		}
		return p
	}
	for _, v := range vips {
		get(key{v.Namespace, v.ServiceName}).VIP = v.Address
	}
	// Routes in job ID order, then the order of the blocks: the same
	// list on every read of one state.
	//
	// Running jobs' routes first; then a stopped (not purged) job's
	// routes that no running job claims: a stopped service's route
	// answers 503 instead of falling through to a shorter prefix of
	// another service (which would answer for a path it never
	// offered).
	seenRoute := make(map[key]map[string]bool)
	claimed := make(map[string]bool)
	for _, stoppedPass := range []bool{false, true} {
		for _, j := range jobs {
			if j.Stop != stoppedPass {
				continue
			}
			ns := structs.NamespaceOrDefault(j.Namespace)
			for _, tg := range j.TaskGroups {
				for _, svc := range tg.GroupServices() {
					if svc == nil || svc.Name == "" || len(svc.Routes) == 0 {
						continue
					}
					k := key{ns, svc.Name}
					for _, r := range svc.Routes {
						if r == nil {
							continue
						}
						rk := structs.RouteKey(r.Host, r.Path)
						if seenRoute[k][rk] || (stoppedPass && claimed[rk]) {
							continue
						}
						if seenRoute[k] == nil {
							seenRoute[k] = make(map[string]bool)
						}
						seenRoute[k][rk] = true
						if !stoppedPass {
							claimed[rk] = true
						}
						p := get(k)
						p.Routes = append(p.Routes, r)
					}
				}
			}
		}
	}
	published := make(map[key]bool)
	for _, inst := range insts {
		if inst.PublishedPort > 0 {
			published[key{inst.Namespace, inst.ServiceName}] = true
		}
	}
	// Instances in ID order, so each service's list is sorted.
	for _, inst := range insts {
		k := key{inst.Namespace, inst.ServiceName}
		if byKey[k] == nil && !published[k] {
			continue
		}
		p := get(k)
		p.Instances = append(p.Instances, inst)
		if p.VIPPort == 0 {
			p.VIPPort = inst.VIPPort
		}
		if p.PublishedPort == 0 {
			p.PublishedPort = inst.PublishedPort
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	var index uint64
	for _, table := range []string{TableServiceInstances, TableServiceVIPs, TableJobs} {
		i, err := indexTxn(txn, table)
		if err != nil {
			return nil, 0, err
		}
		index = max(index, i)
	}
	return out, index, nil
}
