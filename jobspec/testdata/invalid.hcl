# Parses, but fails validation in several places at once.
job "web" {
  type     = "cron"
  priority = 500

  group "web" {
    count = -1

    network {
      port "http" {}
      port "http" { static = 70000 }
    }

    task "server" {
      driver = "containerd"
      config {
        command = "/bin/sh"
      }
      resources {
        cpu    = 100
        memory = 0
      }
    }

    task "server" {
      config {
        image = "localhost/busybox:latest"
      }
    }
  }
}
