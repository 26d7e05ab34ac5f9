package structs

import (
	"bytes"
	"encoding/json"
	"sort"
)

// The score components the scheduler reports in placement metrics.
const (
	ScoreBinpack           = "binpack"
	ScoreJobAntiAffinity   = "job-anti-affinity"
	ScoreNodeAffinity      = "node-affinity"
	ScoreSpread            = "spread"
	ScoreReschedulePenalty = "node-reschedule-penalty"
	ScorePreemption        = "preemption"
)

// ScoreComponent is one named part of a node's score.
type ScoreComponent struct {
	Name  string
	Score float64
}

// ScoreComponents is a node's score breakdown. It is a slice rather than
// a map because every placement keeps the breakdown of its top nodes: a
// map of two entries costs ~250 bytes of heap, this ~50, and a server
// holds three per allocation. In JSON it is an object, name to score.
type ScoreComponents []ScoreComponent

// Get returns the named component's score and whether it is set.
func (s ScoreComponents) Get(name string) (float64, bool) {
	for _, c := range s {
		if c.Name == name {
			return c.Score, true
		}
	}
	return 0, false
}

// MarshalJSON writes the components as an object, keys sorted (as
// encoding/json writes a map).
func (s ScoreComponents) MarshalJSON() ([]byte, error) {
	if s == nil {
		return []byte("null"), nil
	}
	sorted := append(ScoreComponents(nil), s...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, c := range sorted {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := json.Marshal(c.Name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(c.Score)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON reads an object, name to score, in sorted name order.
func (s *ScoreComponents) UnmarshalJSON(b []byte) error {
	var m map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if m == nil {
		*s = nil
		return nil
	}
	out := make(ScoreComponents, 0, len(m))
	for k, v := range m {
		out = append(out, ScoreComponent{Name: k, Score: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	*s = out
	return nil
}
