package jobspec

import "testing"

func TestParseAndValidate_MapsPlacementProblemsToSource(t *testing.T) {
	// task is a valid task to complete the groups below.
	const task = `
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
    }`
	cases := []struct {
		name      string
		src       string
		path      string // structs field path of the problem
		line, col int
		summary   string // HCL-ish location
		phrase    string // from the validation message
	}{
		{
			name: "distinct_hosts shorthand in a task",
			src: `job "web" {
  group "web" {
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
      constraint { distinct_hosts = true }
    }
  }
}
`,
			path: "TaskGroups[0].Tasks[0].Constraints[0].Operand", line: 6, col: 20,
			summary: `group "web" task "server": constraint[0].distinct_hosts`,
			phrase:  "distinct_hosts applies to a job or a group, not a task",
		},
		{
			name: "operator agreeing with an earlier shorthand in a task",
			src: `job "web" {
  group "web" {
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
      constraint {
        distinct_hosts = true
        operator       = "distinct_hosts"
      }
    }
  }
}
`,
			path: "TaskGroups[0].Tasks[0].Constraints[0].Operand", line: 7, col: 9,
			summary: `group "web" task "server": constraint[0].distinct_hosts`,
			phrase:  "distinct_hosts applies to a job or a group, not a task",
		},
		{
			name: "distinct_property operator in a task",
			src: `job "web" {
  group "web" {
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
      constraint {
        attribute = "${meta.rack}"
        operator  = "distinct_property"
      }
    }
  }
}
`,
			path: "TaskGroups[0].Tasks[0].Constraints[0].Operand", line: 8, col: 21,
			summary: `group "web" task "server": constraint[0].operator`,
			phrase:  "distinct_property applies to a job or a group, not a task",
		},
		{
			name: "version shorthand that does not parse",
			src: `job "web" {
  group "web" {
    constraint {
      attribute = "${meta.rack}"
      value     = "r1"
    }
    constraint {
      attribute = "${attr.kernel.version}"
      version   = "newer than 3"
    }` + task + `
  }
}
`,
			path: "TaskGroups[0].Constraints[1].RTarget", line: 9, col: 19,
			summary: `group "web": constraint[1].version`,
			phrase:  `"newer than 3" is not a version constraint`,
		},
		{
			name: "version operator with a value that does not parse",
			src: `job "web" {
  constraint {
    attribute = "${attr.kernel.version}"
    operator  = "version"
    value     = "3.x"
  }
  group "web" {` + task + `
  }
}
`,
			path: "Constraints[0].RTarget", line: 5, col: 17,
			summary: `job "web": constraint[0].value`,
			phrase:  `"3.x" is not a version constraint`,
		},
		{
			name: "regexp shorthand that does not compile",
			src: `job "web" {
  constraint {
    attribute = "${node.class}"
    regexp    = "^(web"
  }
  group "web" {` + task + `
  }
}
`,
			path: "Constraints[0].RTarget", line: 4, col: 17,
			summary: `job "web": constraint[0].regexp`,
			phrase:  "invalid regular expression",
		},
		{
			name: "affinity regexp that does not compile",
			src: `job "web" {
  group "web" {
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
      affinity {
        attribute = "${node.class}"
        operator  = "regexp"
        value     = "[a-"
      }
    }
  }
}
`,
			path: "TaskGroups[0].Tasks[0].Affinities[0].RTarget", line: 9, col: 21,
			summary: `group "web" task "server": affinity[0].value`,
			phrase:  "invalid regular expression",
		},
		{
			name: "unknown constraint operator",
			src: `job "web" {
  constraint {
    attribute = "${meta.rack}"
    operator  = "like"
    value     = "r1"
  }
  group "web" {` + task + `
  }
}
`,
			path: "Constraints[0].Operand", line: 4, col: 17,
			summary: `job "web": constraint[0].operator`,
			phrase:  `unknown operator "like"; accepted: "=", "!="`,
		},
		{
			name: "constraint without an attribute points at the block",
			src: `job "web" {
  group "web" {
    constraint { value = "r1" }` + task + `
  }
}
`,
			path: "TaskGroups[0].Constraints[0].LTarget", line: 3, col: 5,
			summary: `group "web": constraint[0].attribute`,
			phrase:  "must name an attribute",
		},
		{
			name: "distinct_property limit not a number",
			src: `job "web" {
  group "web" {
    constraint {
      distinct_property = "${meta.rack}"
      value             = "many"
    }` + task + `
  }
}
`,
			path: "TaskGroups[0].Constraints[0].RTarget", line: 5, col: 27,
			summary: `group "web": constraint[0].value`,
			phrase:  `"many" is not a positive integer`,
		},
		{
			name: "affinity weight zero",
			src: `job "web" {
  group "web" {
    affinity {
      attribute = "${meta.rack}"
      value     = "r1"
      weight    = 0
    }` + task + `
  }
}
`,
			path: "TaskGroups[0].Affinities[0].Weight", line: 6, col: 19,
			summary: `group "web": affinity[0].weight`,
			phrase:  "0 is not allowed; accepted: -100 to 100, not 0",
		},
		{
			name: "distinct_hosts as an affinity operator",
			src: `job "web" {
  affinity {
    attribute = "${meta.rack}"
    operator  = "distinct_hosts"
  }
  group "web" {` + task + `
  }
}
`,
			path: "Affinities[0].Operand", line: 4, col: 17,
			summary: `job "web": affinity[0].operator`,
			phrase:  "distinct_hosts is not an affinity operator",
		},
		{
			name: "spread percentages over 100",
			src: `job "web" {
  group "web" {
    spread {
      attribute = "${meta.rack}"
      target "r1" { percent = 60 }
      target "r2" { percent = 50 }
    }` + task + `
  }
}
`,
			path: "TaskGroups[0].Spreads[0].SpreadTarget", line: 5, col: 7,
			summary: `group "web": spread[0].target`,
			phrase:  "add up to 110, over 100",
		},
		{
			name: "spread target given twice",
			src: `job "web" {
  group "web" {
    spread {
      attribute = "${meta.rack}"
      target "r1" { percent = 20 }
      target "r1" { percent = 30 }
    }` + task + `
  }
}
`,
			path: "TaskGroups[0].Spreads[0].SpreadTarget[1].Value", line: 6, col: 14,
			summary: `group "web": spread[0].target[1].value`,
			phrase:  `target "r1" is given twice`,
		},
		{
			name: "spread without an attribute points at the block",
			src: `job "web" {
  spread {
    weight = 20
  }
  group "web" {` + task + `
  }
}
`,
			path: "Spreads[0].Attribute", line: 2, col: 3,
			summary: `job "web": spread[0].attribute`,
			phrase:  "must name an attribute",
		},
		{
			name: "spread in a system job",
			src: `job "web" {
  type = "system"
  spread {
    attribute = "${meta.rack}"
  }
  group "web" {` + task + `
  }
}
`,
			path: "Spreads", line: 3, col: 3,
			summary: `job "web": spread`,
			phrase:  "system jobs run on every node",
		},
		{
			name: "min_healthy_time not shorter than healthy_deadline",
			src: `job "web" {
  group "web" {
    update {
      min_healthy_time = "5m"
      healthy_deadline = "5m"
    }` + task + `
  }
}
`,
			path: "TaskGroups[0].Update.MinHealthyTime", line: 4, col: 26,
			summary: `group "web": update.min_healthy_time`,
			phrase:  "must be shorter than healthy_deadline",
		},
		{
			name: "problem in the job's update block reported for the group inheriting it",
			src: `job "web" {
  update {
    healthy_deadline  = "20m"
    progress_deadline = "10m"
  }
  group "web" {` + task + `
  }
}
`,
			path: "TaskGroups[0].Update.HealthyDeadline", line: 3, col: 25,
			summary: `group "web": update.healthy_deadline`,
			phrase:  "must not be longer than progress_deadline",
		},
		{
			name: "inherited canary over the group's count",
			src: `job "web" {
  update {
    canary = 3
  }
  group "web" {
    count = 2` + task + `
  }
}
`,
			path: "TaskGroups[0].Update.Canary", line: 3, col: 14,
			summary: `group "web": update.canary`,
			phrase:  "3 canaries for a count of 2",
		},
		{
			name: "group canary over the group's count",
			src: `job "web" {
  update {
    canary = 1
  }
  group "web" {
    update {
      canary = 5
    }` + task + `
  }
}
`,
			path: "TaskGroups[0].Update.Canary", line: 7, col: 16,
			summary: `group "web": update.canary`,
			phrase:  "5 canaries for a count of 1",
		},
		{
			name: "unknown health check",
			src: `job "web" {
  group "web" {
    update {
      health_check = "manual"
    }` + task + `
  }
}
`,
			path: "TaskGroups[0].Update.HealthCheck", line: 4, col: 22,
			summary: `group "web": update.health_check`,
			phrase:  `unknown health check "manual"; accepted: "checks", "task_states"`,
		},
		{
			name: "negative duration points at the update block",
			src: `job "web" {
  group "web" {
    update {
      stagger = "-5s"
    }` + task + `
  }
}
`,
			path: "TaskGroups[0].Update", line: 3, col: 5,
			summary: `group "web": update`,
			phrase:  "durations must not be negative",
		},
		{
			name: "auto_promote without canaries",
			src: `job "web" {
  group "web" {
    update {
      auto_promote = true
    }` + task + `
  }
}
`,
			path: "TaskGroups[0].Update.AutoPromote", line: 4, col: 22,
			summary: `group "web": update.auto_promote`,
			phrase:  "auto_promote needs canaries",
		},
		{
			name: "negative update max_parallel",
			src: `job "web" {
  group "web" {
    update {
      max_parallel = -1
    }` + task + `
  }
}
`,
			path: "TaskGroups[0].Update.MaxParallel", line: 4, col: 22,
			summary: `group "web": update.max_parallel`,
			phrase:  "-1 is negative",
		},
		{
			name: "negative migrate max_parallel",
			src: `job "web" {
  group "web" {
    migrate {
      max_parallel = -2
    }` + task + `
  }
}
`,
			path: "TaskGroups[0].Migrate.MaxParallel", line: 4, col: 22,
			summary: `group "web": migrate.max_parallel`,
			phrase:  "-2 is negative",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkValidationDiag(t, tc.src, tc.path, tc.line, tc.col, tc.summary, tc.phrase)
		})
	}
}
