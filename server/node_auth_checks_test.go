package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/droverhq/drover/structs"
)

// TestClientAllocUpdate_Checks: a client's check results travel into
// the Raft entry; a result with an unknown status, an oversized output
// or too many results is refused with a 400-class error naming the
// allocation, so nothing of it is stored.
func TestClientAllocUpdate_Checks(t *testing.T) {
	ok := &structs.Allocation{ID: "a1", NodeID: "n1", ClientStatus: structs.AllocClientStatusRunning,
		Checks: map[string]*structs.CheckStatus{
			structs.CheckKey("web", "web-http"): {Service: "web", Check: "web-http", Status: structs.ServiceStatusPassing, Output: "HTTP 200"},
		}}
	out, err := clientAllocUpdate(ok)
	if err != nil {
		t.Fatalf("valid checks refused: %v", err)
	}
	if c := out.Checks["web/web-http"]; c == nil || c.Status != structs.ServiceStatusPassing {
		t.Fatalf("checks not carried: %+v", out.Checks)
	}

	many := map[string]*structs.CheckStatus{}
	for i := 0; i <= maxClientChecks; i++ {
		many[fmt.Sprintf("s/c%d", i)] = &structs.CheckStatus{Status: structs.ServiceStatusPassing}
	}
	for name, tc := range map[string]struct {
		checks map[string]*structs.CheckStatus
		want   string
	}{
		"unknown status": {map[string]*structs.CheckStatus{"web/x": {Status: "terminating"}}, `status "terminating" is not passing`},
		"huge output":    {map[string]*structs.CheckStatus{"web/x": {Status: "critical", Output: strings.Repeat("x", maxClientCheckOutput+1)}}, "output over"},
		"huge key":       {map[string]*structs.CheckStatus{strings.Repeat("k", maxClientCheckKey+1): {Status: "passing"}}, "key over"},
		"too many":       {many, "check results, over"},
	} {
		u := &structs.Allocation{ID: "a1", NodeID: "n1", ClientStatus: structs.AllocClientStatusRunning, Checks: tc.checks}
		_, err := clientAllocUpdate(u)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "allocation a1") {
			t.Errorf("%s: err = %v, want one naming allocation a1 and %q", name, err, tc.want)
		}
		if ce := structs.ParseCodedError(err); ce == nil || ce.Code != structs.CodeInvalid {
			t.Errorf("%s: %v is not coded %q", name, err, structs.CodeInvalid)
		}
	}
}
