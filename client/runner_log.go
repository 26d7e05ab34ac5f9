package client

import (
	hclog "github.com/hashicorp/go-hclog"
)

// runnerLog logs for one allocation, or one task of it, with its IDs as
// the first key/value pairs. It holds the client's logger instead of a
// derived one: hclog's With copies the logger (about 500 bytes per
// allocation and again per task), and a simulator process holds a
// hundred thousand allocations whose runners rarely log at all.
type runnerLog struct {
	l       hclog.Logger
	allocID string
	// task is "" for the allocation's own messages.
	task string
}

func (r runnerLog) args(kv []interface{}) []interface{} {
	out := make([]interface{}, 0, len(kv)+4)
	out = append(out, "alloc_id", r.allocID)
	if r.task != "" {
		out = append(out, "task", r.task)
	}
	return append(out, kv...)
}

func (r runnerLog) Info(msg string, kv ...interface{}) {
	if r.l.IsInfo() {
		r.l.Info(msg, r.args(kv)...)
	}
}

func (r runnerLog) Warn(msg string, kv ...interface{}) {
	if r.l.IsWarn() {
		r.l.Warn(msg, r.args(kv)...)
	}
}

func (r runnerLog) Error(msg string, kv ...interface{}) {
	if r.l.IsError() {
		r.l.Error(msg, r.args(kv)...)
	}
}

// forTask returns the log of one of the allocation's tasks.
func (r runnerLog) forTask(task string) runnerLog {
	r.task = task
	return r
}
