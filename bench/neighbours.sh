#!/usr/bin/env bash
# "Never at the neighbour's expense", measured next to the peer doing the same job, in
# alternating rounds (A/B/C, the order rotating each round), medians reported:
#   1. tail latency of a real latency-sensitive service (nginx, measured by its own
#      benchmark client wrk: 1 connection for latency, 50 for throughput) alone, next to
#      cro holding CPU at 70 %, and next to stress-ng --cpu-load 70;
#   2. a fast writer (dd, 700 MiB into the page cache) on a 2 GiB ext4 loop filesystem
#      held at 85 % (min free 10 %) by cro, and by a static ballast of the same size (what
#      the original tool and stress-ng's fallocate stressor do): ENOSPC count, lowest free;
#   3. the memory worker under an address-space limit (CPU it burns, log lines), and under
#      vm.overcommit_memory = 2 (a real allocation next to a ballast that wants more).
#
#   bash bench/neighbours.sh [ROUNDS] [DISK_RUNS]     # defaults 5 and 20; needs root
#
# Run it on an otherwise idle machine: it owns both CPUs. Installs nginx-light, wrk and
# stress-ng from Debian if missing. Everything it starts is stopped by PID on exit; the
# loop filesystem is unmounted and the sysctls it changes are put back.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
DISK_RUNS=${2:-20}
[ "$(id -u)" = 0 ] || { echo "neighbours: needs root (loop mount, sysctls)" >&2; exit 1; }
need=""
for t in nginx:nginx-light wrk:wrk stress-ng:stress-ng; do
  command -v "${t%%:*}" >/dev/null || need="$need ${t#*:}"
done
if [ -n "$need" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
cargo build --release --locked -q
work=$(mktemp -d /tmp/cro-neighbours.XXXXXX)
CRO=target/release/cro
export CRO_RUN_DIR="$work/run"
state="$work/state"
pids=()
oc_mode=$(cat /proc/sys/vm/overcommit_memory); oc_ratio=$(cat /proc/sys/vm/overcommit_ratio); oc_kb=$(cat /proc/sys/vm/overcommit_kbytes)
cleanup() {
  echo "$oc_mode" >/proc/sys/vm/overcommit_memory
  if [ "$oc_kb" != 0 ]; then echo "$oc_kb" >/proc/sys/vm/overcommit_kbytes; else echo "$oc_ratio" >/proc/sys/vm/overcommit_ratio; fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  "$CRO" --state-dir "$state" recover >/dev/null 2>&1 || true
  mountpoint -q "$work/disk" && umount "$work/disk"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cro_desired() { mkdir -p "$state"; printf '%s' "$1" >"$state/desired.json"; }
cro_once() { "$CRO" --state-dir "$state" reconcile --once >/dev/null; }
cro_recover() { "$CRO" --state-dir "$state" recover >/dev/null 2>&1; }
median() { python3 -c 'import sys,statistics;v=[float(x) for x in sys.argv[1:]];print(f"{statistics.median(v):.3f}")' "$@"; }

echo "# neighbours: $(nproc) CPUs, $(uname -r), $(date -u +%F), rounds $ROUNDS"
echo "cpu placement: $("$CRO" --state-dir "$state" status --json 2>/dev/null | python3 -c 'import json,sys;p=json.load(sys.stdin)["host"].get("cpu_placement",{});print(p.get("mode"),"-",p.get("why"))')"

ONLY=${NEIGHBOURS_ONLY:-all}     # latency, disk or memory: one section
# ---- 1. tail latency: nginx + wrk ---------------------------------------------------
if [ "$ONLY" = all ] || [ "$ONLY" = latency ]; then
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
mkdir -p "$work/nginx"; head -c 2048 /dev/urandom | base64 >"$work/nginx/index.html"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx/nginx.pid; error_log $work/nginx/error.log;
events { worker_connections 256; }
http { access_log off; server { listen 127.0.0.1:$port; root $work/nginx; } }
CONF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)
sleep 1
wrk_run() { # conns secs -> "p50_ms p99_ms rps"
  wrk -t1 -c"$1" -d"$2"s --latency "http://127.0.0.1:$port/" | python3 -c '
import re,sys
t=sys.stdin.read()
def ms(v):
    n,u=re.match(r"([\d.]+)(us|ms|s)",v).groups(); return float(n)*{"us":1e-3,"ms":1,"s":1e3}[u]
p50=ms(re.search(r"50%\s+(\S+)",t).group(1)); p99=ms(re.search(r"99%\s+(\S+)",t).group(1))
rps=float(re.search(r"Requests/sec:\s+([\d.]+)",t).group(1)); print(p50,p99,rps)'
}
load_on() {
  case $1 in
    alone) ;;
    cro) cro_desired '{"version":1,"cpu":{"target_percent":70},"memory":{"enabled":false},"disk":{"enabled":false}}'; cro_once; sleep 4 ;;
    cro-autogroup) cro_desired '{"version":1,"cpu":{"target_percent":70},"memory":{"enabled":false},"disk":{"enabled":false}}'; CRO_CPU_PLACEMENT=autogroup cro_once; sleep 4 ;;
    stress) stress-ng --cpu "$(nproc)" --cpu-load 70 --quiet & stress=$!; sleep 2 ;;
  esac
}
load_off() {
  case $1 in
    cro|cro-autogroup) cro_recover ;;
    stress) kill "$stress"; wait "$stress" 2>/dev/null || true ;;
  esac
}
declare -A p50 p99 rps
order=(alone cro cro-autogroup stress)
for r in $(seq "$ROUNDS"); do
  for k in 0 1 2 3; do
    c=${order[$(( (k + r) % 4 ))]}
    load_on "$c"
    read -r a b _ < <(wrk_run 1 10)
    read -r _ _ t < <(wrk_run 50 5)
    load_off "$c"
    p50[$c]="${p50[$c]:-} $a"; p99[$c]="${p99[$c]:-} $b"; rps[$c]="${rps[$c]:-} $t"
    echo "round $r $c: p50 $a ms, p99 $b ms, $t req/s (50 conns)" >&2
  done
done
echo
echo "## nginx + wrk: alone vs cro at 70 % (idle cgroup, and autogroup mode as before) vs stress-ng --cpu-load 70 (median of $ROUNDS rounds)"
echo "| next to | p50 ms | p99 ms | p99 vs alone | req/s (50 conns) | vs alone |"
echo "|---|---:|---:|---:|---:|---:|"
base99=$(median ${p99[alone]}); basert=$(median ${rps[alone]})
for c in alone cro cro-autogroup stress; do
  m50=$(median ${p50[$c]}); m99=$(median ${p99[$c]}); mr=$(median ${rps[$c]})
  name=$c; [ "$c" = stress ] && name="stress-ng --cpu-load 70"; [ "$c" = cro ] && name="cro, level 70 (cpu.idle cgroup)"
  [ "$c" = cro-autogroup ] && name="cro, level 70, CRO_CPU_PLACEMENT=autogroup (SCHED_IDLE + autogroup 19)"
  echo "| $name | $m50 | $m99 | $(python3 -c "print(f'{$m99/$base99:.2f}x')") | $(printf %.0f "$mr") | $(python3 -c "print(f'{$mr/$basert:.3f}x')") |"
done
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()
fi

# ---- 2. a fast writer next to disk ballast ---------------------------------------------
if [ "$ONLY" = all ] || [ "$ONLY" = disk ]; then
truncate -s 2G "$work/disk.img"; mkfs.ext4 -q -F "$work/disk.img"
mkdir -p "$work/disk"; mount -o loop "$work/disk.img" "$work/disk"
cat >"$work/writer.py" <<'PY'
import os, sys, threading, time, subprocess
m = sys.argv[1]; low = [1 << 62]; stop = [False]
def sample():  # the "one more busy process": a 5 ms free-space sampler
    while not stop[0]:
        s = os.statvfs(m); low[0] = min(low[0], s.f_bavail * s.f_frsize); time.sleep(0.005)
t = threading.Thread(target=sample); t.start()
t0 = time.time()
r = subprocess.run(["dd", "if=/dev/zero", f"of={m}/organic", "bs=1M", "count=700", "status=none"],
                   capture_output=True, text=True)
dt = time.time() - t0; stop[0] = True; t.join()
s = os.statvfs(m); cap = (s.f_blocks - s.f_bfree + s.f_bavail) * s.f_frsize
print(1 if r.returncode else 0, f"{low[0] / cap * 100:.1f}", f"{700 / dt:.0f}")
PY
used_pct() { df --output=pcent "$work/disk" | tail -1 | tr -dc 0-9; }
wait_pct() { for _ in $(seq 300); do [ "$(used_pct)" -ge "$1" ] && return 0; sleep 0.1; done; echo "disk never reached $1 %" >&2; return 1; }
cro_desired "{\"version\":1,\"cpu\":{\"enabled\":false},\"memory\":{\"enabled\":false},\"disk\":{\"mounts\":[\"$work/disk\"],\"target_percent\":85,\"min_free_percent\":10,\"min_free_gib\":0}}"
declare -A enospc low speed
for r in $(seq "$DISK_RUNS"); do
  for c in cro static none; do
    if [ "$c" = cro ]; then cro_once; wait_pct 84
    elif [ "$c" = static ]; then
      cap=$(df -B1 --output=size "$work/disk" | tail -1); fallocate -l $(( cap * 85 / 100 )) "$work/disk/static-ballast"
    fi
    read -r e l s < <(python3 "$work/writer.py" "$work/disk")
    rm -f "$work/disk/organic"
    if [ "$c" = cro ]; then cro_recover; else rm -f "$work/disk/static-ballast"; fi
    sync
    enospc[$c]=$(( ${enospc[$c]:-0} + e )); low[$c]="${low[$c]:-} $l"; speed[$c]="${speed[$c]:-} $s"
    echo "disk run $r $c: enospc $e, lowest free $l %, $s MiB/s" >&2
  done
done
echo
echo "## A fast writer (dd 700 MiB, page cache) next to ballast holding a 2 GiB ext4 at 85 % (min free 10 %), $DISK_RUNS runs each"
echo "| ballast | runs with ENOSPC | lowest free % (min / median) | writer MiB/s (median; until it failed, where it did) |"
echo "|---|---:|---:|---:|"
for c in cro static none; do
  name=$c; [ "$c" = static ] && name="static fallocate (original tool, stress-ng --fallocate)"
  [ "$c" = none ] && name="none (the writer alone, same filesystem)"
  echo "| $name | ${enospc[$c]} of $DISK_RUNS | $(python3 -c "import sys;v=[float(x) for x in sys.argv[1:]];v.sort();print(f'{v[0]:.1f} / {v[len(v)//2]:.1f}')" ${low[$c]}) | $(median ${speed[$c]}) |"
done
umount "$work/disk"
fi

# ---- 3. memory at its edges ------------------------------------------------------------
if [ "$ONLY" = all ] || [ "$ONLY" = memory ]; then
echo
echo "## The memory worker at its edges"
read -r total avail < <(awk '/MemTotal/{t=$2}/MemAvailable/{a=$2}END{print t*1024, a*1024}' /proc/meminfo)
lvl() { python3 -c "print(round(($total-$avail+$1*2**20)/$total*100,3))"; }
cro_desired "{\"version\":1,\"cpu\":{\"enabled\":false},\"disk\":{\"enabled\":false},\"memory\":{\"target_percent\":$(lvl 1024),\"min_available_percent\":1}}"
# an address-space limit of 512 MiB on the reconcile, inherited by the worker it starts
prlimit --as=$((512 << 20)) "$CRO" --state-dir "$state" reconcile --once >/dev/null
sleep 3
wpid=$(python3 -c "import json;print(json.load(open('$state/jobs/memory.status.json'))['pid'])")
c0=$(awk '{print $14+$15}' "/proc/$wpid/stat"); l0=$(wc -l <"$state/logs/memory.log")
sleep 10
c1=$(awk '{print $14+$15}' "/proc/$wpid/stat"); l1=$(wc -l <"$state/logs/memory.log")
hz=$(getconf CLK_TCK)
echo "- address space limited to 512 MiB, target 1 GiB of ballast: the worker held $(python3 -c "import json;print(json.load(open('$state/jobs/memory.status.json'))['ballast_bytes']>>20)") MiB and used $(python3 -c "print(f'{($c1-$c0)/$hz/10*100:.2f}')") % of a CPU over 10 s, writing $((l1 - l0)) log lines (before the backoff: 99.5 % of a CPU, ~8,000 lines a second)"
cro_recover
# strict overcommit: a commit limit ~900 MiB above what is committed now
committed=$(awk '/Committed_AS/{print $2}' /proc/meminfo)
echo $(( committed + 900 * 1024 )) >/proc/sys/vm/overcommit_kbytes
echo 2 >/proc/sys/vm/overcommit_memory
cro_once; sleep 4
st=$(python3 -c "import json;s=json.load(open('$state/jobs/memory.status.json'));print(s['ballast_bytes']>>20, '|', s.get('limited_by'))")
head=$(awk '/CommitLimit/{l=$2}/Committed_AS/{c=$2}END{print int((l-c)/1024)}' /proc/meminfo)
ok=$(python3 -c '
import mmap
try:
    m = mmap.mmap(-1, 200 << 20); m.write(b"x" * (200 << 20)); print("succeeded")
except Exception as e: print(f"FAILED: {e}")')
echo "- vm.overcommit_memory = 2, CommitLimit ~900 MiB above Committed_AS, target 1 GiB: ballast $st; commit headroom left $head MiB (floor: 1 % of memory + guard); a real 200 MiB allocation $ok"
cro_recover
fi
