package server

import (
	"container/heap"
	"errors"
	"sync"
	"time"

	"github.com/droverhq/drover/structs"
)

// ErrPlanQueueDisabled is returned when plans are submitted to, or
// awaited from, a server that no longer leads.
var ErrPlanQueueDisabled = structs.NewError(structs.CodeNoLeader, "plan queue disabled: this server is not the leader")

// PlanQueue orders submitted plans by priority for the plan applier,
// the single goroutine on the leader that commits plans.
type PlanQueue struct {
	// l guards every field below.
	l       sync.Mutex
	enabled bool
	ready   planHeap
	waiters map[chan struct{}]struct{}
}

// PlanFuture is the pending result of a submitted plan.
type PlanFuture struct {
	plan     *structs.Plan
	enqueued time.Time
	done     chan struct{}
	result   *structs.PlanResult
	err      error
}

// Wait blocks until the plan applier answered, or shutdownCh closes.
func (f *PlanFuture) Wait(shutdownCh <-chan struct{}) (*structs.PlanResult, error) {
	select {
	case <-f.done:
		return f.result, f.err
	case <-shutdownCh:
		return nil, ErrPlanQueueDisabled
	}
}

func (f *PlanFuture) respond(result *structs.PlanResult, err error) {
	f.result, f.err = result, err
	close(f.done)
}

// NewPlanQueue returns a disabled queue.
func NewPlanQueue() *PlanQueue {
	return &PlanQueue{waiters: make(map[chan struct{}]struct{})}
}

// SetEnabled turns the queue on or off; turning it off fails every
// waiting plan.
func (q *PlanQueue) SetEnabled(enabled bool) {
	q.l.Lock()
	defer q.l.Unlock()
	q.enabled = enabled
	if !enabled {
		for _, f := range q.ready {
			f.respond(nil, ErrPlanQueueDisabled)
		}
		q.ready = nil
		for ch := range q.waiters {
			close(ch)
			delete(q.waiters, ch)
		}
	}
}

// Enqueue submits a plan.
func (q *PlanQueue) Enqueue(plan *structs.Plan) (*PlanFuture, error) {
	q.l.Lock()
	defer q.l.Unlock()
	if !q.enabled {
		return nil, ErrPlanQueueDisabled
	}
	f := &PlanFuture{plan: plan, enqueued: time.Now(), done: make(chan struct{})}
	heap.Push(&q.ready, f)
	for ch := range q.waiters {
		close(ch)
		delete(q.waiters, ch)
	}
	return f, nil
}

// Dequeue waits for the next plan until stopCh closes.
func (q *PlanQueue) Dequeue(stopCh <-chan struct{}) (*PlanFuture, error) {
	return q.DequeueOr(stopCh, nil)
}

// DequeueOr waits for the next plan until stopCh closes, or until wakeCh
// closes, when it returns a nil plan and no error. A nil wakeCh never
// fires.
func (q *PlanQueue) DequeueOr(stopCh, wakeCh <-chan struct{}) (*PlanFuture, error) {
	for {
		// An applier of an earlier term must not take plans of the next.
		select {
		case <-stopCh:
			return nil, errors.New("plan applier stopped")
		default:
		}
		q.l.Lock()
		if !q.enabled {
			q.l.Unlock()
			return nil, ErrPlanQueueDisabled
		}
		if q.ready.Len() > 0 {
			f := heap.Pop(&q.ready).(*PlanFuture)
			q.l.Unlock()
			return f, nil
		}
		wake := make(chan struct{})
		q.waiters[wake] = struct{}{}
		q.l.Unlock()
		select {
		case <-wake:
		case <-wakeCh:
			q.l.Lock()
			delete(q.waiters, wake)
			q.l.Unlock()
			return nil, nil
		case <-stopCh:
			q.l.Lock()
			delete(q.waiters, wake)
			q.l.Unlock()
			return nil, errors.New("plan applier stopped")
		}
	}
}

// planHeap orders plans by priority, then submission time.
type planHeap []*PlanFuture

func (h planHeap) Len() int { return len(h) }
func (h planHeap) Less(i, j int) bool {
	if h[i].plan.Priority != h[j].plan.Priority {
		return h[i].plan.Priority > h[j].plan.Priority
	}
	return h[i].enqueued.Before(h[j].enqueued)
}
func (h planHeap) Swap(i, j int)       { h[i], h[j] = h[j], h[i] }
func (h *planHeap) Push(x interface{}) { *h = append(*h, x.(*PlanFuture)) }
func (h *planHeap) Pop() interface{} {
	old := *h
	n := len(old)
	f := old[n-1]
	*h = old[:n-1]
	return f
}
