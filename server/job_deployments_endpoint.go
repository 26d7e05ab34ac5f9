package server

import (
	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Deployments lists a job's deployments, newest first.
func (j *Job) Deployments(args *structs.JobSpecificRequest, reply *structs.DeploymentListResponse) error {
	if done, err := j.srv.forward("Job.Deployments", args, args, reply); done {
		return err
	}
	if _, err := j.srv.authorizeNamespace(args.AuthToken, args.RequestNamespace(), acl.CapabilityReadJob); err != nil {
		return err
	}
	return j.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		deps, err := st.DeploymentsByJobID(ws, args.RequestNamespace(), args.JobID)
		if err != nil {
			return err
		}
		reply.Deployments = deps
		reply.Index, err = st.Index(state.TableDeployment)
		return err
	})
}

// LatestDeployment returns a job's newest deployment, nil if none.
func (j *Job) LatestDeployment(args *structs.JobSpecificRequest, reply *structs.SingleDeploymentResponse) error {
	if done, err := j.srv.forward("Job.LatestDeployment", args, args, reply); done {
		return err
	}
	if _, err := j.srv.authorizeNamespace(args.AuthToken, args.RequestNamespace(), acl.CapabilityReadJob); err != nil {
		return err
	}
	return j.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		dep, err := st.LatestDeploymentByJobID(ws, args.RequestNamespace(), args.JobID)
		if err != nil {
			return err
		}
		reply.Deployment = dep
		reply.Index, err = st.Index(state.TableDeployment)
		return err
	})
}
