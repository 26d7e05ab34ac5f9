package testutil

import (
	"context"
	"testing"
	"time"

	"github.com/droverhq/drover/internal/poll"
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
	return poll.Until(context.Background(), timeout, 20*time.Millisecond, cond)
}

// PollCtx calls cond every interval until it returns true, ctx is done
// or timeout passes; the error then says what cond last reported. It is
// poll.Until, kept here for tests; non-test code uses internal/poll.
func PollCtx(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error)) error {
	return poll.Until(ctx, timeout, interval, cond)
}
