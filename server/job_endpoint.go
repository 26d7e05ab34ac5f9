package server

import (
	"errors"
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Job is the RPC endpoint for jobs.
type Job struct {
	srv *Server
}

// Register registers or updates a job and creates its evaluation.
func (j *Job) Register(args *structs.JobRegisterRequest, reply *structs.JobRegisterResponse) error {
	if done, err := j.srv.forward("Job.Register", args, args, reply); done {
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
	if _, err := j.srv.authorizeNamespace(args.AuthToken, ns, acl.CapabilitySubmitJob); err != nil {
		return err
	}
	job.Canonicalize()
	if err := j.srv.AdmitJob(job); err != nil {
		return err
	}
	// The FSM checks again, in log order (a delete of the namespace may
	// commit first); this is the fast path with the same answer.
	if known, err := j.srv.State().NamespaceByName(nil, job.Namespace); err != nil {
		return err
	} else if known == nil {
		return structs.NamespaceNotFoundError(job.Namespace)
	}
	existing, err := j.srv.State().JobByID(nil, job.Namespace, job.ID)
	if err != nil {
		return err
	}
	if args.EnforceIndex {
		var current uint64
		if existing != nil {
			current = existing.JobModifyIndex
		}
		if current != args.JobModifyIndex {
			if args.JobModifyIndex == 0 {
				return structs.NewError(structs.CodeConflict, fmt.Sprintf("job %q already exists (job modify index %d); the check index expected a new job", job.ID, current))
			}
			return structs.NewError(structs.CodeConflict, fmt.Sprintf("job %q changed since it was planned: expected job modify index %d, found %d", job.ID, args.JobModifyIndex, current))
		}
	}
	// Refused here with nothing written; the FSM checks again in log
	// order (another register may take the port or the last address
	// first) and refuses the same way.
	if err := j.srv.State().CheckJobServices(job, j.srv.config.ServiceVIPRange); err != nil {
		return err
	}
	// Fields the server owns are set by the state store.
	job.Status, job.StatusDescription = "", ""
	job.Version, job.SubmitTime = 0, 0
	job.CreateIndex, job.ModifyIndex, job.JobModifyIndex = 0, 0, 0

	now := time.Now()
	eval := &structs.Evaluation{
		ID:          structs.GenerateUUID(),
		Priority:    job.Priority,
		Type:        job.Type,
		TriggeredBy: structs.EvalTriggerJobRegister,
		JobID:       job.ID,
		Namespace:   job.Namespace,
		Status:      structs.EvalStatusPending,
		CreateTime:  now.UnixNano(),
		ModifyTime:  now.UnixNano(),
	}
	req := &structs.JobRegisterRequest{Job: job, Eval: eval, SubmitTime: now.UnixNano(),
		EnforceIndex: args.EnforceIndex, JobModifyIndex: args.JobModifyIndex,
		ServiceVIPRange: j.srv.config.ServiceVIPRange,
		WriteRequest:    structs.WriteRequest{Namespace: job.Namespace}}
	_, index, err := j.srv.raftApply(structs.JobRegisterRequestType, req)
	if err != nil {
		return err
	}
	stored, err := j.srv.State().JobByID(nil, job.Namespace, job.ID)
	if err != nil {
		return err
	}
	reply.EvalID = eval.ID
	reply.EvalCreateIndex = index
	if stored != nil {
		reply.JobModifyIndex = stored.JobModifyIndex
	}
	reply.Index = index
	return nil
}

// AdmitJob checks a canonicalized job before anything is written or
// scheduled for it: Job.Validate, and the server's admission limits
// (Config.JobLimits), with unset per-task cpu and memory limits taken
// from the largest registered node. It returns nil, or an
// invalid_request error listing every problem with its field path,
// e.g. "TaskGroups[0].Count: 1000000000 is over the limit of 10000
// (limits.max_count_per_group)" (the code leads the message so that it
// survives net/rpc), or the error that kept it from reading the nodes.
func (s *Server) AdmitJob(job *structs.Job) error {
	err := s.CheckJobLimits(job)
	var verr *structs.ValidationError
	if errors.As(err, &verr) {
		return structs.NewError(structs.CodeInvalid, err.Error())
	}
	return err
}

// CheckJobLimits is AdmitJob's check: it returns the
// *structs.ValidationError itself (or nil, or a state read error). The
// HTTP API calls it before the RPC, on agents that run a server, so
// that a refusal comes back with its problems as a list.
func (s *Server) CheckJobLimits(job *structs.Job) error {
	largest, err := s.largestNodeCapacity()
	if err != nil {
		return fmt.Errorf("read node capacities: %w", err)
	}
	return s.config.JobLimits.ForCapacity(largest).Validate(job)
}

// largestNodeCapacity is structs.LargestCapacity over every registered
// node, computed once per change of the nodes table (not per request).
func (s *Server) largestNodeCapacity() (structs.ComparableResources, error) {
	v, err := s.State().NodesDerived("server.largest-capacity", func(all []*structs.Node) interface{} {
		return structs.LargestCapacity(all)
	})
	if err != nil {
		return structs.ComparableResources{}, err
	}
	return v.(structs.ComparableResources), nil
}

// Deregister stops a job, or purges it.
func (j *Job) Deregister(args *structs.JobDeregisterRequest, reply *structs.JobDeregisterResponse) error {
	if done, err := j.srv.forward("Job.Deregister", args, args, reply); done {
		return err
	}
	ns := args.RequestNamespace()
	// Before the lookup: a refused caller learns nothing about the job.
	if _, err := j.srv.authorizeNamespace(args.AuthToken, ns, acl.CapabilitySubmitJob); err != nil {
		return err
	}
	job, err := j.srv.State().JobByID(nil, ns, args.JobID)
	if err != nil {
		return err
	}
	if job == nil {
		return jobNotFound(ns, args.JobID)
	}
	now := time.Now()
	eval := &structs.Evaluation{
		ID:          structs.GenerateUUID(),
		Priority:    job.Priority,
		Type:        job.Type,
		TriggeredBy: structs.EvalTriggerJobDeregister,
		JobID:       job.ID,
		Namespace:   ns,
		Status:      structs.EvalStatusPending,
		CreateTime:  now.UnixNano(),
		ModifyTime:  now.UnixNano(),
	}
	req := &structs.JobDeregisterRequest{JobID: args.JobID, Purge: args.Purge, Eval: eval, SubmitTime: now.UnixNano(),
		WriteRequest: structs.WriteRequest{Namespace: ns}}
	_, index, err := j.srv.raftApply(structs.JobDeregisterRequestType, req)
	if err != nil {
		return err
	}
	reply.EvalID = eval.ID
	reply.EvalCreateIndex = index
	reply.Index = index
	if stored, _ := j.srv.State().JobByID(nil, ns, args.JobID); stored != nil {
		reply.JobModifyIndex = stored.JobModifyIndex
	}
	return nil
}

// GetJob reads one job.
func (j *Job) GetJob(args *structs.JobSpecificRequest, reply *structs.SingleJobResponse) error {
	if done, err := j.srv.forward("Job.GetJob", args, args, reply); done {
		return err
	}
	if _, err := j.srv.authorizeNamespace(args.AuthToken, args.RequestNamespace(), acl.CapabilityReadJob); err != nil {
		return err
	}
	return j.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		job, err := st.JobByID(ws, args.RequestNamespace(), args.JobID)
		if err != nil {
			return err
		}
		reply.Job = job
		if job != nil {
			reply.Index = job.ModifyIndex
			return nil
		}
		reply.Index, err = st.Index(state.TableJobs)
		return err
	})
}

// List lists the jobs of the request's namespace (of every namespace
// for "*"), optionally by ID prefix.
func (j *Job) List(args *structs.JobListRequest, reply *structs.JobListResponse) error {
	if done, err := j.srv.forward("Job.List", args, args, reply); done {
		return err
	}
	authz, err := j.srv.Authorize(args.AuthToken)
	if err != nil {
		return err
	}
	if err := authz.listNamespaceAllowed(args.ListNamespace()); err != nil {
		return err
	}
	return j.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		jobs, err := st.JobsByIDPrefix(ws, args.ListNamespace(), args.Prefix)
		if err != nil {
			return err
		}
		reply.Jobs = make([]*structs.JobListStub, 0, len(jobs))
		for _, job := range jobs {
			// "*" lists only the namespaces the token may list.
			if authz.CanNamespace(job.Namespace, acl.CapabilityListJobs) {
				reply.Jobs = append(reply.Jobs, job.Stub())
			}
		}
		reply.Index, err = st.Index(state.TableJobs)
		return err
	})
}

// Versions lists the kept versions of a job, newest first.
func (j *Job) Versions(args *structs.JobSpecificRequest, reply *structs.JobVersionsResponse) error {
	if done, err := j.srv.forward("Job.Versions", args, args, reply); done {
		return err
	}
	if _, err := j.srv.authorizeNamespace(args.AuthToken, args.RequestNamespace(), acl.CapabilityReadJob); err != nil {
		return err
	}
	return j.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		versions, err := st.JobVersionsByID(ws, args.RequestNamespace(), args.JobID)
		if err != nil {
			return err
		}
		reply.Versions = versions
		reply.Index, err = st.Index(state.TableJobVersion)
		return err
	})
}

// Allocations lists a job's allocations.
func (j *Job) Allocations(args *structs.JobSpecificRequest, reply *structs.JobAllocationsResponse) error {
	if done, err := j.srv.forward("Job.Allocations", args, args, reply); done {
		return err
	}
	if _, err := j.srv.authorizeNamespace(args.AuthToken, args.RequestNamespace(), acl.CapabilityReadJob); err != nil {
		return err
	}
	return j.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		allocs, err := st.AllocsByJob(ws, args.RequestNamespace(), args.JobID)
		if err != nil {
			return err
		}
		reply.Allocations = make([]*structs.AllocListStub, 0, len(allocs))
		for _, a := range allocs {
			reply.Allocations = append(reply.Allocations, a.Stub())
		}
		reply.Index, err = maxIndex(st, state.TableAllocs, state.TableJobs)
		return err
	})
}

// Evaluations lists a job's evaluations.
func (j *Job) Evaluations(args *structs.JobSpecificRequest, reply *structs.JobEvaluationsResponse) error {
	if done, err := j.srv.forward("Job.Evaluations", args, args, reply); done {
		return err
	}
	if _, err := j.srv.authorizeNamespace(args.AuthToken, args.RequestNamespace(), acl.CapabilityReadJob); err != nil {
		return err
	}
	return j.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		evals, err := st.EvalsByJob(ws, args.RequestNamespace(), args.JobID)
		if err != nil {
			return err
		}
		reply.Evaluations = evals
		reply.Index, err = st.Index(state.TableEvals)
		return err
	})
}

// jobNotFound is the 404 of a job missing from a namespace; it names the
// namespace, since the job may well exist in another one.
func jobNotFound(namespace, jobID string) error {
	return structs.NewError(structs.CodeNotFound, fmt.Sprintf("job %q not found in namespace %q", jobID, namespace))
}
