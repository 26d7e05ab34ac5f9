package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Event is one line of /v1/event/stream.
type Event struct {
	Topic      string
	Type       string
	Key        string
	Namespace  string
	FilterKeys []string
	Index      uint64
	// Payload is {"<Topic>": object}.
	Payload map[string]json.RawMessage
}

// EventStream reads events from /v1/event/stream.
type EventStream struct {
	body io.ReadCloser
	sc   *bufio.Scanner
}

// Events returns the event stream endpoint.
func (c *Client) Events() *Events { return &Events{c: c} }

// Events is /v1/event/stream.
type Events struct{ c *Client }

// Stream opens a stream of the events after index (0: from now) of the
// given topics ("Job:*", "Allocation:web"; none: all). Close it when
// done. A resume index older than what the server keeps is a 410 Gone
// (see IsGone).
func (e *Events) Stream(topics []string, index uint64, q *QueryOptions) (*EventStream, error) {
	r := e.c.newRequest(http.MethodGet, "/v1/event/stream", q)
	for _, t := range topics {
		r.params.Add("topic", t)
	}
	if index > 0 {
		r.params.Set("index", strconv.FormatUint(index, 10))
	}
	resp, err := e.c.do(r)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	return &EventStream{body: resp.Body, sc: sc}, nil
}

// Next returns the next event, skipping heartbeats; io.EOF when the
// stream ended.
func (s *EventStream) Next() (*Event, error) {
	for s.sc.Scan() {
		line := s.sc.Bytes()
		if len(line) == 0 || string(line) == "{}" {
			continue
		}
		var probe struct{ Error string }
		if json.Unmarshal(line, &probe) == nil && probe.Error != "" {
			return nil, fmt.Errorf("event stream: %s", probe.Error)
		}
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, fmt.Errorf("event stream: decode: %w", err)
		}
		return &ev, nil
	}
	if err := s.sc.Err(); err != nil {
		return nil, err
	}
	return nil, io.EOF
}

// Raw returns the next raw line, heartbeats included; io.EOF at the end.
func (s *EventStream) Raw() ([]byte, error) {
	if s.sc.Scan() {
		return s.sc.Bytes(), nil
	}
	if err := s.sc.Err(); err != nil {
		return nil, err
	}
	return nil, io.EOF
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }

// IsGone reports whether err is a 410: the resume index is older than
// the events the server keeps.
func IsGone(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusGone
}
