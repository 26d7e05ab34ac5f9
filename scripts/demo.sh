#!/usr/bin/env bash
# make demo: a dev agent running a real 3-instance web job.
#
# Uses the system containerd if one answers on
# /run/containerd/containerd.sock; otherwise starts a private one under
# demo-data/ (its own root, state and socket). Imports a busybox image,
# starts `drover agent -dev`, runs examples/web.hcl and shows its status
# and answers. Everything keeps running; `make demo-stop` tears it down.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA="$PWD/demo-data"
BIN="$PWD/bin/drover"
SYS_SOCK=/run/containerd/containerd.sock
export DROVER_ADDR=http://127.0.0.1:4646

# fetch HOST PORT PATH prints the body of an HTTP GET, with nothing but
# bash (/dev/tcp), so the demo needs neither curl nor python.
fetch() {
  exec 3<>"/dev/tcp/$1/$2" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$3" "$1" >&3
  sed '1,/^\r$/d' <&3
  exec 3<&-
}

# wait_listening HOST PORT waits up to 10 s for something to accept
# connections there (the client's proxy opens its listeners once it has
# read the services, a moment after the instances pass their checks).
wait_listening() {
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on $1:$2 after 10 s; see $DATA/agent.log" >&2
  return 1
}

stop() {
  if [ -f "$DATA/agent.pid" ]; then
    # Stop every job (the demo's and any you ran), so no container is
    # left behind.
    for job in $("$BIN" job status 2>/dev/null | awk 'NR > 1 {print $1}'); do
      "$BIN" job stop -purge "$job" >/dev/null 2>&1 || true
    done
    kill "$(cat "$DATA/agent.pid")" 2>/dev/null || true
    rm -f "$DATA/agent.pid"
    # The demo's cluster state is disposable: the next demo starts fresh.
    sleep 1
    rm -rf "$DATA/agent"
    echo "demo agent stopped"
  fi
  if [ -f "$DATA/containerd.pid" ]; then
    kill "$(cat "$DATA/containerd.pid")" 2>/dev/null || true
    sleep 1
    # Kill the shims and tasks the private containerd left, then unmount.
    pkill -f "containerd-shim.*-address $DATA/containerd/containerd.sock" 2>/dev/null || true
    # Anything still running from the private containerd's root (a
    # container the shim left) or logging into the demo's data dir.
    for p in /proc/[0-9]*; do
      root=$(readlink "$p/root" 2>/dev/null) || continue
      cmd=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null) || continue
      case "$root" in "$DATA/containerd"*) kill -9 "${p#/proc/}" 2>/dev/null || true; continue ;; esac
      case "$cmd" in *drover-task-logger*)
        case "$cmd" in *"$DATA/"*) kill -9 "${p#/proc/}" 2>/dev/null || true ;; esac ;;
      esac
    done
    grep " $DATA/containerd" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -f "$DATA/containerd.pid"
    echo "demo containerd stopped"
  fi
}

if [ "${1:-}" = "stop" ]; then
  stop
  exit 0
fi

mkdir -p "$DATA"
if [ -f "$DATA/agent.pid" ] && kill -0 "$(cat "$DATA/agent.pid")" 2>/dev/null; then
  echo "a demo agent is already running (pid $(cat "$DATA/agent.pid")); run 'make demo-stop' first" >&2
  exit 1
fi

# 1. containerd: the system's if it answers, else a private one.
if ctr -a "$SYS_SOCK" version >/dev/null 2>&1; then
  SOCK="$SYS_SOCK"
  echo "==> Using the running containerd at $SOCK"
else
  SOCK="$DATA/containerd/containerd.sock"
  mkdir -p "$DATA/containerd"
  cat > "$DATA/containerd/config.toml" <<TOML
version = 2
root = "$DATA/containerd/root"
state = "$DATA/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
TOML
  echo "==> Starting a private containerd (socket $SOCK)"
  nohup containerd --config "$DATA/containerd/config.toml" >"$DATA/containerd/containerd.log" 2>&1 &
  echo $! > "$DATA/containerd.pid"
  for _ in $(seq 50); do ctr -a "$SOCK" version >/dev/null 2>&1 && break; sleep 0.1; done
  ctr -a "$SOCK" version >/dev/null || { echo "containerd did not start; see $DATA/containerd/containerd.log" >&2; exit 1; }
fi

# 2. The busybox image, built from the host's static busybox.
echo "==> Importing the busybox image"
go run ./testutil/cmd/busybox-image -address "$SOCK" -namespace drover

# 3. The dev agent.
echo "==> Starting drover agent -dev (log: $DATA/agent.log)"
nohup "$BIN" agent -dev -data-dir "$DATA/agent" -containerd-address "$SOCK" >"$DATA/agent.log" 2>&1 &
echo $! > "$DATA/agent.pid"
for _ in $(seq 100); do "$BIN" node status 2>/dev/null | grep -q ready && break; sleep 0.1; done
"$BIN" node status 2>/dev/null | grep -q ready || { echo "the agent did not become ready; see $DATA/agent.log" >&2; exit 1; }

# 4. The job.
echo "==> drover job run examples/web.hcl"
"$BIN" job run examples/web.hcl
echo
echo "==> drover job status web"
"$BIN" job status web
echo
echo "==> Each instance answers on its own port"
# One allocation per line, only the running ones; ports are encoded
# Label, Value, To, HostIP (the Go field order).
fetch 127.0.0.1 4646 /v1/job/web/allocations |
  sed 's/{"ID":/\n&/g' | grep '"DesiredStatus":"run"' | grep '"ClientStatus":"running"' |
  grep -o '"Value":[0-9]*,"To":[0-9]*,"HostIP":"[^"]*"' |
  sed 's/"Value":\([0-9]*\),"To":[0-9]*,"HostIP":"\([^"]*\)"/\2:\1/' |
  while read -r addr; do echo "GET http://$addr/  ->  $(fetch "${addr%:*}" "${addr##*:}" /)"; done
echo
echo "==> drover service info web   (instances registered with their health checks)"
for _ in $(seq 50); do
  [ "$("$BIN" service info web 2>/dev/null | grep -c ' passing ')" -ge 3 ] && break
  sleep 0.2
done
"$BIN" service info web
echo
echo "==> DNS on the client agent (127.0.0.1:8600)"
echo "--> busybox nslookup web.service.drover 127.0.0.1:8600"
busybox nslookup web.service.drover 127.0.0.1:8600 | sed -n '/^Name:/,$p'
echo "--> busybox nslookup -type=srv _web._tcp.service.drover 127.0.0.1:8600"
busybox nslookup -type=srv _web._tcp.service.drover 127.0.0.1:8600 | grep service.drover || true
VIP=$(busybox nslookup web.vip.drover 127.0.0.1:8600 | awk '/^Address: /{a=$2} END{print a}')
echo "--> web.vip.drover is $VIP"
echo
echo "==> Through the virtual IP $VIP:80, balanced by the client's proxy"
wait_listening "$VIP" 80 || true
for _ in 1 2 3 4 5 6; do echo "GET http://$VIP/  ->  $(fetch "$VIP" 80 /)"; done
echo
echo "==> Through the published port 8080 (every client forwards it)"
wait_listening 127.0.0.1 8080 || true
for _ in 1 2 3; do echo "GET http://127.0.0.1:8080/  ->  $(fetch 127.0.0.1 8080 /)"; done
echo
echo "The demo keeps running. Try:"
echo "  export DROVER_ADDR=$DROVER_ADDR"
echo "  bin/drover node status"
echo "  bin/drover alloc logs <alloc-id-prefix>"
echo "  bin/drover service list; curl -s $DROVER_ADDR/v1/client/proxy"
echo "  ctr -a $SOCK -n drover task ls"
echo "Stop it with: make demo-stop"
