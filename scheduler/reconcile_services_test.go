package scheduler

import (
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

// TestDestructiveChange_Services: a change to a group's checks, ports or
// set of services replaces its allocations (the client runs the checks
// an allocation started with); tags, vip, published_port and
// shutdown_delay update in place.
func TestDestructiveChange_Services(t *testing.T) {
	base := func() *structs.TaskGroup {
		return &structs.TaskGroup{
			Name:  "web",
			Tasks: []*structs.Task{{Name: "t", Driver: "containerd"}},
			Services: []*structs.Service{{
				Name: "web", PortLabel: "http", Tags: []string{"v1"},
				Checks: []*structs.ServiceCheck{{Name: "web-http", Type: "http", Path: "/", Interval: time.Second, Timeout: time.Second}},
			}},
		}
	}
	for name, tc := range map[string]struct {
		edit func(tg *structs.TaskGroup)
		want bool
	}{
		"unchanged":      {func(tg *structs.TaskGroup) {}, false},
		"tags":           {func(tg *structs.TaskGroup) { tg.Services[0].Tags = []string{"v2"} }, false},
		"vip":            {func(tg *structs.TaskGroup) { tg.Services[0].VIP = &structs.ServiceVIP{Port: 80} }, false},
		"published port": {func(tg *structs.TaskGroup) { tg.Services[0].PublishedPort = 8080 }, false},
		"shutdown delay": {func(tg *structs.TaskGroup) { tg.Services[0].ShutdownDelay = time.Second }, false},
		"check path":     {func(tg *structs.TaskGroup) { tg.Services[0].Checks[0].Path = "/health" }, true},
		"check interval": {func(tg *structs.TaskGroup) { tg.Services[0].Checks[0].Interval = 2 * time.Second }, true},
		"port label":     {func(tg *structs.TaskGroup) { tg.Services[0].PortLabel = "admin" }, true},
		"service added": {func(tg *structs.TaskGroup) {
			tg.Services = append(tg.Services, &structs.Service{Name: "b", PortLabel: "http"})
		}, true},
		"service removed": {func(tg *structs.TaskGroup) { tg.Services = nil }, true},
		"service renamed": {func(tg *structs.TaskGroup) { tg.Services[0].Name = "www" }, true},
		"checks removed":  {func(tg *structs.TaskGroup) { tg.Services[0].Checks = nil }, true},
	} {
		next := base()
		tc.edit(next)
		if got := destructiveChange(base(), next); got != tc.want {
			t.Errorf("%s: destructiveChange = %v, want %v", name, got, tc.want)
		}
	}
}

// TestDestructiveChange_Templates: a task's allocations rendered its
// templates when they started; any change of a template block replaces
// them.
func TestDestructiveChange_Templates(t *testing.T) {
	base := func() *structs.TaskGroup {
		return &structs.TaskGroup{Name: "web", Tasks: []*structs.Task{{
			Name: "t", Driver: "containerd",
			Templates: []*structs.Template{{EmbeddedTmpl: "a", DestPath: "local/a", ChangeMode: "restart"}},
		}}}
	}
	for name, tc := range map[string]struct {
		edit func(tg *structs.TaskGroup)
		want bool
	}{
		"unchanged":   {func(tg *structs.TaskGroup) {}, false},
		"text":        {func(tg *structs.TaskGroup) { tg.Tasks[0].Templates[0].EmbeddedTmpl = "b" }, true},
		"destination": {func(tg *structs.TaskGroup) { tg.Tasks[0].Templates[0].DestPath = "local/b" }, true},
		"change mode": {func(tg *structs.TaskGroup) { tg.Tasks[0].Templates[0].ChangeMode = "noop" }, true},
		"splay":       {func(tg *structs.TaskGroup) { tg.Tasks[0].Templates[0].Splay = time.Second }, true},
		"removed":     {func(tg *structs.TaskGroup) { tg.Tasks[0].Templates = nil }, true},
	} {
		next := base()
		tc.edit(next)
		if got := destructiveChange(base(), next); got != tc.want {
			t.Errorf("%s: destructiveChange = %v, want %v", name, got, tc.want)
		}
	}
}
