job "shop" {
  datacenters = ["dc1"]

  group "web" {
    network {
      port "http" {}
      port "admin" { static = 9000 }
    }

    service {
      name = "web"
      port = "http"
      tags = ["v1", "public"]

      check {
        name     = "web-alive"
        type     = "http"
        interval = "5s"
        timeout  = "1s"
      }
      check {
        type = "http"
        path = "/ready"
      }
      check {
        type = "tcp"
      }
      check {
        type     = "http"
        interval = "1s"
      }

      vip { port = 80 }
      published_port = 8080
      shutdown_delay = "5s"
    }

    task "server" {
      driver = "containerd"
      config { image = "busybox" }

      service {
        name = "web-admin"
        port = "admin"
      }
    }
  }
}
