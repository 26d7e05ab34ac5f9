package fake

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/driver"
)

func TestDriver_TaskRunsUntilStopped(t *testing.T) {
	d := New(Config{})
	ctx := context.Background()
	h, err := d.StartTask(ctx, &driver.TaskConfig{ID: "a-t"})
	if err != nil {
		t.Fatal(err)
	}
	if h.Driver != "containerd" || h.PID == 0 {
		t.Fatalf("handle %+v", h)
	}
	if _, err := d.StartTask(ctx, &driver.TaskConfig{ID: "a-t"}); err == nil {
		t.Fatal("a second start of a running task was accepted")
	}
	ch, err := d.WaitTask(ctx, "a-t")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		t.Fatalf("wait answered %+v while the task runs", r)
	default:
	}
	if err := d.StopTask(ctx, "a-t", time.Second, ""); err != nil {
		t.Fatal(err)
	}
	if r, ok := <-ch; !ok || r.Signal != 15 {
		t.Fatalf("wait after stop: %+v %v, want a SIGTERM exit", r, ok)
	}
	if st, err := d.InspectTask(ctx, "a-t"); err != nil || st.State != driver.TaskStateExited {
		t.Fatalf("inspect after stop: %+v %v", st, err)
	}
	if err := d.DestroyTask(ctx, "a-t", false); err != nil {
		t.Fatal(err)
	}
	if _, err := d.InspectTask(ctx, "a-t"); !errors.Is(err, driver.ErrTaskNotFound) {
		t.Fatalf("inspect after destroy: %v, want ErrTaskNotFound", err)
	}
	if err := d.RecoverTask(ctx, h); !errors.Is(err, driver.ErrTaskNotFound) {
		t.Fatalf("recover after destroy: %v, want ErrTaskNotFound", err)
	}
}

func TestDriver_RunForEndsTheTaskSuccessfully(t *testing.T) {
	d := New(Config{RunFor: func(cfg *driver.TaskConfig) time.Duration {
		if cfg.TaskName == "batch" {
			return 10 * time.Millisecond
		}
		return 0
	}})
	ctx := context.Background()
	if _, err := d.StartTask(ctx, &driver.TaskConfig{ID: "a-batch", TaskName: "batch"}); err != nil {
		t.Fatal(err)
	}
	ch, err := d.WaitTask(ctx, "a-batch")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		if !r.Successful() {
			t.Fatalf("exit %+v, want success", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the task never ended")
	}
	// An exited task answers a new wait at once.
	ch, err = d.WaitTask(ctx, "a-batch")
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := <-ch; !ok || !r.Successful() {
		t.Fatalf("second wait: %+v %v", r, ok)
	}
}

func TestDriver_CancelledWaitClosesWithoutResult(t *testing.T) {
	d := New(Config{})
	if _, err := d.StartTask(context.Background(), &driver.TaskConfig{ID: "a-t"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := d.WaitTask(ctx, "a-t")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case r, ok := <-ch:
		if ok {
			t.Fatalf("a cancelled wait answered %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled wait was never closed")
	}
	// The task still runs, and a stop answers no stale waiter.
	if err := d.StopTask(context.Background(), "a-t", 0, ""); err != nil {
		t.Fatal(err)
	}
}

func TestDriver_StartDelayHonoursCancellation(t *testing.T) {
	d := New(Config{StartDelay: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.StartTask(ctx, &driver.TaskConfig{ID: "a-t"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("start with a cancelled context: %v, want context.Canceled", err)
	}
	if d.Tasks() != 0 {
		t.Fatalf("%d tasks after a cancelled start, want 0", d.Tasks())
	}
}

func TestDriver_UnknownTask(t *testing.T) {
	d := New(Config{})
	ctx := context.Background()
	if _, err := d.WaitTask(ctx, "nope"); !errors.Is(err, driver.ErrTaskNotFound) {
		t.Fatalf("wait: %v", err)
	}
	if err := d.StopTask(ctx, "nope", 0, ""); err != nil {
		t.Fatalf("stop of an unknown task: %v, want nil", err)
	}
	if err := d.DestroyTask(ctx, "nope", true); err != nil {
		t.Fatalf("destroy of an unknown task: %v, want nil", err)
	}
}

func TestDriver_SignalTask(t *testing.T) {
	d := New(Config{})
	ctx := context.Background()
	h, err := d.StartTask(ctx, &driver.TaskConfig{ID: "a-t"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := d.SignalTask(ctx, "a-t", syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	st, err := d.InspectTask(ctx, "a-t")
	if err != nil || st.State != driver.TaskStateRunning || st.PID != h.PID || d.Signals("a-t") != 2 {
		t.Fatalf("after two signals: %+v %v, %d signals; want running as pid %d", st, err, d.Signals("a-t"), h.PID)
	}
	if err := d.SignalTask(ctx, "nope", syscall.SIGHUP); !errors.Is(err, driver.ErrTaskNotFound) {
		t.Fatalf("signal unknown task: %v", err)
	}
	if err := d.StopTask(ctx, "a-t", time.Second, ""); err != nil {
		t.Fatal(err)
	}
	if err := d.SignalTask(ctx, "a-t", syscall.SIGHUP); err == nil {
		t.Fatal("an exited task took a signal")
	}
}
