package command

import (
	"reflect"
	"testing"

	"github.com/droverhq/drover/api"
)

func TestQueuedAllocs(t *testing.T) {
	cases := []struct {
		name  string
		evals []*api.Evaluation
		want  map[string]int
	}{
		{"nothing blocked", []*api.Evaluation{
			{ID: "e1", Status: "complete", QueuedAllocations: map[string]int{"app": 0}},
		}, map[string]int{}},
		{"count on the evaluation that blocked", []*api.Evaluation{
			{ID: "b1", Status: "blocked"},
			{ID: "e1", Status: "complete", BlockedEval: "b1", QueuedAllocations: map[string]int{"app": 2, "db": 1}},
		}, map[string]int{"app": 2, "db": 1}},
		{"blocked evaluation with its own count", []*api.Evaluation{
			{ID: "b2", Status: "blocked", QueuedAllocations: map[string]int{"app": 1}},
			{ID: "b1", Status: "complete", BlockedEval: "b2", QueuedAllocations: map[string]int{"app": 1}},
			{ID: "e1", Status: "complete", BlockedEval: "b1", QueuedAllocations: map[string]int{"app": 2}},
		}, map[string]int{"app": 1}},
		{"blocked evaluation that ran and placed all", []*api.Evaluation{
			{ID: "b1", Status: "complete", QueuedAllocations: map[string]int{"app": 0}},
			{ID: "e1", Status: "complete", BlockedEval: "b1", QueuedAllocations: map[string]int{"app": 2}},
		}, map[string]int{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := queuedAllocs(tc.evals); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("queuedAllocs = %v, want %v", got, tc.want)
			}
		})
	}
}
