package structs

import (
	"strings"
	"testing"
)

func TestQuotaSpec_QuotaExceeded(t *testing.T) {
	q := &QuotaSpec{Name: "team-a", Limits: QuotaLimits{CPU: 4000, MemoryMB: 4096, Allocations: 3}}
	cases := []struct {
		name      string
		used, ask QuotaLimits
		want      string
	}{
		{"fits", QuotaLimits{CPU: 1000, MemoryMB: 1024, Allocations: 1}, QuotaLimits{CPU: 500, MemoryMB: 256, Allocations: 1}, ""},
		{"exactly full", QuotaLimits{MemoryMB: 3840}, QuotaLimits{MemoryMB: 256, Allocations: 1}, ""},
		{"memory full", QuotaLimits{MemoryMB: 4096}, QuotaLimits{MemoryMB: 256, Allocations: 1}, `quota "team-a" exhausted: memory 4096/4096 MB`},
		{"cpu first", QuotaLimits{CPU: 3900, MemoryMB: 4096}, QuotaLimits{CPU: 500, MemoryMB: 256}, `quota "team-a" exhausted: cpu 3900/4000 MHz`},
		{"allocations", QuotaLimits{Allocations: 3}, QuotaLimits{Allocations: 1}, `quota "team-a" exhausted: allocations 3/3`},
		{"an ask above the limit", QuotaLimits{}, QuotaLimits{MemoryMB: 8192}, `quota "team-a" exhausted: memory 0/4096 MB`},
		{"a huge ask does not wrap", QuotaLimits{MemoryMB: 10}, QuotaLimits{MemoryMB: 1<<63 - 1}, `quota "team-a" exhausted: memory 10/4096 MB`},
		{"freeing never exceeds", QuotaLimits{MemoryMB: 9000}, QuotaLimits{MemoryMB: -256}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := q.QuotaExceeded(tc.used, tc.ask); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	unlimited := &QuotaSpec{Name: "open"}
	if got := unlimited.QuotaExceeded(QuotaLimits{MemoryMB: 1 << 40}, QuotaLimits{MemoryMB: 1 << 40}); got != "" {
		t.Fatalf("an unlimited quota refused: %q", got)
	}
}

func TestQuotaSpec_Validate(t *testing.T) {
	cases := []struct {
		name   string
		spec   *QuotaSpec
		substr string
	}{
		{"ok", &QuotaSpec{Name: "team-a", Namespace: "team-a", Limits: QuotaLimits{MemoryMB: 1024}}, ""},
		{"nil", nil, "missing"},
		{"no name", &QuotaSpec{}, "quota name"},
		{"bad name", &QuotaSpec{Name: "a b"}, `quota name "a b" is invalid`},
		{"bad namespace", &QuotaSpec{Name: "a", Namespace: "*"}, "means every namespace"},
		{"negative", &QuotaSpec{Name: "a", Limits: QuotaLimits{CPU: -1}}, "limit cpu is -1"},
		{"too large", &QuotaSpec{Name: "a", Limits: QuotaLimits{Allocations: MaxQuotaLimit + 1}}, "limit allocations"},
		{"control characters", &QuotaSpec{Name: "a", Description: "x\x00"}, "control characters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if tc.substr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.substr)
			}
		})
	}
}
