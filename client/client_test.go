package client

import (
	"context"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/fakedriver"
	"github.com/droverhq/drover/testutil/mock"
)

// The client's behaviour against a real server (registration, running,
// restarting and re-attaching allocations) is tested in package agent,
// which may import both client and server.

func TestTaskRunner_WaitErrorIsNotAnExit(t *testing.T) {
	drv := fakedriver.New()
	cfg := &driver.TaskConfig{ID: "a-t", TaskName: "t", Command: "run"}
	if _, err := drv.StartTask(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	drv.FailWaits(2)
	tr := &taskRunner{
		task: &structs.Task{Name: "t"}, id: cfg.ID, drv: drv,
		log: runnerLog{l: hclog.NewNullLogger()}, killCh: make(chan struct{}), shutdownCh: make(chan struct{}),
	}
	done := make(chan *driver.ExitResult, 1)
	go func() {
		r, _ := tr.waitExit(context.Background())
		done <- r
	}()
	select {
	case r := <-done:
		t.Fatalf("waitExit returned %+v while the task still runs", r)
	case <-time.After(time.Second):
	}
	drv.Exit("a-t", &driver.ExitResult{ExitCode: 7})
	select {
	case r := <-done:
		if r.ExitCode != 7 || r.Err != nil {
			t.Fatalf("result %+v, want exit code 7", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waitExit did not see the real exit")
	}
	if w := drv.Waits(); w < 3 {
		t.Fatalf("waited %d times, want the failed waits retried", w)
	}
}

func TestInterpolator(t *testing.T) {
	node := mock.Node()
	node.Meta = map[string]string{"rack": "r1"}
	in := newInterpolator(map[string]string{"DROVER_PORT_http": "23456"}, node)
	cases := map[string]string{
		"-p ${DROVER_PORT_http}":        "-p 23456",
		"$DROVER_PORT_http":             "$DROVER_PORT_http",
		"${meta.rack}-${attr.cpu.arch}": "r1-amd64",
		"${node.unique.id}":             node.ID,
		"${unknown.thing}":              "${unknown.thing}",
		"plain":                         "plain",
	}
	for in_, want := range cases {
		if got := in.replace(in_); got != want {
			t.Errorf("replace(%q) = %q, want %q", in_, got, want)
		}
	}
}

func TestRestartTracker(t *testing.T) {
	now := time.Unix(1000, 0)
	rt := newRestartTracker(&structs.RestartPolicy{Attempts: 2, Interval: time.Minute, Delay: time.Second, Mode: structs.RestartPolicyModeFail}, structs.JobTypeService)
	rt.now = func() time.Time { return now }
	for i := 0; i < 2; i++ {
		if d, delay := rt.next(false, false); d != restartAfter || delay != time.Second {
			t.Fatalf("attempt %d: %v %v", i, d, delay)
		}
	}
	if d, _ := rt.next(false, false); d != failTask {
		t.Fatalf("third failure within the interval should fail the task, got %v", d)
	}
	// After the interval the count starts over.
	now = now.Add(2 * time.Minute)
	if d, _ := rt.next(false, false); d != restartAfter {
		t.Fatalf("after the interval: %v", d)
	}

	delay := newRestartTracker(&structs.RestartPolicy{Attempts: 1, Interval: time.Minute, Delay: time.Second, Mode: structs.RestartPolicyModeDelay}, structs.JobTypeService)
	delay.now = func() time.Time { return now }
	delay.next(false, false)
	if d, wait := delay.next(false, false); d != restartAfter || wait != time.Minute {
		t.Fatalf("delay mode: %v %v, want a wait until the interval ends", d, wait)
	}

	batch := newRestartTracker(nil, structs.JobTypeBatch)
	if d, _ := batch.next(true, false); d != noRestart {
		t.Fatalf("batch success: %v", d)
	}
}
