#!/bin/bash
# follower-kill.sh BIN [DIR]: how long a follower SIGKILLed while it
# schedules holds up placement. Starts three servers of BIN on
# 127.78.0.1-3 (data under DIR, default a temp dir), 200 simulated nodes
# (drover sim nodes), submits 300 jobs of 10 allocations with 8
# writers, SIGKILLs a follower after the first 100, and prints the
# seconds from the kill until all 3,000 allocations are placed. Needs
# curl and python3; uses ports 4646-4648 on those addresses.
set -u
BIN=$(realpath "$1"); D=${2:-$(mktemp -d)}
mkdir -p "$D/jobs"
IPS=(127.78.0.1 127.78.0.2 127.78.0.3)
J="-join ${IPS[0]} -join ${IPS[1]} -join ${IPS[2]}"
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null; }
trap cleanup EXIT
for i in 0 1 2; do
  "$BIN" agent -server -bootstrap-expect 3 -bind "${IPS[$i]}" -node-name "s$((i+1))" -data-dir "$D/s$((i+1))" -log-level info $J > "$D/s$((i+1)).log" 2>&1 &
  PIDS+=($!)
done
L=""
for _ in $(seq 1 60); do
  L=$(curl -s "http://${IPS[0]}:4646/v1/status/leader" | tr -d '"' | cut -d: -f1)
  [[ $L == 127.78.* ]] && break
  sleep 0.5
done
[[ $L == 127.78.* ]] || { echo "no leader"; exit 1; }
for i in 0 1 2; do [ "${IPS[$i]}" != "$L" ] && F=$i && break; done
echo "leader $L; the follower to kill is s$((F+1))"
"$BIN" sim nodes -count 200 -servers "$L:4647" -name-prefix fk > "$D/sim.log" 2>&1 &
PIDS+=($!)
sleep 8
for n in $(seq -w 1 300); do
  cat > "$D/jobs/$n.hcl" <<JOB
job "fk$n" {
  datacenters = ["dc1"]
  group "g" {
    count = 10
    task "t" {
      driver = "containerd"
      config {
        image   = "busybox:latest"
        command = "sleep"
        args    = ["1000"]
      }
      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
JOB
done
ls "$D"/jobs/*.hcl | head -100 | xargs -P 8 -n 1 "$BIN" job run -detach -address "http://$L:4646" > /dev/null
kill -9 "${PIDS[$F]}"; KILL=$(date +%s.%N)
ls "$D"/jobs/*.hcl | tail -200 | xargs -P 8 -n 1 "$BIN" job run -detach -address "http://$L:4646" > /dev/null
placed=0
for _ in $(seq 1 400); do
  placed=$(curl -s "http://$L:4646/v1/allocations" | python3 -c 'import sys,json; print(sum(1 for a in json.load(sys.stdin) if a.get("DesiredStatus")=="run"))')
  [ "$placed" -ge 3000 ] && break
  sleep 0.5
done
echo "$placed allocations placed $(python3 -c "print(round($(date +%s.%N)-$KILL,1))") s after the kill"
grep -h "gone while holding\|restarted while holding" "$D"/s*.log | cut -c1-160
