# A service job with every placement, update and migrate block the
# format knows, at every level each is allowed, in long and short forms.
job "placed" {
  type        = "service"
  node_pool   = "gpu"
  datacenters = ["dc1"]

  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }
  constraint {
    operator = "distinct_hosts"
    value    = "true"
  }
  constraint {
    attribute = "${attr.kernel.version}"
    version   = ">= 3.10"
  }

  affinity {
    attribute = "${node.datacenter}"
    value     = "dc1"
  }
  affinity {
    attribute = "${meta.ssd}"
    operator  = "is"
    value     = "true"
    weight    = -30
  }

  spread {
    attribute = "${node.datacenter}"
  }

  update {
    max_parallel      = 2
    health_check      = "task_states"
    min_healthy_time  = "15s"
    healthy_deadline  = "4m"
    progress_deadline = "8m"
    stagger           = "45s"
    canary            = 1
    auto_promote      = true
    auto_revert       = true
  }

  group "web" {
    count = 4

    constraint { distinct_hosts = true }
    constraint {
      attribute = "${meta.rack}"
      operator  = "distinct_property"
      value     = "2"
    }
    constraint { distinct_property = "${meta.zone}" }
    # Nomad reads distinct_hosts = false as no constraint at all.
    constraint { distinct_hosts = false }
    constraint {
      attribute = "${node.class}"
      regexp    = "^web"
    }
    constraint {
      attribute    = "${meta.roles}"
      set_contains = "a,b"
    }
    constraint {
      attribute = "${meta.tier}"
      operator  = "=="
      value     = "front"
    }
    constraint {
      attribute = "${meta.env}"
      operator  = "not"
      value     = "dev"
    }
    constraint {
      attribute = "${attr.cpu.numcores}"
      operator  = ">="
      value     = 4
    }

    affinity {
      attribute = "${meta.rack}"
      operator  = "set_contains_any"
      value     = "r1,r2"
      weight    = 100
    }
    affinity {
      attribute = "${attr.kernel.version}"
      version   = ">= 5.0"
      weight    = 10
    }

    spread {
      attribute = "${meta.rack}"
      weight    = 100
      target "r1" { percent = 60 }
      target "r2" { percent = 40 }
    }

    update {
      max_parallel = 1
      canary       = 2
    }

    migrate {
      max_parallel = 2
    }

    task "server" {
      driver = "containerd"
      config {
        image = "localhost/busybox:latest"
      }

      constraint {
        attribute = "${attr.cpu.arch}"
        operator  = "is"
        value     = "amd64"
      }
      affinity {
        attribute = "${meta.disk}"
        regexp    = "^(ssd|nvme)$"
        weight    = -50
      }
    }
  }

  # No update block: the group inherits the job's.
  group "api" {
    task "api" {
      driver = "containerd"
      config {
        image = "localhost/busybox:latest"
      }
    }
  }
}
