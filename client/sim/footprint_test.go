package sim

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

// wireCluster is a fakeCluster whose answers go through the wire codec,
// so the clients hold what they would decode from real servers.
type wireCluster struct{ *fakeCluster }

func (w wireCluster) RPC(method string, args, reply interface{}) error {
	if err := w.fakeCluster.RPC(method, args, reply); err != nil {
		return err
	}
	buf, err := structs.Encode(0, reply)
	if err != nil {
		return err
	}
	fresh := reflect.New(reflect.TypeOf(reply).Elem())
	if err := structs.Decode(buf[1:], fresh.Interface()); err != nil {
		return err
	}
	reflect.ValueOf(reply).Elem().Set(fresh.Elem())
	return nil
}

// BenchmarkSimulator_Footprint places allocations on simulated nodes (in
// process, no network) until all run, and reports what each costs the
// simulator: live heap and goroutines per allocation. It is what decides
// how many allocations one `drover sim nodes` process can hold.
func BenchmarkSimulator_Footprint(b *testing.B) {
	const nodes, perNode = 500, 20
	for i := 0; i < b.N; i++ {
		f := newFakeCluster(b)
		s := New(Config{Count: nodes, RPC: wireCluster{f}, NamePrefix: "fp", UpdateCoalesce: 20 * time.Millisecond,
			// As drover sim nodes logs: warnings only.
			Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: io.Discard})})
		ctx, cancel := context.WithCancel(context.Background())
		if err := s.Run(ctx, nil); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()

		jobs := []*structs.Job{mock.Job(), mock.Job(), mock.Job(), mock.Job()}
		var ids []string
		for n, id := range s.Nodes() {
			node := &structs.Node{ID: id, Name: fmt.Sprintf("fp-%05d", n)}
			for k := 0; k < perNode; k++ {
				a := mock.Alloc(jobs[k%len(jobs)], node, n*perNode+k)
				a.ClientStatus, a.TaskStates = structs.AllocClientStatusPending, nil
				f.place(a)
				ids = append(ids, a.ID)
			}
		}
		if err := testutil.Poll(2*time.Minute, func() (bool, error) {
			st := f.statuses(ids)
			return st[structs.AllocClientStatusRunning] == len(ids), fmt.Errorf("%v", st)
		}); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		total := float64(len(ids))
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/total, "heap-B/alloc")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/total, "goroutines/alloc")
		b.ReportMetric(float64(int64(after.StackInuse)-int64(before.StackInuse))/total, "stack-B/alloc")
		cancel()
		s.Stop()
	}
}
