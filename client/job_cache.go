package client

import (
	"runtime"
	"sync"
	"weak"

	"github.com/droverhq/drover/structs"
)

// JobCache makes the allocations of one job version share one decoded
// *structs.Job. The servers send the job inside every allocation, and
// decoding gives each its own copy of the whole spec: a node running
// two hundred instances of a job held two hundred copies, and the node
// simulator, a hundred thousand. The job of an allocation is treated as
// immutable everywhere (see structs.Allocation), so sharing is safe.
//
// Entries are weak: a job no allocation uses any more is collected, and
// its entry removed. One cache may serve many clients in a process (the
// simulator's nodes share one). Safe for concurrent use.
type JobCache struct {
	// mu guards jobs.
	mu   sync.Mutex
	jobs map[jobKey]weak.Pointer[structs.Job]
}

// jobKey names a job version. JobModifyIndex moves with every change of
// the spec; status-only changes of the job, which the client does not
// read, do not move it.
type jobKey struct {
	namespace, id  string
	version        uint64
	jobModifyIndex uint64
}

// NewJobCache returns an empty cache.
func NewJobCache() *JobCache {
	return &JobCache{jobs: make(map[jobKey]weak.Pointer[structs.Job])}
}

// share returns the cached job equal in version to j, or caches j.
func (c *JobCache) share(j *structs.Job) *structs.Job {
	if j == nil {
		return nil
	}
	k := jobKey{namespace: j.Namespace, id: j.ID, version: j.Version, jobModifyIndex: j.JobModifyIndex}
	c.mu.Lock()
	defer c.mu.Unlock()
	if wp, ok := c.jobs[k]; ok {
		if cached := wp.Value(); cached != nil {
			return cached
		}
	}
	c.jobs[k] = weak.Make(j)
	runtime.AddCleanup(j, c.forget, k)
	return j
}

// forget drops k's entry once its job is collected, unless a newer copy
// took the entry meanwhile.
func (c *JobCache) forget(k jobKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if wp, ok := c.jobs[k]; ok && wp.Value() == nil {
		delete(c.jobs, k)
	}
}

// Len returns the number of job versions cached.
func (c *JobCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.jobs)
}
