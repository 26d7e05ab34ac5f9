package fsm

import (
	"strings"
	"testing"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// vipJob is a job of the default namespace offering service name with
// a vip block.
func vipJob(name string) *structs.Job {
	job := mock.Job()
	job.TaskGroups[0].Services = []*structs.Service{{Name: name, PortLabel: "http", VIP: &structs.ServiceVIP{Port: 80}}}
	return job
}

// populateServiceVIPs registers jobs with vip blocks, one from an entry
// without a range (written before VIPs existed).
func populateServiceVIPs(h *harness) {
	h.mustApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: vipJob("web"), ServiceVIPRange: "127.98.0.0/24"})
	h.mustApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: vipJob("api")})
}

func TestFSM_JobRegisterAllocatesServiceVIPs(t *testing.T) {
	h := newHarness(t)
	populateServiceVIPs(h)
	st := h.fsm.State()
	for name, want := range map[string]string{"web": "127.98.0.1", "api": "127.99.0.1"} {
		v, err := st.ServiceVIP(nil, "", name)
		if err != nil || v == nil || v.Address != want {
			t.Fatalf("%s: %+v, %v; want %s", name, v, err, want)
		}
	}
	// A full range refuses the register, and nothing is written.
	full := vipJob("db")
	for i := 0; i < 14; i++ {
		j := vipJob("s" + string(rune('a'+i)))
		h.mustApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: j, ServiceVIPRange: "127.97.0.0/28"})
	}
	before := hashOf(t, h.fsm)
	resp := h.apply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: full, ServiceVIPRange: "127.97.0.0/28"})
	err, _ := resp.(error)
	if err == nil || !strings.Contains(err.Error(), "no free virtual address in 127.97.0.0/28 (14 in use)") {
		t.Fatalf("full range: %v", resp)
	}
	if j, _ := h.fsm.State().JobByID(nil, "", full.ID); j != nil {
		t.Fatal("the refused job was written")
	}
	if after := hashOf(t, h.fsm); after != before {
		t.Fatalf("a refused register changed the state:\n%s\n%s", before, after)
	}
}

func TestFSM_SnapshotKeepsServiceVIPs(t *testing.T) {
	h := newHarness(t)
	populateServiceVIPs(h)
	snap, err := h.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	restored := New(Config{})
	if err := restored.Restore(ioNopCloser{&sink.Buffer}); err != nil {
		t.Fatal(err)
	}
	a, _ := h.fsm.State().ServiceVIPs(nil)
	b, _ := restored.State().ServiceVIPs(nil)
	if len(a) != 2 || len(b) != 2 || *a[0] != *b[0] || *a[1] != *b[1] {
		t.Fatalf("before %+v\nafter %+v", a, b)
	}
	if hashOf(t, h.fsm) != hashOf(t, restored) {
		t.Fatal("hashes differ after restore")
	}
	if ia, _ := h.fsm.State().Index(state.TableServiceVIPs); ia == 0 {
		t.Fatal("no table index")
	}
}
