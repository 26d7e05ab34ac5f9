package state

import (
	"fmt"
	"sort"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// UpsertDeployment writes a deployment.
func (s *StateStore) UpsertDeployment(index uint64, d *structs.Deployment) error {
	txn := s.writeTxn()
	defer txn.Abort()
	if err := upsertDeploymentTxn(txn, index, d); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

func upsertDeploymentTxn(txn *memdb.Txn, index uint64, d *structs.Deployment) error {
	raw, err := txn.First(TableDeployment, "id", d.ID)
	if err != nil {
		return fmt.Errorf("deployment lookup: %w", err)
	}
	n := d.Copy()
	n.Namespace = structs.NamespaceOrDefault(n.Namespace)
	var old *structs.Deployment
	if raw != nil {
		old = raw.(*structs.Deployment)
		n.CreateIndex = old.CreateIndex
	} else {
		n.CreateIndex = index
	}
	n.ModifyIndex = index
	if err := txn.Insert(TableDeployment, n); err != nil {
		return fmt.Errorf("insert deployment: %w", err)
	}
	if err := setIndex(txn, index, TableDeployment); err != nil {
		return err
	}
	// A promotion or the end of the deployment clears its instances'
	// Canary flag (services.go).
	return refreshDeploymentInstancesTxn(txn, index, old, n)
}

// deploymentTxn returns a writable copy of a deployment, or nil.
func deploymentTxn(txn *memdb.Txn, id string) (*structs.Deployment, error) {
	raw, err := txn.First(TableDeployment, "id", id)
	if err != nil {
		return nil, fmt.Errorf("deployment lookup: %w", err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*structs.Deployment).Copy(), nil
}

// updateDeploymentStatusTxn applies a status update. A deployment that
// succeeds marks its job version stable.
func updateDeploymentStatusTxn(txn *memdb.Txn, index uint64, u *structs.DeploymentStatusUpdate, at int64, event string) error {
	d, err := deploymentTxn(txn, u.DeploymentID)
	if err != nil {
		return err
	}
	if d == nil {
		return fmt.Errorf("deployment %s: %w", u.DeploymentID, ErrNotFound)
	}
	d.Status = u.Status
	d.StatusDescription = u.StatusDescription
	d.ModifyTime = at
	if event == "" {
		event = fmt.Sprintf("deployment %s: %s", u.Status, u.StatusDescription)
	}
	d.AddEvent(at, event)
	if err := upsertDeploymentTxn(txn, index, d); err != nil {
		return err
	}
	if u.Status == structs.DeploymentStatusSuccessful {
		return setJobStabilityTxn(txn, index, d.Namespace, d.JobID, d.JobVersion, true)
	}
	return nil
}

// UpdateDeploymentStatus changes a deployment's status. When job is set
// (auto-revert), it is registered in the same transaction, and eval
// written too.
func (s *StateStore) UpdateDeploymentStatus(index uint64, req *structs.DeploymentStatusUpdateRequest) error {
	txn := s.writeTxn()
	defer txn.Abort()
	if err := updateDeploymentStatusTxn(txn, index, req.DeploymentUpdate, req.UpdatedAt, req.Event); err != nil {
		return err
	}
	if req.Job != nil {
		// No VIP range travels with a revert: VIPs no version declares
		// any more are released, but one the reverted-to version adds
		// back is allocated at its next register.
		if _, err := upsertJobTxn(txn, index, req.Job, req.SubmitTime, ""); err != nil {
			return err
		}
	}
	if req.Eval != nil {
		e := req.Eval.Copy()
		if req.Job != nil {
			if raw, _ := txn.First(TableJobs, "id", structs.NamespaceOrDefault(req.Job.Namespace), req.Job.ID); raw != nil {
				e.JobModifyIndex = raw.(*structs.Job).JobModifyIndex
			}
		}
		if err := upsertEvalsTxn(txn, index, []*structs.Evaluation{e}); err != nil {
			return err
		}
	}
	if req.Job != nil || req.Eval != nil {
		jobs := map[structs.NamespacedID]struct{}{}
		if req.Job != nil {
			jobs[req.Job.Key()] = struct{}{}
		}
		if req.Eval != nil {
			jobs[req.Eval.JobKey()] = struct{}{}
		}
		if err := refreshJobStatusTxn(txn, index, jobs); err != nil {
			return err
		}
	}
	s.commit(txn)
	return nil
}

// PromoteDeployment marks canaries promoted (all groups, or the named
// ones) and writes the evaluation that continues the rollout.
func (s *StateStore) PromoteDeployment(index uint64, req *structs.DeploymentPromoteRequest) error {
	txn := s.writeTxn()
	defer txn.Abort()
	d, err := deploymentTxn(txn, req.DeploymentID)
	if err != nil {
		return err
	}
	if d == nil {
		return fmt.Errorf("deployment %s: %w", req.DeploymentID, ErrNotFound)
	}
	if !d.Active() {
		return structs.NewError(structs.CodeConflict, fmt.Sprintf("deployment %s is %s; only a running deployment can be promoted", d.ID, d.Status))
	}
	groups := map[string]bool{}
	for _, g := range req.Groups {
		groups[g] = true
	}
	promoted := 0
	for name, tg := range d.TaskGroups {
		if tg.DesiredCanaries == 0 || tg.Promoted || (!req.All && !groups[name]) {
			continue
		}
		tg.Promoted = true
		promoted++
	}
	if promoted == 0 {
		return structs.NewError(structs.CodeInvalid, fmt.Sprintf("deployment %s has no canaries waiting for promotion", d.ID))
	}
	if d.Status == structs.DeploymentStatusRunning && d.StatusDescription == structs.DeploymentDescRunningNeedsPromote && !d.RequiresPromotion() {
		d.StatusDescription = structs.DeploymentDescRunning
	}
	d.AddEvent(req.UpdatedAt, "canaries promoted")
	d.ModifyTime = req.UpdatedAt
	if err := upsertDeploymentTxn(txn, index, d); err != nil {
		return err
	}
	if req.Eval != nil {
		if err := upsertEvalsTxn(txn, index, []*structs.Evaluation{req.Eval}); err != nil {
			return err
		}
	}
	s.commit(txn)
	return nil
}

// DeploymentByID returns the deployment, or nil.
func (s *StateStore) DeploymentByID(ws memdb.WatchSet, id string) (*structs.Deployment, error) {
	raw, err := first(s.db.Txn(false), ws, TableDeployment, "id", id)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*structs.Deployment), nil
}

// DeploymentsByIDPrefix returns the deployments of a namespace (of every
// namespace for structs.AllNamespaces) whose ID starts with prefix.
func (s *StateStore) DeploymentsByIDPrefix(ws memdb.WatchSet, namespace, prefix string) ([]*structs.Deployment, error) {
	all, err := collect[*structs.Deployment](s.db.Txn(false), ws, TableDeployment, "id_prefix", prefix)
	return inNamespace(all, namespace, func(d *structs.Deployment) string { return d.Namespace }), err
}

// Deployments returns every deployment.
func (s *StateStore) Deployments(ws memdb.WatchSet) ([]*structs.Deployment, error) {
	return collect[*structs.Deployment](s.db.Txn(false), ws, TableDeployment, "id")
}

// DeploymentsByJobID returns the deployments of job (namespace, jobID),
// newest first.
func (s *StateStore) DeploymentsByJobID(ws memdb.WatchSet, namespace, jobID string) ([]*structs.Deployment, error) {
	out, err := collect[*structs.Deployment](s.db.Txn(false), ws, TableDeployment, "job", structs.NamespaceOrDefault(namespace), jobID)
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex > out[j].CreateIndex })
	return out, nil
}

// LatestDeploymentByJobID returns the newest deployment of job
// (namespace, jobID), or nil.
func (s *StateStore) LatestDeploymentByJobID(ws memdb.WatchSet, namespace, jobID string) (*structs.Deployment, error) {
	ds, err := s.DeploymentsByJobID(ws, namespace, jobID)
	if err != nil || len(ds) == 0 {
		return nil, err
	}
	return ds[0], nil
}

// SchedulerConfig returns the scheduler configuration (the default when
// none was set).
func (s *StateStore) SchedulerConfig() (uint64, *structs.SchedulerConfiguration, error) {
	raw, err := s.db.Txn(false).First(TableSchedConf, "id")
	if err != nil {
		return 0, nil, fmt.Errorf("scheduler config lookup: %w", err)
	}
	if raw == nil {
		return 0, structs.DefaultSchedulerConfiguration(), nil
	}
	c := raw.(*structs.SchedulerConfiguration)
	return c.ModifyIndex, c, nil
}

// SetSchedulerConfig replaces the scheduler configuration.
func (s *StateStore) SetSchedulerConfig(index uint64, c *structs.SchedulerConfiguration) error {
	txn := s.writeTxn()
	defer txn.Abort()
	n := *c
	if raw, _ := txn.First(TableSchedConf, "id"); raw != nil {
		n.CreateIndex = raw.(*structs.SchedulerConfiguration).CreateIndex
	} else {
		n.CreateIndex = index
	}
	n.ModifyIndex = index
	if err := txn.Insert(TableSchedConf, &n); err != nil {
		return fmt.Errorf("insert scheduler config: %w", err)
	}
	if err := setIndex(txn, index, TableSchedConf); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

// SchedulerConfigs returns the stored configuration row, for snapshots.
func (s *StateStore) SchedulerConfigs() ([]*structs.SchedulerConfiguration, error) {
	return collect[*structs.SchedulerConfiguration](s.db.Txn(false), nil, TableSchedConf, "id")
}
