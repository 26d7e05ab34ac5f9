package deploymentwatcher

import (
	"errors"
	"fmt"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// fakeState is a State over one job's versions, allocations and
// deployments.
type fakeState struct {
	deployments []*structs.Deployment
	allocs      []*structs.Allocation
	// versions are the job's kept versions, newest (the current job)
	// first.
	versions []*structs.Job
}

func (s *fakeState) Deployments(memdb.WatchSet) ([]*structs.Deployment, error) {
	return s.deployments, nil
}

func (s *fakeState) AllocsByJob(_ memdb.WatchSet, namespace, jobID string) ([]*structs.Allocation, error) {
	var out []*structs.Allocation
	for _, a := range s.allocs {
		if a.JobID == jobID && structs.NamespaceOrDefault(a.Namespace) == structs.NamespaceOrDefault(namespace) {
			out = append(out, a)
		}
	}
	return out, nil
}

func (s *fakeState) JobByID(_ memdb.WatchSet, namespace, id string) (*structs.Job, error) {
	if len(s.versions) == 0 || s.versions[0].Key() != structs.NewNamespacedID(namespace, id) {
		return nil, nil
	}
	return s.versions[0], nil
}

func (s *fakeState) JobVersionsByID(_ memdb.WatchSet, namespace, id string) ([]*structs.Job, error) {
	if len(s.versions) == 0 || s.versions[0].Key() != structs.NewNamespacedID(namespace, id) {
		return nil, nil
	}
	return s.versions, nil
}

// fakeRaft records the watcher's decisions.
type fakeRaft struct {
	promoted   []string
	successful []string
	failed     []*Failure
	fail       error
}

func (r *fakeRaft) PromoteCanaries(d *structs.Deployment) error {
	if r.fail != nil {
		return r.fail
	}
	r.promoted = append(r.promoted, d.ID)
	return nil
}

func (r *fakeRaft) MarkSuccessful(d *structs.Deployment) error {
	if r.fail != nil {
		return r.fail
	}
	r.successful = append(r.successful, d.ID)
	return nil
}

func (r *fakeRaft) MarkFailed(f *Failure) error {
	if r.fail != nil {
		return r.fail
	}
	r.failed = append(r.failed, f)
	return nil
}

// decisions summarises what the watcher wrote, for comparison.
func (r *fakeRaft) decisions() string {
	out := fmt.Sprintf("promoted=%d successful=%d", len(r.promoted), len(r.successful))
	for _, f := range r.failed {
		revert := "none"
		if f.RevertTo != nil {
			revert = fmt.Sprintf("v%d", f.RevertTo.Version)
		}
		out += fmt.Sprintf(" failed=%q revert=%s", f.Description, revert)
	}
	return out
}

var now = time.Unix(1700000000, 0)

// history returns a job's versions newest first: v0 stable, v1 with a
// different image stable as stableV1 says, v2 (current) with yet another.
func history(stableV1 bool) []*structs.Job {
	var out []*structs.Job
	base := mock.Job()
	for v := uint64(0); v <= 2; v++ {
		j := base.Copy()
		j.Version = v
		j.Stable = v == 0 || (v == 1 && stableV1)
		j.TaskGroups[0].Tasks[0].Config.Image = fmt.Sprintf("localhost/web:%d", v)
		out = append([]*structs.Job{j}, out...)
	}
	return out
}

// deployment returns a running deployment of the current version of
// job with one group of three allocations.
func deployment(job *structs.Job, autoRevert bool) *structs.Deployment {
	return &structs.Deployment{
		ID: structs.GenerateUUID(), JobID: job.ID, JobVersion: job.Version,
		Status: structs.DeploymentStatusRunning,
		TaskGroups: map[string]*structs.DeploymentState{"web": {
			AutoRevert: autoRevert, DesiredTotal: 3, PlacedAllocs: 3,
			RequireProgressBy: now.Add(time.Minute).UnixNano(),
		}},
	}
}

func alloc(d *structs.Deployment, job *structs.Job, healthy *bool) *structs.Allocation {
	a := mock.Alloc(job, mock.Node(), 0)
	a.DeploymentID = d.ID
	if healthy != nil {
		a.DeploymentStatus = &structs.AllocDeploymentStatus{Healthy: healthy}
	}
	return a
}

func boolp(b bool) *bool { return &b }

func TestWatcher_Decisions(t *testing.T) {
	cases := []struct {
		name string
		// setup changes the state of a deployment of history(stableV1)'s
		// current version.
		stableV1   bool
		autoRevert bool
		setup      func(st *fakeState, d *structs.Deployment, job *structs.Job)
		want       string
	}{
		{
			name:     "progress deadline passed: fails and reverts to the newest stable version",
			stableV1: true, autoRevert: true,
			setup: func(st *fakeState, d *structs.Deployment, job *structs.Job) {
				d.TaskGroups["web"].RequireProgressBy = now.Add(-time.Second).UnixNano()
			},
			want: `promoted=0 successful=0 failed="Failed due to progress deadline - rolling back to job version 1" revert=v1`,
		},
		{
			name:     "progress deadline passed: an older stable version when the newer is not",
			stableV1: false, autoRevert: true,
			setup: func(st *fakeState, d *structs.Deployment, job *structs.Job) {
				d.TaskGroups["web"].RequireProgressBy = now.Add(-time.Second).UnixNano()
			},
			want: `promoted=0 successful=0 failed="Failed due to progress deadline - rolling back to job version 0" revert=v0`,
		},
		{
			name:     "progress deadline passed: no stable version with another spec",
			stableV1: false, autoRevert: true,
			setup: func(st *fakeState, d *structs.Deployment, job *structs.Job) {
				d.TaskGroups["web"].RequireProgressBy = now.Add(-time.Second).UnixNano()
				// v0 has the current spec: registering it changes nothing.
				st.versions[2].TaskGroups[0].Tasks[0].Config.Image = job.TaskGroups[0].Tasks[0].Config.Image
			},
			want: `promoted=0 successful=0 failed="Failed due to progress deadline - no stable job version to auto revert to" revert=none`,
		},
		{
			name:     "progress deadline passed without auto_revert: fails only",
			stableV1: true, autoRevert: false,
			setup: func(st *fakeState, d *structs.Deployment, job *structs.Job) {
				d.TaskGroups["web"].RequireProgressBy = now.Add(-time.Second).UnixNano()
			},
			want: `promoted=0 successful=0 failed="Failed due to progress deadline" revert=none`,
		},
		{
			name:     "before the progress deadline: waits",
			stableV1: true, autoRevert: true,
			setup: func(st *fakeState, d *structs.Deployment, job *structs.Job) {
				st.allocs = append(st.allocs, alloc(d, job, boolp(true)), alloc(d, job, nil))
				d.TaskGroups["web"].HealthyAllocs = 1
			},
			want: `promoted=0 successful=0`,
		},
		{
			name:     "a group that is done does not fail at its deadline",
			stableV1: true, autoRevert: true,
			setup: func(st *fakeState, d *structs.Deployment, job *structs.Job) {
				d.TaskGroups["web"].HealthyAllocs = 3
				d.TaskGroups["web"].RequireProgressBy = now.Add(-time.Second).UnixNano()
			},
			want: `promoted=0 successful=1`,
		},
		{
			name:     "an unhealthy allocation fails and reverts",
			stableV1: true, autoRevert: true,
			setup: func(st *fakeState, d *structs.Deployment, job *structs.Job) {
				st.allocs = append(st.allocs, alloc(d, job, boolp(false)))
			},
			want: `promoted=0 successful=0 failed="Failed due to unhealthy allocations - rolling back to job version 1" revert=v1`,
		},
		{
			name:     "an unhealthy allocation of another deployment does not count",
			stableV1: true, autoRevert: true,
			setup: func(st *fakeState, d *structs.Deployment, job *structs.Job) {
				old := alloc(d, job, boolp(false))
				old.DeploymentID = "an-earlier-deployment"
				st.allocs = append(st.allocs, old)
			},
			want: `promoted=0 successful=0`,
		},
		{
			name:     "every group healthy: successful",
			stableV1: true, autoRevert: true,
			setup: func(st *fakeState, d *structs.Deployment, job *structs.Job) {
				d.TaskGroups["web"].HealthyAllocs = 3
			},
			want: `promoted=0 successful=1`,
		},
		{
			name:     "healthy canaries with auto_promote: promoted",
			stableV1: true,
			setup: func(st *fakeState, d *structs.Deployment, job *structs.Job) {
				tg := d.TaskGroups["web"]
				tg.AutoPromote, tg.DesiredCanaries = true, 2
				for i := 0; i < 2; i++ {
					c := alloc(d, job, boolp(true))
					st.allocs = append(st.allocs, c)
					tg.PlacedCanaries = append(tg.PlacedCanaries, c.ID)
				}
			},
			want: `promoted=1 successful=0`,
		},
		{
			name:     "healthy canaries without auto_promote: wait for the operator",
			stableV1: true,
			setup: func(st *fakeState, d *structs.Deployment, job *structs.Job) {
				tg := d.TaskGroups["web"]
				tg.DesiredCanaries = 1
				c := alloc(d, job, boolp(true))
				st.allocs = append(st.allocs, c)
				tg.PlacedCanaries = []string{c.ID}
				tg.HealthyAllocs = 3
			},
			want: `promoted=0 successful=0`,
		},
		{
			name:     "canaries not all healthy: wait",
			stableV1: true,
			setup: func(st *fakeState, d *structs.Deployment, job *structs.Job) {
				tg := d.TaskGroups["web"]
				tg.AutoPromote, tg.DesiredCanaries = true, 2
				healthy, undecided := alloc(d, job, boolp(true)), alloc(d, job, nil)
				st.allocs = append(st.allocs, healthy, undecided)
				tg.PlacedCanaries = []string{healthy.ID, undecided.ID}
			},
			want: `promoted=0 successful=0`,
		},
		{
			name:     "a deployment that ended is left alone",
			stableV1: true, autoRevert: true,
			setup: func(st *fakeState, d *structs.Deployment, job *structs.Job) {
				d.Status = structs.DeploymentStatusFailed
				d.TaskGroups["web"].RequireProgressBy = now.Add(-time.Second).UnixNano()
				st.allocs = append(st.allocs, alloc(d, job, boolp(false)))
			},
			want: `promoted=0 successful=0`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := &fakeState{versions: history(tc.stableV1)}
			job := st.versions[0]
			d := deployment(job, tc.autoRevert)
			st.deployments = []*structs.Deployment{d}
			tc.setup(st, d, job)
			raft := &fakeRaft{}
			w := New(Config{State: func() State { return st }, Raft: raft, Now: func() time.Time { return now }})
			w.pass()
			if got := raft.decisions(); got != tc.want {
				t.Fatalf("decisions\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}

func TestWatcher_FailedWriteIsDecidedAgainNextPass(t *testing.T) {
	st := &fakeState{versions: history(true)}
	d := deployment(st.versions[0], true)
	d.TaskGroups["web"].RequireProgressBy = now.Add(-time.Second).UnixNano()
	st.deployments = []*structs.Deployment{d}
	raft := &fakeRaft{fail: errors.New("no cluster leader")}
	w := New(Config{State: func() State { return st }, Raft: raft, Now: func() time.Time { return now }})
	w.pass()
	raft.fail = nil
	w.pass()
	if len(raft.failed) != 1 || raft.failed[0].RevertTo == nil || raft.failed[0].RevertTo.Version != 1 {
		t.Fatalf("after a failed write: %s", raft.decisions())
	}
}

func TestNewFailure_OperatorFailureRevertsLikeTheWatcher(t *testing.T) {
	st := &fakeState{versions: history(true)}
	d := deployment(st.versions[0], true)
	f, err := NewFailure(st, d, structs.DeploymentDescFailedByUser)
	if err != nil {
		t.Fatal(err)
	}
	if f.RevertTo == nil || f.RevertTo.Version != 1 || f.Description != "Deployment marked as failed - rolling back to job version 1" {
		t.Fatalf("failure %+v", f)
	}
	// A job that is gone has nothing to revert to.
	st.versions = nil
	if f, err := NewFailure(st, d, structs.DeploymentDescFailedByUser); err != nil || f.RevertTo != nil {
		t.Fatalf("failure of a deployment whose job is gone: %+v, %v", f, err)
	}
}
