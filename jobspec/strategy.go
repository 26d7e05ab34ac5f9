package jobspec

import (
	"github.com/droverhq/drover/structs"
	"github.com/hashicorp/hcl/v2"
)

// The update and migrate blocks. Fields a block leaves out stay zero:
// structs.(*UpdateStrategy).Canonicalize fills in the defaults, and a
// group without an update block inherits the job's whole block.

var (
	updateSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "max_parallel"}, {Name: "health_check"},
			{Name: "min_healthy_time"}, {Name: "healthy_deadline"}, {Name: "progress_deadline"},
			{Name: "stagger"}, {Name: "canary"}, {Name: "auto_promote"}, {Name: "auto_revert"},
		},
	}
	migrateSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "max_parallel"}},
	}
)

// update converts an `update { ... }` block found at path.
func (c *converter) update(b *hcl.Block, path string) *structs.UpdateStrategy {
	u := &structs.UpdateStrategy{}
	c.record(path, b.DefRange)
	attrs := c.content(b.Body, updateSchema).Attributes
	c.setInt(attrs, "max_parallel", path+".MaxParallel", &u.MaxParallel)
	c.setString(attrs, "health_check", path+".HealthCheck", &u.HealthCheck)
	c.setDuration(attrs, "min_healthy_time", path+".MinHealthyTime", &u.MinHealthyTime)
	c.setDuration(attrs, "healthy_deadline", path+".HealthyDeadline", &u.HealthyDeadline)
	c.setDuration(attrs, "progress_deadline", path+".ProgressDeadline", &u.ProgressDeadline)
	c.setDuration(attrs, "stagger", path+".Stagger", &u.Stagger)
	c.setInt(attrs, "canary", path+".Canary", &u.Canary)
	c.setBool(attrs, "auto_promote", path+".AutoPromote", &u.AutoPromote)
	c.setBool(attrs, "auto_revert", path+".AutoRevert", &u.AutoRevert)
	return u
}

// migrate converts a group's `migrate { ... }` block found at path.
func (c *converter) migrate(b *hcl.Block, path string) *structs.MigrateStrategy {
	m := &structs.MigrateStrategy{}
	c.record(path, b.DefRange)
	attrs := c.content(b.Body, migrateSchema).Attributes
	c.setInt(attrs, "max_parallel", path+".MaxParallel", &m.MaxParallel)
	return m
}
