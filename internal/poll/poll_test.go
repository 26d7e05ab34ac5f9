package poll

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestUntil_ReturnsOnceCondHolds(t *testing.T) {
	calls := 0
	err := Until(context.Background(), time.Minute, time.Millisecond, func() (bool, error) {
		calls++
		return calls == 3, errors.New("not yet")
	})
	if err != nil {
		t.Fatalf("Until: %v", err)
	}
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3", calls)
	}
}

func TestUntil_Timeout(t *testing.T) {
	errLast := errors.New("leader not elected")
	cases := []struct {
		name    string
		condErr error
		wantIs  error
	}{
		{name: "wraps cond's last error", condErr: errLast, wantIs: errLast},
		{name: "says not met without one", condErr: nil, wantIs: ErrConditionNotMet},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := Until(context.Background(), 0, time.Millisecond, func() (bool, error) {
				calls++
				return false, tc.condErr
			})
			if !errors.Is(err, tc.wantIs) {
				t.Fatalf("err = %v, want it to wrap %v", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), "timed out after") {
				t.Fatalf("err = %q, want it to say it timed out", err)
			}
			if calls < 1 {
				t.Fatal("cond never called with a zero timeout")
			}
		})
	}
}

func TestUntil_ContextDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	err := Until(ctx, time.Hour, time.Millisecond, func() (bool, error) {
		cancel()
		return false, errors.New("still waiting")
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
