package jobspec

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/droverhq/drover/structs"
	"github.com/hashicorp/hcl/v2"
)

// validationDiag places one validation problem in the source: at the
// range recorded for its exact field path or, when the field was not
// written (a missing driver, say), at the closest enclosing thing that
// was, such as the task block.
func (c *converter) validationDiag(job *structs.Job, p structs.FieldError) Diagnostic {
	r, ok := c.locate(p.Path)
	var rp *hcl.Range
	if ok {
		rp = &r
	}
	summary := hclName(job, p.Path)
	if name, ok := c.spelled[p.Path]; ok {
		// The field was set by a shorthand argument; name that instead.
		if cut := strings.LastIndexByte(p.Path, '.'); cut > 0 {
			summary = hclName(job, p.Path[:cut]) + "." + name
		}
	}
	d := diagAt(c.filename, rp, summary, p.Message)
	d.Path = p.Path
	return d
}

// locate returns the range recorded for path or for its longest
// recorded prefix, cutting one segment at a time:
// "TaskGroups[0].Tasks[1].Driver" -> "TaskGroups[0].Tasks[1]" ->
// "TaskGroups[0].Tasks" -> "TaskGroups[0]" -> "TaskGroups" -> "".
func (c *converter) locate(path string) (hcl.Range, bool) {
	for {
		if r, ok := c.ranges[path]; ok {
			return r, true
		}
		if path == "" {
			return hcl.Range{}, false
		}
		cut := strings.LastIndexAny(path, ".[")
		if cut < 0 {
			path = ""
		} else {
			path = path[:cut]
		}
	}
}

// hclFieldNames maps structs field names to the names a job file uses.
// Names not listed are lower-cased.
var hclFieldNames = map[string]string{
	"ID":               "name",
	"TaskGroups":       "group",
	"Networks":         "network",
	"Tasks":            "task",
	"RestartPolicy":    "restart",
	"ReschedulePolicy": "reschedule",
	"Value":            "static",
	"DelayFunction":    "delay_function",
	"MaxDelay":         "max_delay",
	"MemoryMB":         "memory",
	"KillTimeout":      "kill_timeout",
	"NodePool":         "node_pool",
	"Constraints":      "constraint",
	"Affinities":       "affinity",
	"Spreads":          "spread",
	"SpreadTarget":     "target",
	"LTarget":          "attribute",
	"RTarget":          "value",
	"Operand":          "operator",
	"MaxParallel":      "max_parallel",
	"HealthCheck":      "health_check",
	"MinHealthyTime":   "min_healthy_time",
	"HealthyDeadline":  "healthy_deadline",
	"ProgressDeadline": "progress_deadline",
	"AutoPromote":      "auto_promote",
	"AutoRevert":       "auto_revert",
	"LogConfig":        "logs",
	"Services":         "service",
	"Checks":           "check",
	"PortLabel":        "port",
	"VIP":              "vip",
	"PublishedPort":    "published_port",
	"ShutdownDelay":    "shutdown_delay",
	"TaskName":         "task",
	"Routes":           "route",
	"StripPrefix":      "strip_prefix",
	"HTTPSOnly":        "https_only",
	"CanaryWeight":     "canary_weight",
	"TLS":              "tls",
	"CertName":         "cert",
	"MaxFiles":         "max_files",
	"MaxFileSizeMB":    "max_file_size",
	"Templates":        "template",
	"EmbeddedTmpl":     "data",
	"SourcePath":       "source",
	"DestPath":         "destination",
	"Envvars":          "env",
	"ChangeMode":       "change_mode",
	"ChangeSignal":     "change_signal",
	"WaitMissing":      "wait_missing",
}

// hclName renders a structs field path the way the job file spells it:
// the enclosing labelled blocks, then the dotted attribute, e.g.
// "TaskGroups[0].Tasks[1].Resources.MemoryMB" becomes
// `group "web" task "server": resources.memory`.
func hclName(job *structs.Job, path string) string {
	var blocks, attrs []string
	var tg *structs.TaskGroup
	var nw *structs.NetworkResource
	// services are those of the group or task last named in the path;
	// svc is the service last named.
	var services []*structs.Service
	var svc *structs.Service
	// templates are those of the task last named in the path.
	var templates []*structs.Template
	prev := ""
	for _, seg := range strings.Split(path, ".") {
		field, idx := splitIndex(seg)
		parent := prev
		prev = field
		switch {
		case field == "TaskGroups" && idx >= 0 && len(attrs) == 0:
			tg, services = nil, nil
			if idx < len(job.TaskGroups) {
				tg = job.TaskGroups[idx]
			}
			if tg != nil {
				services = tg.Services
			}
			blocks = append(blocks, labelled("group", tg != nil, func() string { return tg.Name }, idx))
			continue
		case field == "Tasks" && idx >= 0 && len(attrs) == 0 && tg != nil:
			var t *structs.Task
			services = nil
			if idx < len(tg.Tasks) {
				t = tg.Tasks[idx]
			}
			templates = nil
			if t != nil {
				services, templates = t.Services, t.Templates
			}
			blocks = append(blocks, labelled("task", t != nil, func() string { return t.Name }, idx))
			continue
		case field == "Templates" && idx >= 0 && len(attrs) == 0 && tg != nil:
			// Template blocks have no label; their destination says
			// which.
			var tm *structs.Template
			if idx < len(templates) {
				tm = templates[idx]
			}
			ok := tm != nil && tm.DestPath != ""
			blocks = append(blocks, labelled("template", ok, func() string { return tm.DestPath }, idx))
			continue
		case field == "Networks" && idx >= 0 && len(attrs) == 0 && tg != nil:
			nw = nil
			if idx < len(tg.Networks) {
				nw = tg.Networks[idx]
			}
			blocks = append(blocks, "network")
			continue
		case field == "Services" && idx >= 0 && len(attrs) == 0 && tg != nil:
			// Service blocks have no label; their name says which.
			svc = nil
			if idx < len(services) {
				svc = services[idx]
			}
			ok := svc != nil && svc.Name != ""
			blocks = append(blocks, labelled("service", ok, func() string { return svc.Name }, idx))
			continue
		case field == "Checks" && idx >= 0 && len(attrs) == 0 && svc != nil:
			var ch *structs.ServiceCheck
			if idx < len(svc.Checks) {
				ch = svc.Checks[idx]
			}
			ok := ch != nil && ch.Name != ""
			blocks = append(blocks, labelled("check", ok, func() string { return ch.Name }, idx))
			continue
		case field == "Routes" && idx >= 0 && len(attrs) == 0 && svc != nil:
			// Route blocks have no label; their host and path say
			// which.
			var rt *structs.ServiceRoute
			if idx < len(svc.Routes) {
				rt = svc.Routes[idx]
			}
			blocks = append(blocks, labelled("route", rt != nil, func() string { return rt.Host + rt.Path }, idx))
			continue
		case (field == "ReservedPorts" || field == "DynamicPorts") && idx >= 0 && len(attrs) == 0 && nw != nil:
			ports := nw.DynamicPorts
			if field == "ReservedPorts" {
				ports = nw.ReservedPorts
			}
			ok := idx < len(ports)
			blocks = append(blocks, labelled("port", ok, func() string { return ports[idx].Label }, idx))
			continue
		}
		name, known := hclFieldNames[field]
		switch {
		case field == "Value" && parent == "SpreadTarget":
			// A spread target's value is its block label, not a port's
			// static value.
			name = "value"
		case !known:
			name = strings.ToLower(field)
		}
		if idx >= 0 {
			name += "[" + strconv.Itoa(idx) + "]"
		}
		attrs = append(attrs, name)
	}
	if len(blocks) == 0 && job != nil {
		blocks = append(blocks, fmt.Sprintf("job %q", job.ID))
	}
	out := strings.Join(blocks, " ")
	if len(attrs) > 0 && path != "" {
		if out != "" {
			out += ": "
		}
		out += strings.Join(attrs, ".")
	}
	return out
}

// labelled names a labelled block, falling back to its position when
// it cannot be found in the job.
func labelled(typ string, ok bool, label func() string, idx int) string {
	if !ok {
		return fmt.Sprintf("%s #%d", typ, idx+1)
	}
	return fmt.Sprintf("%s %q", typ, label())
}

// splitIndex splits "Tasks[1]" into ("Tasks", 1); idx is -1 without an
// index.
func splitIndex(seg string) (field string, idx int) {
	open := strings.IndexByte(seg, '[')
	if open < 0 || !strings.HasSuffix(seg, "]") {
		return seg, -1
	}
	n, err := strconv.Atoi(seg[open+1 : len(seg)-1])
	if err != nil {
		return seg, -1
	}
	return seg[:open], n
}
