package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	nomad "github.com/hashicorp/nomad/api"

	"github.com/droverhq/drover/structs"
)

// nomadRoots pairs each request body Nomad's client sends (for a job,
// and the job writes beside it) with the Drover type the HTTP API
// decodes it into.
var nomadRoots = []struct{ nomad, drover reflect.Type }{
	{typeOf[nomad.JobRegisterRequest](), typeOf[JobRegisterBody]()},
	{typeOf[nomad.JobValidateRequest](), typeOf[JobRegisterBody]()},
	{typeOf[nomad.JobPlanRequest](), typeOf[JobPlanBody]()},
	{typeOf[nomad.JobRevertRequest](), typeOf[JobRevertBody]()},
	{typeOf[nomad.JobStabilityRequest](), typeOf[JobStableBody]()},
	{typeOf[nomad.DeploymentPromoteRequest](), typeOf[DeploymentPromoteBody]()},
	{typeOf[nomad.NodeUpdateDrainRequest](), typeOf[NodeDrainBody]()},
	{typeOf[nomad.SchedulerConfiguration](), typeOf[structs.SchedulerConfiguration]()},
}

// nomadJSONFields lists a Nomad struct's JSON fields (embedded structs
// flattened, "-" and unexported skipped).
func nomadJSONFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for _, f := range jsonFields(t) {
		out[f.name] = f.Type
	}
	return out
}

// structElem is the struct a field's type holds (through pointers,
// slices and maps), if any.
func structElem(t reflect.Type) (reflect.Type, bool) {
	for {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			t = t.Elem()
		case reflect.Struct:
			return t, t != typeOf[time.Time]()
		default:
			return nil, false
		}
	}
}

// TestNomadFieldRules_CoverNomadSchema walks Nomad's job schema (its Go
// API client's structs) beside Drover's: every Nomad field must be a
// Drover field or have a rule in nomadFieldRules, and every rule must
// name a Nomad field Drover lacks.
func TestNomadFieldRules_CoverNomadSchema(t *testing.T) {
	type pair struct{ nomad, drover reflect.Type }
	seen := map[pair]bool{}
	covered := map[reflect.Type]map[string]bool{}
	var missing []string
	var walk func(n, d reflect.Type)
	walk = func(n, d reflect.Type) {
		p := pair{n, d}
		if seen[p] {
			return
		}
		seen[p] = true
		droverFields := jsonFields(d)
		if covered[d] == nil {
			covered[d] = map[string]bool{}
		}
		for name, nt := range nomadJSONFields(n) {
			if f, ok := lookupField(droverFields, name); ok {
				ns, nok := structElem(nt)
				ds, dok := structElem(f.Type)
				if nok && dok {
					walk(ns, ds)
				}
				continue
			}
			if _, _, ok := lookupRule(nomadFieldRules[d], name); !ok {
				missing = append(missing, d.Name()+"."+name+" (Nomad "+n.Name()+"."+name+" "+nt.String()+")")
				continue
			}
			covered[d][name] = true
		}
	}
	for _, root := range nomadRoots {
		walk(root.nomad, root.drover)
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("Nomad field without a Drover field or a rule in nomadFieldRules: %s", m)
	}
	for d, rules := range nomadFieldRules {
		for name := range rules {
			if !covered[d][name] {
				t.Errorf("nomadFieldRules[%s][%q] is not a Nomad field that %s lacks; remove it", d.Name(), name, d.Name())
			}
		}
	}
}

// nomadServiceJob is the job the Done-when of issue 19 speaks of: built
// with Nomad's own constructors.
func nomadServiceJob() *nomad.Job {
	job := nomad.NewServiceJob("web", "web", "global", 50)
	task := nomad.NewTask("app", "containerd").
		SetConfig("image", "busybox").
		SetConfig("command", "sleep").
		SetConfig("args", []string{"3600"})
	group := nomad.NewTaskGroup("g", 2).AddTask(task)
	return job.AddTaskGroup(group)
}

func decodeNomadBody(t *testing.T, body interface{}) (*JobRegisterBody, error) {
	t.Helper()
	buf, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	a := httpAgent(nil)
	req := httptest.NewRequest("PUT", "/v1/jobs", bytes.NewReader(buf))
	return a.decodeJobBody(httptest.NewRecorder(), req, nil)
}

func TestNomadJobDecode_AcceptsNomadClientJobs(t *testing.T) {
	canonical := nomadServiceJob()
	canonical.Canonicalize()
	batch := nomad.NewBatchJob("b", "b", "global", 50).AddTaskGroup(
		nomad.NewTaskGroup("g", 1).AddTask(nomad.NewTask("t", "containerd").SetConfig("image", "busybox")))
	batch.Canonicalize()
	cases := []struct {
		name string
		body interface{}
	}{
		{"constructors", nomad.JobRegisterRequest{Job: nomadServiceJob()}},
		{"canonicalized", nomad.JobRegisterRequest{Job: canonical}},
		{"canonicalized batch", nomad.JobRegisterRequest{Job: batch}},
		{"validate request", nomad.JobValidateRequest{Job: canonical}},
		{"with submission", nomad.JobRegisterRequest{Job: nomadServiceJob(), Submission: &nomad.JobSubmission{Source: "job {}", Format: "hcl2"}}},
		{"group restart policy copied into tasks", nomad.JobRegisterRequest{Job: func() *nomad.Job {
			j := nomadServiceJob()
			j.TaskGroups[0].RestartPolicy = &nomad.RestartPolicy{Attempts: new(5), Interval: new(10 * time.Minute), Delay: new(time.Second), Mode: new("delay")}
			j.Canonicalize()
			return j
		}()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, err := decodeNomadBody(t, tc.body)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if body.Job.ID == "" || len(body.Job.TaskGroups) == 0 {
				t.Fatalf("decoded job lost its fields: %+v", body.Job)
			}
		})
	}

	body, err := decodeNomadBody(t, nomad.JobRegisterRequest{Job: nomadServiceJob()})
	if err != nil {
		t.Fatal(err)
	}
	tg := body.Job.TaskGroups[0]
	if body.Job.ID != "web" || body.Job.Priority != 50 || tg.Name != "g" || tg.Count != 2 ||
		tg.Tasks[0].Driver != "containerd" || tg.Tasks[0].Config.Image != "busybox" ||
		tg.Tasks[0].Config.Command != "sleep" || !reflect.DeepEqual(tg.Tasks[0].Config.Args, []string{"3600"}) {
		t.Fatalf("decoded job differs from what was sent: %+v", body.Job)
	}
}

func TestNomadJobDecode_RefusesUnsupportedValues(t *testing.T) {
	withJob := func(mod func(j *nomad.Job)) nomad.JobRegisterRequest {
		j := nomadServiceJob()
		mod(j)
		return nomad.JobRegisterRequest{Job: j}
	}
	cases := []struct {
		name, path, msg string
		body            interface{}
	}{
		{"host volume", "Job.TaskGroups[0].Volumes", "host volumes are not supported", withJob(func(j *nomad.Job) {
			j.TaskGroups[0].Volumes = map[string]*nomad.VolumeRequest{"data": {Name: "data", Type: "host", Source: "data"}}
		})},
		{"other region", "Job.Region", "not supported", withJob(func(j *nomad.Job) { j.Region = new("eu") })},
		{"periodic", "Job.Periodic", "periodic jobs are not supported", withJob(func(j *nomad.Job) {
			j.Periodic = &nomad.PeriodicConfig{Enabled: new(true), Spec: new("* * * * *")}
		})},
		{"task user", "Job.TaskGroups[0].Tasks[0].User", "not supported", withJob(func(j *nomad.Job) { j.TaskGroups[0].Tasks[0].User = "nobody" })},
		{"consul service", "Job.TaskGroups[0].Services[0].Provider", `Consul is not supported; use provider = "nomad" or leave it unset`, withJob(func(j *nomad.Job) {
			j.TaskGroups[0].Services = []*nomad.Service{{Name: "web", PortLabel: "http", Provider: "consul"}}
		})},
		{"consul task service", "Job.TaskGroups[0].Tasks[0].Services[0].Provider", "Consul is not supported", withJob(func(j *nomad.Job) {
			j.TaskGroups[0].Tasks[0].Services = []*nomad.Service{{Name: "web", PortLabel: "http", Provider: "consul"}}
		})},
		{"script check of a group service", "Job.TaskGroups[0].Services[0].Checks[0].Type", "a group service has none", withJob(func(j *nomad.Job) {
			j.TaskGroups[0].Services = []*nomad.Service{{Name: "web", PortLabel: "http", Checks: []nomad.ServiceCheck{{Type: "script", Command: "true"}}}}
		})},
		{"big ephemeral disk", "Job.TaskGroups[0].EphemeralDisk", "not supported", withJob(func(j *nomad.Job) {
			j.TaskGroups[0].EphemeralDisk = &nomad.EphemeralDisk{SizeMB: new(10_000)}
		})},
		{"preserve counts", "PreserveCounts", "not supported", nomad.JobRegisterRequest{Job: nomadServiceJob(), PreserveCounts: true}},
		{"task restart policy of its own", "Job.TaskGroups[0].Tasks[0].RestartPolicy", "not supported", withJob(func(j *nomad.Job) {
			j.TaskGroups[0].Tasks[0].RestartPolicy = &nomad.RestartPolicy{Attempts: new(9)}
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeNomadBody(t, tc.body)
			var verr *structs.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("want a validation error naming %s, got %v", tc.path, err)
			}
			for _, p := range verr.Problems {
				if p.Path == tc.path && strings.Contains(p.Message, tc.msg) {
					if status := writeError(httptest.NewRecorder(), err); status != http.StatusBadRequest {
						t.Fatalf("status %d, want 400", status)
					}
					return
				}
			}
			t.Fatalf("no problem %s: %q in %v", tc.path, tc.msg, err)
		})
	}
}

// nomadJobWithServices has a group service registered by Nomad and a
// task service with the provider left unset, each with a check.
func nomadJobWithServices() *nomad.Job {
	j := nomadServiceJob()
	tg := j.TaskGroups[0]
	tg.Networks = []*nomad.NetworkResource{{DynamicPorts: []nomad.Port{{Label: "http"}}}}
	tg.Services = []*nomad.Service{{
		Name: "web", PortLabel: "http", Tags: []string{"v1"}, Provider: "nomad",
		Checks: []nomad.ServiceCheck{{Name: "alive", Type: "http", Path: "/health", Interval: 5 * time.Second, Timeout: time.Second}},
	}}
	tg.Tasks[0].Services = []*nomad.Service{{
		Name: "web-admin", PortLabel: "http",
		Checks: []nomad.ServiceCheck{{Type: "tcp", Interval: 10 * time.Second, Timeout: 2 * time.Second}},
	}}
	return j
}

// TestNomadJobDecode_MapsServices: a Nomad service with provider
// "nomad" or unset becomes a Drover service, with Nomad's defaults for
// the fields Drover lacks accepted (as its Canonicalize sets them) and
// Drover's defaults filled in.
func TestNomadJobDecode_MapsServices(t *testing.T) {
	canonical := nomadJobWithServices()
	canonical.TaskGroups[0].Tasks[0].Services[0].Provider = "nomad"
	canonical.Canonicalize()
	cases := []struct {
		name string
		job  *nomad.Job
	}{
		{"constructors", nomadJobWithServices()},
		{"canonicalized", canonical},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, err := decodeNomadBody(t, nomad.JobRegisterRequest{Job: tc.job})
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			tg := body.Job.TaskGroups[0]
			wantGroup := []*structs.Service{{
				Name: "web", PortLabel: "http", Tags: []string{"v1"},
				Checks: []*structs.ServiceCheck{{Name: "alive", Type: "http", Path: "/health", Interval: 5 * time.Second, Timeout: time.Second}},
			}}
			if !reflect.DeepEqual(tg.Services, wantGroup) {
				t.Errorf("group services: got %s, want %s", mustJSON(t, tg.Services), mustJSON(t, wantGroup))
			}
			wantTask := []*structs.Service{{
				Name: "web-admin", PortLabel: "http", TaskName: "app",
				Checks: []*structs.ServiceCheck{{Name: "web-admin-tcp", Type: "tcp", Interval: 10 * time.Second, Timeout: 2 * time.Second}},
			}}
			if got := tg.Tasks[0].Services; !reflect.DeepEqual(got, wantTask) {
				t.Errorf("task services: got %s, want %s", mustJSON(t, got), mustJSON(t, wantTask))
			}
		})
	}

	// Nomad's Canonicalize makes an unset provider "consul": that one
	// is refused, at the field, with a 400.
	consul := nomadJobWithServices()
	consul.Canonicalize()
	_, err := decodeNomadBody(t, nomad.JobRegisterRequest{Job: consul})
	var verr *structs.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("canonicalized job with provider consul: want a validation error, got %v", err)
	}
	if status := writeError(httptest.NewRecorder(), err); status != http.StatusBadRequest {
		t.Errorf("status %d, want 400", status)
	}
	if len(verr.Problems) != 1 || verr.Problems[0].Path != "Job.TaskGroups[0].Tasks[0].Services[0].Provider" {
		t.Errorf("want one problem at the task service's Provider, got %v", err)
	}
}

func mustJSON(t *testing.T, v interface{}) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNomadJobDecode_UnknownFieldsStayErrors: a key that is neither
// Drover's nor Nomad's is still refused.
func TestNomadJobDecode_UnknownFieldsStayErrors(t *testing.T) {
	raw := `{"Job":{"ID":"x","Regoin":"global","TaskGroups":[{"Name":"g","Tasks":[{"Name":"t","Driver":"containerd","Config":{"image":"i"},"LogConfg":null}]}]}}`
	a := httpAgent(nil)
	req := httptest.NewRequest("PUT", "/v1/jobs", strings.NewReader(raw))
	_, err := a.decodeJobBody(httptest.NewRecorder(), req, nil)
	var verr *structs.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("want unknown-field problems, got %v", err)
	}
	want := map[string]bool{"Job.Regoin": false, "Job.TaskGroups[0].Tasks[0].LogConfg": false}
	for _, p := range verr.Problems {
		if _, ok := want[p.Path]; ok && strings.Contains(p.Message, "unknown field") {
			want[p.Path] = true
		}
	}
	for path, found := range want {
		if !found {
			t.Errorf("no unknown-field problem at %s in %v", path, err)
		}
	}
}

// FuzzNomadJobDecode feeds Nomad-shaped job bodies to the decoder.
// Invariants: no panic; a refusal is a 400 or 413 with a message for
// every problem; an accepted job validates.
func FuzzNomadJobDecode(f *testing.F) {
	for _, body := range []interface{}{
		nomad.JobRegisterRequest{Job: nomadServiceJob()},
		nomad.JobRegisterRequest{Job: func() *nomad.Job { j := nomadServiceJob(); j.Canonicalize(); return j }()},
		nomad.JobRegisterRequest{Job: nomadJobWithServices()},
		nomad.JobRegisterRequest{Job: func() *nomad.Job {
			j := nomadServiceJob()
			j.TaskGroups[0].Volumes = map[string]*nomad.VolumeRequest{"d": {Type: "host", Source: "d"}}
			return j
		}()},
	} {
		buf, err := json.Marshal(body)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(buf)
	}
	f.Add([]byte(`{"Job":{"ID":"x","Region":{"a":[1,{"b":null}]},"EphemeralDisk":7,"TaskGroups":[{"Volumes":{"":null},"EphemeralDisk":{"SizeMB":"300"}}]}}`))
	f.Add([]byte(`{"Submission":[],"Job":{"ID":"x","UI":{},"TaskGroups":[null]}}`))
	a := httpAgent(nil)
	a.config.MaxRequestBytes = 64 << 10
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("PUT", "/v1/jobs", bytes.NewReader(body))
		decoded, err := a.decodeJobBody(httptest.NewRecorder(), req, nil)
		if err != nil {
			status := writeError(httptest.NewRecorder(), err)
			if status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d for %q: %v", status, body, err)
			}
			var verr *structs.ValidationError
			if errors.As(err, &verr) {
				for _, p := range verr.Problems {
					if p.Message == "" {
						t.Fatalf("problem without a message at %q", p.Path)
					}
				}
			}
			return
		}
		if err := decoded.Job.Validate(); err != nil {
			t.Fatalf("accepted job does not validate: %v", err)
		}
	})
}

// nomadJobWithTemplates has a task with two of Nomad's templates: a
// file served from local/ and an env file in secrets/, re-read on
// SIGHUP.
func nomadJobWithTemplates() *nomad.Job {
	j := nomadServiceJob()
	j.TaskGroups[0].Tasks[0].Templates = []*nomad.Template{
		{EmbeddedTmpl: new(`{{ with var "app/config" }}{{ .greeting }}{{ end }}`), DestPath: new("local/index.html")},
		{EmbeddedTmpl: new(`A={{ (var "app/config").a }}`), DestPath: new("secrets/app.env"), Envvars: new(true),
			ChangeMode: new("signal"), ChangeSignal: new("SIGHUP"), Perms: new("0600"), Splay: new(2 * time.Second)},
	}
	return j
}

// TestNomadJobDecode_MapsTemplates: Nomad's templates become Drover's,
// with Nomad's defaults for the fields Drover lacks accepted (as its
// Canonicalize sets them), and the job validates once canonicalized.
func TestNomadJobDecode_MapsTemplates(t *testing.T) {
	canonical := nomadJobWithTemplates()
	canonical.Canonicalize()
	for _, tc := range []struct {
		name string
		job  *nomad.Job
	}{{"constructors", nomadJobWithTemplates()}, {"canonicalized", canonical}} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := decodeNomadBody(t, nomad.JobRegisterRequest{Job: tc.job})
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			job := body.Job
			job.Canonicalize()
			if err := job.Validate(); err != nil {
				t.Fatalf("decoded job does not validate: %v", err)
			}
			got := job.TaskGroups[0].Tasks[0].Templates
			splay := time.Duration(0)
			if tc.name == "canonicalized" {
				splay = 5 * time.Second // Nomad's default
			}
			want := []*structs.Template{
				{EmbeddedTmpl: `{{ with var "app/config" }}{{ .greeting }}{{ end }}`, DestPath: "local/index.html",
					ChangeMode: "restart", Splay: splay, Perms: "0644", WaitMissing: 30 * time.Second},
				{EmbeddedTmpl: `A={{ (var "app/config").a }}`, DestPath: "secrets/app.env", Envvars: true,
					ChangeMode: "signal", ChangeSignal: "SIGHUP", Splay: 2 * time.Second, Perms: "0600", WaitMissing: 30 * time.Second},
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("templates: got %s, want %s", mustJSON(t, got), mustJSON(t, want))
			}
		})
	}
}

// TestNomadJobDecode_RefusesTemplateFeatures: consul-template features
// Drover's templates lack are refused with a 400 naming the field.
func TestNomadJobDecode_RefusesTemplateFeatures(t *testing.T) {
	cases := []struct {
		name, field, msg string
		mod              func(tm *nomad.Template)
	}{
		{"change script", "ChangeScript", "change scripts are not supported", func(tm *nomad.Template) {
			tm.ChangeMode = new("script")
			tm.ChangeScript = &nomad.ChangeScript{Command: new("/bin/reload")}
		}},
		{"delimiters", "LeftDelim", `delimiters other than "{{" and "}}"`, func(tm *nomad.Template) { tm.LeftDelim = new("[[") }},
		{"owner", "Uid", "owner of a rendered file", func(tm *nomad.Template) { tm.Uid = new(1000) }},
		{"wait", "Wait", "quiescence", func(tm *nomad.Template) { tm.Wait = &nomad.WaitConfig{Min: new(time.Second)} }},
		{"once", "Once", "only once", func(tm *nomad.Template) { tm.Once = new(true) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := nomadJobWithTemplates()
			tc.mod(j.TaskGroups[0].Tasks[0].Templates[0])
			_, err := decodeNomadBody(t, nomad.JobRegisterRequest{Job: j})
			var verr *structs.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("want a validation error, got %v", err)
			}
			if status := writeError(httptest.NewRecorder(), err); status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", status)
			}
			path := "Job.TaskGroups[0].Tasks[0].Templates[0]." + tc.field
			for _, p := range verr.Problems {
				if p.Path == path && strings.Contains(p.Message, tc.msg) {
					return
				}
			}
			t.Fatalf("no problem %s: %q in %v", path, tc.msg, err)
		})
	}
}
