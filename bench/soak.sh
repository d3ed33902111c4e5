#!/usr/bin/env bash
# Soak: cro as a host runs it, for MINUTES (default 60). The daemon with --textfile-dir,
# `cro serve` scraped every 5 s, readers (a person's `cat` of the desired file every
# second, `cro status` every 10 s), and a real workload (a CPU load that comes and goes,
# a writer that fills and empties files on the padded filesystem). At the end it reports
# tick cadence, daemon and worker RSS and open fds at start and end, history bytes per
# hour, job-file rewrites and level changes per hour.
#
#   bash bench/soak.sh 60            # needs root (a 256 MiB tmpfs is the padded disk)
#
# Uses its own state, run and tmpfs directories under /tmp and a copy of the release
# binary, so rebuilding during a soak changes nothing. Everything it started is stopped
# and unmounted on exit, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-60}
INTERVAL=${CRO_SOAK_INTERVAL:-10}
[ "$(id -u)" = 0 ] || { echo "soak: needs root (it mounts a tmpfs)" >&2; exit 1; }
cargo build --release --locked -q
work=$(mktemp -d /tmp/cro-soak.XXXXXX)
cp target/release/cro "$work/cro"
CRO="$work/cro"
export CRO_RUN_DIR="$work/run" RUST_LOG=info
state="$work/state"; disk="$work/disk"; prom="$work/textfile"
mkdir -p "$state" "$disk" "$prom"
mount -t tmpfs -o size=256m tmpfs "$disk"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  "$CRO" --state-dir "$state" recover >/dev/null 2>&1 || true
  umount "$disk" 2>/dev/null || umount -l "$disk" || true
  echo "soak: cleaned up $work (logs kept there)" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Memory: 200 MiB above what is used now, well clear of the floor.
read -r total avail < <(awk '/MemTotal/{t=$2}/MemAvailable/{a=$2}END{print t*1024, a*1024}' /proc/meminfo)
mem_level=$(python3 -c "print(round(($total-$avail+200*2**20)/$total*100,3))")
cat >"$state/desired.json" <<JSON
{"version":1,"interval_seconds":$INTERVAL,"window_days":1,
 "cpu":{"target_percent":30},
 "memory":{"target_percent":$mem_level,"min_available_percent":5},
 "disk":{"target_percent":50,"min_free_percent":10,"min_free_gib":0,"mounts":["$disk"]}}
JSON
"$CRO" --state-dir "$state" validate >/dev/null

"$CRO" --state-dir "$state" reconcile --textfile-dir "$prom" 2>"$work/daemon.log" &
daemon=$!; pids+=("$daemon")
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$CRO" --state-dir "$state" serve --listen "127.0.0.1:$port" 2>"$work/serve.log" &
pids+=($!)
# readers
( while :; do curl -fs "http://127.0.0.1:$port/metrics" >/dev/null || echo "scrape failed $(date +%T)" >>"$work/scrape-errors"; sleep 5; done ) &
pids+=($!)
( while :; do cat "$state/desired.json" >/dev/null; sleep 1; done ) &
pids+=($!)
( while :; do "$CRO" --state-dir "$state" status >/dev/null 2>&1; sleep 10; done ) &
pids+=($!)
# a real workload: one core busy 20 s of every 60 s; a writer adding 40 MiB for 30 s,
# then deleting it
( while :; do timeout 20 sh -c 'while :; do :; done' || true; sleep 40; done ) &
pids+=($!)
( while :; do dd if=/dev/urandom of="$disk/organic" bs=1M count=40 status=none 2>/dev/null || true; sleep 30; rm -f "$disk/organic"; sleep 30; done ) &
pids+=($!)

# Wait for the three workers, so the first sample is of a running host.
for _ in $(seq 60); do
  [ "$(ls "$state"/jobs/*.status.json 2>/dev/null | wc -l)" -ge 3 ] && break
  sleep 1
done
sleep 5
# samples every 10 s: time, daemon RSS kB and fds, each worker's RSS and fds; job inodes
# every second (a rewrite is a rename: a new inode)
sample() {
  local p=$1
  echo "$(awk '/VmRSS/{print $2}' /proc/$p/status 2>/dev/null || echo 0) $(ls /proc/$p/fd 2>/dev/null | wc -l)"
}
: >"$work/samples"; : >"$work/rewrites"
declare -A ino
end=$(( $(date +%s) + MINUTES * 60 ))
n=0
while [ "$(date +%s)" -lt "$end" ]; do
  for f in "$state"/jobs/*.json; do
    case "$f" in *.status.json) continue;; esac
    [ -e "$f" ] || continue
    i=$(stat -c %i "$f" 2>/dev/null || echo 0)
    if [ "${ino[$f]:-}" != "$i" ]; then
      [ -n "${ino[$f]:-}" ] && echo "$(date +%s) $(basename "$f")" >>"$work/rewrites"
      ino[$f]=$i
    fi
  done
  if [ $((n % 10)) = 0 ]; then
    line="$(date +%s) daemon $(sample "$daemon")"
    for s in "$state"/jobs/*.status.json; do
      [ -e "$s" ] || continue
      id=$(basename "$s" .status.json)
      wp=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['pid'])" "$s" 2>/dev/null || echo 0)
      line="$line $id $(sample "$wp")"
    done
    echo "$line" >>"$work/samples"
  fi
  n=$((n + 1))
  sleep 1
done

python3 - "$work" "$MINUTES" "$INTERVAL" <<'PY'
import json, os, statistics, sys, glob, datetime
work, minutes, interval = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
recs = []
for f in sorted(glob.glob(f"{work}/state/history/*.jsonl")):
    for l in open(f):
        try: recs.append(json.loads(l))
        except Exception: pass
ts = [datetime.datetime.fromisoformat(r["ts"].replace("Z", "+00:00")).timestamp() for r in recs]
gaps = [b - a for a, b in zip(ts, ts[1:])]
hist_bytes = sum(os.path.getsize(f) for f in glob.glob(f"{work}/state/history/*.jsonl"))
hours = minutes / 60
print(f"soak: {minutes:.0f} min, interval {interval:.0f} s, {os.cpu_count()} CPUs")
print(f"ticks: {len(recs)} history records, expected {minutes*60/interval:.0f}; "
      f"gap median {statistics.median(gaps):.2f} s, min {min(gaps):.2f} s, max {max(gaps):.2f} s")
print(f"history: {hist_bytes} bytes, {hist_bytes/hours:.0f} bytes/hour, {len(recs)/hours:.0f} records/hour")
rows = [l.split() for l in open(f"{work}/samples")]
def col(row):
    d = {}
    i = 1
    while i + 2 < len(row):
        d[row[i]] = (int(row[i+1]), int(row[i+2])); i += 3
    return d
first, last = col(rows[0]), col(rows[-1])
for name in sorted(set(first) | set(last)):
    a, b = first.get(name, (0, 0)), last.get(name, (0, 0))
    print(f"{name}: RSS {a[0]/1024:.1f} -> {b[0]/1024:.1f} MiB, fds {a[1]} -> {b[1]}")
peak = max((col(r).get("daemon", (0, 0))[0] for r in rows), default=0)
print(f"daemon peak RSS {peak/1024:.1f} MiB")
rw = [l.split() for l in open(f"{work}/rewrites")]
t0 = ts[0] if ts else 0
steady = [r for r in rw if float(r[0]) >= t0 + 600]
steady_h = max(hours - 10 / 60, 1e-9)
print(f"job-file rewrites: {len(rw)} in all, {len(steady)/steady_h:.1f}/hour after the first 10 min "
      f"({', '.join(f'{k} {sum(1 for r in steady if r[1]==k)}' for k in sorted({r[1] for r in rw}))})")
for res in ("cpu", "memory"):
    lv = [r[res]["level"] for r in recs if res in r]
    ch = sum(1 for a, b in zip(lv, lv[1:]) if a != b)
    print(f"{res} level changes: {ch} ({ch/hours:.1f}/hour), levels {min(lv, default=0):.1f}-{max(lv, default=0):.1f}")
errs = open(f"{work}/scrape-errors").read().count("\n") if os.path.exists(f"{work}/scrape-errors") else 0
print(f"scrapes failed: {errs}")
PY
