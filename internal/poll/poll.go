package poll

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrConditionNotMet is wrapped in the timeout error when the condition
// never returned an error of its own, so the caller still learns that
// the wait ran out rather than failed.
var ErrConditionNotMet = errors.New("condition not met")

// Until calls cond every interval until it returns true, ctx is done or
// timeout passes. cond runs on the caller's goroutine, at least once,
// even with a zero timeout. On timeout the error wraps the last non-nil
// error cond returned (or ErrConditionNotMet); when ctx ends first it is
// ctx.Err().
func Until(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	// One timer reused across iterations: time.After would allocate a
	// timer per poll, and long waits at a short interval poll often.
	timer := time.NewTimer(interval)
	defer timer.Stop()
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		if time.Now().After(deadline) {
			if lastErr == nil {
				lastErr = ErrConditionNotMet
			}
			return fmt.Errorf("timed out after %s: %w", timeout, lastErr)
		}
		timer.Reset(interval)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}
