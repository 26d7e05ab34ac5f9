# A service job with every block the format knows.
job "web" {
  type        = "service"
  datacenters = ["dc1", "dc2"]
  priority    = 70
  meta { owner = "ops" }

  group "web" {
    count = 3
    meta = { tier = "frontend" }

    network {
      mode = "host"
      port "http" {}
      port "admin" { static = 8080 }
      port "metrics" { to = 9100 }
      port "dns" {
        static = 53
        to     = 5353
      }
    }

    restart {
      attempts = 2
      interval = "30m"
      delay    = "15s"
      mode     = "fail"
    }

    reschedule {
      attempts       = 1
      interval       = "24h"
      delay          = "5s"
      delay_function = "constant"
      max_delay      = "1h"
      unlimited      = false
    }

    task "server" {
      driver = "containerd"
      config {
        image   = "localhost/busybox:latest"
        command = "/bin/sh"
        args    = ["-c", "echo hi; exec httpd -f -p $DROVER_PORT_http"]
      }
      env { GREETING = "hello" }
      resources {
        cpu    = 100
        memory = 64
      }
      kill_timeout = "10s"
      meta { role = "server" }
    }

    task "sidecar" {
      driver = "containerd"
      config {
        image = "localhost/busybox:latest"
      }
      env = {
        RACK        = "${meta.rack}"
        "LOG.LEVEL" = "debug"
      }
    }
  }

  group "batchy" {
    task "once" {
      driver = "containerd"
      config {
        image = "localhost/busybox:latest"
      }
    }
  }
}
