package structs

import (
	"errors"
	"net/http"
	"reflect"
	"testing"
)

func TestLogConfig_Validate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lc    *LogConfig
		paths []string
	}{
		{"absent", nil, nil},
		{"smallest", &LogConfig{MaxFiles: 1, MaxFileSizeMB: 1}, nil},
		{"largest", &LogConfig{MaxFiles: 100, MaxFileSizeMB: 10240}, nil},
		{"zero files", &LogConfig{MaxFiles: 0, MaxFileSizeMB: 10}, []string{"TaskGroups[0].Tasks[0].LogConfig.MaxFiles"}},
		{"too many files", &LogConfig{MaxFiles: 101, MaxFileSizeMB: 10}, []string{"TaskGroups[0].Tasks[0].LogConfig.MaxFiles"}},
		{"file too big", &LogConfig{MaxFiles: 3, MaxFileSizeMB: 10241}, []string{"TaskGroups[0].Tasks[0].LogConfig.MaxFileSizeMB"}},
		{"both negative", &LogConfig{MaxFiles: -1, MaxFileSizeMB: -1}, []string{"TaskGroups[0].Tasks[0].LogConfig.MaxFiles", "TaskGroups[0].Tasks[0].LogConfig.MaxFileSizeMB"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := validJob()
			j.TaskGroups[0].Tasks[0].LogConfig = tc.lc
			err := j.Validate()
			var got []string
			var verr *ValidationError
			if errors.As(err, &verr) {
				for _, p := range verr.Problems {
					got = append(got, p.Path)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.paths) {
				t.Fatalf("problems at %v, want %v (%v)", got, tc.paths, err)
			}
		})
	}
}

func TestLogConfig_EffectiveAndCopy(t *testing.T) {
	if got := (*LogConfig)(nil).Effective(); *got != (LogConfig{MaxFiles: 10, MaxFileSizeMB: 10}) {
		t.Fatalf("nil.Effective() = %+v, want 10 x 10 MB", got)
	}
	lc := &LogConfig{MaxFiles: 3}
	if got := lc.Effective(); *got != (LogConfig{MaxFiles: 3, MaxFileSizeMB: 10}) || lc.MaxFileSizeMB != 0 {
		t.Fatalf("Effective() = %+v (and changed its receiver to %+v)", got, lc)
	}
	task := &Task{Name: "t", LogConfig: &LogConfig{MaxFiles: 2, MaxFileSizeMB: 4}}
	cp := task.Copy()
	if cp.LogConfig == task.LogConfig || *cp.LogConfig != *task.LogConfig {
		t.Fatalf("Task.Copy shares or loses LogConfig: %p %+v", cp.LogConfig, cp.LogConfig)
	}
}

func TestCodeTooManyRequests_Is429(t *testing.T) {
	err := ParseCodedError(errors.New(NewError(CodeTooManyRequests, "slow down").Error()))
	if err == nil || err.Status != http.StatusTooManyRequests || err.Code != "too_many_requests" {
		t.Fatalf("parsed %+v, want too_many_requests with status 429", err)
	}
}
