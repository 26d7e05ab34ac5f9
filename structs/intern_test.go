package structs

import (
	"encoding/json"
	"reflect"
	"testing"
	"unsafe"
)

func TestScoreComponents_JSONIsAnObject(t *testing.T) {
	s := ScoreComponents{{Name: ScoreJobAntiAffinity, Score: -0.5}, {Name: ScoreBinpack, Score: 0.25}}
	b, err := json.Marshal(&NodeScoreMeta{NodeID: "n1", Scores: s, NormScore: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"NodeID":"n1","Scores":{"binpack":0.25,"job-anti-affinity":-0.5},"NormScore":0.1}`
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
	var back NodeScoreMeta
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if v, ok := back.Scores.Get(ScoreJobAntiAffinity); !ok || v != -0.5 {
		t.Fatalf("job-anti-affinity = %v, %v", v, ok)
	}
	if _, ok := back.Scores.Get(ScoreSpread); ok {
		t.Fatal("spread was not set but Get found it")
	}
	// What the API has always served decodes into a map as before.
	var asMap struct{ Scores map[string]float64 }
	if err := json.Unmarshal(b, &asMap); err != nil || asMap.Scores["binpack"] != 0.25 || len(asMap.Scores) != 2 {
		t.Fatalf("as map: %v %v", asMap.Scores, err)
	}
	if b, _ := json.Marshal(ScoreComponents(nil)); string(b) != "null" {
		t.Fatalf("nil components: %s", b)
	}
}

func sameBytes(a, b string) bool {
	return len(a) > 0 && unsafe.StringData(a) == unsafe.StringData(b)
}

func TestCompact_SharesWithoutChangingValues(t *testing.T) {
	in := benchPlanBatch(2)
	buf, err := Encode(ApplyPlanResultsBatchRequestType, in)
	if err != nil {
		t.Fatal(err)
	}
	var out ApplyPlanResultsBatchRequest
	if err := Decode(buf[1:], &out); err != nil {
		t.Fatal(err)
	}
	for _, p := range out.Plans {
		p.Compact()
	}
	if !reflect.DeepEqual(in, &out) {
		t.Fatal("Compact changed a value")
	}
	p := out.Plans[0]
	a, b := p.AllocsPlaced[0], p.AllocsPlaced[1]
	if !sameBytes(a.EvalID, p.EvalID) || !sameBytes(a.JobID, p.Job.ID) || !sameBytes(a.TaskGroup, p.Job.TaskGroups[0].Name) {
		t.Fatal("eval ID, job ID or group name not shared with the plan")
	}
	if !sameBytes(a.DesiredStatus, AllocDesiredStatusRun) || !sameBytes(a.Metrics.ScoreMetaData[0].Scores[0].Name, ScoreBinpack) {
		t.Fatal("fixed words not interned")
	}
	if reflect.ValueOf(a.Metrics.NodesAvailable).Pointer() != reflect.ValueOf(b.Metrics.NodesAvailable).Pointer() {
		t.Fatal("equal NodesAvailable maps not shared")
	}
	if reflect.ValueOf(a.AllocatedResources.Tasks).Pointer() != reflect.ValueOf(b.AllocatedResources.Tasks).Pointer() {
		t.Fatal("equal task resources not shared")
	}
	if a.AllocatedResources.Shared.Ports[0].Value == b.AllocatedResources.Shared.Ports[0].Value {
		t.Fatal("ports became shared")
	}
	// Different maps stay apart.
	b.Metrics.ConstraintFiltered = map[string]int{"other": 1}
	c := p.AllocsPlaced[2]
	p.Compact()
	if c.Metrics.ConstraintFiltered["other"] != 0 || b.Metrics.ConstraintFiltered["other"] != 1 {
		t.Fatal("different maps were shared")
	}
}

func TestCompact_ClientUpdateWords(t *testing.T) {
	req := &AllocUpdateRequest{Alloc: []*Allocation{{
		ID: "a", ClientStatus: string([]byte("running")),
		TaskStates: map[string]*TaskState{"t": {State: string([]byte("running")), Events: []*TaskEvent{{Type: string([]byte("Started"))}}}},
	}}}
	req.Compact()
	a := req.Alloc[0]
	if !sameBytes(a.ClientStatus, AllocClientStatusRunning) || !sameBytes(a.TaskStates["t"].State, TaskStateRunning) ||
		!sameBytes(a.TaskStates["t"].Events[0].Type, TaskEventStarted) {
		t.Fatal("words not interned")
	}
}
