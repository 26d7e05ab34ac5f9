package server

import (
	"container/heap"
	"errors"
	"fmt"
	"sync"
	"time"

	uuid "github.com/hashicorp/go-uuid"

	"github.com/droverhq/drover/structs"
)

// The eval broker hands evaluations to scheduler workers.
//
// Delivery is at-least-once: a dequeued evaluation is "unacked" until its
// worker Acks it (the outcome is committed) or Nacks it (processing
// failed), and a worker that goes quiet for NackTimeout is treated as a
// Nack. Each delivery carries a token; plan submissions and eval updates
// must present the current token, so a worker whose delivery timed out
// cannot commit work for an evaluation someone else now owns.
//
// At most one evaluation per job is delivered at a time: schedulers for
// the same job would otherwise race each other's plans. Later
// evaluations of a job wait in a per-job queue; when the in-flight one
// is acked, the newest waiting one is delivered and the older ones are
// cancelable (the newest one reconciles from current state anyway), and
// the leader marks them canceled.
//
// Evaluations with WaitUntil in the future sit in a delay heap until
// then. Evaluations that exhaust their delivery limit go to the failed
// queue, which the leader drains by marking them failed with a delayed
// follow-up.
//
// The broker is enabled only on the leader; Enqueue on a disabled broker
// is a no-op (the FSM calls it on every server), and disabling it drops
// everything (a new leader rebuilds it from the state store).

// FailedQueue is the pseudo scheduler type of the failed queue.
const FailedQueue = "_failed"

// Broker errors.
var (
	// ErrBrokerDisabled is returned by Dequeue when this server stops
	// leading.
	ErrBrokerDisabled = errors.New("eval broker disabled")
	// ErrNotOutstanding is returned for an Ack, Nack or token check of an
	// evaluation that is not outstanding (already acked, or timed out).
	ErrNotOutstanding = structs.NewError(structs.CodeBadEvalToken, "evaluation is not outstanding")
	// ErrTokenMismatch is returned when a token does not match the
	// current delivery.
	ErrTokenMismatch = structs.NewError(structs.CodeBadEvalToken, "evaluation token does not match")
)

// Nack redelivery delays: the first redelivery is quick, later ones back
// off so a poisonous evaluation does not spin.
const (
	initialNackDelay    = 1 * time.Second
	subsequentNackDelay = 20 * time.Second
)

// EvalBroker queues evaluations for the scheduler workers.
type EvalBroker struct {
	nackTimeout   time.Duration
	deliveryLimit int

	// l guards every field below.
	l       sync.Mutex
	enabled bool
	// evals counts deliveries per tracked evaluation ID.
	evals map[string]int
	// jobEvals maps a job to its ready or unacked evaluation. Jobs are
	// keyed by (namespace, ID): two jobs of the same ID in different
	// namespaces are scheduled independently.
	jobEvals map[structs.NamespacedID]string
	// pending holds a job's waiting evaluations.
	pending map[structs.NamespacedID]*evalHeap
	// cancelable holds superseded evaluations for the leader to cancel.
	cancelable []*structs.Evaluation
	// ready holds deliverable evaluations per scheduler type.
	ready map[string]*evalHeap
	// unack holds delivered evaluations by ID.
	unack map[string]*unackEval
	// instances is the process instance each remote holder last
	// dequeued from (Restarted).
	instances map[string]string
	// delayed holds evaluations waiting for their WaitUntil.
	delayed *delayHeap
	// delayTimer fires when the earliest delayed evaluation is due.
	delayTimer *time.Timer
	// waiters are woken when something becomes ready.
	waiters map[chan struct{}]struct{}
	// nackTimers schedule redelivery after a nack delay.
	nackTimers map[string]*time.Timer
	// readyAt is when each tracked evaluation first became ready, for
	// onAck.
	readyAt map[string]time.Time
	// onAck, when set, gets each acknowledged evaluation's time from
	// ready to ack (called with the lock held; must not block).
	onAck func(time.Duration)
}

type unackEval struct {
	eval      *structs.Evaluation
	token     string
	nackTimer *time.Timer
	// holder is the Raft ID of the server whose worker took the
	// evaluation over RPC, and instance that server process's start
	// nonce ("" for the leader's own workers, and for servers too old
	// to send them): see Hold.
	holder, instance string
}

// NewEvalBroker returns a disabled broker.
func NewEvalBroker(nackTimeout time.Duration, deliveryLimit int) *EvalBroker {
	b := &EvalBroker{nackTimeout: nackTimeout, deliveryLimit: deliveryLimit}
	b.resetLocked()
	return b
}

func (b *EvalBroker) resetLocked() {
	for _, u := range b.unack {
		u.nackTimer.Stop()
	}
	for _, t := range b.nackTimers {
		t.Stop()
	}
	if b.delayTimer != nil {
		b.delayTimer.Stop()
		b.delayTimer = nil
	}
	b.evals = make(map[string]int)
	b.jobEvals = make(map[structs.NamespacedID]string)
	b.pending = make(map[structs.NamespacedID]*evalHeap)
	b.cancelable = nil
	b.ready = make(map[string]*evalHeap)
	b.unack = make(map[string]*unackEval)
	b.instances = make(map[string]string)
	b.delayed = &delayHeap{}
	b.nackTimers = make(map[string]*time.Timer)
	b.readyAt = make(map[string]time.Time)
	for ch := range b.waiters {
		close(ch)
	}
	b.waiters = make(map[chan struct{}]struct{})
}

// SetEnabled turns the broker on (leader) or off (follower). Turning it
// off drops every evaluation and wakes waiting workers.
func (b *EvalBroker) SetEnabled(enabled bool) {
	b.l.Lock()
	defer b.l.Unlock()
	b.enabled = enabled
	if !enabled {
		b.resetLocked()
	}
}

// Enabled reports whether the broker is on.
func (b *EvalBroker) Enabled() bool {
	b.l.Lock()
	defer b.l.Unlock()
	return b.enabled
}

// Enqueue adds an evaluation. Evaluations already tracked are ignored.
// It never blocks; it is called from the FSM's apply goroutine.
func (b *EvalBroker) Enqueue(eval *structs.Evaluation) {
	b.l.Lock()
	defer b.l.Unlock()
	if !b.enabled {
		return
	}
	if _, tracked := b.evals[eval.ID]; tracked {
		return
	}
	b.evals[eval.ID] = 0
	if eval.WaitUntil > 0 && time.Unix(0, eval.WaitUntil).After(time.Now()) {
		heap.Push(b.delayed, eval)
		b.armDelayTimerLocked()
		return
	}
	b.enqueueLocked(eval, eval.Type)
}

// enqueueLocked makes eval ready, or parks it behind its job's in-flight
// evaluation.
func (b *EvalBroker) enqueueLocked(eval *structs.Evaluation, queue string) {
	if _, ok := b.readyAt[eval.ID]; !ok {
		b.readyAt[eval.ID] = time.Now()
	}
	if queue != FailedQueue {
		key := eval.JobKey()
		if inflight, ok := b.jobEvals[key]; ok && inflight != eval.ID {
			h := b.pending[key]
			if h == nil {
				h = &evalHeap{}
				b.pending[key] = h
			}
			heap.Push(h, eval)
			return
		}
		b.jobEvals[key] = eval.ID
	}
	h := b.ready[queue]
	if h == nil {
		h = &evalHeap{}
		b.ready[queue] = h
	}
	heap.Push(h, eval)
	for ch := range b.waiters {
		close(ch)
		delete(b.waiters, ch)
	}
}

// armDelayTimerLocked sets the delay timer for the earliest delayed
// evaluation.
func (b *EvalBroker) armDelayTimerLocked() {
	if b.delayTimer != nil {
		b.delayTimer.Stop()
		b.delayTimer = nil
	}
	if b.delayed.Len() == 0 {
		return
	}
	wait := time.Until(time.Unix(0, (*b.delayed)[0].WaitUntil))
	b.delayTimer = time.AfterFunc(wait, b.releaseDelayed)
}

// releaseDelayed moves due evaluations from the delay heap to ready.
func (b *EvalBroker) releaseDelayed() {
	b.l.Lock()
	defer b.l.Unlock()
	if !b.enabled {
		return
	}
	now := time.Now().UnixNano()
	for b.delayed.Len() > 0 && (*b.delayed)[0].WaitUntil <= now {
		eval := heap.Pop(b.delayed).(*structs.Evaluation)
		b.enqueueLocked(eval, eval.Type)
	}
	b.armDelayTimerLocked()
}

// Dequeue waits up to timeout (forever if 0, until shutdownCh closes) for
// an evaluation of one of the scheduler types, and returns it with its
// delivery token. It returns (nil, "", nil) on timeout and
// ErrBrokerDisabled when the broker is turned off.
func (b *EvalBroker) Dequeue(types []string, timeout time.Duration, shutdownCh <-chan struct{}) (*structs.Evaluation, string, error) {
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	for {
		b.l.Lock()
		if !b.enabled {
			b.l.Unlock()
			return nil, "", ErrBrokerDisabled
		}
		if eval, token, ok := b.dequeueLocked(types); ok {
			b.l.Unlock()
			return eval, token, nil
		}
		wake := make(chan struct{})
		b.waiters[wake] = struct{}{}
		b.l.Unlock()

		select {
		case <-wake:
		case <-timer:
			b.dropWaiter(wake)
			return nil, "", nil
		case <-shutdownCh:
			b.dropWaiter(wake)
			return nil, "", ErrBrokerDisabled
		}
	}
}

func (b *EvalBroker) dropWaiter(ch chan struct{}) {
	b.l.Lock()
	defer b.l.Unlock()
	delete(b.waiters, ch)
}

// dequeueLocked pops the highest-priority ready evaluation among types.
func (b *EvalBroker) dequeueLocked(types []string) (*structs.Evaluation, string, bool) {
	var best *evalHeap
	for _, t := range types {
		h := b.ready[t]
		if h == nil || h.Len() == 0 {
			continue
		}
		if best == nil || h.less((*h)[0], (*best)[0]) {
			best = h
		}
	}
	if best == nil {
		return nil, "", false
	}
	eval := heap.Pop(best).(*structs.Evaluation)
	token, _ := uuid.GenerateUUID()
	b.evals[eval.ID]++
	u := &unackEval{eval: eval, token: token}
	u.nackTimer = time.AfterFunc(b.nackTimeout, func() { _ = b.Nack(eval.ID, token) })
	b.unack[eval.ID] = u
	return eval, token, true
}

// deliveryLocked returns the unacked delivery of evalID if token is its
// current one.
func (b *EvalBroker) deliveryLocked(evalID, token string) (*unackEval, error) {
	u, ok := b.unack[evalID]
	if !ok {
		return nil, ErrNotOutstanding
	}
	if u.token != token {
		return nil, ErrTokenMismatch
	}
	return u, nil
}

// Outstanding checks that token is the current delivery of evalID and
// resets its nack timer; workers call it as they make progress.
func (b *EvalBroker) Outstanding(evalID, token string) error {
	b.l.Lock()
	defer b.l.Unlock()
	u, err := b.deliveryLocked(evalID, token)
	if err != nil {
		return err
	}
	u.nackTimer.Reset(b.nackTimeout)
	return nil
}

// Ack marks an evaluation done and releases its job's next evaluation.
func (b *EvalBroker) Ack(evalID, token string) error {
	b.l.Lock()
	defer b.l.Unlock()
	u, err := b.deliveryLocked(evalID, token)
	if err != nil {
		return err
	}
	u.nackTimer.Stop()
	delete(b.unack, evalID)
	delete(b.evals, evalID)
	if at, ok := b.readyAt[evalID]; ok {
		if b.onAck != nil {
			b.onAck(time.Since(at))
		}
		delete(b.readyAt, evalID)
	}
	jobID := u.eval.JobKey()
	if b.jobEvals[jobID] == evalID {
		delete(b.jobEvals, jobID)
	}
	// Release the newest waiting evaluation of the job; the rest are
	// superseded by it.
	if h := b.pending[jobID]; h != nil && h.Len() > 0 {
		newest := h.newest()
		for _, e := range *h {
			if e.ID != newest.ID {
				delete(b.evals, e.ID)
				delete(b.readyAt, e.ID)
				b.cancelable = append(b.cancelable, e)
			}
		}
		delete(b.pending, jobID)
		b.enqueueLocked(newest, newest.Type)
	}
	return nil
}

// Nack returns an evaluation for redelivery after a delay, or to the
// failed queue once it reached the delivery limit.
func (b *EvalBroker) Nack(evalID, token string) error {
	b.l.Lock()
	defer b.l.Unlock()
	return b.nackLocked(evalID, token)
}

func (b *EvalBroker) nackLocked(evalID, token string) error {
	u, err := b.deliveryLocked(evalID, token)
	if err != nil {
		return err
	}
	u.nackTimer.Stop()
	delete(b.unack, evalID)
	eval := u.eval
	if b.evals[evalID] >= b.deliveryLimit {
		// Give up: the job's next evaluation may run; this one fails.
		if b.jobEvals[eval.JobKey()] == evalID {
			delete(b.jobEvals, eval.JobKey())
		}
		b.enqueueLocked(eval, FailedQueue)
		return nil
	}
	delay := initialNackDelay
	if b.evals[evalID] > 1 {
		delay = subsequentNackDelay
	}
	b.nackTimers[evalID] = time.AfterFunc(delay, func() {
		b.l.Lock()
		defer b.l.Unlock()
		if _, still := b.nackTimers[evalID]; !still || !b.enabled {
			return
		}
		delete(b.nackTimers, evalID)
		h := b.ready[eval.Type]
		if h == nil {
			h = &evalHeap{}
			b.ready[eval.Type] = h
		}
		heap.Push(h, eval)
		for ch := range b.waiters {
			close(ch)
			delete(b.waiters, ch)
		}
	})
	return nil
}

// Hold records that the delivery (evalID, token) went to a worker of the
// server with Raft ID holder, in its process started as instance. A
// server that dies holding evaluations would otherwise keep them for
// the nack timeout (a minute by default) before anyone else may
// schedule them; knowing the holder lets the leader hand them back as
// soon as it learns the holder is gone: when the same server calls
// again from a new process (Restarted), or when gossip reports it
// failed or left (NackHeldBy). A wrong guess only costs work: the old
// holder's token is void after the nack, so whatever it still submits
// is refused.
func (b *EvalBroker) Hold(evalID, token, holder, instance string) error {
	b.l.Lock()
	defer b.l.Unlock()
	u, err := b.deliveryLocked(evalID, token)
	if err != nil {
		return err
	}
	u.holder, u.instance = holder, instance
	return nil
}

// Restarted tells the broker that the server with Raft ID holder now
// runs as instance: the evaluations an earlier process of it holds are
// handed back, and their IDs returned. Only a new instance costs a look
// at the deliveries: every remote dequeue calls it.
func (b *EvalBroker) Restarted(holder, instance string) ([]string, error) {
	if holder == "" {
		return nil, nil
	}
	b.l.Lock()
	defer b.l.Unlock()
	if b.instances[holder] == instance {
		return nil, nil
	}
	b.instances[holder] = instance
	return b.nackHeldLocked(func(u *unackEval) bool { return u.holder == holder && u.instance != instance })
}

// NackHeldBy hands back every evaluation the server with Raft ID holder
// holds (it failed or left), and returns their IDs.
func (b *EvalBroker) NackHeldBy(holder string) ([]string, error) {
	if holder == "" {
		return nil, nil
	}
	b.l.Lock()
	defer b.l.Unlock()
	return b.nackHeldLocked(func(u *unackEval) bool { return u.holder == holder })
}

// nackHeldLocked nacks the deliveries that match and returns their IDs.
func (b *EvalBroker) nackHeldLocked(match func(*unackEval) bool) ([]string, error) {
	var ids []string
	for id, u := range b.unack {
		if match(u) {
			ids = append(ids, id)
		}
	}
	return ids, b.nackEach(ids)
}

// nackEach nacks the current deliveries of ids (all in unack).
func (b *EvalBroker) nackEach(ids []string) error {
	var errs []error
	for _, id := range ids {
		if err := b.nackLocked(id, b.unack[id].token); err != nil {
			errs = append(errs, fmt.Errorf("nack %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// Cancelable returns and forgets up to max superseded evaluations.
func (b *EvalBroker) Cancelable(max int) []*structs.Evaluation {
	b.l.Lock()
	defer b.l.Unlock()
	n := len(b.cancelable)
	if n > max {
		n = max
	}
	out := b.cancelable[:n:n]
	b.cancelable = b.cancelable[n:]
	return out
}

// BrokerStats counts what the broker holds.
type BrokerStats struct {
	Ready, Unacked, Pending, Delayed, Cancelable int
}

// Stats returns counts for the operator API and tests.
func (b *EvalBroker) Stats() BrokerStats {
	b.l.Lock()
	defer b.l.Unlock()
	var s BrokerStats
	for _, h := range b.ready {
		s.Ready += h.Len()
	}
	for _, h := range b.pending {
		s.Pending += h.Len()
	}
	s.Unacked = len(b.unack)
	s.Delayed = b.delayed.Len()
	s.Cancelable = len(b.cancelable)
	return s
}

// evalHeap orders evaluations by priority (high first), then Raft index
// (old first).
type evalHeap []*structs.Evaluation

func (h evalHeap) less(a, b *structs.Evaluation) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	return a.CreateIndex < b.CreateIndex
}
func (h evalHeap) Len() int            { return len(h) }
func (h evalHeap) Less(i, j int) bool  { return h.less(h[i], h[j]) }
func (h evalHeap) Swap(i, j int)       { h[i], h[j] = h[j], h[i] }
func (h *evalHeap) Push(x interface{}) { *h = append(*h, x.(*structs.Evaluation)) }
func (h *evalHeap) Pop() interface{} {
	old := *h
	n := len(old)
	e := old[n-1]
	*h = old[:n-1]
	return e
}

// newest returns the evaluation with the highest ModifyIndex.
func (h evalHeap) newest() *structs.Evaluation {
	var n *structs.Evaluation
	for _, e := range h {
		if n == nil || e.ModifyIndex > n.ModifyIndex {
			n = e
		}
	}
	return n
}

// delayHeap orders evaluations by WaitUntil.
type delayHeap []*structs.Evaluation

func (h delayHeap) Len() int            { return len(h) }
func (h delayHeap) Less(i, j int) bool  { return h[i].WaitUntil < h[j].WaitUntil }
func (h delayHeap) Swap(i, j int)       { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x interface{}) { *h = append(*h, x.(*structs.Evaluation)) }
func (h *delayHeap) Pop() interface{} {
	old := *h
	n := len(old)
	e := old[n-1]
	*h = old[:n-1]
	return e
}

// String describes the broker for debugging.
func (s BrokerStats) String() string {
	return fmt.Sprintf("ready=%d unacked=%d pending=%d delayed=%d cancelable=%d", s.Ready, s.Unacked, s.Pending, s.Delayed, s.Cancelable)
}
