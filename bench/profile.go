package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// profileSeconds is how long a CPU profile of the leader runs.
func (r *runner) profileSeconds() int { return pick(r, 20, 5) }

// profileCPU starts a CPU profile of a server (served at /debug/pprof
// since servers run with -enable-debug) when Config.Profile is set, and
// returns a function that waits for it and saves it as
// <results-dir>/<name>-leader-cpu.pprof.
func (r *runner) profileCPU(ctx context.Context, s *agentProc, name string) (wait func()) {
	if !r.cfg.Profile {
		return func() {}
	}
	secs := r.profileSeconds()
	done := make(chan struct{})
	go func() {
		defer close(done)
		path := filepath.Join(r.cfg.ResultsDir, name+"-leader-cpu.pprof")
		if err := fetchTo(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", s.httpAddr(), secs), path, time.Duration(secs+30)*time.Second); err != nil {
			r.progress("CPU profile of %s failed: %v", s.name, err)
			return
		}
		r.progress("saved a %ds CPU profile of the leader (%s) to %s", secs, s.name, path)
	}()
	return func() { <-done }
}

// profileHeap saves a heap profile of a server when Config.Profile is
// set.
func (r *runner) profileHeap(ctx context.Context, s *agentProc, name string) {
	if !r.cfg.Profile {
		return
	}
	path := filepath.Join(r.cfg.ResultsDir, name+"-"+s.id+"-heap.pprof")
	if err := fetchTo(ctx, s.httpAddr()+"/debug/pprof/heap", path, time.Minute); err != nil {
		r.progress("heap profile of %s failed: %v", s.name, err)
		return
	}
	r.progress("saved a heap profile of %s to %s", s.name, path)
}

// fetchTo GETs url into path.
func fetchTo(ctx context.Context, url, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
