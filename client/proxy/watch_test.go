package proxy

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	dtestutil "github.com/droverhq/drover/testutil"
)

// fakeServers answers blocking queries from a script.
type fakeServers struct {
	mu      sync.Mutex
	answers []func() (*structs.ServiceProxyResponse, error)
	seen    []uint64
}

func (f *fakeServers) fetch(ctx context.Context, minIndex uint64) (*structs.ServiceProxyResponse, error) {
	f.mu.Lock()
	f.seen = append(f.seen, minIndex)
	if len(f.answers) == 0 {
		f.mu.Unlock()
		<-ctx.Done() // a blocking query with nothing new
		return nil, ctx.Err()
	}
	next := f.answers[0]
	f.answers = f.answers[1:]
	f.mu.Unlock()
	return next()
}

func (f *fakeServers) indexes() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint64(nil), f.seen...)
}

func answer(index uint64, names ...string) func() (*structs.ServiceProxyResponse, error) {
	return func() (*structs.ServiceProxyResponse, error) {
		r := &structs.ServiceProxyResponse{}
		r.Index = index
		for _, n := range names {
			r.Services = append(r.Services, &structs.ProxiedService{Namespace: "default", Name: n})
		}
		return r, nil
	}
}

func TestWatcher_BlockingQueriesAndBackoff(t *testing.T) {
	f := &fakeServers{answers: []func() (*structs.ServiceProxyResponse, error){
		answer(5, "a"),
		func() (*structs.ServiceProxyResponse, error) { return nil, errors.New("no servers") },
		func() (*structs.ServiceProxyResponse, error) { return nil, errors.New("no servers") },
		answer(9, "a", "b"),
		answer(3, "b"), // the index went back: start over
		answer(0),      // never a non-blocking loop
	}}
	var mu sync.Mutex
	var updates [][]string
	w := &Watcher{Fetch: f.fetch, BackoffMin: time.Millisecond, BackoffMax: 2 * time.Millisecond,
		Update: func(s []*structs.ProxiedService) {
			mu.Lock()
			defer mu.Unlock()
			var names []string
			for _, ps := range s {
				names = append(names, ps.Name)
			}
			updates = append(updates, names)
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	dtestutil.WaitFor(t, 5*time.Second, func() (bool, error) { return len(f.indexes()) == 7, nil })
	cancel()
	<-done
	want := []uint64{0, 5, 5, 5, 9, 0, 1}
	got := f.indexes()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("min indexes %v, want %v", got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// Failed fetches keep the last answer: no update.
	if len(updates) != 4 || len(updates[0]) != 1 || len(updates[1]) != 2 || len(updates[3]) != 0 {
		t.Fatalf("updates %v", updates)
	}
}

// TestProxy_WatchFeedsUpdate: the proxy's own watcher opens listeners
// from the answers and stops with the proxy.
func TestProxy_WatchFeedsUpdate(t *testing.T) {
	e1 := startEchoBackend(t, "e1")
	vip := randomVIP()
	port := freePort(t, vip)
	f := &fakeServers{answers: []func() (*structs.ServiceProxyResponse, error){
		func() (*structs.ServiceProxyResponse, error) {
			r := &structs.ServiceProxyResponse{Services: []*structs.ProxiedService{vipService(vip, port, instances(t, e1.addr))}}
			r.Index = 2
			return r, nil
		},
	}}
	p := newTestProxy(t, Config{})
	p.Watch(f.fetch)
	dtestutil.WaitFor(t, 5*time.Second, func() (bool, error) { return p.Status().Totals.Listeners == 1, nil })
	if ans, err := dialLine(t, p.Status().Listeners[0].Address).say("w"); err != nil || ans != "e1 w" {
		t.Fatalf("%q %v", ans, err)
	}
	p.Stop()
	if got := f.indexes(); len(got) != 2 || got[1] != 2 {
		t.Fatalf("min indexes %v", got)
	}
}
