package state

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// Service instances.
//
// An instance is one allocation's offer of one service of its group
// (structs.TaskGroup.GroupServices). Nothing writes instances: they are
// derived rows, rewritten inside every transaction that writes an
// allocation (insertAllocTxn records the allocation, finishAllocsTxn
// derives its instances before commit), changes a node's address
// (UpsertNode), allocates or releases a service VIP (service_vips.go)
// or writes a deployment whose canaries stop or start being canaries
// (refreshDeploymentInstancesTxn), and rebuilt on restore. They are not
// in snapshots.
//
// An instance exists while its allocation is desired to run and is
// pending or running on its client, and, for a service with a
// shutdown_delay, while the allocation is told to stop but its client
// still reports it running (status terminating). Its status otherwise
// comes from the allocation's reported checks (structs.Allocation.Checks):
// a critical or missing check makes it critical, else a warning one
// warning, else passing; a service without checks passes while its
// allocation runs and is critical while it is pending.
//
// A row is rewritten only when something in it changed, and the
// table's index moves only then: blocking queries on services sleep
// through allocation changes that do not concern them (task events,
// deployment health, desired transitions). A check result that differs
// only in its Timestamp is a change (the instance carries the checks as
// reported), so check runners should report on change, not on every
// run.
//
// On restore an instance takes its allocation's CreateIndex and
// ModifyIndex (what it was derived from); the table index entry comes
// from the snapshot like every other, and nothing is bumped.

// TableServiceInstances holds the derived structs.ServiceInstance rows.
const TableServiceInstances = "service_instances"

func serviceInstancesSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableServiceInstances,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			// service lists a name's instances in a namespace; its
			// prefix form with (namespace, "") a namespace's.
			"service": {Name: "service", Indexer: namespacedIndex("ServiceName")},
			"alloc":   {Name: "alloc", Indexer: &memdb.StringFieldIndex{Field: "AllocID"}},
		},
	}
}

// putServices records an allocation version written in the transaction
// for its instances to be derived by flushServices, when the old or new
// version's group has services (others have no instances to add or
// remove). The last version recorded of an ID wins.
func (w *allocSetWriter) putServices(old, a *structs.Allocation) {
	if !hasServices(a) && !hasServices(old) {
		return
	}
	if w.services == nil {
		w.services = make(map[string]*structs.Allocation)
	}
	w.services[a.ID] = a
}

func hasServices(a *structs.Allocation) bool {
	return a != nil && len(allocServices(a)) > 0
}

// allocServices returns the services of the allocation's group.
func allocServices(a *structs.Allocation) []*structs.Service {
	if a.Job == nil {
		return nil
	}
	return a.Job.LookupTaskGroup(a.TaskGroup).GroupServices()
}

// flushServices derives the instances of the allocations w recorded
// and writes those that changed at index; it moves the table's index
// when any did. With index 0 (a restore) instances take their
// allocation's indexes and no table index moves.
func (w *allocSetWriter) flushServices(txn *memdb.Txn, index uint64) error {
	if len(w.services) == 0 {
		return nil
	}
	// In ID order: the writes are the same whatever the order, but a
	// failure names the same allocation on every server.
	ids := make([]string, 0, len(w.services))
	for id := range w.services {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	changed := false
	addrs := make(map[string]string)
	for _, id := range ids {
		a := w.services[id]
		addr, ok := addrs[a.NodeID]
		if !ok {
			var err error
			if addr, err = nodeAddressTxn(txn, a.NodeID); err != nil {
				return err
			}
			addrs[a.NodeID] = addr
		}
		c, err := syncInstancesTxn(txn, index, a, addr)
		if err != nil {
			return err
		}
		changed = changed || c
	}
	w.services = nil
	if changed && index > 0 {
		return setIndex(txn, index, TableServiceInstances)
	}
	return nil
}

// nodeAddressTxn returns the host part of the node's HTTP address, ""
// for an unknown node.
func nodeAddressTxn(txn *memdb.Txn, nodeID string) (string, error) {
	raw, err := txn.First(TableNodes, "id", nodeID)
	if err != nil {
		return "", fmt.Errorf("node lookup: %w", err)
	}
	if raw == nil {
		return "", nil
	}
	return nodeAddress(raw.(*structs.Node)), nil
}

// nodeAddress is the host part of the node's HTTP address (the whole
// of it when it has no port).
func nodeAddress(n *structs.Node) string {
	if n == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(n.HTTPAddr)
	if err != nil {
		return n.HTTPAddr
	}
	return host
}

// refreshNodeInstancesTxn re-derives the instances of every allocation
// on the node (its address changed) and moves the table's index when
// any changed.
func refreshNodeInstancesTxn(txn *memdb.Txn, index uint64, nodeID, addr string) error {
	allocs, err := allocSetTxn(txn, nil, tableNodeAllocs, nodeID)
	if err != nil {
		return err
	}
	changed := false
	for _, a := range allocs {
		if !hasServices(a) {
			continue
		}
		c, err := syncInstancesTxn(txn, index, a, addr)
		if err != nil {
			return err
		}
		changed = changed || c
	}
	if changed {
		return setIndex(txn, index, TableServiceInstances)
	}
	return nil
}

// syncInstancesTxn makes the allocation's stored instances what it
// should have: it inserts new and changed ones (keeping CreateIndex),
// deletes those it should no longer have and leaves equal ones alone.
// It reports whether it wrote anything.
func syncInstancesTxn(txn *memdb.Txn, index uint64, a *structs.Allocation, addr string) (bool, error) {
	existing, err := collect[*structs.ServiceInstance](txn, nil, TableServiceInstances, "alloc", a.ID)
	if err != nil {
		return false, err
	}
	old := make(map[string]*structs.ServiceInstance, len(existing))
	for _, inst := range existing {
		old[inst.ID] = inst
	}
	vips, err := allocVIPsTxn(txn, a)
	if err != nil {
		return false, err
	}
	canary, err := allocCanaryTxn(txn, a)
	if err != nil {
		return false, err
	}
	changed := false
	for _, inst := range deriveInstances(a, addr, vips, canary) {
		prev := old[inst.ID]
		delete(old, inst.ID)
		if prev != nil && instanceEqual(prev, inst) {
			continue
		}
		switch {
		case index == 0:
			// Restore: what the instance was derived from.
			inst.CreateIndex, inst.ModifyIndex = a.CreateIndex, a.ModifyIndex
		case prev != nil:
			inst.CreateIndex, inst.ModifyIndex = prev.CreateIndex, index
		default:
			inst.CreateIndex, inst.ModifyIndex = index, index
		}
		if err := txn.Insert(TableServiceInstances, inst); err != nil {
			return false, fmt.Errorf("%s insert: %w", TableServiceInstances, err)
		}
		changed = true
	}
	for _, inst := range existing {
		if _, gone := old[inst.ID]; !gone {
			continue
		}
		if err := txn.Delete(TableServiceInstances, inst); err != nil {
			return false, fmt.Errorf("%s delete: %w", TableServiceInstances, err)
		}
		changed = true
	}
	return changed, nil
}

// allocVIPsTxn returns the VIP addresses of the allocation's service
// names that have one (service_vips.go), by name.
func allocVIPsTxn(txn *memdb.Txn, a *structs.Allocation) (map[string]string, error) {
	var out map[string]string
	ns := structs.NamespaceOrDefault(a.Namespace)
	for _, svc := range allocServices(a) {
		if svc == nil || svc.Name == "" {
			continue
		}
		addr, err := serviceVIPTxn(txn, ns, svc.Name)
		if err != nil {
			return nil, err
		}
		if addr != "" {
			if out == nil {
				out = make(map[string]string)
			}
			out[svc.Name] = addr
		}
	}
	return out, nil
}

// allocCanaryTxn reports whether the allocation is an unpromoted canary:
// it was placed as a canary of a deployment that is still in progress
// (running or paused) and whose group is not promoted yet. A
// deployment that is promoted, succeeds, fails or is cancelled turns
// its canaries into ordinary instances (refreshDeploymentInstancesTxn).
func allocCanaryTxn(txn *memdb.Txn, a *structs.Allocation) (bool, error) {
	if a.DeploymentStatus == nil || !a.DeploymentStatus.Canary || a.DeploymentID == "" {
		return false, nil
	}
	raw, err := txn.First(TableDeployment, "id", a.DeploymentID)
	if err != nil {
		return false, fmt.Errorf("deployment lookup: %w", err)
	}
	if raw == nil {
		return false, nil
	}
	return deploymentCanaryGroup(raw.(*structs.Deployment), a.TaskGroup), nil
}

// deploymentCanaryGroup reports whether the canaries of group tg in d
// are still canaries: d is in progress and tg not promoted.
func deploymentCanaryGroup(d *structs.Deployment, tg string) bool {
	if d == nil || !d.Active() {
		return false
	}
	st := d.TaskGroups[tg]
	return st != nil && !st.Promoted
}

// refreshDeploymentInstancesTxn re-derives the instances of the
// allocations of deployment d after it was written over old (nil: new),
// when that changed whether some group's canaries are canaries (a
// promotion, or the deployment ending). It moves the instances table's
// index when any instance changed, so blocking queries on services
// (Service.Proxy among them) wake.
func refreshDeploymentInstancesTxn(txn *memdb.Txn, index uint64, old, d *structs.Deployment) error {
	if old == nil {
		// Allocations written with a new deployment, in the same
		// transaction, derive their instances when it is flushed.
		return nil
	}
	changed := false
	for name := range d.TaskGroups {
		if deploymentCanaryGroup(old, name) != deploymentCanaryGroup(d, name) {
			changed = true
			break
		}
	}
	if !changed {
		return nil
	}
	allocs, err := allocSetTxn(txn, nil, tableJobAllocs, jobAllocsKey(d.Namespace, d.JobID))
	if err != nil {
		return err
	}
	addrs := make(map[string]string)
	wrote := false
	for _, a := range allocs {
		if a.DeploymentID != d.ID || a.DeploymentStatus == nil || !a.DeploymentStatus.Canary || !hasServices(a) {
			continue
		}
		addr, ok := addrs[a.NodeID]
		if !ok {
			if addr, err = nodeAddressTxn(txn, a.NodeID); err != nil {
				return err
			}
			addrs[a.NodeID] = addr
		}
		c, err := syncInstancesTxn(txn, index, a, addr)
		if err != nil {
			return err
		}
		wrote = wrote || c
	}
	if wrote {
		return setIndex(txn, index, TableServiceInstances)
	}
	return nil
}

// deriveInstances returns the instances the allocation should have on a
// node at addr, without indexes; vips are the addresses of its service
// names (a name's address, whichever job's vip block it came from);
// canary says whether it is an unpromoted canary (allocCanaryTxn).
// Tags and checks are shared with the allocation and its job, which are
// never modified once stored.
func deriveInstances(a *structs.Allocation, addr string, vips map[string]string, canary bool) []*structs.ServiceInstance {
	services := allocServices(a)
	if len(services) == 0 {
		return nil
	}
	live := a.DesiredStatus == structs.AllocDesiredStatusRun &&
		(a.ClientStatus == structs.AllocClientStatusPending || a.ClientStatus == structs.AllocClientStatusRunning)
	terminating := a.ServerTerminalStatus() && a.ClientStatus == structs.AllocClientStatusRunning
	if !live && !terminating {
		return nil
	}
	out := make([]*structs.ServiceInstance, 0, len(services))
	seen := make(map[string]bool, len(services))
	for _, svc := range services {
		// Validation keeps names unique in a group; should two be
		// alike anyway, the first is the instance.
		if svc == nil || svc.Name == "" || seen[svc.Name] {
			continue
		}
		seen[svc.Name] = true
		if !live && svc.ShutdownDelay <= 0 {
			continue
		}
		inst := &structs.ServiceInstance{
			ID:            a.ID + "-" + svc.Name,
			ServiceName:   svc.Name,
			Namespace:     structs.NamespaceOrDefault(a.Namespace),
			JobID:         a.JobID,
			NodeID:        a.NodeID,
			AllocID:       a.ID,
			Address:       addr,
			Port:          allocPort(a, svc.PortLabel),
			Tags:          svc.Tags,
			PublishedPort: svc.PublishedPort,
			VIP:           vips[svc.Name],
			Canary:        canary,
		}
		if svc.VIP != nil {
			inst.VIPPort = svc.VIP.Port
		}
		var status string
		inst.Checks, status = instanceChecks(a, svc)
		if !live {
			status = structs.ServiceStatusTerminating
		}
		inst.Status = status
		out = append(out, inst)
	}
	return out
}

// instanceChecks returns the service's reported checks, in the order of
// its check blocks, and the status they make.
func instanceChecks(a *structs.Allocation, svc *structs.Service) ([]*structs.CheckStatus, string) {
	if len(svc.Checks) == 0 {
		if a.ClientStatus == structs.AllocClientStatusRunning {
			return nil, structs.ServiceStatusPassing
		}
		return nil, structs.ServiceStatusCritical
	}
	var checks []*structs.CheckStatus
	critical, warning := false, false
	for _, c := range svc.Checks {
		if c == nil {
			continue
		}
		cs := a.Checks[structs.CheckKey(svc.Name, c.Name)]
		if cs == nil {
			critical = true
			continue
		}
		checks = append(checks, cs)
		switch cs.Status {
		case structs.ServiceStatusPassing:
		case structs.ServiceStatusWarning:
			warning = true
		default:
			critical = true
		}
	}
	switch {
	case critical:
		return checks, structs.ServiceStatusCritical
	case warning:
		return checks, structs.ServiceStatusWarning
	}
	return checks, structs.ServiceStatusPassing
}

// allocPort is the allocation's port of label, 0 when it has none.
func allocPort(a *structs.Allocation, label string) int {
	if a.AllocatedResources == nil || label == "" {
		return 0
	}
	for _, p := range a.AllocatedResources.Shared.Ports {
		if p.Label == label {
			return p.Value
		}
	}
	return 0
}

// instanceEqual compares two instances, indexes aside.
func instanceEqual(x, y *structs.ServiceInstance) bool {
	if x.ID != y.ID || x.ServiceName != y.ServiceName || x.Namespace != y.Namespace || x.JobID != y.JobID ||
		x.NodeID != y.NodeID || x.AllocID != y.AllocID || x.Address != y.Address || x.Port != y.Port ||
		x.Status != y.Status || x.VIP != y.VIP || x.VIPPort != y.VIPPort || x.PublishedPort != y.PublishedPort || x.Canary != y.Canary ||
		!slices.Equal(x.Tags, y.Tags) || len(x.Checks) != len(y.Checks) {
		return false
	}
	for i := range x.Checks {
		if x.Checks[i] != y.Checks[i] && (x.Checks[i] == nil || y.Checks[i] == nil || *x.Checks[i] != *y.Checks[i]) {
			return false
		}
	}
	return true
}

// ServiceInstancesByName returns the instances of service name in
// namespace ns ("" is the default one), sorted by ID; with ws, it
// watches them.
func (s *StateStore) ServiceInstancesByName(ws memdb.WatchSet, ns, name string) ([]*structs.ServiceInstance, error) {
	out, err := collect[*structs.ServiceInstance](s.db.Txn(false), ws, TableServiceInstances, "service", structs.NamespaceOrDefault(ns), name)
	sortInstances(out)
	return out, err
}

// ServiceInstancesByAlloc returns the allocation's instances, sorted by
// ID.
func (s *StateStore) ServiceInstancesByAlloc(ws memdb.WatchSet, allocID string) ([]*structs.ServiceInstance, error) {
	out, err := collect[*structs.ServiceInstance](s.db.Txn(false), ws, TableServiceInstances, "alloc", allocID)
	sortInstances(out)
	return out, err
}

// ServiceInstances returns every instance of namespace ns (of every
// namespace for structs.AllNamespaces).
func (s *StateStore) ServiceInstances(ws memdb.WatchSet, ns string) ([]*structs.ServiceInstance, error) {
	txn := s.db.Txn(false)
	if ns == structs.AllNamespaces {
		return collect[*structs.ServiceInstance](txn, ws, TableServiceInstances, "id")
	}
	// The empty name as a prefix after the whole namespace: exactly the
	// namespace's rows (a prefix of the name alone would also match
	// "default-2" for "default").
	return collect[*structs.ServiceInstance](txn, ws, TableServiceInstances, "service_prefix", structs.NamespaceOrDefault(ns), "")
}

// ServiceNames returns one stub per (namespace, service name) of the
// instances of namespace ns (every namespace for
// structs.AllNamespaces), sorted by namespace and name.
func (s *StateStore) ServiceNames(ws memdb.WatchSet, ns string) ([]*structs.ServiceListStub, error) {
	all, err := s.ServiceInstances(ws, ns)
	if err != nil {
		return nil, err
	}
	type key struct{ ns, name string }
	stubs := make(map[key]*structs.ServiceListStub)
	tags := make(map[key]map[string]bool)
	var out []*structs.ServiceListStub
	for _, inst := range all {
		k := key{inst.Namespace, inst.ServiceName}
		stub := stubs[k]
		if stub == nil {
			stub = &structs.ServiceListStub{Name: inst.ServiceName, Namespace: inst.Namespace, Tags: []string{}}
			stubs[k], tags[k] = stub, make(map[string]bool)
			out = append(out, stub)
		}
		stub.Instances++
		if stub.VIP == "" {
			stub.VIP = inst.VIP
		}
		if inst.Status == structs.ServiceStatusPassing {
			stub.Passing++
		}
		for _, t := range inst.Tags {
			if !tags[k][t] {
				tags[k][t] = true
				stub.Tags = append(stub.Tags, t)
			}
		}
	}
	for _, stub := range out {
		sort.Strings(stub.Tags)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func sortInstances(list []*structs.ServiceInstance) {
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
}

// ServiceRoutes returns the routes of the service blocks of the jobs of
// namespace ns (every namespace for structs.AllNamespaces) that are not
// stopped, one stub per job's route, sorted by host, path, namespace
// and job ID. Each carries the passing instances of its service name
// in its namespace (of every job offering it: the gateways send to
// all of them), as "address:port" in instance ID order, and how many
// of those are canaries. With ws, it watches the jobs and the
// instances; it also returns the higher of the two tables' indexes,
// for a blocking query.
func (s *StateStore) ServiceRoutes(ws memdb.WatchSet, ns string) ([]*structs.RouteListStub, uint64, error) {
	txn := s.db.Txn(false)
	var jobs []*structs.Job
	var insts []*structs.ServiceInstance
	var err error
	if ns == structs.AllNamespaces {
		jobs, err = collect[*structs.Job](txn, ws, TableJobs, "id")
		if err == nil {
			insts, err = collect[*structs.ServiceInstance](txn, ws, TableServiceInstances, "id")
		}
	} else {
		ns = structs.NamespaceOrDefault(ns)
		jobs, err = collect[*structs.Job](txn, ws, TableJobs, "id_prefix", ns, "")
		if err == nil {
			insts, err = collect[*structs.ServiceInstance](txn, ws, TableServiceInstances, "service_prefix", ns, "")
		}
	}
	if err != nil {
		return nil, 0, err
	}
	type key struct{ ns, name string }
	byName := make(map[key][]*structs.ServiceInstance)
	for _, inst := range insts {
		k := key{inst.Namespace, inst.ServiceName}
		byName[k] = append(byName[k], inst)
	}
	var out []*structs.RouteListStub
	for _, j := range jobs {
		if j.Stop {
			continue
		}
		jns := structs.NamespaceOrDefault(j.Namespace)
		for _, tg := range j.TaskGroups {
			for _, svc := range tg.GroupServices() {
				if svc == nil {
					continue
				}
				for _, r := range svc.Routes {
					if r == nil {
						continue
					}
					stub := &structs.RouteListStub{Namespace: jns, ServiceName: svc.Name, JobID: j.ID, Route: r, Backends: []string{}}
					list := byName[key{jns, svc.Name}]
					sortInstances(list)
					for _, inst := range list {
						if inst.Status != structs.ServiceStatusPassing {
							continue
						}
						stub.Passing++
						if inst.Canary {
							stub.Canary++
						}
						stub.Backends = append(stub.Backends, net.JoinHostPort(inst.Address, strconv.Itoa(inst.Port)))
					}
					out = append(out, stub)
				}
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		switch {
		case a.Route.Host != b.Route.Host:
			return a.Route.Host < b.Route.Host
		case a.Route.Path != b.Route.Path:
			return a.Route.Path < b.Route.Path
		case a.Namespace != b.Namespace:
			return a.Namespace < b.Namespace
		}
		return a.JobID < b.JobID
	})
	x, err := indexTxn(txn, TableJobs)
	if err != nil {
		return nil, 0, err
	}
	y, err := indexTxn(txn, TableServiceInstances)
	if err != nil {
		return nil, 0, err
	}
	return out, max(x, y), nil
}
