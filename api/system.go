package api

import "net/http"

// System is /v1/system.
type System struct{ c *Client }

// System returns the /v1/system endpoints.
func (c *Client) System() *System { return &System{c: c} }

// GCCounts counts objects by kind.
type GCCounts struct {
	Jobs        int
	JobVersions int
	Evals       int
	Allocs      int
	Deployments int
	Nodes       int
}

// Total is the sum over every kind.
func (c GCCounts) Total() int {
	return c.Jobs + c.JobVersions + c.Evals + c.Allocs + c.Deployments + c.Nodes
}

// GCObjects lists objects by kind: jobs as "namespace/id", job versions
// as "namespace/id@version", the others by ID.
type GCObjects struct {
	Jobs        []string
	JobVersions []string
	Evals       []string
	Allocs      []string
	Deployments []string
	Nodes       []string
}

// GCReport is the answer of a garbage collection.
type GCReport struct {
	DryRun bool
	// Chosen counts what the leader chose to delete (what a dry run
	// would delete); Deleted what the servers deleted; Skipped what was
	// no longer collectable when its entry applied.
	Chosen  GCCounts
	Deleted GCCounts
	Skipped GCCounts
	// Objects lists what was chosen, at most 10,000 of each kind;
	// Truncated says some were left out.
	Objects   GCObjects
	Truncated bool
	// Entries is the number of Raft entries written; Index the last.
	Entries int
	Index   uint64
}

// GarbageCollect makes the leader collect now every finished object,
// whatever its age (PUT /v1/system/gc; needs operator:write). With
// dryRun nothing is deleted: the report lists what would be.
func (s *System) GarbageCollect(dryRun bool) (*GCReport, error) {
	var out GCReport
	var body interface{}
	if dryRun {
		body = map[string]bool{"DryRun": true}
	}
	if _, err := s.c.write(http.MethodPut, "/v1/system/gc", nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
