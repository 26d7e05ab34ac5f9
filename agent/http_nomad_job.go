package agent

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/droverhq/drover/structs"
)

// Nomad's job JSON carries every field of Nomad's job schema: its Go API
// client marshals whole structs, so a job built with
// api.NewServiceJob arrives with "Region", "AllAtOnce", "EphemeralDisk",
// "LogConfig", ... mostly null or zero. Drover supports a subset of that
// schema. nomadFieldRules says, for each Drover type a JSON body decodes
// into, what to do with the Nomad fields that type lacks: a field that is
// absent, null, its zero value or Nomad's default asks for nothing Drover
// would do differently, so it is accepted (and ignored); any other value
// asks for something Drover cannot do, and is refused with the field's
// path and what is not supported. Keys that are in neither Drover's type
// nor this table stay "unknown field" errors (checkFields).
//
// TestNomadFieldRules_CoverNomadSchema reflects over Nomad's api package
// and fails when a Nomad field is in neither Drover's type nor here, so a
// Nomad upgrade that adds a field cannot slip through as "unknown field".
//
// HCL job files do not go through this: jobspec keeps its own strictness.

// nomadRule is what Drover does with one Nomad field it does not have.
type nomadRule struct {
	// msg is the refusal for a value Drover cannot honour, e.g. "host
	// volumes are not supported".
	msg string
	// accept lists non-zero values also accepted, as JSON (Nomad's
	// defaults, e.g. `"global"` for Region).
	accept []string
	// fields, for an object value, lists per key the non-zero values
	// accepted (as JSON); every other key must be zero. Nomad's
	// canonicalized defaults such as EphemeralDisk {"SizeMB": 300} pass.
	fields map[string][]string
	// ignore accepts any value and drops it (e.g. the job's HCL source
	// in JobRegisterRequest.Submission, which Drover does not store).
	ignore bool
}

// unsupported builds the rule of a field whose only accepted values are
// absent, null, zero and the JSON values in accept.
func unsupported(msg string, accept ...string) nomadRule {
	return nomadRule{msg: msg, accept: accept}
}

// acceptNomadFields walks decoded JSON (v) along the Go type it will be
// decoded into (t), removes from it every Nomad-only key whose value is
// accepted (so checkFields does not call it unknown; json.Unmarshal
// ignores keys without a field), and records a problem for every one
// whose value Drover cannot honour (removing that key as well, so it is
// reported once, with what is not supported).
func acceptNomadFields(v interface{}, t reflect.Type, path string, problems *[]structs.FieldError) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil || reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]interface{})
		if !ok {
			return
		}
		if t == typeOf[structs.TaskGroup]() {
			dropInheritedRestartPolicies(obj)
		}
		fields := jsonFields(t)
		rules := nomadFieldRules[t]
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if f, ok := lookupField(fields, k); ok {
				acceptNomadFields(obj[k], f.Type, joinPath(path, f.name), problems)
				continue
			}
			name, rule, ok := lookupRule(rules, k)
			if !ok {
				continue // checkFields reports it as unknown
			}
			if rule.ignore || rule.allows(obj[k]) {
				delete(obj, k)
				continue
			}
			*problems = append(*problems, structs.FieldError{Path: joinPath(path, name), Message: rule.msg})
			// Reported here with what is not supported; checkFields
			// must not call it an unknown field as well.
			delete(obj, k)
		}
	case reflect.Slice, reflect.Array:
		if list, ok := v.([]interface{}); ok {
			for i, item := range list {
				acceptNomadFields(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), problems)
			}
		}
	case reflect.Map:
		if obj, ok := v.(map[string]interface{}); ok {
			for k, item := range obj {
				acceptNomadFields(item, t.Elem(), fmt.Sprintf("%s[%q]", path, k), problems)
			}
		}
	}
}

// lookupRule finds a key's rule, case-insensitively as encoding/json
// matches fields, and returns Nomad's spelling of the field.
func lookupRule(rules map[string]nomadRule, key string) (string, nomadRule, bool) {
	if r, ok := rules[key]; ok {
		return key, r, true
	}
	for name, r := range rules {
		if strings.EqualFold(name, key) {
			return name, r, true
		}
	}
	return "", nomadRule{}, false
}

// allows reports whether v asks for nothing Drover would do differently.
func (r nomadRule) allows(v interface{}) bool {
	if jsonZero(v) || jsonIn(v, r.accept) {
		return true
	}
	obj, ok := v.(map[string]interface{})
	if !ok || r.fields == nil {
		return false
	}
	for k, item := range obj {
		if jsonZero(item) {
			continue
		}
		_, accept, ok := lookupAccept(r.fields, k)
		if !ok || !jsonIn(item, accept) {
			return false
		}
	}
	return true
}

func lookupAccept(fields map[string][]string, key string) (string, []string, bool) {
	if a, ok := fields[key]; ok {
		return key, a, true
	}
	for name, a := range fields {
		if strings.EqualFold(name, key) {
			return name, a, true
		}
	}
	return "", nil, false
}

// jsonZero reports whether decoded JSON is null, false, 0, "", an empty
// list, or an object whose every value is zero: what Nomad's client
// sends for a field nobody set.
func jsonZero(v interface{}) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case float64:
		return x == 0
	case string:
		return x == ""
	case []interface{}:
		return len(x) == 0
	case map[string]interface{}:
		for _, item := range x {
			if !jsonZero(item) {
				return false
			}
		}
		return true
	}
	return false
}

// jsonIn reports whether v equals one of the JSON values in accept.
func jsonIn(v interface{}, accept []string) bool {
	if len(accept) == 0 {
		return false
	}
	got, err := json.Marshal(v)
	if err != nil {
		return false
	}
	for _, a := range accept {
		var want interface{}
		if json.Unmarshal([]byte(a), &want) != nil {
			continue
		}
		w, _ := json.Marshal(want)
		if string(w) == string(got) {
			return true
		}
	}
	return false
}

func typeOf[T any]() reflect.Type { return reflect.TypeOf((*T)(nil)).Elem() }

// nomadFieldRules: per Drover type, the Nomad fields it lacks. Messages
// name what is not supported and, where there is one, what to do
// instead.
var nomadFieldRules = map[reflect.Type]map[string]nomadRule{
	typeOf[JobRegisterBody](): nomadRequestRules(map[string]nomadRule{
		// The job's source, kept by Nomad for its UI; Drover does not
		// store it, and refusing it would refuse every `nomad job run`.
		"Submission":        {ignore: true},
		"PolicyOverride":    unsupported("Sentinel policy overrides are not supported (Drover has no Sentinel policies)"),
		"PreserveCounts":    unsupported("preserving the running counts is not supported; send the counts you want"),
		"PreserveResources": unsupported("preserving the running resources is not supported; send the resources you want"),
		"EvalPriority":      unsupported("a separate evaluation priority is not supported; evaluations take the job's priority"),
	}),
	typeOf[JobPlanBody](): nomadRequestRules(map[string]nomadRule{
		"PolicyOverride": unsupported("Sentinel policy overrides are not supported (Drover has no Sentinel policies)"),
	}),
	typeOf[JobRevertBody](): nomadRequestRules(map[string]nomadRule{}),
	typeOf[JobStableBody](): nomadRequestRules(map[string]nomadRule{}),
	typeOf[DeploymentPromoteBody](): nomadRequestRules(map[string]nomadRule{
		"PromotedAt": unsupported("setting the promotion time is not supported; the server stamps it"),
	}),
	typeOf[NodeDrainBody](): {
		"Meta": unsupported("drain metadata is not supported"),
	},
	typeOf[structs.SchedulerConfiguration](): {
		"SchedulerAlgorithm":            unsupported(`scheduler algorithms other than "binpack" are not supported`, `"binpack"`),
		"MemoryOversubscriptionEnabled": unsupported("memory oversubscription is not supported"),
		"RejectJobRegistration":         unsupported("rejecting job registrations is not supported"),
		"PauseEvalBroker":               unsupported("pausing the evaluation broker is not supported"),
		"NodeLimitForFeasibilityChecks": unsupported("a node limit for feasibility checks is not supported"),
	},
	typeOf[structs.PreemptionConfig](): {
		"SysBatchSchedulerEnabled": unsupported("preemption for sysbatch jobs is not supported (Drover has no sysbatch jobs)"),
	},
	typeOf[structs.Job](): {
		"Region":                   unsupported(`regions other than "global" are not supported (Drover has one region)`, `"global"`),
		"AllAtOnce":                unsupported("all-at-once scheduling is not supported"),
		"Multiregion":              unsupported("multiregion jobs are not supported"),
		"Periodic":                 unsupported("periodic jobs are not supported"),
		"ParameterizedJob":         unsupported("parameterized jobs are not supported"),
		"Reschedule":               unsupported("a job-level reschedule policy is not supported; set ReschedulePolicy in each task group"),
		"Migrate":                  {msg: "a job-level migrate strategy is not supported; set Migrate in each task group", fields: nomadMigrateDefaults(`1`)},
		"UI":                       unsupported("UI settings are not supported"),
		"ParentID":                 unsupported("parent jobs (dispatch, periodic) are not supported"),
		"Dispatched":               unsupported("dispatched jobs are not supported"),
		"DispatchIdempotencyToken": unsupported("dispatched jobs are not supported"),
		"Payload":                  unsupported("dispatch payloads are not supported"),
		"ConsulNamespace":          unsupported("Consul is not supported"),
		"VaultNamespace":           unsupported("Vault is not supported"),
		"NomadTokenID":             unsupported("a job's Nomad token ID is set by the server and not supported in a request"),
		"VersionTag":               unsupported("version tags are not supported"),
	},
	typeOf[structs.TaskGroup](): {
		"Volumes":                   unsupported("host volumes are not supported (nor CSI volumes)"),
		"Disconnect":                unsupported("disconnect strategies are not supported; a lost node's allocations are rescheduled"),
		"EphemeralDisk":             {msg: "ephemeral disk settings are not supported (sticky, migrate, or a size other than 300 MB)", fields: map[string][]string{"SizeMB": {`300`}}},
		"ShutdownDelay":             unsupported("a group shutdown delay is not supported"),
		"MaxRunDuration":            unsupported("a maximum run duration is not supported"),
		"StopAfterClientDisconnect": unsupported("stop_after_client_disconnect is not supported"),
		"MaxClientDisconnect":       unsupported("max_client_disconnect is not supported"),
		"PreventRescheduleOnLost":   unsupported("prevent_reschedule_on_lost is not supported"),
		"Scaling":                   unsupported("scaling policies are not supported; scale with PUT /v1/job/<id>/scale"),
		"Consul":                    unsupported("Consul is not supported"),
	},
	typeOf[structs.Task](): {
		"User":            unsupported("running a task as another user is not supported"),
		"Lifecycle":       unsupported("task lifecycle hooks (prestart, poststart, poststop, sidecars) are not supported"),
		"RestartPolicy":   {msg: "a task-level restart policy is not supported; set RestartPolicy on the task group", accept: nomadRestartDefaults},
		"Artifacts":       unsupported("artifacts are not supported"),
		"Vault":           unsupported("Vault is not supported"),
		"Consul":          unsupported("Consul is not supported"),
		"DispatchPayload": unsupported("dispatch payloads are not supported"),
		"VolumeMounts":    unsupported("volume mounts are not supported"),
		"CSIPluginConfig": unsupported("CSI plugins are not supported"),
		"Leader":          unsupported("leader tasks are not supported"),
		"ShutdownDelay":   unsupported("a task shutdown delay is not supported"),
		"KillSignal":      unsupported("a kill signal other than the default is not supported"),
		"Kind":            unsupported("task kinds (Consul Connect) are not supported"),
		"ScalingPolicies": unsupported("scaling policies are not supported"),
		"Secrets":         unsupported("secrets blocks are not supported"),
		"Identity":        unsupported("workload identities are not supported"),
		"Identities":      unsupported("workload identities are not supported"),
		"Actions":         unsupported("task actions are not supported"),
		"Schedule":        unsupported("task schedules are not supported"),
	},
	// Nomad's services map onto Drover's when Nomad itself would
	// register them (provider "nomad", or unset); Consul's and Connect's
	// settings are refused. Nomad's Canonicalize defaults (address mode
	// "auto", on_update "require_healthy", cluster "default", weights
	// 1/1) ask for nothing Drover does differently.
	typeOf[structs.Service](): {
		"Provider":          unsupported(`Consul is not supported; use provider = "nomad" or leave it unset`, `"nomad"`),
		"Cluster":           unsupported("Consul clusters are not supported", `"default"`),
		"Kind":              unsupported("Consul service kinds are not supported"),
		"Connect":           unsupported("Consul Connect is not supported"),
		"CanaryTags":        unsupported("canary tags are not supported; canaries register with the service's tags"),
		"EnableTagOverride": unsupported("enable_tag_override is not supported (it is a Consul setting)"),
		"AddressMode":       unsupported(`address modes other than "auto" and "host" are not supported; services are registered at the node's address`, `"auto"`, `"host"`),
		"Address":           unsupported("a custom service address is not supported; services are registered at the node's address"),
		"CheckRestart":      unsupported("check_restart is not supported; failing checks do not restart tasks"),
		"Meta":              unsupported("service meta is not supported"),
		"CanaryMeta":        unsupported("canary meta is not supported"),
		"TaggedAddresses":   unsupported("tagged addresses are not supported"),
		"OnUpdate":          unsupported(`on_update other than "require_healthy" is not supported`, `"require_healthy"`),
		"Identity":          unsupported("workload identities are not supported"),
		"Weights":           {msg: "service weights are not supported (they are a Consul setting)", fields: map[string][]string{"Passing": {`1`}, "Warning": {`1`}}},
	},
	typeOf[structs.ServiceCheck](): {
		"Protocol":               unsupported(`check protocols other than "http" are not supported`, `"http"`),
		"PortLabel":              unsupported("a check port of its own is not supported; checks use the service's port"),
		"Expose":                 unsupported("exposing checks through Consul Connect is not supported"),
		"AddressMode":            unsupported(`check address modes other than "host" are not supported`, `"host"`),
		"Advertise":              unsupported("advertise is not supported"),
		"InitialStatus":          unsupported(`an initial check status other than "critical" is not supported; checks start critical`, `"critical"`),
		"Notes":                  {ignore: true},
		"TLSServerName":          unsupported("HTTPS checks are not supported"),
		"TLSSkipVerify":          unsupported("HTTPS checks are not supported"),
		"Header":                 unsupported("check headers are not supported"),
		"Method":                 unsupported(`check methods other than "GET" are not supported`, `"GET"`),
		"CheckRestart":           {msg: "check_restart is not supported; failing checks do not restart tasks", fields: map[string][]string{"Grace": {`1000000000`}}},
		"GRPCService":            unsupported("gRPC checks are not supported"),
		"GRPCUseTLS":             unsupported("gRPC checks are not supported"),
		"TaskName":               unsupported("a check's own task is not supported; a task service's checks (script checks among them) run in and while its task runs"),
		"SuccessBeforePassing":   unsupported("success_before_passing is not supported; one result sets a check's status"),
		"FailuresBeforeCritical": unsupported("failures_before_critical is not supported; one result sets a check's status"),
		"FailuresBeforeWarning":  unsupported("failures_before_warning is not supported; one result sets a check's status"),
		"Body":                   unsupported("check request bodies are not supported"),
		"OnUpdate":               unsupported(`on_update other than "require_healthy" is not supported`, `"require_healthy"`),
	},
	// Nomad's templates map onto Drover's (Go text/template with
	// Drover's functions, rendered by the client); what consul-template
	// offers besides is refused. Nomad's Canonicalize defaults (delimiters
	// "{{" "}}", once false, no wait) ask for nothing Drover does
	// differently.
	typeOf[structs.Template](): {
		"ChangeScript":  unsupported(`change scripts are not supported; use change_mode "restart", "signal" or "noop"`),
		"Once":          unsupported(`rendering a template only once is not supported; use change_mode "noop" to leave the task alone on a change`),
		"Uid":           unsupported("setting the owner of a rendered file is not supported; files are owned by root"),
		"Gid":           unsupported("setting the group of a rendered file is not supported; files are owned by root"),
		"LeftDelim":     unsupported(`template delimiters other than "{{" and "}}" are not supported`, `"{{"`),
		"RightDelim":    unsupported(`template delimiters other than "{{" and "}}" are not supported`, `"}}"`),
		"VaultGrace":    unsupported("Vault is not supported"),
		"Wait":          unsupported("template wait (quiescence) is not supported; a change is rendered at once and acted on after the splay"),
		"ErrMissingKey": unsupported("error_on_missing_key is not supported: a missing key is always an error"),
	},
	typeOf[structs.Resources](): {
		"Cores":       unsupported("reserved cores are not supported; ask for CPU in MHz"),
		"MemoryMaxMB": unsupported("memory oversubscription (MemoryMaxMB) is not supported"),
		"DiskMB":      unsupported("disk resources are not supported"),
		"Networks":    unsupported("task-level networks are not supported; use the task group's Networks"),
		"Devices":     unsupported("devices are not supported"),
		"NUMA":        unsupported("NUMA placement is not supported"),
		"SecretsMB":   unsupported("a secrets directory size is not supported"),
		"IOPS":        unsupported("IOPS resources are not supported"),
	},
	typeOf[structs.NetworkResource](): {
		"Device":   unsupported("a network device is not supported"),
		"CIDR":     unsupported("a network CIDR is not supported"),
		"IP":       unsupported("a network IP is not supported"),
		"DNS":      unsupported("DNS settings are not supported"),
		"Hostname": unsupported("a hostname is not supported"),
		"MBits":    unsupported("bandwidth (MBits) is not supported"),
		"CNI":      unsupported("CNI arguments are not supported"),
	},
	typeOf[structs.Port](): {
		"IgnoreCollision": unsupported("ignore_collision is not supported"),
	},
	typeOf[structs.RestartPolicy](): {
		"RenderTemplates": unsupported("render_templates is not supported"),
	},
	typeOf[structs.MigrateStrategy](): {
		"HealthCheck":     unsupported(`migrate health checks other than "checks" are not supported`, `"checks"`),
		"MinHealthyTime":  unsupported("a migrate min_healthy_time other than 10s is not supported", `10000000000`),
		"HealthyDeadline": unsupported("a migrate healthy_deadline other than 5m is not supported", `300000000000`),
	},
	typeOf[structs.LogConfig](): {
		"Disabled": unsupported("disabling logs is not supported"),
		"Enabled":  unsupported("disabling logs is not supported", `true`),
	},
}

// nomadRestartDefaults are Nomad's default restart policies (service and
// batch), which Nomad's Canonicalize copies into every task; they equal
// Drover's group defaults (structs.DefaultRestartPolicy).
var nomadRestartDefaults = []string{
	`{"Interval":1800000000000,"Attempts":2,"Delay":15000000000,"Mode":"fail","RenderTemplates":false}`,
	`{"Interval":86400000000000,"Attempts":3,"Delay":15000000000,"Mode":"fail","RenderTemplates":false}`,
}

// nomadMigrateDefaults are Nomad's migrate defaults, per key.
func nomadMigrateDefaults(maxParallel string) map[string][]string {
	return map[string][]string{
		"MaxParallel":     {maxParallel},
		"HealthCheck":     {`"checks"`},
		"MinHealthyTime":  {`10000000000`},
		"HealthyDeadline": {`300000000000`},
	}
}

// nomadRequestRules adds the fields of Nomad's WriteRequest, which
// Nomad's client embeds in every write body, to a body's rules.
func nomadRequestRules(rules map[string]nomadRule) map[string]nomadRule {
	rules["Region"] = unsupported(`regions other than "global" are not supported (Drover has one region)`, `"global"`)
	rules["Namespace"] = unsupported("a namespace in the request body is not supported; set Job.Namespace or ?namespace=")
	rules["SecretID"] = unsupported("a token in the request body is not supported; send it in the X-Nomad-Token header")
	return rules
}

// translateNomadJob fills in, before Canonicalize, what Nomad's client
// leaves to the server: the services' defaults, as a job file's get
// them (structs.ApplyServiceDefaults): a task service's TaskName, and
// each check's name, http path, interval and timeout. Nomad's update
// health check "checks" needs no translation: it is Drover's too. It
// runs on every JSON job body, Drover's own included.
func translateNomadJob(job *structs.Job) {
	for _, tg := range job.TaskGroups {
		structs.ApplyServiceDefaults(tg)
	}
}

// dropInheritedRestartPolicies removes from a group's tasks (decoded
// JSON) every RestartPolicy equal to the group's own: Nomad's
// Canonicalize copies the group's policy into each task, and Drover,
// which restarts per group, already applies it. A task policy that
// differs stays, and is refused by nomadFieldRules.
func dropInheritedRestartPolicies(group map[string]interface{}) {
	_, groupPolicy, ok := lookupKey(group, "RestartPolicy")
	if !ok || groupPolicy == nil {
		return
	}
	want, err := json.Marshal(withoutZeroKeys(groupPolicy))
	if err != nil {
		return
	}
	_, tasks, _ := lookupKey(group, "Tasks")
	list, _ := tasks.([]interface{})
	for _, item := range list {
		task, ok := item.(map[string]interface{})
		if !ok {
			continue
		}
		key, policy, ok := lookupKey(task, "RestartPolicy")
		if !ok {
			continue
		}
		if got, err := json.Marshal(withoutZeroKeys(policy)); err == nil && string(got) == string(want) {
			delete(task, key)
		}
	}
}

// lookupKey finds a key of decoded JSON case-insensitively, as
// encoding/json matches fields.
func lookupKey(obj map[string]interface{}, name string) (string, interface{}, bool) {
	if v, ok := obj[name]; ok {
		return name, v, true
	}
	for k, v := range obj {
		if strings.EqualFold(k, name) {
			return k, v, true
		}
	}
	return "", nil, false
}

// withoutZeroKeys drops an object's zero-valued keys, so that
// {"RenderTemplates": false} and an absent RenderTemplates compare
// equal.
func withoutZeroKeys(v interface{}) interface{} {
	obj, ok := v.(map[string]interface{})
	if !ok {
		return v
	}
	out := map[string]interface{}{}
	for k, item := range obj {
		if !jsonZero(item) {
			out[k] = item
		}
	}
	return out
}
