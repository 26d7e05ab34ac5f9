# Three instances of a tiny web server, each on its own dynamic port,
# offered as the service "web": health-checked, in DNS
# (web.service.drover), behind a virtual IP (web.vip.drover:80) and on
# port 8080 of every client, both balanced by the clients' proxies.
# The image is the busybox image `make demo` imports into containerd.
job "web" {
  datacenters = ["dc1"]

  group "web" {
    count = 3

    network {
      port "http" {}
    }

    restart {
      attempts = 3
      delay    = "2s"
    }

    service {
      name = "web"
      port = "http"
      check {
        type     = "http"
        path     = "/"
        interval = "2s"
        timeout  = "1s"
      }
      vip {
        port = 80
      }
      published_port = 8080
      shutdown_delay = "2s"
    }

    task "server" {
      driver = "containerd"

      config {
        image   = "localhost/drover/busybox:latest"
        command = "/bin/sh"
        # $DROVER_* variables are expanded by the task's shell.
        args = ["-c", "mkdir -p /tmp/www && echo \"Hello from allocation $DROVER_ALLOC_ID on port $DROVER_PORT_http\" > /tmp/www/index.html && echo \"serving on :$DROVER_PORT_http\" && exec httpd -f -p $DROVER_PORT_http -h /tmp/www"]
      }

      resources {
        cpu    = 100 # MHz
        memory = 32  # MB
      }

      kill_timeout = "5s"
    }
  }
}
