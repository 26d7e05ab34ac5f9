package fsm

import (
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"

	"github.com/droverhq/drover/structs"
)

// Structural checks of decoded requests, run before anything is
// applied. The leader only ever writes entries that pass them; an entry
// that does not was written by something else (a hostile or broken
// peer, a corrupt log) and is refused (see FSM.Apply), instead of
// reaching the state store with, say, a nil element that would panic
// there or be stored and panic later in the scheduler. They look at
// nothing but the entry, so every server decides alike.
//
// The checks are only about shape. Rules that depend on a server's
// configuration (admission limits) belong to the endpoints: a server
// with other settings replaying the log must reach the same state.

func checkNotNil[T any](field string, list []*T) error {
	for i, x := range list {
		if x == nil {
			return fmt.Errorf("%s[%d] is null", field, i)
		}
	}
	return nil
}

// checkJob holds a job that the entry registers to Job.Validate, which
// depends on the job alone.
func checkJob(field string, job *structs.Job) error {
	if job == nil {
		return fmt.Errorf("%s is missing", field)
	}
	if err := job.Validate(); err != nil {
		return fmt.Errorf("%s %q: %w", field, job.ID, err)
	}
	return nil
}

func checkDeployment(field string, d *structs.Deployment) error {
	if d == nil {
		return nil
	}
	for name, tg := range d.TaskGroups {
		if tg == nil {
			return fmt.Errorf("%s.TaskGroups[%q] is null", field, name)
		}
	}
	return nil
}

func checkNodeRegister(req *structs.NodeRegisterRequest) error {
	if req.Node == nil {
		return fmt.Errorf("Node is missing")
	}
	return checkNotNil("Evals", req.Evals)
}

func checkJobRegister(req *structs.JobRegisterRequest) error {
	return checkJob("Job", req.Job)
}

func checkPlanResults(req *structs.ApplyPlanResultsRequest) error {
	if req == nil {
		return fmt.Errorf("the plan is null")
	}
	for _, l := range []struct {
		field  string
		allocs []*structs.Allocation
	}{{"AllocsPlaced", req.AllocsPlaced}, {"AllocsStopped", req.AllocsStopped}, {"AllocsPreempted", req.AllocsPreempted}} {
		if err := checkNotNil(l.field, l.allocs); err != nil {
			return err
		}
	}
	if err := checkNotNil("DeploymentUpdates", req.DeploymentUpdates); err != nil {
		return err
	}
	if err := checkDeployment("Deployment", req.Deployment); err != nil {
		return err
	}
	return checkNotNil("Evals", req.Evals)
}

func checkPlanResultsBatch(req *structs.ApplyPlanResultsBatchRequest) error {
	for i, p := range req.Plans {
		if err := checkPlanResults(p); err != nil {
			return fmt.Errorf("Plans[%d]: %w", i, err)
		}
	}
	return nil
}

func checkAllocClientUpdate(req *structs.AllocUpdateRequest) error {
	if err := checkNotNil("Alloc", req.Alloc); err != nil {
		return err
	}
	for _, a := range req.Alloc {
		a.Checks = boundChecks(a.Checks)
	}
	return checkNotNil("Evals", req.Evals)
}

// maxCheckOutput bounds a stored check result's Output, in bytes.
const maxCheckOutput = 512

// maxAllocChecks bounds the check results stored per allocation: as
// many as its group may have checks.
const maxAllocChecks = structs.MaxServicesPerGroup * structs.MaxChecksPerService

// boundChecks keeps of a client's check results what the state store
// may hold: entries keyed by structs.CheckKey(Service, Check) with a
// status of passing, warning or critical, the first maxAllocChecks of
// them in key order, each Output cut to maxCheckOutput bytes. Other
// entries are dropped rather than the entry refused: the results are
// a client's report, and the rest of its update (task states, client
// status) must still apply. It looks at the entry alone, so every
// server keeps the same results.
func boundChecks(in map[string]*structs.CheckStatus) map[string]*structs.CheckStatus {
	if in == nil {
		return nil
	}
	out := make(map[string]*structs.CheckStatus, min(len(in), maxAllocChecks))
	for _, key := range slices.Sorted(maps.Keys(in)) {
		if len(out) == maxAllocChecks {
			break
		}
		c := in[key]
		if c == nil || key != structs.CheckKey(c.Service, c.Check) {
			continue
		}
		switch c.Status {
		case structs.ServiceStatusPassing, structs.ServiceStatusWarning, structs.ServiceStatusCritical:
		default:
			continue
		}
		if len(c.Output) > maxCheckOutput {
			c.Output = truncateUTF8(c.Output, maxCheckOutput)
		}
		out[key] = c
	}
	return out
}

// truncateUTF8 cuts s to at most n bytes, not inside a UTF-8 sequence.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func checkDeploymentStatusUpdate(req *structs.DeploymentStatusUpdateRequest) error {
	if req.DeploymentUpdate == nil {
		return fmt.Errorf("DeploymentUpdate is missing")
	}
	// An auto-revert registers the job as a new version: it is held to
	// what a JobRegister is.
	if req.Job != nil {
		return checkJob("Job", req.Job)
	}
	return nil
}

func checkDesiredTransition(req *structs.AllocUpdateDesiredTransitionRequest) error {
	// In key order, so that every server names the same one.
	for _, id := range slices.Sorted(maps.Keys(req.Allocs)) {
		if req.Allocs[id] == nil {
			return fmt.Errorf("Allocs[%q] is null", id)
		}
	}
	return checkNotNil("Evals", req.Evals)
}

// checkACLNames refuses an empty list, or one with an empty name: a delete
// that names nothing was not written by a leader.
func checkACLNames(field string, names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("%s is empty", field)
	}
	for i, n := range names {
		if n == "" {
			return fmt.Errorf("%s[%d] is empty", field, i)
		}
	}
	return nil
}

func checkACLPolicyUpsert(req *structs.ACLPolicyUpsertRequest) error {
	if len(req.Policies) == 0 {
		return fmt.Errorf("Policies is empty")
	}
	if err := checkNotNil("Policies", req.Policies); err != nil {
		return err
	}
	for i, p := range req.Policies {
		if err := p.ValidateShape(); err != nil {
			return fmt.Errorf("Policies[%d]: %w", i, err)
		}
	}
	return nil
}

// checkACLTokens holds each token to ACLToken.ValidateShape: a hex
// SHA-256 where the hash goes (so a secret written there by mistake or
// malice is refused), a known type, policies as the type requires.
func checkACLTokens(field string, tokens []*structs.ACLToken) error {
	if len(tokens) == 0 {
		return fmt.Errorf("%s is empty", field)
	}
	if err := checkNotNil(field, tokens); err != nil {
		return err
	}
	for i, t := range tokens {
		if err := t.ValidateShape(); err != nil {
			return fmt.Errorf("%s[%d]: %w", field, i, err)
		}
	}
	return nil
}

func checkACLBootstrap(req *structs.ACLBootstrapRequest) error {
	if req.Token == nil {
		return fmt.Errorf("Token is missing")
	}
	if !req.Token.IsManagement() {
		return fmt.Errorf("Token: the bootstrap token must be a management token, not %q", req.Token.Type)
	}
	if err := req.Token.ValidateShape(); err != nil {
		return fmt.Errorf("Token: %w", err)
	}
	return nil
}

func checkQuotaUpsert(req *structs.QuotaUpsertRequest) error {
	if len(req.Quotas) == 0 {
		return fmt.Errorf("Quotas is empty")
	}
	if err := checkNotNil("Quotas", req.Quotas); err != nil {
		return err
	}
	seen := make(map[string]int, len(req.Quotas))
	for i, q := range req.Quotas {
		if err := q.Validate(); err != nil {
			return fmt.Errorf("Quotas[%d]: %w", i, err)
		}
		if prev, dup := seen[q.Name]; dup {
			return fmt.Errorf("Quotas[%d]: quota %q is also Quotas[%d]", i, q.Name, prev)
		}
		seen[q.Name] = i
	}
	return nil
}

func checkQuotaDelete(req *structs.QuotaDeleteRequest) error {
	if len(req.Names) == 0 {
		return fmt.Errorf("Names is empty")
	}
	for i, name := range req.Names {
		if err := structs.ValidateQuotaName(name); err != nil {
			return fmt.Errorf("Names[%d]: %w", i, err)
		}
	}
	return nil
}
