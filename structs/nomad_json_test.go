package structs

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestNomadTime_RoundTrips: the Nomad-shaped JSON of the types with
// RFC 3339 times decodes back to the same values, numbers (older
// encodings) decode too, and the time is a string on the wire.
func TestNomadTime_RoundTrips(t *testing.T) {
	at := time.Date(2026, 12, 5, 1, 2, 3, 456789, time.UTC).UnixNano()
	healthy := true
	cases := []struct {
		name     string
		in, out  interface{}
		wireTime string
	}{
		{"eval", &Evaluation{ID: "e", WaitUntil: at, CreateTime: at}, &Evaluation{}, `"WaitUntil":"2026-12-05T01:02:03.000456789Z"`},
		{"eval unset", &Evaluation{ID: "e"}, &Evaluation{}, `"WaitUntil":"0001-01-01T00:00:00Z"`},
		{"driver", &DriverInfo{Detected: true, UpdateTime: at}, &DriverInfo{}, `"UpdateTime":"2026-12-05T01:02:03.000456789Z"`},
		{"drain", &DrainStrategy{Deadline: time.Hour, StartedAt: at}, &DrainStrategy{}, `"ForceDeadline":"0001-01-01T00:00:00Z"`},
		{"deployment state", &DeploymentState{DesiredTotal: 3, RequireProgressBy: at}, &DeploymentState{}, `"RequireProgressBy":"2026-12-05T01:02:03.000456789Z"`},
		{"alloc deployment status", &AllocDeploymentStatus{Healthy: &healthy, Timestamp: at}, &AllocDeploymentStatus{}, `"Timestamp":"2026-12-05T01:02:03.000456789Z"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			buf, err := json.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(buf), tc.wireTime) {
				t.Fatalf("%s lacks %s", buf, tc.wireTime)
			}
			if err := json.Unmarshal(buf, tc.out); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tc.in, tc.out) {
				t.Fatalf("round trip: %+v, want %+v", tc.out, tc.in)
			}
		})
	}
	var e Evaluation
	if err := json.Unmarshal([]byte(`{"WaitUntil":42}`), &e); err != nil || e.WaitUntil != 42 {
		t.Fatalf("numeric time: %+v %v", e, err)
	}
	if err := json.Unmarshal([]byte(`{"WaitUntil":"yesterday"}`), &e); err == nil {
		t.Fatal("a malformed time was accepted")
	}
}
