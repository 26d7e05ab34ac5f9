package structs

import (
	"encoding/json"
	"fmt"
	"time"
)

// Drover keeps times as Unix nanoseconds (int64) everywhere: in Raft,
// in the state store and in memory. Nomad's HTTP API, whose shapes
// Drover's follows, encodes some of them as RFC 3339 strings (the fields
// that are time.Time in Nomad's structs) and its Go client refuses
// anything else. The MarshalJSON methods below encode exactly those
// fields Nomad's way; every other int64 time stays Unix nanoseconds, as
// in Nomad. Only JSON changes: the msgpack codec of RPC and Raft ignores
// json.Marshaler and json.Unmarshaler (go-msgpack honours them only with
// its JSON handle).
//
// The UnmarshalJSON methods take both forms (RFC 3339 or Unix
// nanoseconds), so JSON written by an older Drover still decodes; so
// does Drover's own Go client (package api).

// NomadTime is a Unix-nanosecond time that encodes to JSON as an RFC
// 3339 string, as a time.Time does in Nomad's API; 0 encodes as Go's
// zero time ("0001-01-01T00:00:00Z"), which is what Nomad sends for a
// time that is not set.
type NomadTime int64

// MarshalJSON encodes t as an RFC 3339 string.
func (t NomadTime) MarshalJSON() ([]byte, error) {
	if t == 0 {
		return json.Marshal(time.Time{})
	}
	return json.Marshal(time.Unix(0, int64(t)).UTC())
}

// UnmarshalJSON decodes an RFC 3339 string (Go's zero time: 0) or Unix
// nanoseconds.
func (t *NomadTime) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var tm time.Time
		if err := json.Unmarshal(b, &tm); err != nil {
			return err
		}
		if tm.IsZero() {
			*t = 0
		} else {
			*t = NomadTime(tm.UnixNano())
		}
		return nil
	}
	var n *int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("time: want an RFC 3339 string or Unix nanoseconds: %w", err)
	}
	if n != nil {
		*t = NomadTime(*n)
	}
	return nil
}

// MarshalJSON encodes WaitUntil as Nomad does (a time.Time).
func (e Evaluation) MarshalJSON() ([]byte, error) {
	type plain Evaluation
	return json.Marshal(struct {
		plain
		WaitUntil NomadTime
	}{plain(e), NomadTime(e.WaitUntil)})
}

// MarshalJSON encodes UpdateTime as Nomad does (a time.Time).
func (d DriverInfo) MarshalJSON() ([]byte, error) {
	type plain DriverInfo
	return json.Marshal(struct {
		plain
		UpdateTime NomadTime
	}{plain(d), NomadTime(d.UpdateTime)})
}

// MarshalJSON encodes StartedAt and ForceDeadline as Nomad does (each a
// time.Time).
func (d DrainStrategy) MarshalJSON() ([]byte, error) {
	type plain DrainStrategy
	return json.Marshal(struct {
		plain
		StartedAt     NomadTime
		ForceDeadline NomadTime
	}{plain(d), NomadTime(d.StartedAt), NomadTime(d.ForceDeadline)})
}

// MarshalJSON encodes RequireProgressBy as Nomad does (a time.Time).
func (s DeploymentState) MarshalJSON() ([]byte, error) {
	type plain DeploymentState
	return json.Marshal(struct {
		plain
		RequireProgressBy NomadTime
	}{plain(s), NomadTime(s.RequireProgressBy)})
}

// MarshalJSON encodes Timestamp as Nomad does (a time.Time).
func (s AllocDeploymentStatus) MarshalJSON() ([]byte, error) {
	type plain AllocDeploymentStatus
	return json.Marshal(struct {
		plain
		Timestamp NomadTime
	}{plain(s), NomadTime(s.Timestamp)})
}

// The UnmarshalJSON methods decode what the MarshalJSON methods above
// write (and Unix nanoseconds).

func (e *Evaluation) UnmarshalJSON(b []byte) error {
	type plain Evaluation
	aux := struct {
		*plain
		WaitUntil NomadTime
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
		UpdateTime NomadTime
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
		StartedAt     NomadTime
		ForceDeadline NomadTime
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
		RequireProgressBy NomadTime
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
		Timestamp NomadTime
	}{plain: (*plain)(s)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	s.Timestamp = int64(aux.Timestamp)
	return nil
}
