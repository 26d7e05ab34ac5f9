package testutil

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// WaitFor polls cond every 20ms until it returns true or timeout passes,
// then fails the test with the last error cond returned. It is the way
// tests wait; a bare time.Sleep is never the assertion.
func WaitFor(t testing.TB, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatal(err)
	}
}

// Poll is WaitFor without a testing.TB: it returns an error describing
// the last failure when timeout passes.
func Poll(timeout time.Duration, cond func() (bool, error)) error {
	return PollCtx(context.Background(), timeout, 20*time.Millisecond, cond)
}

// PollCtx calls cond every interval until it returns true, ctx is done
// or timeout passes; the error then says what cond last reported.
func PollCtx(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
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
				lastErr = fmt.Errorf("condition not met")
			}
			return fmt.Errorf("timed out after %s: %w", timeout, lastErr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
