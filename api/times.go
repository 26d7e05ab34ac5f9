package api

import (
	"encoding/json"
	"fmt"
	"time"
)

// The HTTP API encodes a few times as RFC 3339 strings, as Nomad's API
// does (see structs/nomad_json.go on the server side): an evaluation's
// WaitUntil, a driver's UpdateTime, a drain's StartedAt and
// ForceDeadline, a deployment group's RequireProgressBy, an allocation's
// deployment-health Timestamp. This client
// keeps them as Unix nanoseconds (0: not set) and accepts both forms,
// so it also reads older agents that sent numbers.

// unixNano decodes a time sent as an RFC 3339 string or as Unix
// nanoseconds.
type unixNano int64

func (u *unixNano) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var t time.Time
		if err := json.Unmarshal(b, &t); err != nil {
			return err
		}
		if t.IsZero() {
			*u = 0
		} else {
			*u = unixNano(t.UnixNano())
		}
		return nil
	}
	var n *int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("time: want an RFC 3339 string or Unix nanoseconds: %w", err)
	}
	if n != nil {
		*u = unixNano(*n)
	}
	return nil
}

func (e *Evaluation) UnmarshalJSON(b []byte) error {
	type plain Evaluation
	aux := struct {
		*plain
		WaitUntil unixNano
	}{plain: (*plain)(e)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	e.WaitUntil = int64(aux.WaitUntil)
	return nil
}

func (d *DriverInfo) UnmarshalJSON(b []byte) error {
	type plain DriverInfo
	aux := struct {
		*plain
		UpdateTime unixNano
	}{plain: (*plain)(d)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	d.UpdateTime = int64(aux.UpdateTime)
	return nil
}

func (d *DrainStrategy) UnmarshalJSON(b []byte) error {
	type plain DrainStrategy
	aux := struct {
		*plain
		StartedAt     unixNano
		ForceDeadline unixNano
	}{plain: (*plain)(d)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	d.StartedAt, d.ForceDeadline = int64(aux.StartedAt), int64(aux.ForceDeadline)
	return nil
}

func (s *DeploymentState) UnmarshalJSON(b []byte) error {
	type plain DeploymentState
	aux := struct {
		*plain
		RequireProgressBy unixNano
	}{plain: (*plain)(s)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	s.RequireProgressBy = int64(aux.RequireProgressBy)
	return nil
}

func (s *AllocDeploymentStatus) UnmarshalJSON(b []byte) error {
	type plain AllocDeploymentStatus
	aux := struct {
		*plain
		Timestamp unixNano
	}{plain: (*plain)(s)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	s.Timestamp = int64(aux.Timestamp)
	return nil
}
