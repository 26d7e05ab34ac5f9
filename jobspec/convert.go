package jobspec

import (
	"fmt"
	"strings"

	"github.com/droverhq/drover/structs"
	"github.com/hashicorp/hcl/v2"
)

// converter turns the blocks of one job file into a *structs.Job. It
// keeps going after a problem so that one run reports every problem
// HCL lets it find, and it remembers where each field came from so that
// validation problems can be reported at a source position.
type converter struct {
	filename string
	src      []byte
	diags    []Diagnostic
	// ranges maps a structs field path, as used in
	// structs.FieldError.Path, to the source range it was read from:
	// an attribute's value, a block's header or a block's label. The
	// empty path is the job block.
	ranges map[string]hcl.Range
	// spelled maps a structs field path to the argument that set it,
	// where that is not the field's usual name: a constraint operator
	// written as `distinct_hosts = true` is reported as
	// constraint[0].distinct_hosts, not constraint[0].operator.
	spelled map[string]string
	// opts are the caller's options (SourceDir).
	opts options
}

func newConverter(filename string, src []byte, opts options) *converter {
	return &converter{
		filename: filename,
		src:      src,
		opts:     opts,
		ranges:   make(map[string]hcl.Range),
		spelled:  make(map[string]string),
	}
}

func (c *converter) record(path string, r hcl.Range) {
	c.ranges[path] = r
}

func (c *converter) spell(path, name string) {
	c.spelled[path] = name
}

// forget drops what was recorded for path and the fields under it.
func (c *converter) forget(path string) {
	for k := range c.ranges {
		if under(k, path) {
			delete(c.ranges, k)
		}
	}
	for k := range c.spelled {
		if under(k, path) {
			delete(c.spelled, k)
		}
	}
}

// alias makes the ranges recorded under from also locate the same
// fields under to: a group without an update block inherits the job's,
// and Validate reports its problems under the group's path.
func (c *converter) alias(from, to string) {
	added := make(map[string]hcl.Range)
	for k, r := range c.ranges {
		if under(k, from) {
			added[to+k[len(from):]] = r
		}
	}
	for k, r := range added {
		c.ranges[k] = r
	}
}

// under reports whether path is prefix or a field or element of it.
func under(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	rest := path[len(prefix):]
	return rest == "" || rest[0] == '.' || rest[0] == '['
}

func (c *converter) errorf(r hcl.Range, summary, detail string) {
	c.diags = append(c.diags, diagAt(c.filename, &r, summary, detail))
}

// content decodes a block body against its schema, reporting unknown
// arguments and blocks with HCL's own "Did you mean" suggestions.
func (c *converter) content(body hcl.Body, schema *hcl.BodySchema) *hcl.BodyContent {
	content, diags := body.Content(schema)
	c.diags = append(c.diags, fromHCL(c.filename, diags)...)
	return content
}

// single returns the only block of type typ, or nil, reporting any
// further ones as duplicates.
func (c *converter) single(blocks hcl.Blocks, typ, where string) *hcl.Block {
	of := blocks.OfType(typ)
	if len(of) == 0 {
		return nil
	}
	for _, extra := range of[1:] {
		c.errorf(extra.DefRange, fmt.Sprintf("Duplicate %s block", typ),
			fmt.Sprintf("Only one %s block is allowed in %s; the first one is at %s.", typ, where, posString(of[0].DefRange)))
	}
	return of[0]
}

var (
	jobSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "type"}, {Name: "datacenters"}, {Name: "priority"}, {Name: "node_pool"}, {Name: "meta"},
			{Name: "namespace"},
		},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "meta"}, {Type: "constraint"}, {Type: "affinity"}, {Type: "spread"}, {Type: "update"},
			{Type: "group", LabelNames: []string{"name"}},
		},
	}
	groupSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "count"}, {Name: "meta"}},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "meta"}, {Type: "network"}, {Type: "restart"}, {Type: "reschedule"},
			{Type: "constraint"}, {Type: "affinity"}, {Type: "spread"}, {Type: "update"}, {Type: "migrate"},
			{Type: "service"}, {Type: "task", LabelNames: []string{"name"}},
		},
	}
	networkSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "mode"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "port", LabelNames: []string{"label"}}},
	}
	portSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "static"}, {Name: "to"}},
	}
	restartSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "attempts"}, {Name: "interval"}, {Name: "delay"}, {Name: "mode"},
		},
	}
	rescheduleSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "attempts"}, {Name: "interval"}, {Name: "delay"},
			{Name: "delay_function"}, {Name: "max_delay"}, {Name: "unlimited"},
		},
	}
	taskSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "driver"}, {Name: "kill_timeout"}, {Name: "env"}, {Name: "meta"},
		},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "config"}, {Type: "env"}, {Type: "meta"}, {Type: "resources"},
			{Type: "constraint"}, {Type: "affinity"}, {Type: "logs"}, {Type: "service"},
			{Type: "template"},
		},
	}
	configSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "image"}, {Name: "command"}, {Name: "args"}},
	}
	resourcesSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "cpu"}, {Name: "memory"}},
	}
	logsSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "max_files"}, {Name: "max_file_size"}},
	}
)

// job converts a `job "<id>" { ... }` block.
func (c *converter) job(b *hcl.Block) *structs.Job {
	j := &structs.Job{ID: b.Labels[0], Name: b.Labels[0]}
	c.record("", b.DefRange)
	c.record("ID", b.LabelRanges[0])
	c.record("Name", b.LabelRanges[0])

	content := c.content(b.Body, jobSchema)
	c.setString(content.Attributes, "type", "Type", &j.Type)
	c.setStrings(content.Attributes, "datacenters", "Datacenters", &j.Datacenters)
	c.setInt(content.Attributes, "priority", "Priority", &j.Priority)
	c.setString(content.Attributes, "node_pool", "NodePool", &j.NodePool)
	// The namespace stays empty when the file names none: the CLI's
	// -namespace (or the server's default) then decides.
	c.setString(content.Attributes, "namespace", "Namespace", &j.Namespace)
	j.Meta = c.stringMap(content, "meta", "Meta")
	c.placement(content.Blocks, "", &j.Constraints, &j.Affinities, &j.Spreads)
	if ub := c.single(content.Blocks, "update", fmt.Sprintf("job %q", j.ID)); ub != nil {
		j.Update = c.update(ub, "Update")
	}
	for _, gb := range content.Blocks.OfType("group") {
		path := fmt.Sprintf("TaskGroups[%d]", len(j.TaskGroups))
		tg := c.group(gb, path, j.Type)
		if tg.Update == nil && j.Update != nil {
			// Canonicalize gives the group a copy of the job's update
			// block, and Validate reports problems with it under the
			// group's path.
			c.alias("Update", path+".Update")
		}
		j.TaskGroups = append(j.TaskGroups, tg)
	}
	return j
}

// group converts a `group "<name>" { ... }` block found at path.
func (c *converter) group(b *hcl.Block, path, jobType string) *structs.TaskGroup {
	tg := &structs.TaskGroup{Name: b.Labels[0], Count: 1}
	c.record(path, b.DefRange)
	c.record(path+".Name", b.LabelRanges[0])
	where := fmt.Sprintf("group %q", tg.Name)

	content := c.content(b.Body, groupSchema)
	c.setInt(content.Attributes, "count", path+".Count", &tg.Count)
	tg.Meta = c.stringMap(content, "meta", path+".Meta")
	for i, nb := range content.Blocks.OfType("network") {
		npath := fmt.Sprintf("%s.Networks[%d]", path, i)
		if i == 1 {
			// Validate reports "only one network block" at the
			// Networks path; point at the first extra block.
			c.record(path+".Networks", nb.DefRange)
		}
		tg.Networks = append(tg.Networks, c.network(nb, npath))
	}
	if rb := c.single(content.Blocks, "restart", where); rb != nil {
		tg.RestartPolicy = c.restart(rb, path+".RestartPolicy", jobType)
	}
	if rb := c.single(content.Blocks, "reschedule", where); rb != nil {
		tg.ReschedulePolicy = c.reschedule(rb, path+".ReschedulePolicy", jobType)
	}
	c.placement(content.Blocks, path+".", &tg.Constraints, &tg.Affinities, &tg.Spreads)
	if ub := c.single(content.Blocks, "update", where); ub != nil {
		tg.Update = c.update(ub, path+".Update")
	}
	if mb := c.single(content.Blocks, "migrate", where); mb != nil {
		tg.Migrate = c.migrate(mb, path+".Migrate")
	}
	tg.Services = c.services(content.Blocks, path+".", "")
	for _, tb := range content.Blocks.OfType("task") {
		tpath := fmt.Sprintf("%s.Tasks[%d]", path, len(tg.Tasks))
		tg.Tasks = append(tg.Tasks, c.task(tb, tpath))
	}
	// Checks' names, paths, intervals and timeouts left out; the
	// fields it fills in have no range and are located at the check.
	structs.ApplyServiceDefaults(tg)
	return tg
}

// network converts a `network { ... }` block. A port with a static
// value is reserved; one without is dynamic, and the two kinds are
// numbered separately, as in structs.NetworkResource.
func (c *converter) network(b *hcl.Block, path string) *structs.NetworkResource {
	n := &structs.NetworkResource{}
	c.record(path, b.DefRange)
	content := c.content(b.Body, networkSchema)
	c.setString(content.Attributes, "mode", path+".Mode", &n.Mode)
	for _, pb := range content.Blocks.OfType("port") {
		port := structs.Port{Label: pb.Labels[0]}
		pc := c.content(pb.Body, portSchema)
		kind, list := "DynamicPorts", &n.DynamicPorts
		if a := pc.Attributes["static"]; a != nil && !isNullLiteral(a.Expr) {
			kind, list = "ReservedPorts", &n.ReservedPorts
		}
		ppath := fmt.Sprintf("%s.%s[%d]", path, kind, len(*list))
		c.record(ppath, pb.DefRange)
		c.record(ppath+".Label", pb.LabelRanges[0])
		c.setInt(pc.Attributes, "static", ppath+".Value", &port.Value)
		c.setInt(pc.Attributes, "to", ppath+".To", &port.To)
		*list = append(*list, port)
	}
	return n
}

// restart converts a `restart { ... }` block: the attributes it sets
// override the job type's defaults, so `restart { attempts = 5 }` keeps
// the default interval, delay and mode.
func (c *converter) restart(b *hcl.Block, path, jobType string) *structs.RestartPolicy {
	rp := structs.DefaultRestartPolicy(jobType)
	c.record(path, b.DefRange)
	attrs := c.content(b.Body, restartSchema).Attributes
	c.setInt(attrs, "attempts", path+".Attempts", &rp.Attempts)
	c.setDuration(attrs, "interval", path+".Interval", &rp.Interval)
	c.setDuration(attrs, "delay", path+".Delay", &rp.Delay)
	c.setString(attrs, "mode", path+".Mode", &rp.Mode)
	return rp
}

// reschedule converts a `reschedule { ... }` block over the job type's
// defaults, as restart does.
func (c *converter) reschedule(b *hcl.Block, path, jobType string) *structs.ReschedulePolicy {
	rp := structs.DefaultReschedulePolicy(jobType)
	c.record(path, b.DefRange)
	attrs := c.content(b.Body, rescheduleSchema).Attributes
	c.setInt(attrs, "attempts", path+".Attempts", &rp.Attempts)
	c.setDuration(attrs, "interval", path+".Interval", &rp.Interval)
	c.setDuration(attrs, "delay", path+".Delay", &rp.Delay)
	c.setString(attrs, "delay_function", path+".DelayFunction", &rp.DelayFunction)
	c.setDuration(attrs, "max_delay", path+".MaxDelay", &rp.MaxDelay)
	c.setBool(attrs, "unlimited", path+".Unlimited", &rp.Unlimited)
	return rp
}

// task converts a `task "<name>" { ... }` block found at path.
func (c *converter) task(b *hcl.Block, path string) *structs.Task {
	t := &structs.Task{Name: b.Labels[0]}
	c.record(path, b.DefRange)
	c.record(path+".Name", b.LabelRanges[0])
	where := fmt.Sprintf("task %q", t.Name)

	content := c.content(b.Body, taskSchema)
	c.setString(content.Attributes, "driver", path+".Driver", &t.Driver)
	c.setDuration(content.Attributes, "kill_timeout", path+".KillTimeout", &t.KillTimeout)
	t.Env = c.stringMap(content, "env", path+".Env")
	t.Meta = c.stringMap(content, "meta", path+".Meta")
	if cb := c.single(content.Blocks, "config", where); cb != nil {
		cfg := &structs.TaskConfig{}
		cpath := path + ".Config"
		c.record(cpath, cb.DefRange)
		attrs := c.content(cb.Body, configSchema).Attributes
		c.setString(attrs, "image", cpath+".image", &cfg.Image)
		c.setString(attrs, "command", cpath+".command", &cfg.Command)
		c.setStrings(attrs, "args", cpath+".args", &cfg.Args)
		t.Config = cfg
	}
	if rb := c.single(content.Blocks, "resources", where); rb != nil {
		// An attribute left out of the block gets its default; one written
		// explicitly (even as 0) is kept so validation can reject it.
		res := &structs.Resources{CPU: structs.DefaultTaskCPU, MemoryMB: structs.DefaultTaskMemoryMB}
		rpath := path + ".Resources"
		c.record(rpath, rb.DefRange)
		attrs := c.content(rb.Body, resourcesSchema).Attributes
		c.setInt(attrs, "cpu", rpath+".CPU", &res.CPU)
		c.setInt(attrs, "memory", rpath+".MemoryMB", &res.MemoryMB)
		t.Resources = res
	}
	if lb := c.single(content.Blocks, "logs", where); lb != nil {
		// As with resources: left-out attributes get the defaults,
		// written ones are kept for validation (max_file_size is MB).
		lc := structs.DefaultLogConfig()
		lpath := path + ".LogConfig"
		c.record(lpath, lb.DefRange)
		attrs := c.content(lb.Body, logsSchema).Attributes
		c.setInt(attrs, "max_files", lpath+".MaxFiles", &lc.MaxFiles)
		c.setInt(attrs, "max_file_size", lpath+".MaxFileSizeMB", &lc.MaxFileSizeMB)
		t.LogConfig = lc
	}
	// Tasks take no spread: it distributes a group's allocations.
	c.placement(content.Blocks, path+".", &t.Constraints, &t.Affinities, nil)
	t.Services = c.services(content.Blocks, path+".", t.Name)
	t.Templates = c.templates(content.Blocks, path+".")
	return t
}
