package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/droverhq/drover/api"
)

// benchImage is the image of the jobs placed on simulated nodes (which
// start nothing) and run by the latency scenario's dev agent (which has
// it imported).
const benchImage = "localhost/drover/busybox:latest"

// serviceJob is a service job of one group of count instances of one
// task asking cpu MHz and memoryMB, with no ports and no update block
// (so no deployment).
func serviceJob(id string, count, cpu, memoryMB int) *api.Job {
	return &api.Job{
		ID:          id,
		Type:        "service",
		Datacenters: []string{"dc1"},
		TaskGroups: []*api.TaskGroup{{
			Name:  "g",
			Count: count,
			Tasks: []*api.Task{{
				Name:      "t",
				Driver:    "containerd",
				Config:    map[string]interface{}{"image": benchImage, "command": "/bin/sleep", "args": []string{"3600"}},
				Resources: &api.Resources{CPU: cpu, MemoryMB: memoryMB},
			}},
		}},
	}
}

// submitStats are what submitJobs observed.
type submitStats struct {
	latencies []time.Duration
	retries   int64
}

// submitJobs registers jobs with writers concurrent writers, writer i
// sending to clients[i%len(clients)]. A registration that fails with a
// server-side error (no leader, timeout) is retried a few times; a
// rejected job (4xx) or a persistent failure ends the submission. done
// is called after each registration.
func submitJobs(ctx context.Context, clients []*api.Client, writers int, jobs []*api.Job, done func(n int)) (*submitStats, error) {
	var (
		next  atomic.Int64
		count atomic.Int64
		mu    sync.Mutex
		st    = &submitStats{}
		first error
		wg    sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			cl := clients[w%len(clients)]
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(jobs) {
					return
				}
				lat, retries, err := registerRetry(ctx, cl, jobs[i])
				mu.Lock()
				st.retries += int64(retries)
				if err == nil {
					st.latencies = append(st.latencies, lat)
				} else if first == nil {
					first = fmt.Errorf("register job %s: %w", jobs[i].ID, err)
					cancel()
				}
				mu.Unlock()
				if err == nil && done != nil {
					done(int(count.Add(1)))
				}
			}
		}(w)
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return st, first
}

// registerRetry registers job, retrying server-side failures; it returns
// the latency of the successful attempt.
func registerRetry(ctx context.Context, cl *api.Client, job *api.Job) (time.Duration, int, error) {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			if sleepCtx(ctx, time.Duration(attempt)*200*time.Millisecond) != nil {
				return 0, attempt, ctx.Err()
			}
		}
		start := time.Now()
		_, _, err = cl.Jobs().Register(job, nil)
		if err == nil {
			return time.Since(start), attempt, nil
		}
		var apiErr *api.Error
		if errors.As(err, &apiErr) && apiErr.StatusCode/100 == 4 && apiErr.StatusCode != http.StatusTooManyRequests {
			return 0, attempt, err // the job was rejected: retrying will not help
		}
	}
	return 0, 4, err
}
