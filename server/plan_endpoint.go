package server

import (
	"fmt"
	"strings"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/scheduler"
	"github.com/droverhq/drover/structs"
)

// Plan runs the real scheduler on a copy of the current state with the
// job registered in it, and reports what would happen: the diff against
// the registered job, per-group annotations, placement failures and the
// job modify index to pass to `job run -check-index`. Nothing is
// written.
func (j *Job) Plan(args *structs.JobPlanRequest, reply *structs.JobPlanResponse) error {
	if done, err := j.srv.forward("Job.Plan", args, args, reply); done {
		return err
	}
	if args.Job == nil {
		return structs.NewError(structs.CodeInvalid, "missing job")
	}
	job := args.Job.Copy()
	ns, err := structs.JobNamespace(job.Namespace, args.Namespace)
	if err != nil {
		return err
	}
	job.Namespace = ns
	// A plan shows the would-be job against the registered one and the
	// cluster's capacity: it needs submit-job, as in Nomad.
	if _, err := j.srv.authorizeNamespace(args.AuthToken, ns, acl.CapabilitySubmitJob); err != nil {
		return err
	}
	job.Canonicalize()
	// Before the diff, the snapshot write and the scheduler run: their
	// memory grows with the groups' counts, which only the limits bound.
	if err := j.srv.AdmitJob(job); err != nil {
		return err
	}
	// A memdb snapshot is an independent copy: writes to it are never
	// seen by the real store.
	snap := j.srv.State().Snapshot()
	if known, err := snap.NamespaceByName(nil, job.Namespace); err != nil {
		return err
	} else if known == nil {
		return structs.NamespaceNotFoundError(job.Namespace)
	}
	existing, err := snap.JobByID(nil, job.Namespace, job.ID)
	if err != nil {
		return err
	}
	if existing != nil {
		reply.JobModifyIndex = existing.JobModifyIndex
	}
	if args.Diff {
		diff, err := existing.Diff(job, true)
		if err != nil {
			return err
		}
		reply.Diff = diff
	}
	index, err := snap.LatestIndex()
	if err != nil {
		return err
	}
	now := time.Now()
	eval := &structs.Evaluation{
		ID: structs.GenerateUUID(), Priority: job.Priority, Type: job.Type,
		TriggeredBy: structs.EvalTriggerJobRegister, JobID: job.ID, Namespace: job.Namespace, Status: structs.EvalStatusPending,
		CreateTime: now.UnixNano(), ModifyTime: now.UnixNano(),
	}
	if err := snap.UpsertJob(index+1, job, now.UnixNano(), eval); err != nil {
		return err
	}
	stored, _ := snap.EvalByID(nil, eval.ID)
	planner := &dryRunPlanner{}
	sched, err := scheduler.NewScheduler(job.Type, scheduler.Config{Logger: j.srv.logger, Annotate: true}, snap, planner)
	if err != nil {
		return err
	}
	if err := sched.Process(stored); err != nil {
		return fmt.Errorf("plan job %q: %w", job.ID, err)
	}
	if planner.plan != nil {
		reply.Annotations = planner.plan.Annotations
	}
	if planner.eval != nil {
		reply.FailedTGAllocs = planner.eval.FailedTGAllocs
	}
	reply.CreatedEvals = planner.created
	reply.Warnings = missingVariableWarnings(snap, job)
	if reply.Diff != nil && reply.Annotations != nil {
		for _, tg := range reply.Diff.TaskGroups {
			if u := reply.Annotations.DesiredTGUpdates[tg.Name]; u != nil {
				tg.Updates = desiredUpdateCounts(u)
			}
		}
	}
	return nil
}

// missingVariableWarnings names, one per line, the variables the job's
// templates read (by a constant path) that do not exist in its
// namespace: the task would wait wait_missing for them and fail.
func missingVariableWarnings(st interface {
	VariableByPath(memdb.WatchSet, string, string) (*structs.VariableEncrypted, error)
}, job *structs.Job) string {
	var lines []string
	for _, tg := range job.TaskGroups {
		for _, task := range tg.Tasks {
			for _, tmpl := range task.Templates {
				paths, err := tmpl.VariablePaths()
				if err != nil {
					continue
				}
				for _, p := range paths {
					if v, err := st.VariableByPath(nil, job.Namespace, p); err == nil && v == nil {
						wait := tmpl.WaitMissing
						if wait <= 0 {
							wait = structs.DefaultTemplateWaitMissing
						}
						lines = append(lines, fmt.Sprintf("group %q task %q: template %q reads variable %q, which does not exist in namespace %q; the task will wait %s for it, then fail",
							tg.Name, task.Name, tmpl.DestPath, p, job.Namespace, wait))
					}
				}
			}
		}
	}
	return strings.Join(lines, "\n")
}

// desiredUpdateCounts renders annotations for a group diff.
func desiredUpdateCounts(u *structs.DesiredUpdates) map[string]uint64 {
	out := map[string]uint64{}
	add := func(k string, n int) {
		if n > 0 {
			out[k] = uint64(n)
		}
	}
	add("create", u.Place)
	add("destroy", u.Stop)
	add("migrate", u.Migrate)
	add("in-place update", u.InPlaceUpdate)
	add("create/destroy update", u.DestructiveUpdate)
	add("canary", u.Canary)
	add("ignore", u.Ignore)
	add("preempt", u.Preemptions)
	return out
}

// dryRunPlanner is the scheduler's Planner for `job plan`: it keeps the
// plan and the evaluations and commits nothing.
type dryRunPlanner struct {
	plan    *structs.Plan
	eval    *structs.Evaluation
	created []*structs.Evaluation
}

func (p *dryRunPlanner) SubmitPlan(plan *structs.Plan) (*structs.PlanResult, scheduler.State, error) {
	p.plan = plan
	return &structs.PlanResult{NodeUpdate: plan.NodeUpdate, NodeAllocation: plan.NodeAllocation, NodePreemptions: plan.NodePreemptions}, nil, nil
}

func (p *dryRunPlanner) UpdateEval(eval *structs.Evaluation) error {
	p.eval = eval
	return nil
}

func (p *dryRunPlanner) CreateEval(eval *structs.Evaluation) error {
	p.created = append(p.created, eval)
	return nil
}

func (p *dryRunPlanner) ReblockEval(eval *structs.Evaluation) error {
	p.eval = eval
	return nil
}
