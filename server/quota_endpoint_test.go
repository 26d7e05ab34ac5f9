package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

func upsertQuota(t *testing.T, s *Server, q *structs.QuotaSpec) {
	t.Helper()
	var resp structs.GenericResponse
	if err := s.RPC("Quota.Upsert", &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{q}}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Index == 0 {
		t.Fatal("upsert returned no index")
	}
}

func TestQuotaEndpoint_CRUDAndUsage(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	upsertNamespace(t, s, &structs.Namespace{Name: "team-a", Quota: "team-a"})
	upsertQuota(t, s, &structs.QuotaSpec{Name: "team-a", Description: "A", Limits: structs.QuotaLimits{MemoryMB: 1024}})
	upsertQuota(t, s, &structs.QuotaSpec{Name: "team-b", Limits: structs.QuotaLimits{CPU: 100}})

	var got structs.SingleQuotaResponse
	if err := s.RPC("Quota.Get", &structs.QuotaSpecificRequest{Name: "team-a"}, &got); err != nil {
		t.Fatal(err)
	}
	if q := got.Quota; q == nil || q.Description != "A" || q.Limits.MemoryMB != 1024 || q.CreateIndex == 0 {
		t.Fatalf("team-a: %+v", got.Quota)
	}
	if err := s.RPC("Quota.Get", &structs.QuotaSpecificRequest{Name: "nope"}, &got); err != nil || got.Quota != nil {
		t.Fatalf("unknown quota: %+v, %v", got.Quota, err)
	}
	var list structs.QuotaListResponse
	if err := s.RPC("Quota.List", &structs.QuotaListRequest{}, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Quotas) != 2 || list.Quotas[0].Name != "team-a" || list.Quotas[1].Name != "team-b" {
		t.Fatalf("quotas: %+v", list.Quotas)
	}

	node := mock.Node()
	registerNode(t, s, node)
	job := mock.Job()
	job.Namespace = "team-a"
	registerJob(t, s, job)
	stored, _ := s.State().JobByID(nil, "team-a", job.ID)
	a := mock.Alloc(stored, node, 0)
	a.Namespace, a.Job = "team-a", nil
	if _, _, err := s.raftApply(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: stored, AllocsPlaced: []*structs.Allocation{a}}); err != nil {
		t.Fatal(err)
	}
	var usage structs.QuotaUsageResponse
	if err := s.RPC("Quota.Usage", &structs.QuotaSpecificRequest{Name: "team-a"}, &usage); err != nil {
		t.Fatal(err)
	}
	if u := usage.Usage; u == nil || u.Namespace != "team-a" || u.Used != (structs.QuotaLimits{CPU: 500, MemoryMB: 256, Allocations: 1}) || u.Limits.MemoryMB != 1024 {
		t.Fatalf("usage: %+v", usage.Usage)
	}

	// A quota a namespace names is not deleted; an unbound one is.
	err := s.RPC("Quota.Delete", &structs.QuotaDeleteRequest{Names: []string{"team-a"}}, &structs.GenericResponse{})
	if codeOf(err) != structs.CodeConflict || !strings.Contains(err.Error(), `referenced by namespace "team-a"`) {
		t.Fatalf("delete of a referenced quota: %v", err)
	}
	if err := s.RPC("Quota.Delete", &structs.QuotaDeleteRequest{Names: []string{"team-b"}}, &structs.GenericResponse{}); err != nil {
		t.Fatal(err)
	}
	if q, _ := s.State().QuotaByName(nil, "team-b"); q != nil {
		t.Fatal("team-b survived its delete")
	}
}

// TestQuotaEndpoint_RefusesBadInput: malformed and hostile requests are
// refused with a clear code, nothing is stored, and the server keeps
// answering.
func TestQuotaEndpoint_RefusesBadInput(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	upsertNamespace(t, s, &structs.Namespace{Name: "team-a", Quota: "bound"})
	many := make([]*structs.QuotaSpec, maxQuotasPerWrite+1)
	for i := range many {
		many[i] = &structs.QuotaSpec{Name: fmt.Sprintf("q%d", i)}
	}
	cases := []struct {
		name   string
		method string
		args   interface{}
		code   string
		substr string
	}{
		{"no quota", "Quota.Upsert", &structs.QuotaUpsertRequest{}, structs.CodeInvalid, "no quota to write"},
		{"null quota", "Quota.Upsert", &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{nil}}, structs.CodeInvalid, "quota is missing"},
		{"bad name", "Quota.Upsert", &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{{Name: "../etc"}}}, structs.CodeInvalid, "is invalid"},
		{"negative limit", "Quota.Upsert", &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{{Name: "a", Limits: structs.QuotaLimits{MemoryMB: -1}}}}, structs.CodeInvalid, "limit memory is -1"},
		{"too many", "Quota.Upsert", &structs.QuotaUpsertRequest{Quotas: many}, structs.CodeInvalid, "quotas in one write"},
		{"twice", "Quota.Upsert", &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{{Name: "a"}, {Name: "a"}}}, structs.CodeInvalid, "named twice"},
		{"namespace bound elsewhere", "Quota.Upsert", &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{{Name: "other", Namespace: "team-a"}}}, structs.CodeConflict, `bound to quota "bound"`},
		{"delete nothing", "Quota.Delete", &structs.QuotaDeleteRequest{}, structs.CodeInvalid, "no quota to delete"},
		{"delete unknown", "Quota.Delete", &structs.QuotaDeleteRequest{Names: []string{"nope"}}, structs.CodeNotFound, `quota "nope" not found`},
		{"get bad name", "Quota.Get", &structs.QuotaSpecificRequest{Name: strings.Repeat("x", 200)}, structs.CodeInvalid, "bytes long"},
		{"usage bad name", "Quota.Usage", &structs.QuotaSpecificRequest{Name: "a\x00b"}, structs.CodeInvalid, "is invalid"},
	}
	before, _ := s.State().Index("quotas")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := s.RPC(tc.method, tc.args, &structs.GenericResponse{})
			if codeOf(err) != tc.code || !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("got %v, want %s containing %q", err, tc.code, tc.substr)
			}
		})
	}
	if after, _ := s.State().Index("quotas"); after != before {
		t.Fatal("a refused request wrote the quotas table")
	}
	if list, _ := s.State().Quotas(nil); len(list) != 0 {
		t.Fatalf("quotas stored: %+v", list)
	}
	// Still serving.
	upsertQuota(t, s, &structs.QuotaSpec{Name: "bound"})
}

// TestQuotaEndpoint_ACL: with ACLs on, reads need quota:read and writes
// quota:write; a refused write stores nothing.
func TestQuotaEndpoint_ACL(t *testing.T) {
	s := aclServer(t)
	mgmt := bootstrapACL(t, s)
	upsertPolicy(t, s, mgmt, "quota-ro", `quota { policy = "read" }`)
	ro := createToken(t, s, mgmt, &structs.ACLTokenCreateRequest{Name: "viewer", Policies: []string{"quota-ro"}})

	write := func(secret string) error {
		req := &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{{Name: "team-a"}}}
		req.AuthToken = secret
		return s.RPC("Quota.Upsert", req, &structs.GenericResponse{})
	}
	read := func(secret string) error {
		req := &structs.QuotaListRequest{}
		req.AuthToken = secret
		return s.RPC("Quota.List", req, &structs.QuotaListResponse{})
	}
	wantCoded(t, write(""), structs.CodePermission, `token "anonymous" lacks quota:write`)
	wantCoded(t, read(""), structs.CodePermission, `token "anonymous" lacks quota:read`)
	wantCoded(t, write(ro.SecretID), structs.CodePermission, `token "viewer" lacks quota:write`)
	wantCoded(t, write("not-a-token"), structs.CodeTokenNotFound, "ACL token not found")
	if list, _ := s.State().Quotas(nil); len(list) != 0 {
		t.Fatalf("a refused write stored %+v", list)
	}
	if err := read(ro.SecretID); err != nil {
		t.Fatalf("quota:read list: %v", err)
	}
	if err := write(mgmt); err != nil {
		t.Fatalf("management write: %v", err)
	}
	del := &structs.QuotaDeleteRequest{Names: []string{"team-a"}}
	del.AuthToken = ro.SecretID
	wantCoded(t, s.RPC("Quota.Delete", del, &structs.GenericResponse{}), structs.CodePermission, `token "viewer" lacks quota:write`)
}
