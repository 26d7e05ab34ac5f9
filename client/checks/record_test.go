package checks

import (
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

// TestRecord_OutputChangesAreReportedSpaced: a check that stays
// critical while its reason changes ("connection refused", then
// "HTTP 404") is reported again once outputReportInterval has passed
// since its last report, however many probes saw the new output in
// between; a status change is reported at once.
func TestRecord_OutputChangesAreReportedSpaced(t *testing.T) {
	r := &Runner{statuses: map[string]*structs.CheckStatus{
		"web/web-http": {Service: "web", Check: "web-http", Status: structs.ServiceStatusCritical, Output: outputNotYetChecked},
	}}
	c := &check{key: "web/web-http", service: "web", def: &structs.ServiceCheck{Name: "web-http"}}
	t0 := time.Unix(1000, 0)
	report := func(at time.Time, status, output string) bool {
		if r.record(c, status, output, at) {
			c.reported, c.reportedOutput = at, output
			return true
		}
		return false
	}
	// The first result is reported by the loop whatever record says.
	report(t0, structs.ServiceStatusCritical, "connection refused")
	c.reported, c.reportedOutput = t0, "connection refused"
	// The reason changes a second later: too soon to report it...
	for i := 1; i < 10; i++ {
		if report(t0.Add(time.Duration(i)*time.Second), structs.ServiceStatusCritical, "HTTP 404") {
			t.Fatalf("output change %ds after the last report was reported", i)
		}
	}
	// ...but once the interval has passed it is, though every probe
	// since saw the same output.
	if !report(t0.Add(outputReportInterval), structs.ServiceStatusCritical, "HTTP 404") {
		t.Fatal("the newer reason was never reported")
	}
	if report(t0.Add(2*outputReportInterval), structs.ServiceStatusCritical, "HTTP 404") {
		t.Fatal("an unchanged result was reported")
	}
	if !report(t0.Add(2*outputReportInterval+time.Second), structs.ServiceStatusPassing, "HTTP 200") {
		t.Fatal("a status change was not reported at once")
	}
	if got := r.statuses["web/web-http"]; got.Status != structs.ServiceStatusPassing || got.Output != "HTTP 200" {
		t.Fatalf("stored %+v", got)
	}
}
