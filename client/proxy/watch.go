package proxy

import (
	"context"
	"time"

	"github.com/droverhq/drover/structs"
)

// FetchFunc is one blocking query for the proxied services: it returns
// once the servers' index is past minIndex (or their wait ends), and
// must return when ctx is done. On an agent it is Client.ServiceProxy.
type FetchFunc func(ctx context.Context, minIndex uint64) (*structs.ServiceProxyResponse, error)

// Watch backoff after a failed fetch.
const (
	watchBackoffMin = 500 * time.Millisecond
	watchBackoffMax = 30 * time.Second
)

// Watcher repeats a blocking query and hands every answer to Update.
// While the servers cannot be reached, the last answer stays in force:
// the proxy keeps serving what it knew.
type Watcher struct {
	Fetch  FetchFunc
	Update func([]*structs.ProxiedService)
	// BackoffMin and BackoffMax bound the wait after a failed fetch
	// (doubling); zero: 500ms and 30s.
	BackoffMin, BackoffMax time.Duration
	// Logf receives fetch failures; nil: none.
	Logf func(format string, args ...any)
}

// Run queries until ctx is done.
func (w *Watcher) Run(ctx context.Context) {
	minB, maxB := w.BackoffMin, w.BackoffMax
	if minB <= 0 {
		minB = watchBackoffMin
	}
	if maxB < minB {
		maxB = max(watchBackoffMax, minB)
	}
	var index uint64
	backoff := minB
	for ctx.Err() == nil {
		resp, err := w.Fetch(ctx, index)
		if ctx.Err() != nil {
			return
		}
		if err != nil || resp == nil {
			if w.Logf != nil {
				w.Logf("[WARN] proxy: read the proxied services: %v; retrying in %s", err, backoff)
			}
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(backoff*2, maxB)
			continue
		}
		backoff = minB
		w.Update(resp.Services)
		switch {
		case resp.Index < index:
			// The servers' index went back (a restored snapshot, a
			// lagging server): start over rather than wait for an
			// index that may not come.
			index = 0
		case resp.Index == 0:
			// Never a non-blocking query in a loop.
			index = 1
		default:
			index = resp.Index
		}
	}
}

// Watch starts a Watcher feeding this proxy; it runs until Stop.
func (p *Proxy) Watch(fetch FetchFunc) {
	w := &Watcher{Fetch: fetch, Update: p.Update, Logf: p.logf}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		w.Run(p.ctx)
	}()
}
