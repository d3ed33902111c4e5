#!/usr/bin/env bash
# Run a pass, status and recover the way cro.service confines them, as far as this machine
# allows without systemd as PID 1: the unit's CapabilityBoundingSet and NoNewPrivileges
# (with setpriv), UMask 0077. CPU, memory and a small tmpfs disk target must be reached,
# the burners must get their idle cgroup, and recover must leave nothing.
#   bash examples/systemd/confined.sh [path/to/cro]        (as root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cro=$(realpath "${1:-$here/../../target/debug/cro}")
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$here/cro.service" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
work=$(mktemp -d /tmp/cro-confined.XXXXXX)
cleanup() {
  "$cro" --state-dir "$work/state" recover >/dev/null 2>&1 || true
  mountpoint -q "$work/disk" && umount "$work/disk"
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/disk"
mount -t tmpfs -o size=64m tmpfs "$work/disk"
read -r total avail < <(awk '/MemTotal/{t=$2}/MemAvailable/{a=$2}END{print t*1024, a*1024}' /proc/meminfo)
# 160 MiB above now: the 26 MiB of disk ballast on the tmpfs is memory too (shmem), and
# the workers themselves take a few MiB; the memory worker must still hold >= 32 MiB.
mem=$(python3 -c "print(round(($total-$avail+160*2**20)/$total*100,3))")
printf '{"version":1,"cpu":{"target_percent":0},"memory":{"target_percent":%s,"min_available_percent":5},"disk":{"target_percent":40,"min_free_gib":0,"mounts":["%s"]}}' \
  "$mem" "$work/disk" >"$work/desired.json"
export CRO_RUN_DIR="$work/run"
run() { (umask 0077; setpriv --bounding-set="-all,$caps" --no-new-privs -- "$cro" --state-dir "$work/state" --desired "$work/desired.json" "$@"); }
run reconcile --once >/dev/null
for _ in $(seq 100); do
  pct=$(df --output=pcent "$work/disk" | tail -1 | tr -dc 0-9)
  [ "$pct" -ge 38 ] && break
  sleep 0.1
done
[ "$pct" -ge 38 ] || { echo "confined: disk at $pct %, not 40 %" >&2; exit 1; }
for _ in $(seq 50); do
  st=$(run status --json)
  held=$(python3 -c 'import json,sys; s=json.load(sys.stdin); print(max((j.get("ballast_bytes") or 0) for j in s["jobs"] if j["id"]=="memory"))' <<<"$st")
  [ "$held" -ge $((32 << 20)) ] && break
  sleep 0.2
done
mode=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["host"]["cpu_placement"]["mode"])' <<<"$st")
[ "$held" -ge $((32 << 20)) ] || { echo "confined: memory ballast $held bytes" >&2; exit 1; }
if [ -e /sys/fs/cgroup/cpu/cpu.idle ] && [ "$mode" != cgroup-idle ]; then
  echo "confined: burners in $mode mode, not in their idle cgroup" >&2; exit 1
fi
out=$(run recover)
grep -q "after:  no workers; 0 job file(s); no ballast" <<<"$out" || { echo "confined: recover left: $out" >&2; exit 1; }
echo "confined ok: capabilities $caps, no new privileges; disk $pct %, memory ballast $((held >> 20)) MiB, cpu placement $mode, recover clean"
