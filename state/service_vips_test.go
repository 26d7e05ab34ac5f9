package state

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// vipJob is a job in ns with one group service per name, each with a
// vip block on port 80.
func vipJob(ns string, names ...string) *structs.Job {
	job := mock.Job()
	job.Namespace = ns
	job.TaskGroups[0].Services = nil
	for _, n := range names {
		job.TaskGroups[0].Services = append(job.TaskGroups[0].Services,
			&structs.Service{Name: n, PortLabel: "http", VIP: &structs.ServiceVIP{Port: 80}})
	}
	return job
}

func register(t *testing.T, s *StateStore, index uint64, job *structs.Job, cidr string) {
	t.Helper()
	if err := s.RegisterJob(index, job, 0, nil, cidr); err != nil {
		t.Fatalf("register %s at %d: %v", job.ID, index, err)
	}
}

// vipOf is the address of (ns, name), "" for none.
func vipOf(t *testing.T, s *StateStore, ns, name string) string {
	t.Helper()
	v, err := s.ServiceVIP(nil, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	if v == nil {
		return ""
	}
	return v.Address
}

func TestServiceVIPs_LowestFreeAddress(t *testing.T) {
	s := NewStateStore()
	a := vipJob("default", "web")
	register(t, s, 10, a, structs.DefaultServiceVIPRange)
	register(t, s, 11, vipJob("default", "api", "db"), structs.DefaultServiceVIPRange)
	for name, want := range map[string]string{"web": "127.99.0.1", "api": "127.99.0.2", "db": "127.99.0.3"} {
		if got := vipOf(t, s, "default", name); got != want {
			t.Fatalf("%s: %q, want %q (names are allocated in order, lowest first)", name, got, want)
		}
	}
	if err := s.DeleteJob(12, "default", a.ID, nil); err != nil {
		t.Fatal(err)
	}
	if got := vipOf(t, s, "default", "web"); got != "" {
		t.Fatalf("web kept %s after its only job was purged", got)
	}
	register(t, s, 13, vipJob("default", "cache"), structs.DefaultServiceVIPRange)
	if got := vipOf(t, s, "default", "cache"); got != "127.99.0.1" {
		t.Fatalf("cache: %q, want the freed lowest address 127.99.0.1", got)
	}
	if idx, _ := s.Index(TableServiceVIPs); idx != 13 {
		t.Fatalf("table index %d, want 13", idx)
	}
}

func TestServiceVIPs_StableAcrossJobUpdateAndStop(t *testing.T) {
	s := NewStateStore()
	job := vipJob("default", "web")
	register(t, s, 10, job, structs.DefaultServiceVIPRange)
	up := job.Copy()
	up.TaskGroups[0].Count = 7
	register(t, s, 11, up, "127.98.0.0/16") // a new range keeps existing addresses
	v, _ := s.ServiceVIP(nil, "default", "web")
	if v == nil || v.Address != "127.99.0.1" || v.CreateIndex != 10 || v.ModifyIndex != 10 {
		t.Fatalf("after update: %+v", v)
	}
	stopped := up.Copy()
	stopped.Stop = true
	if err := s.UpsertJob(12, stopped, 0, nil); err != nil {
		t.Fatal(err)
	}
	if got := vipOf(t, s, "default", "web"); got != "127.99.0.1" {
		t.Fatalf("a stopped job's vip was released: %q", got)
	}
	// Another job declaring the name keeps it when the first drops the
	// block; the last one dropping it releases it.
	other := vipJob("default", "web")
	register(t, s, 13, other, structs.DefaultServiceVIPRange)
	plain := up.Copy()
	plain.TaskGroups[0].Services[0].VIP = nil
	register(t, s, 14, plain, structs.DefaultServiceVIPRange)
	if got := vipOf(t, s, "default", "web"); got != "127.99.0.1" {
		t.Fatalf("released while %s still declares it: %q", other.ID, got)
	}
	if err := s.DeleteJob(15, "default", other.ID, nil); err != nil {
		t.Fatal(err)
	}
	if got := vipOf(t, s, "default", "web"); got != "" {
		t.Fatalf("kept %q with no job declaring it", got)
	}
	if idx, _ := s.Index(TableServiceVIPs); idx != 15 {
		t.Fatalf("table index %d, want 15", idx)
	}
}

func TestServiceVIPs_NamespacesGetTheirOwn(t *testing.T) {
	s := NewStateStore()
	register(t, s, 10, vipJob("default", "web"), "")
	register(t, s, 11, vipJob("team-a", "web"), structs.DefaultServiceVIPRange)
	d, a := vipOf(t, s, "default", "web"), vipOf(t, s, "team-a", "web")
	if d != "" {
		t.Fatalf("a register with no range allocated %q", d)
	}
	register(t, s, 12, vipJob("default", "web"), structs.DefaultServiceVIPRange)
	d = vipOf(t, s, "default", "web")
	if a != "127.99.0.1" || d != "127.99.0.2" {
		t.Fatalf("team-a %q, default %q; want 127.99.0.1 and 127.99.0.2", a, d)
	}
}

func TestServiceVIPs_RangeFullRefused(t *testing.T) {
	s := NewStateStore()
	const cidr = "127.99.0.0/28" // .1 to .14
	for i := 0; i < 14; i++ {
		register(t, s, uint64(10+i), vipJob("default", fmt.Sprintf("svc-%d", i)), cidr)
	}
	if got := vipOf(t, s, "default", "svc-13"); got != "127.99.0.14" {
		t.Fatalf("last: %q", got)
	}
	full := vipJob("default", "one-more")
	const want = "no free virtual address in 127.99.0.0/28 (14 in use)"
	err := s.CheckJobServices(full, cidr)
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, structs.NewError(structs.CodeConflict, "")) {
		t.Fatalf("check: %v, want a conflict with %q", err, want)
	}
	before, _ := s.Index(TableJobs)
	err = s.RegisterJob(30, full, 0, nil, cidr)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("register: %v", err)
	}
	if j, _ := s.JobByID(nil, "default", full.ID); j != nil {
		t.Fatal("the refused job was written")
	}
	if after, _ := s.Index(TableJobs); after != before {
		t.Fatalf("jobs index moved %d -> %d", before, after)
	}
	// A job whose names all have addresses still registers.
	register(t, s, 31, vipJob("default", "svc-0"), cidr)
}

func TestServiceVIPs_RangeSkipsHostLoopback(t *testing.T) {
	s := NewStateStore()
	register(t, s, 10, vipJob("default", "web"), "127.0.0.0/8")
	if got := vipOf(t, s, "default", "web"); got != "127.0.0.2" {
		t.Fatalf("%q, want 127.0.0.2 (127.0.0.1 is the host's)", got)
	}
}

func TestServiceVIPs_InstancesCarryTheAddress(t *testing.T) {
	job := serviceJob(false, 0)
	f := newSvcFixture(t, job)
	a := f.place(t, 10, 0)
	if got := f.instances(t)[0]; got.VIP != "" || got.VIPPort != 0 {
		t.Fatalf("before the vip: %+v", got)
	}
	withVIP := job.Copy()
	withVIP.TaskGroups[0].Services[0].VIP = &structs.ServiceVIP{Port: 8080}
	register(t, f.s, 11, withVIP, structs.DefaultServiceVIPRange)
	got := f.instances(t)[0]
	if got.VIP != "127.99.0.1" || got.ModifyIndex != 11 {
		t.Fatalf("after the register: %+v", got)
	}
	if idx, _ := f.s.Index(TableServiceInstances); idx != 11 {
		t.Fatalf("instances index %d, want 11", idx)
	}
	// A new allocation of the new version carries the address and the
	// vip port.
	f.job = withVIP
	b := f.place(t, 12, 1)
	list, _ := f.s.ServiceInstancesByAlloc(nil, b.ID)
	if len(list) != 1 || list[0].VIP != "127.99.0.1" || list[0].VIPPort != 8080 {
		t.Fatalf("new allocation: %+v", list)
	}
	stubs, _ := f.s.ServiceNames(nil, "default")
	if len(stubs) != 1 || stubs[0].VIP != "127.99.0.1" {
		t.Fatalf("stubs: %+v", stubs)
	}
	// Dropping the block releases the address and clears it from
	// every instance.
	register(t, f.s, 13, job, structs.DefaultServiceVIPRange)
	for _, inst := range f.instances(t) {
		if inst.VIP != "" {
			t.Fatalf("instance kept %q: %+v", inst.VIP, inst)
		}
	}
	_ = a
}

func TestServiceVIPs_PublishedPortInUse(t *testing.T) {
	s := NewStateStore()
	web := vipJob("default", "web")
	web.TaskGroups[0].Services[0].PublishedPort = 8080
	register(t, s, 10, web, "")
	// The same name in the same namespace may publish it too.
	web2 := vipJob("default", "web")
	web2.TaskGroups[0].Services[0].PublishedPort = 8080
	register(t, s, 11, web2, "")

	api := vipJob("team-a", "api")
	api.TaskGroups[0].Services[0].PublishedPort = 8080
	const want = `published_port 8080 is already used by service "web" in namespace "default"`
	for what, err := range map[string]error{
		"check":    s.CheckJobServices(api, ""),
		"register": s.RegisterJob(12, api, 0, nil, ""),
	} {
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, structs.NewError(structs.CodeConflict, "")) {
			t.Fatalf("%s: %v, want a conflict with %q", what, err, want)
		}
	}
	// Stopped jobs do not hold their ports.
	for i, j := range []*structs.Job{web, web2} {
		stopped := j.Copy()
		stopped.Stop = true
		if err := s.UpsertJob(uint64(13+i), stopped, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	register(t, s, 15, api, "")
}

// TestServiceVIPs_RestoreKeepsThem: a restored store has the same
// allocations, and its rebuilt instances carry them.
func TestServiceVIPs_RestoreKeepsThem(t *testing.T) {
	job := serviceJob(false, 0)
	job.TaskGroups[0].Services[0].VIP = &structs.ServiceVIP{Port: 80}
	f := newSvcFixture(t, job)
	register(t, f.s, 3, job, structs.DefaultServiceVIPRange)
	register(t, f.s, 4, vipJob("team-a", "web"), structs.DefaultServiceVIPRange)
	f.place(t, 10, 0)

	restored := NewStateStore()
	r := restored.Restore()
	entries, _ := f.s.IndexEntries()
	for _, e := range entries {
		if err := r.IndexRestore(e); err != nil {
			t.Fatal(err)
		}
	}
	nodes, _ := f.s.Nodes(nil)
	for _, n := range nodes {
		if err := r.NodeRestore(n); err != nil {
			t.Fatal(err)
		}
	}
	allocs, _ := f.s.Allocs(nil)
	for _, al := range allocs {
		if err := r.AllocRestore(al); err != nil {
			t.Fatal(err)
		}
	}
	vips, _ := f.s.ServiceVIPs(nil)
	for _, v := range vips {
		if err := r.ServiceVIPRestore(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	after, _ := restored.ServiceVIPs(nil)
	if len(vips) != 2 || !reflect.DeepEqual(vips, after) {
		t.Fatalf("vips before %+v, after %+v", vips, after)
	}
	insts, _ := restored.ServiceInstancesByName(nil, "", "web")
	if len(insts) != 1 || insts[0].VIP != "127.99.0.1" || insts[0].VIPPort != 80 {
		t.Fatalf("restored instances: %+v", insts)
	}
	if bi, _ := f.s.Index(TableServiceVIPs); bi != 4 {
		t.Fatalf("index %d", bi)
	}
	_, h1, _ := f.s.Hash()
	_, h2, _ := restored.Hash()
	if h1[TableServiceVIPs] != h2[TableServiceVIPs] {
		t.Fatal("service_vips hash differs after restore")
	}
}
